"""The dask and process backends do per batch what they used to do per job (issue 14).

Speed itself is measured by ``benchmarks/bench_engine.py`` (timings are too noisy to assert on
a shared 2-core machine); these tests pin down the structure that makes it fast, counted where
it happens (the scheduler's messages, the worker processes), so that a change that brings back
one round trip per job fails here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _wait import wait_until

from jupyter_executor import Engine, Job

N = 200


def _double(x: int) -> int:
    print(f"doubling {x}")
    return 2 * x


@pytest.fixture
def local_cluster() -> Iterator[Any]:
    """An in-process cluster (scheduler and worker threads in this process)."""
    distributed: Any = pytest.importorskip("distributed")  # untyped: Any

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield cluster, client


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_dask_jobs_go_to_the_scheduler_in_batches(local_cluster: Any, tmp_path: Path) -> None:
    from distributed.diagnostics.plugin import SchedulerPlugin

    cluster, client = local_cluster
    scheduler = cluster.scheduler
    counts = {"graphs": 0}

    class CountGraphs(SchedulerPlugin):
        def update_graph(self, scheduler: Any, **kwargs: Any) -> None:
            counts["graphs"] += 1

    scheduler.add_plugin(CountGraphs(), name="count-graphs")
    engine = Engine(folder=tmp_path / "runs", dask=client, history=False)
    try:
        first = engine.submit(_double, -1, backend="dask", name="first")  # connects the client
        assert engine.wait_job(first, timeout=60), first.info().error
        counts.update(graphs=0)
        # Submitted together, admitted together: one batch (a few when admission splits it).
        jobs = [Job(_double, args=(i,), backend="dask", name=f"d{i}") for i in range(N)]
        engine.submit(*jobs)
        assert engine.wait(timeout=120)
    finally:
        engine.shutdown()
    assert [j.result() for j in jobs] == [2 * i for i in range(N)]
    assert jobs[7].tail() == "doubling 7"  # the output still comes back with each job
    # One graph message per batch of jobs admitted together, not one per job (it was N).
    assert counts["graphs"] <= N // 10, counts


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_dask_batch_keeps_each_jobs_options_and_errors(local_cluster: Any, tmp_path: Path) -> None:
    # Jobs of one batch with different priorities: each keeps its own (the batch is split by
    # options), and one failure fails only its job, with the task's own traceback.
    from distributed.diagnostics.plugin import SchedulerPlugin

    cluster, client = local_cluster
    priorities: dict[str, Any] = {}

    class Priorities(SchedulerPlugin):
        def update_graph(self, scheduler: Any, **kwargs: Any) -> None:
            for key, value in kwargs["annotations"].get("priority", {}).items():
                priorities[str(key)] = value

    cluster.scheduler.add_plugin(Priorities(), name="priorities")
    engine = Engine(folder=tmp_path / "runs", dask=client, history=False)
    try:
        jobs = [engine.submit(_double, i, backend="dask", name=f"p{i}") for i in range(5)]
        urgent = engine.submit(_double, 10, backend="dask", name="urgent", priority=5)
        text = engine.submit(_double, "x", backend="dask", name="text")
        fails = engine.submit(_divide, 1, 0, backend="dask", name="fails")
        assert not engine.wait(timeout=120)
    finally:
        engine.shutdown()
    assert [j.result() for j in jobs] == [0, 2, 4, 6, 8]
    assert urgent.result() == 20 and text.result() == "xx"
    assert isinstance(fails.exception(), ZeroDivisionError)
    assert "return a / b" in str(fails.traceback), fails.traceback
    assert [v for k, v in priorities.items() if k.startswith("urgent-")] == [5], priorities
    assert not [k for k in priorities if k.startswith("p")], priorities


def _divide(a: float, b: float) -> float:
    return a / b


# -- the process backend -------------------------------------------------------------------------


def _pid_after(gate: str) -> int:
    """Wait (at most a minute) for ``gate`` to exist, then return this worker's pid."""
    import os
    import time

    deadline = time.monotonic() + 60
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def _pid() -> int:
    import os

    return os.getpid()


def _parent_of(pid: int) -> int:
    return int(psutil.Process(pid).ppid())


def _holder(engine: Engine, job: Job) -> int | None:
    """The pid of the worker process that was handed ``job`` (holds or runs it), if any.

    A held job has no pid of its own yet (it is pending): the backend's bookkeeping says where
    it is.
    """
    backend = engine._backends.get("process")  # made on the loop, by the first process job
    run = None if backend is None else backend._active.get(job)  # type: ignore[attr-defined]
    worker = None if run is None else run.worker
    return None if worker is None else worker.pid


def _started(engine: Engine, name: str) -> list[Any]:
    return [e for e in engine.log if e[1] == "started" and e[2] == name]


@pytest.mark.timeout(120)
def test_process_workers_are_forked_by_a_fork_server(engine: Engine) -> None:
    # Workers are forked by one warm Python (not started as new Pythons by the kernel, nor forked
    # from the kernel itself): a worker's parent is that fork server, a child of the kernel, and
    # a worker that replaces a crashed one comes from the same fork server.
    engine.set_limits(process=1)
    first = engine.submit(_pid, backend="process", name="first")
    assert engine.wait_job(first, timeout=60), first.info().error
    server = _parent_of(first.result())
    assert server != os.getpid()
    assert psutil.Process(server).ppid() == os.getpid()
    crash = engine.submit(os._exit, 3, backend="process", name="crash")
    engine.wait_job(crash, timeout=60)
    assert "exited with code 3" in str(crash.exception())
    after = engine.submit(_pid, backend="process", name="after")
    assert engine.wait_job(after, timeout=60), after.info().error
    assert after.result() != first.result()
    assert _parent_of(after.result()) == server


@pytest.mark.timeout(120)
def test_a_worker_gets_its_next_job_while_it_runs_one(engine: Engine, tmp_path: Path) -> None:
    # Prefetch: with one worker, the second job is handed to it while the first runs (so it
    # starts without waiting for the kernel); held, it is still pending (not started, no pid).
    gate = tmp_path / "gate"
    engine.set_limits(process=1)
    first = engine.submit(_pid_after, str(gate), backend="process", name="first")
    second = engine.submit(_pid, backend="process", name="second")
    wait_until(
        lambda: first.pid is not None and _holder(engine, second) is not None,
        60,
        "both handed over",
    )
    assert first.status == "running" and second.status == "pending"
    assert second.pid is None and not _started(engine, "second")
    assert _holder(engine, second) == first.pid  # held by the worker that runs the first job
    gate.write_text("go")
    assert engine.wait(timeout=60)
    assert first.result() == second.result() == first.pid


@pytest.mark.timeout(120)
@pytest.mark.parametrize("send_below", [None, 0])
def test_a_held_job_goes_to_the_worker_that_is_free_first(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, send_below: int | None
) -> None:
    # Two workers: "long" runs until the test says, "short" ends soon; "next" is held by one of
    # them meanwhile. Whichever holds it, it runs on the worker that is free first (taken back
    # from the busy one), while "long" still runs. With jobs sent only to a worker that has
    # none waiting (send_below=0), the job given back is sent again (it stayed unsent, its
    # first sending counted as one waiting on the free worker).
    if send_below is not None:
        from jupyter_executor.backends import process

        monkeypatch.setattr(process, "SEND_BELOW", send_below)
    gate, short_gate = tmp_path / "gate", tmp_path / "short"
    engine.set_limits(process=2)
    long = engine.submit(_pid_after, str(gate), backend="process", name="long")
    short = engine.submit(_pid_after, str(short_gate), backend="process", name="short")
    nxt = engine.submit(_pid, backend="process", name="next")
    wait_until(
        lambda: _holder(engine, nxt) is not None and long.pid is not None, 60, "next handed over"
    )
    short_gate.write_text("go")
    try:
        assert engine.wait_job(nxt, timeout=60), nxt.info().error
        assert long.status == "running"
        assert nxt.result() == short.result() != long.pid
    finally:
        gate.write_text("go")
    assert engine.wait(timeout=60)


@pytest.mark.timeout(120)
def test_a_held_job_of_a_crashed_worker_runs_elsewhere(engine: Engine, tmp_path: Path) -> None:
    # The worker dies (os._exit) while it holds the next job: that job never started there, so
    # it is not charged with the crash: another worker runs it.
    engine.set_limits(process=1)
    gate = tmp_path / "gate"
    crash = engine.submit(_exit_after, str(gate), backend="process", name="crash")
    after = engine.submit(_pid, backend="process", name="after")
    wait_until(lambda: _holder(engine, after) is not None, 60, "after handed over")
    held_by = _holder(engine, after)
    gate.write_text("go")
    engine.wait(timeout=60)
    assert "exited with code 7" in str(crash.exception())
    assert after.status == "done", after.info().error
    assert after.result() != held_by


def _exit_after(gate: str) -> None:
    import os

    _pid_after(gate)
    os._exit(7)


@pytest.mark.timeout(60)
def test_a_worker_exit_code_of_255_is_reported_as_such(engine: Engine) -> None:
    # The fork server reports each worker's exit code; 255 is one like any other (it once
    # stood for "the code was lost with the fork server").
    job = engine.submit(os._exit, 255, backend="process", name="exit255")
    engine.wait_job(job, timeout=30)
    assert "exited with code 255" in str(job.exception()), job.exception()


@pytest.mark.timeout(120)
def test_a_held_job_is_cancelled_without_stopping_its_worker(
    engine: Engine, tmp_path: Path
) -> None:
    # A job held by the worker that runs another one has not started: cancelling it takes it
    # back (nothing is killed, the running job goes on on the same worker), it is never
    # reported running, and the next job still runs on that worker.
    gate = tmp_path / "gate"
    engine.set_limits(process=1)
    first = engine.submit(_pid_after, str(gate), backend="process", name="first")
    held = engine.submit(_pid, backend="process", name="held")
    wait_until(lambda: _holder(engine, held) is not None and first.pid is not None, 60, "held")
    worker = first.pid
    assert held.status == "pending"
    assert engine.cancel(held)
    wait_until(lambda: held.status == "cancelled", 60, "held cancelled")
    assert first.status == "running" and psutil.pid_exists(worker)
    gate.write_text("go")
    assert engine.wait_job(first, timeout=60), first.info().error
    assert first.result() == worker  # not killed: it ended its job
    after = engine.submit(_pid, backend="process", name="after")
    assert engine.wait_job(after, timeout=60), after.info().error
    assert after.result() == worker  # the same worker, kept
    assert not _started(engine, "held") and held.attempts == 0 and held.pid is None


@pytest.mark.timeout(120)
def test_a_held_jobs_timeout_counts_from_its_start(engine: Engine, tmp_path: Path) -> None:
    # The time a job waits held behind another is not its run time: its timeout starts when
    # its worker starts it (it timed out while held, when held jobs counted as running).
    import time

    gate = tmp_path / "gate"
    engine.set_limits(process=1)
    first = engine.submit(_pid_after, str(gate), backend="process", name="first")
    held = engine.submit(_pid, backend="process", name="held", timeout=1.0)
    wait_until(lambda: _holder(engine, held) is not None and first.pid is not None, 60, "held")
    time.sleep(2.5)  # held for more than its timeout
    assert held.status == "pending", held.info().error
    gate.write_text("go")
    assert engine.wait(timeout=60), held.info().error
    assert held.result() == first.result()
    assert held.attempts == 1 and held.pid == first.pid


def _class_name(obj: object) -> str:
    return type(obj).__name__


def test_jobs_of_importable_code_are_pickled_by_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # What cloudpickle would pickle by reference goes through plain pickle (7 times faster);
    # what it would pickle by value (code of __main__, lambdas, modules registered by value)
    # still goes through cloudpickle.
    import pickle
    import sys

    import cloudpickle

    from jupyter_executor.backends.process import _by_reference

    cloudpickle.dumps(0)  # (the kernel has cloudpickle once a process job ran)
    data = _by_reference(("j", _pid, (1,), {"x": [1.5, "é"]}))
    assert data is not None and pickle.loads(data)[1] is _pid
    assert _by_reference(("j", lambda: 1, (), {})) is None
    kernelside = type("Kernelside", (), {"__module__": "__main__"})
    monkeypatch.setattr(sys.modules["__main__"], "Kernelside", kernelside, raising=False)
    assert _by_reference(("j", _class_name, (kernelside(),), {})) is None
    this = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(this)
    try:
        assert _by_reference(("j", _pid, (), {})) is None
    finally:
        cloudpickle.unregister_pickle_by_value(this)
    # Another module registered (as the dask backend leaves two of its own): no matter.
    other = sys.modules[wait_until.__module__]
    cloudpickle.register_pickle_by_value(other)
    try:
        assert _by_reference(("j", _pid, (), {})) is not None
    finally:
        cloudpickle.unregister_pickle_by_value(other)


@pytest.mark.timeout(120)
def test_an_argument_of_a_class_of_main_reaches_the_worker(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A class made in the kernel's __main__ (a notebook cell) cannot be imported by a worker:
    # an argument of that class travels by value, even when the job's function is importable
    # (plain pickle would send a reference to __main__.Kernelside, unknown to the worker).
    import sys

    kernelside = type("Kernelside", (), {"__module__": "__main__"})
    monkeypatch.setattr(sys.modules["__main__"], "Kernelside", kernelside, raising=False)
    job = engine.submit(_class_name, kernelside(), backend="process", name="main-class")
    assert engine.wait_job(job, timeout=60), job.info().error
    assert job.result() == "Kernelside"


def _thread_job() -> str:
    return "ran"


@pytest.mark.timeout(120)
def test_held_jobs_leave_max_jobs_slots_to_other_backends(engine: Engine, tmp_path: Path) -> None:
    # Held jobs take slots of the engine's max_jobs though they are pending: under max_jobs a
    # worker holds one, so that a queue of process jobs does not keep a thread job from the
    # slots left (with 5 held per worker, the 3 slots went to process jobs, one running).
    gate = tmp_path / "gate"
    engine.max_jobs = 3
    engine.set_limits(process=1)
    first = engine.submit(_pid_after, str(gate), backend="process", name="first")
    rest = [engine.submit(_pid, backend="process", name=f"p{i}") for i in range(4)]
    wait_until(lambda: first.pid is not None, 60, "first running")
    try:
        other = engine.submit(_thread_job, backend="thread", name="other")
        assert engine.wait_job(other, timeout=30), other.info().error
        assert other.result() == "ran" and first.status == "running"
    finally:
        gate.write_text("go")
    assert engine.wait(timeout=60)
    assert [j.result() for j in rest] == [first.result()] * 4


@pytest.mark.timeout(120)
def test_a_first_job_of_importable_code_does_not_wait_for_cloudpickle(tmp_path: Path) -> None:
    # Until cloudpickle is imported no module can be registered by value with it: a job whose
    # code a worker imports goes by plain pickle without importing it (25-50 ms on the way to
    # a cold first result).
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from jupyter_executor import Engine\n"
        f"e = Engine(folder={str(tmp_path / 'runs')!r}, history=False)\n"
        "j = e.submit(os.getpid, backend='process')\n"
        "assert e.wait_job(j, 60), j.info().error\n"
        "print('cloudpickle' in sys.modules, j.result() != os.getpid())\n"
        "e.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"], out.stdout
