"""The dask backend under hostile jobs and shutdowns: a task that runs on while the engine shuts
down, an argument that cannot be pickled among a batch, cancels of tasks that never ran (found
by a hostile-input hunt; each test fails on the tree before its fix)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _wait import wait_until

from jupyter_executor import Engine
from jupyter_executor.backends.dask import STILL_RUNNING
from jupyter_executor.store import HistoryStore

pytestmark = [pytest.mark.dask]
pytest.importorskip("distributed")

# In-process workers: a running task is a thread of this process that dask cannot stop.
_IN_PROCESS = {"n_workers": 1, "threads_per_worker": 1, "processes": False}


def _busy(started: str, stop: str, seconds: float) -> str:
    """Run until the file ``stop`` exists (at most ``seconds``), after creating ``started``."""
    import pathlib
    import time

    pathlib.Path(started).touch()
    deadline = time.monotonic() + seconds
    while not pathlib.Path(stop).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "stopped"


def _same(x: Any) -> Any:
    return x


def _history(folder: Path, name: str) -> list[str]:
    store = HistoryStore(folder, "test-reader")
    try:
        return list(store.frame(name)["status"])
    finally:
        store.close()


@pytest.mark.timeout(240)
def test_shutdown_with_a_task_running_on_the_own_cluster_returns_and_closes_the_rest(
    tmp_path: Path,
) -> None:
    started, stop = tmp_path / "started", tmp_path / "stop"
    before = {t for t in threading.enumerate() if not t.daemon}
    engine = Engine(folder=tmp_path / "runs", dask=_IN_PROCESS)
    try:
        job = engine.submit(_busy, str(started), str(stop), 120, name="busy", backend="dask")
        wait_until(started.exists, 120, "the task to start")
        t0 = time.monotonic()
        # The worker's thread cannot be stopped and the cluster's close waits for it: the
        # shutdown gives up on the cluster instead of raising with half the engine open.
        engine.shutdown(timeout=5)
        took = time.monotonic() - t0
        assert took < 20, f"shutdown(timeout=5) took {took:.1f} s"
        assert engine.closed and job.status == "cancelled"
        assert engine._thread is None  # the loop thread stopped
        assert not [t for t in threading.enumerate() if t.name == f"jupyter-executor-{engine.id}"]
        assert "closed" in repr(engine._store)
        assert _history(tmp_path / "runs", "busy") == ["cancelled"]
        # What the abandoned cluster still runs does not hold the interpreter at exit.
        left = [t.name for t in threading.enumerate() if not t.daemon and t not in before]
        assert not left, left
    finally:
        stop.touch()  # (lets the worker's thread end)
        engine.shutdown()
    # The task ended: the cluster, left closing in the background, closes.
    closing = f"jupyter-executor-{engine.id}-dask-close"
    wait_until(lambda: closing not in {t.name for t in threading.enumerate()}, 60, closing)


@pytest.mark.timeout(240)
def test_an_argument_that_cannot_be_pickled_fails_only_its_job(tmp_path: Path) -> None:
    engine = Engine(folder=tmp_path / "runs", dask=_IN_PROCESS)
    try:
        engine.submit(_same, 0, name="warm", backend="dask")
        assert engine.wait(timeout=120)
        # Submitted together: they reach the cluster in one batch.
        good = [engine.submit(_same, i, name=f"ok{i}", backend="dask") for i in range(4)]
        bad = engine.submit(_same, threading.Lock(), name="bad", backend="dask")
        good += [engine.submit(_same, i, name=f"ok{i}", backend="dask") for i in range(4, 8)]
        assert not engine.wait(timeout=120)
        assert [j.status for j in good] == ["done"] * 8, [j.info().error for j in good]
        assert [j.result() for j in good] == list(range(8))
        error = bad.exception()
        assert isinstance(error, TypeError)
        message = str(error)
        assert message.startswith("job 'bad' cannot be sent to a worker"), message
        assert "cannot pickle '_thread.lock' object" in message and "\n" not in message
    finally:
        engine.shutdown()


@pytest.mark.timeout(240)
def test_cancelling_tasks_that_never_ran_does_not_say_they_run_on(tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    marks = [tmp_path / f"started{i}" for i in range(4)]
    engine = Engine(folder=tmp_path / "runs", dask=_IN_PROCESS)
    try:
        # One worker thread: the first task runs, the others wait on the worker or the scheduler.
        jobs = [
            engine.submit(_busy, str(mark), str(stop), 60, name=f"s{i}", backend="dask")
            for i, mark in enumerate(marks)
        ]
        wait_until(marks[0].exists, 120, "the first task to start")
        for job in jobs[1:]:
            engine.cancel(job)
        for job in jobs[1:]:
            assert not engine.wait_job(job, timeout=30)
        assert [j.cancel_reason for j in jobs[1:]] == ["cancelled by user"] * 3
        # The one that runs is said to run on.
        engine.cancel(jobs[0])
        assert not engine.wait_job(jobs[0], timeout=30)
        assert jobs[0].cancel_reason == f"cancelled by user; {STILL_RUNNING}"
        stop.touch()
        time.sleep(2)  # time for a task wrongly left on the worker to start
        assert [m.exists() for m in marks] == [True, False, False, False]
    finally:
        stop.touch()
        engine.shutdown()
