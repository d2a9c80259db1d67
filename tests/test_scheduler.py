"""The scheduler's run state (_scheduler.py): fan-in, wide requirements, their bookkeeping."""

from __future__ import annotations

import asyncio
import collections
import gc
import inspect
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _leaks import assert_nothing_left, child_processes

from jupyter_executor import (
    AfterAll,
    DuplicateJobName,
    Engine,
    FunctionCondition,
    Job,
    Status,
    SubmitError,
)


async def anoop() -> None:
    return None


def _fan_cpu_per_job(folder: Path, width: int) -> float:
    """CPU seconds per job to run 1 -> width -> 1 async no-ops (all threads of this process)."""
    with Engine(folder=folder, history=False) as engine:
        root = Job(anoop(), name="root")
        mids = [Job(anoop(), name=f"mid-{i}", requires=[root]) for i in range(width)]
        sink = Job(anoop(), name="sink", requires=mids)
        start = time.process_time()
        engine.submit(root, *mids, sink)
        assert engine.wait(timeout=100)
        spent = time.process_time() - start
        assert sink.status is Status.DONE
    return spent / (width + 2)


@pytest.mark.timeout(240)
def test_fan_in_costs_the_same_per_job_at_1k_and_16k(tmp_path: Path) -> None:
    # Each of the 16k middle jobs that settled scanned the sink's 16k-name requirement tuple:
    # per-job cost grew about 5x from W=1k to W=16k (issue 14). With a set per wide job it is
    # flat; the bound leaves room for a loaded machine (CPU time, not wall time, is compared).
    before = {p.pid for p in child_processes()}
    _fan_cpu_per_job(tmp_path / "warm", 200)  # imports, first loop: not part of either figure
    small = min(_fan_cpu_per_job(tmp_path / f"s{i}", 1_000) for i in range(2))
    large = _fan_cpu_per_job(tmp_path / "l", 16_000)
    assert large < 2.5 * small, f"{large * 1e6:.0f} us/job at 16k vs {small * 1e6:.0f} at 1k"
    assert_nothing_left(before)


def test_a_wide_job_waits_for_every_requirement_and_fails_with_any(engine: Engine) -> None:
    gate_jobs = [engine.submit(sum, [i], name=f"r{i}") for i in range(20)]
    sink = engine.submit(sum, [0], name="sink", requires=gate_jobs)
    assert engine.wait(timeout=30)
    assert sink.status is Status.DONE
    assert sink.started is not None
    assert sink.started >= max(j.finished or 0 for j in gate_jobs)
    assert set(gate_jobs[3].allows) == {"sink"}  # allows reads the same set

    def boom() -> None:
        raise ValueError("boom")

    ok = [engine.submit(sum, [i], name=f"ok{i}") for i in range(12)]
    bad = engine.submit(boom, name="bad")
    after = engine.submit(sum, [0], name="after", requires=[*ok, bad])
    assert engine.wait(timeout=30) is False
    assert after.status is Status.CANCELLED
    assert after.info().error == "cancelled: dependency 'bad' failed"


def test_a_wide_job_removed_then_replaced_by_a_narrow_one(engine: Engine) -> None:
    reqs = [engine.submit(sum, [i], name=f"q{i}") for i in range(10)]
    wide = engine.submit(sum, [1], name="w", requires=reqs)
    assert engine.wait(timeout=30) and wide.status is Status.DONE
    engine.remove("w")
    assert "w" not in engine._wide  # its set goes with it
    late = engine.submit(sum, [0], name="late")
    narrow = engine.submit(sum, [2], name="w", requires=[late])
    assert engine.wait(timeout=30) and narrow.result() == 2
    assert engine["q0"].allows == ()
    assert engine["late"].allows == ("w",)


def test_a_condition_on_a_wide_set_of_jobs_is_asked_when_each_ends(engine: Engine) -> None:
    # A job that does not require the ones its condition names is asked again when they end.
    firsts = [engine.submit(sum, [i], name=f"c{i}") for i in range(10)]
    last = engine.submit(sum, [5], name="last", condition=AfterAll(*firsts))
    assert engine.wait(timeout=30)
    assert last.result() == 5


class _HoldCounter:
    """Stands in for the engine's lock (the same re-entrant lock underneath) and counts the
    holds taken by one thread: instrumentation, the locking itself is the engine's own."""

    def __init__(self, lock: Any, ident: int) -> None:
        self._lock = lock
        self._ident = ident
        self.holds = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        took: bool = self._lock.acquire(blocking, timeout)
        if took and threading.get_ident() == self._ident:
            self.holds += 1
        return took

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_plain_thread_job_is_registered_and_started_in_one_hold_of_the_lock(
    tmp_path: Path,
) -> None:
    # A burst of thread no-ops is paced by what the submitting thread does per job: its
    # registration and its slot were two holds of the engine's lock (that the worker threads
    # settling jobs want too), now one (issue 14).
    with Engine(folder=tmp_path, history=False) as engine:
        # The first thread job makes the backend on the loop; later ones start from here.
        assert engine.wait_job(engine.submit(time.sleep, 0, backend="thread"), timeout=60)
        counter = _HoldCounter(engine._lock, threading.get_ident())
        engine._lock = counter  # type: ignore[assignment]
        try:
            jobs = [engine.submit(time.sleep, 0, backend="thread") for _ in range(20)]
            holds = counter.holds
        finally:
            engine._lock = counter._lock
        assert engine.wait(timeout=60)
    assert holds == len(jobs)
    assert all(j.status is Status.DONE for j in jobs)
    assert len({j.name for j in jobs}) == len(jobs)


@pytest.mark.timeout(60)
def test_a_one_job_submission_keeps_every_check_of_a_batch(tmp_path: Path) -> None:
    # submit(fn) takes a short path (Intake._take_in_one, issue 14): names, duplicates,
    # replacement, resubmission, another engine's job and the events must stay those of the
    # general path that a batch of two takes.
    events: list[tuple[str, str]] = []
    with Engine(folder=tmp_path / "a", history=False) as engine, Engine(history=False) as other:
        engine.subscribe(lambda event, job: events.append((event, str(job.name))))
        assert engine.wait_job(engine.submit(time.sleep, 0, backend="thread"), timeout=60)
        one = engine.submit(_one_sync)
        pair = engine.submit(Job(_one_sync), Job(_one_sync))
        again = engine.submit(_one_sync)
        assert [j.name for j in (one, *pair, again)] == [
            "_one_sync", "_one_sync-2", "_one_sync-3", "_one_sync-4",
        ]  # fmt: skip
        named = engine.submit(_one_sync, name="x", backend="thread")
        assert engine.wait(timeout=60)
        with pytest.raises(DuplicateJobName, match="'x' already exists"):
            engine.submit(_one_sync, name="x")
        assert engine.submit(named) is named  # submitted already: nothing changes
        rerun = engine.submit(Job(_one_sync, name="x"), replace=True)
        stranger = other.submit(_one_sync)
        with pytest.raises(SubmitError, match="another engine"):
            engine.submit(stranger)
        added = engine.add(_one_sync, name="added")
        assert engine.submit(added) is added
        assert engine.wait(timeout=60) and other.wait(timeout=60)
        assert rerun.status is Status.DONE and len(rerun.previous) == 1
        assert added.status is Status.DONE and engine["added"] is added
    submitted = [name for event, name in events if event == "submitted"]
    assert submitted.count("x") == 2 and "_one_sync-4" in submitted and "added" in submitted


@pytest.mark.timeout(60)
def test_a_history_timer_posted_to_the_loop_does_not_send_a_burst_through_it(
    tmp_path: Path,
) -> None:
    # Issue 14: with the history on, queueing a job for a slot posts a timer to the engine's
    # loop; any post sent every later submission through the loop's admission (each waiting
    # for the one before), 70% of a burst's jobs. Only admissions hold a thread job back now:
    # with the loop blocked, a burst beyond the slots still runs, in submission order.
    with Engine(folder=tmp_path) as engine:
        assert engine.wait_job(engine.submit(time.sleep, 0, backend="thread"), timeout=60)
        engine.set_limits(thread=1)  # one slot: the second job is queued, and they run in order
        blocked, unblock = threading.Event(), threading.Event()

        async def block_the_loop() -> None:
            blocked.set()
            unblock.wait(30)  # blocks the engine's loop thread on purpose

        blocker = engine.submit(block_the_loop, name="blocker")
        ran: list[int] = []
        try:
            assert blocked.wait(20)
            jobs = [engine.submit(ran.append, i, backend="thread") for i in range(50)]
            for job in jobs:
                job.future.result(timeout=10)
        finally:
            unblock.set()
        assert engine.wait(timeout=60) and blocker.status == "done"
    assert ran == list(range(50))


@pytest.mark.timeout(60)
def test_submit_of_a_plain_function_takes_the_short_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The short path must stay the one a burst of submit(fn) takes (issue 14: ~2 µs of the
    # submitting thread's ~11 per job): a change that makes it fall back costs silently.
    with Engine(folder=tmp_path, history=False) as engine:
        general: list[int] = []
        register = engine._register

        def counted(batch: list[Job], replace: bool) -> Any:
            general.append(len(batch))
            return register(batch, replace)

        monkeypatch.setattr(engine, "_register", counted)
        plain = [engine.submit(_one_sync, backend="thread") for _ in range(5)]
        plain += [engine.submit(_one_sync, name=f"n{i}") for i in range(5)]
        assert general == []
        engine.submit(_one_sync, requires=plain[0])  # an edge: the general path
        engine.submit(Job(_one_sync), Job(_one_sync))
        assert general == [1, 2]
        assert engine.wait(timeout=60)


async def _one() -> int:
    return 1


def _one_sync() -> int:
    return 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["async", "thread"])
def test_a_make_like_dependent_is_checked_for_freshness_after_its_requirement(
    engine: Engine, tmp_path: Path, backend: str
) -> None:
    # The task (or worker) that finished the requirement ran a ready dependent on its backend
    # itself, with no freshness check: a make-like job whose outputs were up to date ran again.
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "out.txt").write_text("y")
    newer = time.time() + 10
    os.utime(tmp_path / "out.txt", (newer, newer))
    ran: list[int] = []

    async def make() -> str:
        ran.append(1)
        return "ran"

    def make_sync() -> str:
        ran.append(1)
        return "ran"

    first = Job(_one if backend == "async" else _one_sync, backend=backend, name="a")
    made = Job(
        make if backend == "async" else make_sync,
        backend=backend,
        name="b",
        requires=[first],
        inputs=[str(tmp_path / "in.txt")],
        outputs=[str(tmp_path / "out.txt")],
    )
    engine.submit(first, made)  # together: b is ready when a ends, not at its submission
    assert engine.wait(timeout=30)
    assert made.status is Status.DONE
    assert ran == [] and made.result() == "up to date"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["async", "thread"])
def test_a_scheduled_dependent_waits_for_its_first_tick_after_its_requirement(
    engine: Engine, backend: str
) -> None:
    # Handed to the finishing task (or worker), a scheduled job ran at once (attempts 1) and
    # its schedule never ticked (next_run None).
    fn = _one if backend == "async" else _one_sync
    first = Job(fn, backend=backend, name="a")
    later = Job(
        fn, backend=backend, name="e", requires=[first], every=3600, start=time.time() + 3600
    )
    engine.submit(first, later)  # together: e is ready when a ends, not at its submission
    assert engine.wait_job(first, timeout=30)
    deadline = time.monotonic() + 30
    while later.next_run is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert later.next_run is not None and later.next_run > time.time() + 3000
    assert later.attempts == 0 and later.status is Status.PENDING


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["async", "thread"])
def test_a_resumed_flow_skips_a_dependent_that_ran_after_its_requirement(
    tmp_path: Path, backend: str
) -> None:
    # Handed to the task (or worker) that finished its requirement, a dependent ran without
    # the resume check, so its run recorded no identity and the next resume ran it again.
    ran: list[str] = []

    async def first() -> int:
        ran.append("a")
        return 1

    async def second() -> int:
        ran.append("b")
        return 2

    def first_sync() -> int:
        ran.append("a")
        return 1

    def second_sync() -> int:
        ran.append("b")
        return 2

    fns = (first, second) if backend == "async" else (first_sync, second_sync)
    jobs: list[Job] = []
    for _ in range(2):
        with Engine(folder=tmp_path / "runs", resume=True) as engine:
            a = Job(fns[0], backend=backend, name="a")
            b = Job(fns[1], backend=backend, name="b", requires=[a])
            engine.submit(a, b)  # together: b is ready when a ends, not at its submission
            assert engine.wait(timeout=30)
            jobs += [a, b]
    assert ran == ["a", "b"]
    assert str(jobs[3].result()).startswith("up to date")


@pytest.mark.timeout(60)
def test_a_coroutine_job_that_ends_without_running_has_its_coroutine_closed(
    engine: Engine, tmp_path: Path
) -> None:
    # Left open, each coroutine warned "coroutine ... was never awaited" when collected.
    def boom() -> None:
        raise ValueError("boom")

    bad = Job(boom, backend="thread", name="bad")
    orphan = Job(_one(), name="orphan", requires=[bad])  # its dependency fails
    gate = Job(asyncio.sleep(30), name="gate")
    waiting = Job(_one(), name="waiting", requires=[gate])  # cancelled while it waits
    (tmp_path / "out.txt").write_text("y")
    fresh = Job(_one(), name="fresh", outputs=[str(tmp_path / "out.txt")])  # up to date

    def raises() -> bool:
        raise ValueError("the condition broke")

    failed = Job(_one(), name="failed", condition=FunctionCondition(raises))  # fails unstarted
    engine.submit(bad, orphan, gate, waiting, failed)
    assert engine.cancel(waiting)
    engine.submit(fresh)
    engine.cancel(gate)
    assert engine.wait(timeout=30) is False
    assert orphan.status is Status.CANCELLED and waiting.status is Status.CANCELLED
    assert fresh.status is Status.DONE and fresh.result() == "up to date"
    assert failed.status is Status.FAILED
    for job in (orphan, waiting, fresh, failed):
        assert inspect.getcoroutinestate(job.target) == "CORO_CLOSED", job.name


@pytest.mark.timeout(120)
def test_a_burst_keeps_the_loops_young_generation_small(tmp_path: Path) -> None:
    # The loop admits a burst a few dozen jobs a turn, so that the tasks a turn creates have
    # run and gone before the collector's youngest generation fills up. At 256 a turn it
    # collected once per ~275 jobs, moved the live tasks to the older generations, and that
    # set off full passes over every job of the burst: 3 passes, 0.5 s, a third of the loop's
    # time for 1e5 no-ops (issue 14).
    # With the collector's defaults, whatever the test process set before.
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()
    gc.set_threshold(700, 10, 10)
    try:
        _count_loop_collections(tmp_path)
    finally:
        gc.set_threshold(*thresholds)
        if not enabled:
            gc.disable()


def _count_loop_collections(tmp_path: Path) -> None:
    counts: collections.Counter[int] = collections.Counter()

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and threading.current_thread().name.startswith("jupyter-executor-"):
            counts[info["generation"]] += 1

    n = 20_000
    with Engine(folder=tmp_path, history=False) as engine:
        engine.submit(*(Job(anoop()) for _ in range(100)))  # the loop and backend are up
        assert engine.wait(timeout=60)
        jobs = [Job(anoop()) for _ in range(n)]
        gc.callbacks.append(count)
        try:
            engine.submit(*jobs)
            assert engine.wait(timeout=100)
        finally:
            gc.callbacks.remove(count)
    assert all(j.status is Status.DONE for j in jobs)
    assert sum(counts.values()) <= n // 2000, dict(counts)
