"""Side-by-side benchmark of jupyter_executor against its peers (issue 2).

Run from the repository root::

    python benchmarks/bench_engine.py              # full run, 3 rounds (about 5-8 min on 2 cores)
    python benchmarks/bench_engine.py --quick      # small sizes, 1 round (the smoke test uses this)
    python benchmarks/bench_engine.py --rounds 5 --json results.json
    python benchmarks/bench_engine.py --hog        # then a second pass with a CPU hog running

Every (engine, scenario, size) case runs in a fresh subprocess (``--worker``) that imports only
what that engine needs, warms up on a small instance of the same scenario, then times one
instance and prints its measurements as one JSON line.  Engines are visited in a rotated order in
each round so that none of them always runs first or last, and the tables report medians over the
rounds.  Absolute times drift between runs and machines; the ratios measured in one run are what
the README quotes.

The timed region covers creating the jobs, submitting them and waiting for all of them, for every
engine.  Creating the engine itself (event loop, thread pool, cluster) is outside of it because a
notebook pays for that once per session.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from _hog import cpu_hog  # (benchmarks/, this script's folder, is first on sys.path)

# ---------------------------------------------------------------------------------------------
# Scenario sizes
# ---------------------------------------------------------------------------------------------

FULL_SIZES: dict[str, list[int]] = {
    "noop": [1_000, 10_000, 100_000],
    "chain": [1_000, 10_000, 100_000],
    "fan": [1_000, 4_000, 16_000],  # width of the middle layer: 1 -> W -> 1
    "sleep": [1_000],  # jobs sleeping SLEEP seconds each
    "retained": [10_000],  # no-op jobs whose heap footprint is measured with tracemalloc
    "dask": [1_000],  # no-op tasks on a distributed LocalCluster(processes=False)
    "process": [1_000],  # tiny jobs on 2 worker processes
    "cold": [1],  # the first job's result, in a fresh process (the workers' start included)
}
QUICK_SIZES: dict[str, list[int]] = {
    "noop": [200, 1_000],
    "chain": [200],
    "fan": [100],
    "sleep": [100],
    "retained": [500],
    "dask": [100],
    "process": [200],
    "cold": [1],
}
SLEEP = 0.1
# Warm-up instance run before the timed one, in the same process and on the same engine object,
# so that imports, first-call caches and thread start-up are not billed to the first job.
WARMUP_N = 100
# See worker(): fast cases are repeated in their process until this much was timed.
MAX_REPS = 5
REPEAT_SECONDS = 0.25
CHAIN_ORDERS = ("in order", "dependents first", "one at a time")


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss() -> int:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Probe:
    """Brackets the timed region of one scenario run.

    In ``memory`` mode it measures the Python heap kept alive between ``start`` and ``stop`` (after
    a full collection) instead of time, because tracemalloc slows every allocation down and would
    distort the timings.
    """

    def __init__(self, memory: bool = False) -> None:
        self.memory = memory
        self.seconds = float("nan")
        self.cpu = float("nan")
        self.retained: int | None = None
        self.rss_before = 0
        self.peak_rss = 0
        self._t0 = 0.0
        self._c0 = 0.0
        self._mem0 = 0

    def start(self) -> None:
        if self.memory:
            gc.collect()
            self._mem0 = tracemalloc.get_traced_memory()[0]
        self.rss_before = _rss()
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._t0
        # CPU time of the whole process (all its threads): unlike wall time it barely moves when
        # other programs load the machine, so it is the steadier measure of per-job cost.
        self.cpu = time.process_time() - self._c0
        self.peak_rss = _maxrss()
        if self.memory:
            # Let an engine's own loop thread drop what it holds only until its next iteration
            # (callback handles, done futures): we want what stays, not what is in flight.
            time.sleep(0.05)
            gc.collect()
            self.retained = tracemalloc.get_traced_memory()[0] - self._mem0

    async def astop(self) -> None:
        """``stop`` from a coroutine running on the engine's loop."""
        if self.memory:
            # same as the sleep in stop(): a finished gather is released by a callback that
            # runs on the next iteration of this loop
            for _ in range(3):
                await asyncio.sleep(0)
        self.stop()


# A scenario runner gets the engine-level resource (from the adapter's ``resource()`` context),
# the size and a probe; it must call probe.start()/probe.stop() around the timed region and
# raise if a job did not finish successfully.
Runner = Callable[[Any, int, Probe], None]


@dataclass
class EngineSpec:
    """How to run the scenarios on one engine."""

    key: str
    label: str
    resource: Callable[[], contextlib.AbstractContextManager[Any]]
    runners: dict[str, Runner]

    @property
    def caps(self) -> dict[str, int]:
        """Largest size run per scenario (see CAPS)."""
        return CAPS.get(self.key, {})

    @property
    def kind(self) -> str:
        """The kind of job it runs (see KINDS)."""
        return KINDS.get(self.key, "async")


async def _anoop() -> None:
    return None


def _noop(*_: Any) -> None:
    return None


async def _asleep() -> None:
    await asyncio.sleep(SLEEP)


def _check(ok: bool, what: str) -> None:
    if not ok:
        msg = f"benchmark run did not complete: {what}"
        raise RuntimeError(msg)


@contextlib.contextmanager
def _event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


# ---------------------------------------------------------------------------------------------
# jupyter_executor
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _je_engine(**options: Any) -> Iterator[Any]:
    from jupyter_executor import Engine

    # Defaults, as a notebook gets them (the worker runs in a temporary directory, so the
    # engine's folder and history database land there).
    engine = Engine(**options)
    try:
        yield engine
    finally:
        engine.shutdown()


def _je_engine_no_history() -> contextlib.AbstractContextManager[Any]:
    return _je_engine(history=False)


def _je_end(e: Any, probe: Probe, jobs: list[Any], what: str) -> None:
    """The end of a case: wait for every job, stop the clock, check that they all are done."""
    ok = e.wait()
    probe.stop()
    _check(ok and all(j.status == "done" for j in jobs), what)


def _je_noop(e: Any, n: int, probe: Probe) -> None:
    from jupyter_executor import Job

    probe.start()
    jobs = [Job(_anoop()) for _ in range(n)]
    e.submit(*jobs)
    _je_end(e, probe, jobs, "jupyter_executor noop")


def _je_noop_each(e: Any, n: int, probe: Probe) -> None:
    probe.start()
    jobs = [e.submit(_anoop) for _ in range(n)]
    _je_end(e, probe, jobs, "jupyter_executor submit(fn)")


def _je_chain(order: str) -> Runner:
    def run(e: Any, n: int, probe: Probe) -> None:
        from jupyter_executor import Job

        # names must be unique per engine, and the warm-up shares the engine
        tag = f"c{time.perf_counter_ns()}"
        probe.start()
        jobs = [Job(_anoop(), name=f"{tag}-{i}") for i in range(n)]
        for i in range(1, n):
            jobs[i].requires(jobs[i - 1])
        if order == "in order":
            e.submit(*jobs)
        elif order == "dependents first":
            e.submit(*reversed(jobs))
        else:
            for j in jobs:
                e.submit(j)
        _je_end(e, probe, jobs, f"jupyter_executor chain {order}")

    return run


def _je_fan(e: Any, n: int, probe: Probe) -> None:
    from jupyter_executor import Job

    tag = f"f{time.perf_counter_ns()}"
    probe.start()
    root = Job(_anoop(), name=f"{tag}-root")
    mids = [Job(_anoop(), name=f"{tag}-{i}") for i in range(n)]
    for m in mids:
        m.requires(root)
    sink = Job(_anoop(), name=f"{tag}-sink")
    sink.requires(*mids)
    e.submit(root, *mids, sink)
    _je_end(e, probe, [root, *mids, sink], "jupyter_executor fan")


def _je_sleep(e: Any, n: int, probe: Probe) -> None:
    from jupyter_executor import Job

    probe.start()
    jobs = [Job(asyncio.sleep(SLEEP)) for _ in range(n)]
    e.submit(*jobs)
    _je_end(e, probe, jobs, "jupyter_executor sleep")


def _je_thread_noop(e: Any, n: int, probe: Probe) -> None:
    probe.start()
    jobs = [e.submit(_noop, backend="thread") for _ in range(n)]
    _je_end(e, probe, jobs, "jupyter_executor thread noop")


def _je_thread_chain(e: Any, n: int, probe: Probe) -> None:
    tag = f"t{time.perf_counter_ns()}"
    probe.start()
    jobs = [e.submit(_noop, backend="thread", name=f"{tag}-0")]
    for i in range(1, n):
        jobs.append(e.submit(_noop, backend="thread", name=f"{tag}-{i}", requires=(jobs[-1],)))
    _je_end(e, probe, jobs, "jupyter_executor thread chain")


def _je_thread_fan(e: Any, n: int, probe: Probe) -> None:
    tag = f"tf{time.perf_counter_ns()}"
    probe.start()
    root = e.submit(_noop, backend="thread", name=f"{tag}-root")
    mids = [
        e.submit(_noop, backend="thread", name=f"{tag}-{i}", requires=(root,)) for i in range(n)
    ]
    sink = e.submit(_noop, backend="thread", name=f"{tag}-sink", requires=tuple(mids))
    _je_end(e, probe, [root, *mids, sink], "jupyter_executor thread fan")


# ---------------------------------------------------------------------------------------------
# plain asyncio
# ---------------------------------------------------------------------------------------------


def _aio_noop(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
    async def main() -> list[None]:
        probe.start()
        res = await asyncio.gather(*(_anoop() for _ in range(n)))
        await probe.astop()
        return res

    _check(len(loop.run_until_complete(main())) == n, "asyncio noop")


def _aio_chain(order: str) -> Runner:
    def run(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
        async def after_task(prev: asyncio.Task[None] | None) -> None:
            if prev is not None:
                await prev

        async def main() -> None:
            probe.start()
            if order == "in order":
                # each task awaits the previous one, all created before any runs
                prev: asyncio.Task[None] | None = None
                for _ in range(n):
                    prev = asyncio.create_task(after_task(prev))
                assert prev is not None
                await prev
            else:
                # a dependent cannot await a task that does not exist yet: hand over futures
                futs = [loop.create_future() for _ in range(n)]

                async def hop(i: int) -> None:
                    if i:
                        await futs[i - 1]
                    futs[i].set_result(None)

                tasks = [asyncio.create_task(hop(i)) for i in reversed(range(n))]
                await futs[-1]
                del tasks
            probe.stop()

        loop.run_until_complete(main())

    return run


def _aio_fan(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
    async def main() -> None:
        probe.start()
        root = asyncio.create_task(_anoop())

        async def mid() -> None:
            await root

        mids = [asyncio.create_task(mid()) for _ in range(n)]

        async def sink() -> None:
            await asyncio.gather(*mids)

        await asyncio.create_task(sink())
        probe.stop()

    loop.run_until_complete(main())


def _aio_sleep(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
    async def main() -> None:
        probe.start()
        await asyncio.gather(*(asyncio.sleep(SLEEP) for _ in range(n)))
        probe.stop()

    loop.run_until_complete(main())


# ---------------------------------------------------------------------------------------------
# concurrent.futures.ThreadPoolExecutor
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _tpe() -> Iterator[Any]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor() as pool:
        yield pool


def _tpe_noop(pool: Any, n: int, probe: Probe) -> None:
    probe.start()
    futs = [pool.submit(_noop) for _ in range(n)]
    for f in futs:
        f.result()
    probe.stop()


def _tpe_chain(pool: Any, n: int, probe: Probe) -> None:
    # A pool has no dependencies: each job's done-callback submits the next one.
    done = threading.Event()
    count = [0]

    def step(_: Any) -> None:
        count[0] += 1
        if count[0] < n:
            pool.submit(_noop).add_done_callback(step)
        else:
            done.set()

    probe.start()
    pool.submit(_noop).add_done_callback(step)
    done.wait()
    probe.stop()


def _tpe_fan(pool: Any, n: int, probe: Probe) -> None:
    done = threading.Event()
    lock = threading.Lock()
    left = [n]

    def mid_done(_: Any) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            pool.submit(_noop).add_done_callback(lambda _: done.set())

    def root_done(_: Any) -> None:
        for _i in range(n):
            pool.submit(_noop).add_done_callback(mid_done)

    probe.start()
    pool.submit(_noop).add_done_callback(root_done)
    done.wait()
    probe.stop()


def _tpe_sleep(pool: Any, n: int, probe: Probe) -> None:
    probe.start()
    futs = [pool.submit(time.sleep, SLEEP) for _ in range(n)]
    for f in futs:
        f.result()
    probe.stop()


# ---------------------------------------------------------------------------------------------
# asynciojobs
# ---------------------------------------------------------------------------------------------


def _aj_run(loop: asyncio.AbstractEventLoop, probe: Probe, make: Callable[[], list[Any]]) -> None:
    from asynciojobs import Scheduler

    async def main() -> bool:
        probe.start()
        jobs = make()
        scheduler = Scheduler(*jobs)  # kept alive while measuring, like the other engines
        ok: bool = await scheduler.co_run()
        await probe.astop()
        return ok

    _check(loop.run_until_complete(main()), "asynciojobs")


def _aj_noop(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
    from asynciojobs import Job

    _aj_run(loop, probe, lambda: [Job(_anoop()) for _ in range(n)])


def _aj_chain(order: str) -> Runner:
    def run(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
        from asynciojobs import Job

        def make() -> list[Any]:
            jobs = [Job(_anoop()) for _ in range(n)]
            for i in range(1, n):
                jobs[i].requires(jobs[i - 1])
            return jobs if order == "in order" else jobs[::-1]

        _aj_run(loop, probe, make)

    return run


def _aj_fan(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
    from asynciojobs import Job

    def make() -> list[Any]:
        root = Job(_anoop())
        mids = [Job(_anoop()).requires(root) for _ in range(n)]
        return [root, *mids, Job(_anoop()).requires(mids)]

    _aj_run(loop, probe, make)


def _aj_sleep(loop: asyncio.AbstractEventLoop, n: int, probe: Probe) -> None:
    from asynciojobs import Job

    _aj_run(loop, probe, lambda: [Job(asyncio.sleep(SLEEP)) for _ in range(n)])


# ---------------------------------------------------------------------------------------------
# executor-engine
# ---------------------------------------------------------------------------------------------


@dataclass
class _EE:
    loop: asyncio.AbstractEventLoop
    engine: Any


@contextlib.contextmanager
def _ee_engine() -> Iterator[_EE]:
    from executor.engine import Engine, EngineSetting
    from loguru import logger

    # Its loguru logger writes a line per job to stderr by default; we measure scheduling, not
    # terminal output, so it is silenced (the f-strings are still formatted).
    logger.remove()
    # /dev/shm when available: it creates a directory per job in its cache dir, and peers.md
    # shows the disk costs it 2-3x.  max_jobs=None lifts its default cap of 20 running jobs.
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=shm, prefix="bench-ee-") as tmp, _event_loop() as loop:
        setting = EngineSetting(max_jobs=None, cache_path=tmp, print_traceback=False)
        yield _EE(loop, Engine(setting=setting))


def _ee_run(ee: _EE, probe: Probe, make: Callable[[], list[Any]], order: str = "") -> None:
    async def main() -> list[Any]:
        probe.start()
        jobs = make()
        await ee.engine.submit_async(*(jobs[::-1] if order == "dependents first" else jobs))
        await ee.engine.join()
        await probe.astop()
        return jobs

    jobs = ee.loop.run_until_complete(main())
    _check(all(j.status == "done" for j in jobs), "executor-engine")


def _ee_cls(thread: bool) -> Any:
    from executor.engine import LocalJob, ThreadJob

    return ThreadJob if thread else LocalJob


def _ee_noop(thread: bool) -> Runner:
    def run(ee: _EE, n: int, probe: Probe) -> None:
        cls = _ee_cls(thread)
        fn = _noop if thread else _anoop
        _ee_run(ee, probe, lambda: [cls(fn) for _ in range(n)])

    return run


def _ee_chain(thread: bool, order: str) -> Runner:
    def run(ee: _EE, n: int, probe: Probe) -> None:
        from executor.engine.job.condition import AfterAnother

        cls = _ee_cls(thread)
        fn = _noop if thread else _anoop

        def make() -> list[Any]:
            jobs = [cls(fn)]
            for _ in range(1, n):
                jobs.append(cls(fn, condition=AfterAnother(job_id=jobs[-1].id)))
            return jobs

        _ee_run(ee, probe, make, order)

    return run


def _ee_fan(thread: bool) -> Runner:
    def run(ee: _EE, n: int, probe: Probe) -> None:
        from executor.engine.job.condition import AfterAnother, AfterOthers

        cls = _ee_cls(thread)
        fn = _noop if thread else _anoop

        def make() -> list[Any]:
            root = cls(fn)
            mids = [cls(fn, condition=AfterAnother(job_id=root.id)) for _ in range(n)]
            sink = cls(fn, condition=AfterOthers(job_ids=[m.id for m in mids]))
            return [root, *mids, sink]

        _ee_run(ee, probe, make)

    return run


def _ee_sleep(ee: _EE, n: int, probe: Probe) -> None:
    from executor.engine import LocalJob

    _ee_run(ee, probe, lambda: [LocalJob(_asleep) for _ in range(n)])


# ---------------------------------------------------------------------------------------------
# dask threaded scheduler and distributed.LocalCluster(processes=False)
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _dask_graph(scenario: str, n: int) -> list[Any]:
    import dask

    if scenario == "noop":
        return [dask.delayed(_noop, pure=False)() for _ in range(n)]
    if scenario == "chain":
        d = dask.delayed(_noop, pure=False)()
        for _ in range(1, n):
            d = dask.delayed(_noop, pure=False)(d)
        return [d]
    if scenario == "fan":
        root = dask.delayed(_noop, pure=False)()
        mids = [dask.delayed(_noop, pure=False)(root) for _ in range(n)]
        return [dask.delayed(_noop, pure=False)(mids)]
    return [dask.delayed(time.sleep, pure=False)(SLEEP) for _ in range(n)]


def _dask_threads(scenario: str) -> Runner:
    def run(_: None, n: int, probe: Probe) -> None:
        import dask

        probe.start()
        dask.compute(*_dask_graph(scenario, n), scheduler="threads")
        probe.stop()

    return run


def _by_scenario(runner: Callable[[str], Runner]) -> dict[str, Runner]:
    """The no-op, chain (in order), fan and sleep cases of a peer made by ``runner(scenario)``."""
    return {
        "noop": runner("noop"),
        "chain:in order": runner("chain"),
        "fan": runner("fan"),
        "sleep": runner("sleep"),
    }


@contextlib.contextmanager
def _dist_client() -> Iterator[Any]:
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with (
        LocalCluster(processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _dist(scenario: str) -> Runner:
    def run(client: Any, n: int, probe: Probe) -> None:
        probe.start()
        if scenario == "noop":
            client.gather([client.submit(_noop, pure=False) for _ in range(n)])
        elif scenario == "chain":
            f = client.submit(_noop, pure=False)
            for _ in range(1, n):
                f = client.submit(_noop, f, pure=False)
            f.result()
        elif scenario == "fan":
            root = client.submit(_noop, pure=False)
            mids = [client.submit(_noop, root, pure=False) for _ in range(n)]
            client.submit(_noop, mids, pure=False).result()
        else:
            client.gather([client.submit(time.sleep, SLEEP, pure=False) for _ in range(n)])
        probe.stop()

    return run


# ---------------------------------------------------------------------------------------------
# The dask and process backends against their floors (issue 14)
# ---------------------------------------------------------------------------------------------

#: Worker processes of the process cases (ours and the pool alike).
PROCESS_WORKERS = 2


def _tiny() -> Callable[[int], int]:
    """The tiny job, from a small module (see ``_bench_jobs``): a pool's fork children and our
    workers both get it by reference, ours by importing that module."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _bench_jobs

    return _bench_jobs.tiny


@contextlib.contextmanager
def _je_dask() -> Iterator[Any]:
    with _dist_client() as client, _je_engine(dask=client, history=False) as engine:
        yield engine


def _je_dask_noop(e: Any, n: int, probe: Probe) -> None:
    from jupyter_executor import Job

    probe.start()
    jobs = [Job(_noop, backend="dask") for _ in range(n)]
    e.submit(*jobs)
    _je_end(e, probe, jobs, "jupyter_executor dask noop")


def _je_process_engine() -> contextlib.AbstractContextManager[Any]:
    # Without the history: these cases measure the backend (the history's cost per job is
    # that of the no-op rows above, whatever the backend).
    return _je_engine(limits={"process": PROCESS_WORKERS}, history=False)


def _je_process(e: Any, n: int, probe: Probe) -> None:
    from jupyter_executor import Job

    tiny = _tiny()
    probe.start()
    jobs = [Job(tiny, args=(i,), backend="process") for i in range(n)]
    e.submit(*jobs)
    _je_end(e, probe, jobs, "jupyter_executor process")


def _je_process_cold(e: Any, n: int, probe: Probe) -> None:
    # The engine exists (a notebook made it earlier); its process backend does not yet.
    tiny = _tiny()
    probe.start()
    job = e.submit(tiny, 1, backend="process")
    ok = e.wait_job(job)
    probe.stop()
    _check(ok and job.result() == 1, "jupyter_executor process cold")


def _je_process_prestarted(e: Any, n: int, probe: Probe) -> None:
    # A notebook that made its engine with `engine.prestart("process")` some cells earlier.
    e.prestart("process").result(timeout=60)
    _je_process_cold(e, n, probe)


@contextlib.contextmanager
def _ppe_fork() -> Iterator[Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(PROCESS_WORKERS, mp_context=context) as pool:
        yield pool


def _ppe_process(pool: Any, n: int, probe: Probe) -> None:
    tiny = _tiny()
    probe.start()
    futures = [pool.submit(tiny, i) for i in range(n)]
    results = [f.result() for f in futures]
    probe.stop()
    _check(results == list(range(n)), "ProcessPoolExecutor")


def _ppe_cold(_: None, n: int, probe: Probe) -> None:
    tiny = _tiny()
    probe.start()
    with _ppe_fork() as pool:  # its workers are forked on the first submit
        result = pool.submit(tiny, 1).result()
        probe.stop()
    _check(result == 1, "ProcessPoolExecutor cold")


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

OURS = "jupyter_executor"
OURS_EACH = "jupyter_executor submit(fn)"
OURS_NOHIST = "jupyter_executor history=False"
OURS_THREAD_NOHIST = "jupyter_executor thread history=False"
OURS_THREAD = "jupyter_executor thread"
ASYNCIO = "asyncio.gather"
TPE = "ThreadPoolExecutor"
AJ = "asynciojobs"
EE_LOCAL = "executor-engine LocalJob"
EE_THREAD = "executor-engine ThreadJob"
DASK = "dask threaded"
DIST = "distributed LocalCluster"
OURS_DASK = "jupyter_executor dask"
OURS_PROCESS = "jupyter_executor process"
OURS_PRESTARTED = "jupyter_executor process prestarted"
PPE = "ProcessPoolExecutor fork"
#: Scenarios timed once on a fresh resource, without a warm-up (a warm-up would warm it).
COLD = ("cold",)

# Sleeping thread jobs are bounded by the number of worker threads (6, 2 and 2 here): a smaller
# N shows the same thing in seconds instead of a minute.
_BOUNDED_SLEEP = 20


#: Largest size run per engine and scenario (or family: ``chain``): slow peers would otherwise
#: take minutes per case.
CAPS: dict[str, dict[str, int]] = {
    TPE: {"sleep": _BOUNDED_SLEEP},
    AJ: {"chain": 10_000},
    # dependents first: each hop waits for its 10 ms condition-polling sleep
    EE_LOCAL: {"noop": 30_000, "chain:in order": 10_000, "chain:dependents first": 100},
    EE_THREAD: {"noop": 3_000, "chain": 100, "fan": 1_000},
    DASK: {"noop": 3_000, "chain": 3_000, "fan": 1_000, "sleep": _BOUNDED_SLEEP},
    DIST: {"noop": 2_000, "chain": 200, "fan": 1_000, "sleep": _BOUNDED_SLEEP},
}
#: The kind of job each engine runs (default async): only engines of the kind of a target
#: baseline are compared against it.
KINDS = {
    **dict.fromkeys([OURS_THREAD, OURS_THREAD_NOHIST, TPE, EE_THREAD, DASK, DIST], "thread"),
    **dict.fromkeys([OURS_DASK, DIST + " submit"], "dask"),
    **dict.fromkeys([OURS_PROCESS, PPE, OURS_PRESTARTED, PPE + " cold"], "process"),
}


def engines() -> dict[str, EngineSpec]:
    """Every engine under test, keyed by the label printed in the tables."""
    specs = [
        EngineSpec(
            OURS,
            "jupyter_executor (async `Job`s)",
            _je_engine,
            {
                "noop": _je_noop,
                "retained": _je_noop,
                **{f"chain:{o}": _je_chain(o) for o in CHAIN_ORDERS},
                "fan": _je_fan,
                "sleep": _je_sleep,
            },
        ),
        EngineSpec(
            OURS_EACH, "jupyter_executor (`submit(async_fn)`)", _je_engine, {"noop": _je_noop_each}
        ),
        EngineSpec(
            OURS_NOHIST,
            "jupyter_executor (async `Job`s, `Engine(history=False)`)",
            _je_engine_no_history,
            {"noop": _je_noop, "retained": _je_noop, "chain:in order": _je_chain("in order")},
        ),
        EngineSpec(
            OURS_THREAD,
            'jupyter_executor (`backend="thread"`)',
            _je_engine,
            {"noop": _je_thread_noop, "chain:in order": _je_thread_chain, "fan": _je_thread_fan},
        ),
        EngineSpec(
            OURS_THREAD_NOHIST,
            'jupyter_executor (`backend="thread"`, `Engine(history=False)`)',
            _je_engine_no_history,
            {"noop": _je_thread_noop},
        ),
        EngineSpec(
            ASYNCIO,
            "plain asyncio (`gather` / tasks)",
            _event_loop,
            {
                "noop": _aio_noop,
                "retained": _aio_noop,
                "chain:in order": _aio_chain("in order"),
                "chain:dependents first": _aio_chain("dependents first"),
                "fan": _aio_fan,
                "sleep": _aio_sleep,
            },
        ),
        EngineSpec(
            TPE,
            "`ThreadPoolExecutor` (callbacks for deps)",
            _tpe,
            {"noop": _tpe_noop, "chain:in order": _tpe_chain, "fan": _tpe_fan, "sleep": _tpe_sleep},
        ),
        EngineSpec(
            AJ,
            "asynciojobs 0.21",
            _event_loop,
            {
                "noop": _aj_noop,
                "retained": _aj_noop,
                "chain:in order": _aj_chain("in order"),
                "chain:dependents first": _aj_chain("dependents first"),
                "fan": _aj_fan,
                "sleep": _aj_sleep,
            },
        ),
        EngineSpec(
            EE_LOCAL,
            "executor-engine 0.3 `LocalJob`",
            _ee_engine,
            {
                "noop": _ee_noop(False),
                "retained": _ee_noop(False),
                "chain:in order": _ee_chain(False, "in order"),
                "chain:dependents first": _ee_chain(False, "dependents first"),
                "fan": _ee_fan(False),
                "sleep": _ee_sleep,
            },
        ),
        EngineSpec(
            EE_THREAD,
            "executor-engine 0.3 `ThreadJob`",
            _ee_engine,
            {
                "noop": _ee_noop(True),
                "chain:in order": _ee_chain(True, "in order"),
                "fan": _ee_fan(True),
            },
        ),
        EngineSpec(DASK, "dask.delayed, threaded scheduler", _nothing, _by_scenario(_dask_threads)),
        EngineSpec(
            DIST, "distributed `LocalCluster(processes=False)`", _dist_client, _by_scenario(_dist)
        ),
        EngineSpec(
            OURS_DASK,
            'jupyter_executor (`backend="dask"`, `LocalCluster(processes=False)`, '
            "`Engine(history=False)`)",
            _je_dask,
            {"dask": _je_dask_noop},
        ),
        EngineSpec(
            DIST + " submit",
            "distributed `Client.submit` + `gather` (`LocalCluster(processes=False)`)",
            _dist_client,
            {"dask": _dist("noop")},
        ),
        EngineSpec(
            OURS_PROCESS,
            f'jupyter_executor (`backend="process"`, {PROCESS_WORKERS} workers, '
            "`Engine(history=False)`)",
            _je_process_engine,
            {"process": _je_process, "cold": _je_process_cold},
        ),
        EngineSpec(
            PPE,
            f"`ProcessPoolExecutor({PROCESS_WORKERS})`, fork",
            _ppe_fork,
            {"process": _ppe_process},
        ),
        EngineSpec(
            OURS_PRESTARTED,
            f'jupyter_executor (`backend="process"`, {PROCESS_WORKERS} workers, '
            '`Engine(history=False)`, `engine.prestart("process")` done before)',
            _je_process_engine,
            {"cold": _je_process_prestarted},
        ),
        EngineSpec(
            PPE + " cold",
            f"`ProcessPoolExecutor({PROCESS_WORKERS})`, fork, made for the job",
            _nothing,
            {"cold": _ppe_cold},
        ),
    ]
    return {s.key: s for s in specs}


def cap(spec: EngineSpec, scenario: str, n: int) -> int:
    """The size actually run: the scenario's own cap, else its family's (``chain``)."""
    family = scenario.split(":")[0]
    return min(n, spec.caps.get(scenario, spec.caps.get(family, n)))


# ---------------------------------------------------------------------------------------------
# Worker: one case in this process
# ---------------------------------------------------------------------------------------------


def worker(engine: str, scenario: str, n: int) -> dict[str, Any]:
    """Run one case (after a warm-up) and return its measurements.

    A fast case is timed again in the same process (median of up to MAX_REPS runs, until
    REPEAT_SECONDS of timed work) because a single run of a few milliseconds is mostly noise; a
    slow case runs once. The peak RSS is that of the first timed run.
    """
    spec = engines()[engine]
    runner = spec.runners[scenario]
    memory = scenario == "retained"
    cold = scenario in COLD
    reps = 1 if memory or cold or scenario == "sleep" else MAX_REPS
    probes: list[Probe] = []
    with spec.resource() as res:
        if not cold:
            runner(res, min(WARMUP_N, n), Probe())
        gc.collect()
        if memory:
            tracemalloc.start()
        while len(probes) < reps and sum(p.seconds for p in probes) < REPEAT_SECONDS:
            probe = Probe(memory=memory)
            runner(res, n, probe)
            probes.append(probe)
        if memory:
            tracemalloc.stop()
    first = probes[0]
    out: dict[str, Any] = {
        "engine": engine,
        "scenario": scenario,
        "n": n,
        "seconds": statistics.median(p.seconds for p in probes),
        "cpu": statistics.median(p.cpu for p in probes),
        "samples": [round(p.seconds, 6) for p in probes],
        "peak_rss": first.peak_rss,
        "peak_rss_delta": max(0, first.peak_rss - first.rss_before),
    }
    if first.retained is not None:
        out["retained"] = first.retained
    return out


# ---------------------------------------------------------------------------------------------
# Runner: many cases, each in a fresh subprocess
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    scenario: str
    size: int  # the nominal size of the table column


def plan(sizes: dict[str, list[int]], scenarios: set[str]) -> list[Case]:
    cases = []
    for family, ns in sizes.items():
        if family not in scenarios:
            continue
        names = [f"chain:{o}" for o in CHAIN_ORDERS] if family == "chain" else [family]
        cases += [Case(name, n) for name in names for n in ns]
    return cases


def run_case(engine: str, scenario: str, n: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, scenario, str(n)]
    # A scratch working directory: engines write their folders, caches and databases there.
    with tempfile.TemporaryDirectory(prefix="bench-case-") as cwd:
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timeout after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:200]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_all(
    specs: dict[str, EngineSpec],
    cases: list[Case],
    rounds: int,
    timeout: float,
    log: Callable[[str], None],
) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """Run every (case, engine) ``rounds`` times; keyed by (engine, scenario, size actually run)."""
    results: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    keys = list(specs)
    for r in range(rounds):
        # rotate the engine order so no engine always runs first (cold machine) or last
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for case in cases:
            for key in order:
                spec = specs[key]
                if case.scenario not in spec.runners:
                    continue
                n = cap(spec, case.scenario, case.size)
                k = (key, case.scenario, n)
                # a capped size shared by several columns is measured once per round
                if len(results.get(k, [])) > r:
                    continue
                t0 = time.perf_counter()
                res = run_case(key, case.scenario, n, timeout)
                res["round"] = r
                results.setdefault(k, []).append(res)
                log(
                    f"round {r + 1}/{rounds} {case.scenario:<24} n={n:<7} {key:<28} "
                    f"{_fmt_result(res)} ({time.perf_counter() - t0:.1f} s wall)"
                )
    return results


def _fmt_result(res: dict[str, Any]) -> str:
    if "error" in res:
        return f"ERROR {res['error']}"
    return f"{res['seconds'] * 1e3:9.1f} ms"


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _jobs_in(scenario: str, n: int) -> int:
    # a fan-out/in of width n has n + 2 jobs
    return n + 2 if scenario == "fan" else n


class Report:
    """Medians over rounds, tables and target ratios."""

    def __init__(
        self,
        specs: dict[str, EngineSpec],
        results: dict[tuple[str, str, int], list[dict[str, Any]]],
        sizes: dict[str, list[int]],
    ) -> None:
        self.specs = specs
        self.results = results
        self.sizes = sizes
        # "seconds" (wall) for the tables; targets are also computed on "cpu" for comparison
        self.metric = "seconds"

    def _ok(self, key: str, scenario: str, n: int) -> list[dict[str, Any]]:
        return [r for r in self.results.get((key, scenario, n), []) if "error" not in r]

    def median(self, key: str, scenario: str, n: int, field: str = "seconds") -> float | None:
        vals = [r[field] for r in self._ok(key, scenario, n) if field in r]
        return statistics.median(vals) if vals else None

    def per_job_us(self, key: str, scenario: str, size: int) -> tuple[float | None, int]:
        """Median cost per job in µs at the column ``size`` (or the capped size actually run)."""
        if key not in self.specs:
            return None, size  # engine not selected with --engines
        n = cap(self.specs[key], scenario, size)
        sec = self.median(key, scenario, n, self.metric)
        return (None if sec is None else sec / _jobs_in(scenario, n) * 1e6), n

    def error(self, key: str, scenario: str, n: int) -> str | None:
        errs = [r["error"] for r in self.results.get((key, scenario, n), []) if "error" in r]
        return errs[0] if errs else None

    def cell(self, key: str, scenario: str, size: int, prev: int | None) -> str:
        spec = self.specs[key]
        if scenario not in spec.runners:
            return ""
        n = cap(spec, scenario, size)
        if prev is not None and n <= prev:
            return "—"  # capped below this column: already reported in an earlier one
        us, n = self.per_job_us(key, scenario, size)
        if us is None:
            err = self.error(key, scenario, n)
            return f"error ({err[:40]})" if err else ""
        txt = f"{us:,.1f} µs" if us < 100 else f"{us:,.0f} µs"
        return txt if n == size else f"{txt} (N={n:,})"

    def per_job_table(self, family: str, scenarios: list[tuple[str, str]]) -> list[str]:
        sizes = self.sizes.get(family, [])
        head = "| engine | " + " | ".join(f"N={s:,}" for s in sizes) + " |"
        lines = [head, "|---" * (len(sizes) + 1) + "|"]
        for key, spec in self.specs.items():
            for scenario, suffix in scenarios:
                if scenario not in spec.runners:
                    continue
                cells, prev = [], None
                for s in sizes:
                    cells.append(self.cell(key, scenario, s, prev))
                    prev = s
                lines.append(f"| {spec.label}{suffix} | " + " | ".join(cells) + " |")
        return lines

    def memory_table(self) -> list[str]:
        noop_sizes = self.sizes.get("noop", [])
        ret_sizes = self.sizes.get("retained", [])
        top = noop_sizes[-1] if noop_sizes else 0
        ret = ret_sizes[-1] if ret_sizes else 0
        lines = [
            f"| engine | peak RSS growth, no-op N={top:,} | retained heap per finished job "
            f"(N={ret:,}) |",
            "|---|---|---|",
        ]
        for key, spec in self.specs.items():
            cells = []
            n = cap(spec, "noop", top)
            peak = self.median(key, "noop", n, "peak_rss_delta") if "noop" in spec.runners else None
            cells.append(
                ""
                if peak is None
                else f"{peak / 1e6:,.0f} MB" + ("" if n == top else f" (N={n:,})")
            )
            kept = (
                self.median(key, "retained", ret, "retained")
                if "retained" in spec.runners
                else None
            )
            cells.append("" if kept is None else f"{kept / ret:,.0f} B")
            if any(cells):
                lines.append(f"| {spec.label} | " + " | ".join(cells) + " |")
        return lines

    def sleep_table(self) -> list[str]:
        sizes = self.sizes.get("sleep", [])
        if not sizes:
            return []
        size = sizes[-1]
        lines = [f"| engine | {size:,} jobs sleeping {SLEEP} s: wall time |", "|---|---|"]
        for key, spec in self.specs.items():
            if "sleep" not in spec.runners:
                continue
            n = cap(spec, "sleep", size)
            sec = self.median(key, "sleep", n)
            txt = "error" if sec is None else f"{sec:.3f} s"
            if n != size:
                txt += f" for N={n} (bounded by its worker threads)"
            lines.append(f"| {spec.label} | {txt} |")
        return lines

    def cold_table(self) -> list[str]:
        lines = ["| engine | first result |", "|---|---|"]
        for size in self.sizes.get("cold", []):
            for key, spec in self.specs.items():
                if "cold" not in spec.runners:
                    continue
                sec = self.median(key, "cold", size)
                err = self.error(key, "cold", size)
                txt = f"{sec * 1e3:.1f} ms" if sec is not None else f"error ({err})"
                lines.append(f"| {spec.label} | {txt} |")
        return lines

    # -- targets ------------------------------------------------------------------------------

    def per_round(self, key: str, scenario: str, size: int) -> dict[int, float]:
        """Cost per job in µs (or seconds for ``sleep``, bytes for ``retained``) by round."""
        if key not in self.specs or scenario not in self.specs[key].runners:
            return {}
        n = cap(self.specs[key], scenario, size)
        field = {"sleep": "seconds", "retained": "retained"}.get(scenario, self.metric)
        scale = {"sleep": 1.0, "retained": 1.0 / n}.get(scenario, 1e6 / _jobs_in(scenario, n))
        return {r["round"]: r[field] * scale for r in self._ok(key, scenario, n) if field in r}

    @staticmethod
    def paired(combine: Callable[..., float], *series: dict[int, float]) -> float | None:
        """Median over rounds of ``combine`` applied to the values of one round.

        Pairing by round compares engines that ran minutes apart, not a whole run apart, so a
        change in the machine's load during the run cancels out of the ratio.
        """
        rounds = set.intersection(*(set(x) for x in series)) if series else set()
        vals = [combine(*(x[r] for x in series)) for r in sorted(rounds)]
        return statistics.median(vals) if vals else None

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, measured, met) rows; met is None when a value is missing."""
        rows: list[tuple[str, str, bool | None]] = []
        pr, paired = self.per_round, self.paired

        def ratio(a: dict[int, float], b: dict[int, float]) -> float | None:
            return paired(lambda x, y: x / y, a, b)

        def spread(*series: dict[int, float]) -> float | None:
            return paired(lambda *v: max(v) / min(v), *series)

        def add(name: str, value: float | None, ok: Callable[[float], bool], fmt: str) -> None:
            if value is None:
                rows.append((name, "n/a", None))
            else:
                rows.append((name, fmt.format(value), ok(value)))

        def at_most(name: str, value: float | None, limit: float, fmt: str = "{:.2f}x") -> None:
            add(name, value, lambda v: v <= limit, fmt)

        noop = self.sizes.get("noop", [])

        def noop_vs(
            kind: str, ours: str, nohist: str, base: str, base_name: str, limit: int
        ) -> None:
            """ours / base ≤ limit on no-op jobs at each size, then (informative) the same
            without the history."""
            for s in noop:
                small = kind == "async" and s < 10_000
                at_most(
                    f"{kind} no-op N={s:,}: ours / {base_name} ≤ {limit}x"
                    + (" (target at 1e4, 1e5; informative here)" if small else ""),
                    ratio(pr(ours, "noop", s), pr(base, "noop", s)),
                    limit,
                )
            if nohist in self.specs:
                for s in noop:
                    at_most(
                        f"(informative) {kind} no-op N={s:,}, `Engine(history=False)`: "
                        f"ours / {base_name} ≤ {limit}x",
                        ratio(pr(nohist, "noop", s), pr(base, "noop", s)),
                        limit,
                    )

        noop_vs("async", OURS, OURS_NOHIST, ASYNCIO, "asyncio.gather", 3)
        for s in noop:
            n_ee = cap(self.specs[EE_LOCAL], "noop", s) if EE_LOCAL in self.specs else s
            at = "" if n_ee == s else f" (peer at N={n_ee:,})"
            add(
                f"async no-op N={s:,}: executor-engine / ours ≥ 4x{at}",
                ratio(pr(EE_LOCAL, "noop", s), pr(OURS, "noop", s)),
                lambda v: v >= 4,
                "{:.1f}x",
            )
            add(
                f"async no-op N={s:,}: asynciojobs / ours > 1x",
                ratio(pr(AJ, "noop", s), pr(OURS, "noop", s)),
                lambda v: v > 1,
                "{:.2f}x",
            )
        if len(noop) > 1:
            at_most(
                f"async no-op flat from N={noop[0]:,} to {noop[-1]:,}: max/min ≤ 1.5x",
                spread(*(pr(OURS, "noop", s) for s in noop)),
                1.5,
            )
        noop_vs("thread", OURS_THREAD, OURS_THREAD_NOHIST, TPE, "ThreadPoolExecutor", 2)
        chain = self.sizes.get("chain", [])
        for order in CHAIN_ORDERS:
            base_order = order if order == "dependents first" else "in order"
            for s in chain:
                at_most(
                    f"chain ({order}) N={s:,}: ours / asyncio ({base_order}) per hop ≤ 4x",
                    ratio(pr(OURS, f"chain:{order}", s), pr(ASYNCIO, f"chain:{base_order}", s)),
                    4,
                )
        for s in chain:
            add(
                f"chain N={s:,}: dependents first / in order within 1.25x",
                ratio(pr(OURS, "chain:dependents first", s), pr(OURS, "chain:in order", s)),
                lambda v: 1 / 1.25 <= v <= 1.25,
                "{:.2f}x",
            )
        if len(chain) > 1:
            for order in CHAIN_ORDERS:
                at_most(
                    f"chain ({order}) flat from N={chain[0]:,} to {chain[-1]:,}: max/min ≤ 1.5x",
                    spread(*(pr(OURS, f"chain:{order}", s) for s in chain)),
                    1.5,
                )
        fan = self.sizes.get("fan", [])
        for s in fan:
            at_most(
                f"fan-out / fan-in 1 → {s:,} → 1: ours / asynciojobs ≤ 1x (cheaper)",
                ratio(pr(OURS, "fan", s), pr(AJ, "fan", s)),
                1.0,
            )
        if len(fan) > 1:
            at_most(
                f"fan-out / fan-in flat from W={fan[0]:,} to {fan[-1]:,}: max/min ≤ 1.5x",
                spread(*(pr(OURS, "fan", s) for s in fan)),
                1.5,
            )
        for s in self.sizes.get("sleep", []):
            at_most(
                f"{s:,} async jobs sleeping {SLEEP} s: done in ≤ {1.5 * SLEEP:.2f} s",
                paired(lambda v: v, pr(OURS, "sleep", s)),
                1.5 * SLEEP,
                "{:.3f} s",
            )
        for s in self.sizes.get("dask", []):
            at_most(
                f"dask no-op N={s:,}: ours / `Client.submit` + `gather` ≤ 1.3x",
                ratio(pr(OURS_DASK, "dask", s), pr(DIST + " submit", "dask", s)),
                1.3,
            )
        for s in self.sizes.get("process", []):
            at_most(
                f"process, {s:,} tiny jobs on {PROCESS_WORKERS} workers: ours / "
                "ProcessPoolExecutor (fork) ≤ 1.5x",
                ratio(pr(OURS_PROCESS, "process", s), pr(PPE, "process", s)),
                1.5,
            )
        for s in self.sizes.get("cold", []):
            at_most(
                "process, first result from a cold backend: ours / ProcessPoolExecutor (fork) "
                "made for it ≤ 5x",
                ratio(pr(OURS_PROCESS, "cold", s), pr(PPE + " cold", "cold", s)),
                5,
                "{:.1f}x",
            )
            add(
                'process, first result after `engine.prestart("process")`: ours / '
                "ProcessPoolExecutor (fork) made for it ≤ 5x",
                ratio(pr(OURS_PRESTARTED, "cold", s), pr(PPE + " cold", "cold", s)),
                lambda v: v <= 5,
                "{:.1f}x",
            )
        for s in self.sizes.get("retained", []):
            at_most(
                f"retained heap per finished no-op job (N={s:,}) ≤ 3 KB",
                paired(lambda v: v, pr(OURS, "retained", s)),
                3000,
                "{:,.0f} B",
            )
        return rows

    def render(self) -> str:
        out = ["## Per-job cost: N independent no-op jobs", ""]
        out += self.per_job_table("noop", [("noop", "")])
        out += ["", "## Dependency chain of N jobs: cost per hop", ""]
        out += self.per_job_table("chain", [(f"chain:{o}", f", {o}") for o in CHAIN_ORDERS])
        out += ["", "## Fan-out / fan-in 1 → N → 1: cost per job", ""]
        out += self.per_job_table("fan", [("fan", "")])
        out += ["", "## Concurrency: jobs sleeping", ""]
        out += self.sleep_table()
        out += ["", "## Dask and process backends against their floor: cost per job", ""]
        out += self.per_job_table("dask", [("dask", "")])
        out += [""]
        out += self.per_job_table("process", [("process", "")])
        out += ["", "## Cold start: the first job's result (per case: fresh process)", ""]
        out += self.cold_table()
        out += ["", "## Memory", ""]
        out += self.memory_table()
        out += [
            "",
            "## Targets (ratios measured in this run)",
            "",
            "Each ratio is the median over rounds of the ratio within one round. Judged on "
            "wall time; the same ratio on process CPU time (all threads) is shown because it "
            "moves less when other programs load the machine.",
            "",
            "| target | measured (wall) | met | same on CPU time |",
            "|---|---|---|---|",
        ]
        wall = self.targets()
        self.metric = "cpu"
        try:
            cpu = self.targets()
        finally:
            self.metric = "seconds"
        for (name, value, met), (_, cpu_value, _) in zip(wall, cpu, strict=True):
            mark = "n/a" if met is None else ("met" if met else "**not met**")
            out.append(f"| {name} | {value} | {mark} | {cpu_value} |")
        return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"
    )


def _our_source() -> str:
    """Where jupyter_executor is imported from, and its git commit (dirty or not) if known."""
    import importlib.util

    spec = importlib.util.find_spec("jupyter_executor")
    if spec is None or spec.origin is None:
        return "jupyter_executor not importable"
    where = os.path.dirname(os.path.dirname(spec.origin))
    try:
        rev = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--", "jupyter_executor"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        rev = f"commit {rev}" + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        rev = "not a git checkout"
    return f"jupyter_executor from {where} ({rev})"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("jupyter_executor", "executor-engine", "asynciojobs", "dask", "distributed"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return ", ".join(parts) + f"; {_our_source()}"


# ---------------------------------------------------------------------------------------------
# --hog: a second pass with a CPU hog on the other core
# ---------------------------------------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").split()[0].rstrip("xBs"))
    except (ValueError, IndexError):
        return None


def hog_table(quiet: Report, loaded: Report) -> list[str]:
    """Each target's ratio under the hog against its quiet value (must hold within 1.5x)."""
    lines = [
        "| target | quiet | with the hog | loaded / quiet | holds (≤ 1.5x) |",
        "|---|---|---|---|---|",
    ]
    for (name, q, _), (_, h, met) in zip(quiet.targets(), loaded.targets(), strict=True):
        qv, hv = _number(q), _number(h)
        if qv is None or hv is None or qv == 0:
            continue
        # for a "≥" target (peers / ours) a smaller value is the worse one
        change = qv / hv if "≥" in name or "> 1x" in name else hv / qv
        mark = "holds" if change <= 1.5 else "**does not hold**"
        lines.append(f"| {name} | {q} | {h} ({'met' if met else 'not met'}) | "
                     f"{change:.2f}x | {mark} |")  # fmt: skip
    return lines


def _save(path: str, passes: dict[str, dict[tuple[str, str, int], list[dict[str, Any]]]]) -> None:
    with open(path, "w") as f:
        json.dump(
            [
                {"engine": k[0], "scenario": k[1], "n": k[2], "pass": name, "runs": v}
                for name, results in passes.items()
                for k, v in results.items()
            ],
            f,
            indent=1,
        )


def _compile_package(log: Callable[[str], None]) -> None:
    """Write jupyter_executor's bytecode cache, as an installed package has it.

    The peers and the standard library come with theirs (pip compiles what it installs); an
    editable install of ours gets it at its first imports, unless ``PYTHONDONTWRITEBYTECODE``
    is set (as on the development and CI machines): then each case's fresh process compiled
    the modules it imported lazily, and the first process job paid for compiling the process
    backend (8 ms of a 40 ms cold start).
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("jupyter_executor")
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        if not compileall.compile_dir(folder, quiet=1):
            log(f"could not compile everything in {folder}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and 1 round (smoke test)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per case (default 3, quick 1)")
    p.add_argument("--engines", nargs="*", help="subset of engine keys (default: all)")
    p.add_argument(
        "--scenarios",
        nargs="*",
        default=list(FULL_SIZES),
        help=f"subset of {', '.join(FULL_SIZES)}",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per case")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="print the report of results saved with --json instead of running",
    )
    p.add_argument(
        "--hog",
        action="store_true",
        help="then run everything again with a CPU hog spinning on the last core, and compare",
    )
    p.add_argument("--worker", nargs=3, metavar=("ENGINE", "SCENARIO", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        engine, scenario, n = args.worker
        print(json.dumps(worker(engine, scenario, int(n))), flush=True)
        return 0

    specs = engines()
    if args.engines:
        unknown = set(args.engines) - set(specs)
        if unknown:
            p.error(f"unknown engines {sorted(unknown)}; known: {list(specs)}")
        specs = {k: v for k, v in specs.items() if k in args.engines}
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    sizes = {k: v for k, v in sizes.items() if k in args.scenarios}
    rounds = args.rounds or (1 if args.quick else 3)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    passes: dict[str, dict[tuple[str, str, int], list[dict[str, Any]]]] = {}
    hog_note = ""
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        # older files lack "round" (runs were appended in round order) and "pass" (quiet)
        for x in saved:
            runs = [{"round": i, **run} for i, run in enumerate(x["runs"])]
            passes.setdefault(x.get("pass", "quiet"), {})[(x["engine"], x["scenario"], x["n"])] = (
                runs
            )
        rounds = max((len(v) for r in passes.values() for v in r.values()), default=0)
    else:
        _compile_package(log)
        cases = plan(sizes, set(sizes))
        passes["quiet"] = run_all(specs, cases, rounds, args.timeout, log)
        if args.hog:
            with cpu_hog() as hog:
                log(f"second pass, a CPU hog (pid {hog['pid']}) spinning on core {hog['core']}")
                passes["hog"] = run_all(specs, cases, rounds, args.timeout, log)
            hog_note = (
                f"A CPU hog (one process spinning in a loop) was pinned to core {hog['core']} "
                "for the whole second pass"
                + ("" if hog["alive"] else " (**it died before the pass ended**)")
                + "; the cases were not pinned."
            )
    print(
        f"# jupyter_executor side-by-side benchmark\n\n{machine()}\n\n{versions()}\n\n"
        f"{rounds} round(s), medians; total {time.perf_counter() - t0:.0f} s\n"
    )
    reports = {name: Report(specs, results, sizes) for name, results in passes.items()}
    if "hog" in reports:
        print("# First pass: the machine as it was\n")
    print(reports["quiet"].render() if "quiet" in reports else "")
    if "hog" in reports:
        print(f"\n# Second pass: with a CPU hog on the last core\n\n{hog_note}\n")
        print(reports["hog"].render())
        if "quiet" in reports:
            print("\n# Loaded against quiet: do the ratios hold?\n")
            print("\n".join(hog_table(reports["quiet"], reports["hog"])))
    if args.json:
        _save(args.json, passes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
