"""The history store for real: SQLite files, a real engine, writer processes killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _leaks import kill_and_reap
from _wait import wait_until

from jupyter_executor import Engine, Job
from jupyter_executor._snapshot import snapshot_of
from jupyter_executor._status import Status
from jupyter_executor.store import SCHEMA_VERSION, HistoryStore, StoreError
from jupyter_executor.store._writer import CHECK_EVERY, WRITE_AT, Writer


def _store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("jupyter-executor-store")]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    """A store in tmp_path/hist whose writer thread must be gone after close()."""
    hist = HistoryStore(tmp_path / "hist", "e1", batch_delay=0.01)
    try:
        yield hist
    finally:
        hist.close()
        assert not [t for t in _store_threads() if t.name == "jupyter-executor-store-e1"]


def _recorder(store: HistoryStore) -> Callable[[str, Job], None]:
    # What the engine will do: report each submission and status change to the store.
    def on_event(event: str, job: Job) -> None:
        if event in ("submitted", "status"):
            store.job_changed(job)

    return on_event


class Tagged(Job):
    """A job with the attributes of long-running jobs, set by hand (their class defaults shadow
    the read-only properties of Job)."""

    identity: str | None = None
    detach: bool = False
    pid_start_time: float | None = None


def _drive(store: HistoryStore, job: Job, *steps: Status, result: Any = None) -> None:
    """Move a job through statuses by hand, reporting each to the store."""
    for status in steps:
        job.status = status
        now = time.time()
        if status is Status.PENDING and job.submitted is None:
            job.submitted = now
        elif status is Status.RUNNING:
            job.attempts += 1
            job.started, job.finished = now, None
        elif status in (Status.DONE, Status.FAILED, Status.CANCELLED):
            job.finished = now
            job.runstate.result = result
        store.job_changed(job)


# runs from a real engine ----------------------------------------------------------------------
def fails_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        msg = "first attempt"
        raise ValueError(msg)
    return "second"


def test_engine_runs_are_recorded(engine: Engine, store: HistoryStore) -> None:
    engine.subscribe(_recorder(store))
    a = engine.submit(sum, [1, 2], name="add")
    engine.submit(lambda: 1 / 0, name="boom")
    engine.submit("exit 3", name="code3")
    engine.submit([sys.executable, "-c", "pass"], name="ok", requires=[a])
    assert not engine.wait(timeout=30)  # two jobs failed
    store.flush(timeout=10)
    runs = {r["name"]: r for r in store.history()}
    assert set(runs) == {"add", "boom", "code3", "ok"}
    add = runs["add"]
    assert (add["engine_id"], add["attempt"]) == ("e1", 1)
    assert (add["status"], add["result"]) == ("done", "3")
    assert add["backend"] == "thread" and add["kind"] == "callable"
    assert add["description"] == "sum()"
    assert [s for s, _ in add["transitions"]] == ["pending", "running", "done"]
    times = [t for _, t in add["transitions"]]
    assert times == sorted(times)
    assert add["submitted"] <= add["started"] <= add["finished"]
    assert add["duration"] == pytest.approx(add["finished"] - add["started"])
    assert add["log_path"] == str(engine.log_path("add"))
    assert add["error"] is None and add["traceback"] is None and add["detached"] is False
    boom = runs["boom"]
    assert boom["status"] == "failed"
    assert boom["error"] == "ZeroDivisionError: division by zero"
    assert "ZeroDivisionError" in boom["traceback"] and boom["result"] is None
    code3 = runs["code3"]
    assert (code3["status"], code3["exit_code"], code3["kind"]) == ("failed", 3, "command")
    assert code3["description"] == "exit 3" and isinstance(code3["pid"], int)
    ok = runs["ok"]
    assert (ok["status"], ok["exit_code"], ok["requires"]) == ("done", 0, ["add"])
    # oldest first: "ok" waited for "add", and was submitted last
    assert [r["name"] for r in store.history()][-1] == "ok"
    assert store.history("boom") == [boom]


def test_retries_and_reruns_are_separate_runs(
    engine: Engine, store: HistoryStore, tmp_path: Path
) -> None:
    engine.subscribe(_recorder(store))
    job = engine.submit(fails_once, str(tmp_path / "marker"), name="flaky", retries=1,
                        retry_delay=0.01)  # fmt: skip
    assert engine.wait(timeout=30)
    engine.rerun(job)
    assert engine.wait(timeout=30)
    store.flush(timeout=10)
    runs = store.runs("flaky")
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failed"), (2, "done"), (3, "done")]
    first = runs[0]
    # The engine cleared the exception when it retried: the traceback still says what failed.
    assert first["error"] == "ValueError: first attempt"
    assert "ValueError: first attempt" in first["traceback"]
    assert [s for s, _ in first["transitions"]] == ["pending", "running", "failed"]
    assert first["finished"] is not None and first["started"] < first["finished"]
    assert runs[1]["result"] == "'second'" and runs[1]["started"] > first["finished"] - 1e-3
    assert runs[2]["submitted"] > runs[1]["finished"] - 1e-3  # a rerun is a new submission
    assert [s for s, _ in runs[2]["transitions"]] == ["pending", "running", "done"]
    assert len({r["id"] for r in runs}) == 3


def test_cancelled_before_it_started(engine: Engine, store: HistoryStore) -> None:
    engine.subscribe(_recorder(store))
    gate = threading.Event()
    blocker = engine.submit(gate.wait, 10, name="blocker")
    waiting = engine.submit(len, "x", name="waiting", requires=[blocker])
    engine.cancel(waiting, "not needed")
    gate.set()
    assert not engine.wait(timeout=30)
    store.flush(timeout=10)
    (run,) = store.runs("waiting")
    assert (run["attempt"], run["status"], run["cancel_reason"]) == (1, "cancelled", "not needed")
    assert run["started"] is None and run["duration"] is None
    assert [s for s, _ in run["transitions"]] == ["pending", "cancelled"]


@pytest.mark.timeout(60)
def test_a_job_waiting_for_a_slot_is_recorded_while_it_waits(tmp_path: Path) -> None:
    # Jobs queued behind a limit are in the history as pending within a few seconds, not only
    # when they start; each still ends as one run, and the one that got a slot at once was not
    # recorded twice.
    with Engine(folder=tmp_path) as engine:
        engine.set_limits(thread=1)
        gate = threading.Event()
        blocker = engine.submit(gate.wait, 30, name="blocker")
        queued = [engine.submit(len, "x" * i, name=f"q{i}") for i in range(3)]

        def status_on_disk() -> dict[str, str]:
            return {row["name"]: row["status"] for row in engine.history().to_dict("records")}

        wait_until(
            lambda: status_on_disk() == {"blocker": "running", "q0": "pending", "q1": "pending",
                                         "q2": "pending"},
            timeout=20,
        )  # fmt: skip
        engine.cancel(queued[1], "not needed")
        gate.set()
        assert not engine.wait(timeout=30)  # one was cancelled
        assert blocker.result() is True
        rows = engine.history().to_dict("records")
    assert sorted((r["name"], r["attempt"], r["status"]) for r in rows) == [
        ("blocker", 1, "done"),
        ("q0", 1, "done"),
        ("q1", 1, "cancelled"),
        ("q2", 1, "done"),
    ]
    q0 = next(r for r in rows if r["name"] == "q0")
    assert [s for s, _ in q0["transitions"]] == ["pending", "running", "done"]


@pytest.mark.timeout(120)
def test_the_notes_of_jobs_queued_for_a_slot_never_wait_for_a_writer_that_is_behind(
    tmp_path: Path,
) -> None:
    # Issue 14: Slots._note_queued recorded the jobs waiting for a slot one put at a time,
    # under the engine's lock: with the writer behind, every 1,024th put waited for it (up to
    # a second each), holding the lock, so every job thread and the loop. Now one queueing.
    n = 24_576
    with Engine(folder=tmp_path) as engine:
        engine.set_limits(thread=1)
        gate, writing, release = threading.Event(), threading.Event(), threading.Event()
        writer = engine._store._writer
        write = writer._write

        def held_write(items: list[Any], everything: bool) -> BaseException | None:
            writing.set()
            release.wait(60)
            return write(items, everything)

        writer._write = held_write
        writer.max_delay = 0.01  # the batch held is soon older than this: the writer is behind
        try:
            blocker = engine.submit(gate.wait, 60, name="blocker")
            assert writing.wait(20)  # the blocker, noted running: a batch in flight, held
            time.sleep(0.05)
            queued = [Job(len, args=("x",), name=f"q{i}") for i in range(n)]
            engine.submit(*queued)
            noted = threading.Event()

            def note() -> None:
                engine._note_queued()  # what the loop's timer runs, armed by these queued jobs
                noted.set()

            threading.Thread(target=note, daemon=True).start()
            # One put at a time took ~n/1024 s (24 s) here, the batch held all along.
            assert noted.wait(12)
            assert not release.is_set()
            assert len(writer.queue) >= n
        finally:
            release.set()
            gate.set()
        assert engine.wait(timeout=60)
        assert blocker.result() is True
        rows = engine.history(status="done")
    assert len(rows) == n + 1


# the store by itself ----------------------------------------------------------------------------
def test_a_batch_is_coalesced_into_one_row_per_run(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, "e", batch_delay=0.2)
    try:
        jobs = [Job(len, args=("ab",), name=f"j{i}") for i in range(500)]
        for job in jobs:  # all within one batch
            _drive(store, job, Status.PENDING, Status.RUNNING, Status.DONE, result=2)
        store.flush(timeout=10)
        con = sqlite3.connect(tmp_path / "history.db")
        rows = con.execute("SELECT name, status, result, transitions FROM runs").fetchall()
        con.close()
        assert len(rows) == 500
        assert {(status, result) for _, status, result, _ in rows} == {("done", "2")}
        # three transitions each, at the run's own times: made on read (no text written)
        assert {t for *_, t in rows} == {None}
        for run in store.history():
            assert run["transitions"] == [
                ["pending", run["submitted"]], ["running", run["started"]],
                ["done", run["finished"]],
            ]  # fmt: skip
    finally:
        store.close()


def test_a_retry_in_the_same_batch_as_the_next_attempt_keeps_its_error(tmp_path: Path) -> None:
    # The writer folds the snapshots of one attempt in a batch into the last; the pending
    # snapshot of a retry carries the failed attempt's end and must not be folded into the
    # next attempt's start (seen under load: the first run recorded with no error).
    store = HistoryStore(tmp_path, "e", batch_delay=3600)  # one batch, written by the flush
    try:
        job = Job(len, args=("ab",), name="r")
        _drive(store, job, Status.PENDING, Status.RUNNING)
        job.traceback = "Traceback (most recent call last):\nValueError: first attempt\n"
        _drive(store, job, Status.PENDING)  # the retry
        job.traceback = None
        _drive(store, job, Status.RUNNING, Status.DONE, result=2)
        store.flush(timeout=10)
        runs = store.runs("r")
        assert [(r["attempt"], r["status"], r["error"]) for r in runs] == [
            (1, "failed", "ValueError: first attempt"),
            (2, "done", None),
        ]
    finally:
        store.close()


def test_a_late_snapshot_does_not_undo_an_end(store: HistoryStore) -> None:
    job = Job(len, args=("ab",), name="j")
    _drive(store, job, Status.PENDING, Status.RUNNING)
    running = snapshot_of(job)
    _drive(store, job, Status.DONE, result=2)
    # Another thread took this snapshot while the job ran and queued it after the end.
    store.job_changed(running)
    store.job_changed(job)
    store.flush(timeout=10)
    (run,) = store.history()
    assert run["status"] == "done"


def test_job_changed_costs_about_a_microsecond(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, "e", batch_delay=3600)  # the writer sleeps: measure the call
    try:
        job = Job(len, args=("ab",), name="j")
        _drive(store, job, Status.PENDING, Status.RUNNING)
        # Short rounds, many of them: on a busy machine some round runs without being
        # preempted and without the writer taking the queue, and the best one is the cost.
        n = 2_000
        best = min(timeit.repeat(lambda: store.job_changed(job), number=n, repeat=40)) / n
        # ~1.5 us on an idle machine (the call takes a frozen snapshot of the job, see
        # _snapshot.py); the bound leaves room for a busy CI box, and would catch any I/O,
        # lock or formatting slipping into the hot path.
        assert best < 5e-6, f"job_changed took {best * 1e6:.2f} us"
        store.flush(timeout=10)
        assert len(store.history()) == 1
    finally:
        store.close()


def test_close_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    before = set(_store_threads())
    store = HistoryStore(tmp_path / "h", "e")
    assert not (tmp_path / "h").exists()  # created on the first write, not before
    store.flush()  # nothing to do: returns at once
    job = Job(len, args=("ab",), name="j")
    _drive(store, job, Status.PENDING, Status.RUNNING, Status.DONE, result=2)
    (thread,) = set(_store_threads()) - before
    assert thread.name == "jupyter-executor-store-e" and thread.daemon
    store.close()  # writes what is queued, without waiting for the batch delay
    assert not thread.is_alive()
    store.close()
    store.flush()
    _drive(store, job, Status.PENDING)  # after close: ignored, no thread started
    assert set(_store_threads()) == before
    (run,) = HistoryStore(tmp_path / "h", "other").history()
    assert run["status"] == "done"


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:  # created, schema not yet committed
        return 0
    finally:
        con.close()


@pytest.mark.timeout(60)
def test_a_burst_is_written_in_batches_and_never_later_than_max_delay(tmp_path: Path) -> None:
    # The writer competes with the jobs for the GIL: during a burst of changes it gathers them
    # into large batches, but waits no longer than max_delay, and takes a backlog at once.
    store = HistoryStore(tmp_path, "burst", batch_delay=0.05, max_delay=0.6)
    jobs = [Job(len, args=("ab",), name=f"j{i}") for i in range(50)]
    for job in jobs:
        _drive(store, job, Status.PENDING, Status.RUNNING)
    try:
        began = time.monotonic()
        first_seen = None
        changes = 0
        while time.monotonic() - began < 3.0:  # a burst far longer than max_delay
            for _ in range(20):
                for job in jobs:
                    store.job_changed(job)
            changes += 20 * len(jobs)
            time.sleep(0.01)  # about 100,000 changes per second, 20 times what makes a burst
            elapsed = time.monotonic() - began
            if first_seen is None and _rows(store.path):
                first_seen = elapsed
        assert first_seen is not None and first_seen < 1.0  # not after the burst's end
        assert store._writer.batches < changes / 1000  # a batch was due every 0.05 s: it gathered
        # after the burst: everything, promptly, with no flush to cut the wait short
        for job in jobs:
            _drive(store, job, Status.DONE, result=2)
        wait_until(
            lambda: len([r for r in store.history() if r["status"] == "done"]) == len(jobs),
            timeout=10,
            what="the runs written after the burst",
        )
    finally:
        store.close()


def test_a_finished_run_reported_again_after_it_was_written_stays_whole(
    store: HistoryStore,
) -> None:
    # Once written, a finished run is released from memory; reported again (the latest report
    # of a run wins), it is rebuilt from the job and written over itself, whole.
    job = Job(len, args=("ab",), name="j")
    _drive(store, job, Status.PENDING, Status.RUNNING, Status.DONE, result=2)
    store.flush(timeout=10)
    (before,) = store.history()
    job.runstate.result = 3
    store.job_changed(job)
    store.flush(timeout=10)
    (after,) = store.history()
    assert after["result"] == "3"
    assert {**after, "result": "2"} == before
    assert [s for s, _ in after["transitions"]] == ["pending", "running", "done"]


def _held_writer(max_delay: float) -> tuple[Writer, threading.Event, threading.Event]:
    # A writer whose write blocks until the test releases it (a slow disk, another engine's
    # lock); its items are dropped.
    writing, release = threading.Event(), threading.Event()

    def write(items: list[Any], everything: bool) -> None:
        writing.set()
        release.wait(30)

    writer = Writer(
        "test-writer", write, lambda: False, lambda: None,
        batch_delay=0.0, idle_timeout=5.0, max_delay=max_delay,
    )  # fmt: skip
    return writer, writing, release


@contextlib.contextmanager
def _writer_behind() -> Iterator[tuple[Writer, threading.Event]]:
    # A writer whose batch in flight is held and older than its max_delay: behind. Yields it
    # and the event that releases the batch; released and closed on the way out.
    writer, writing, release = _held_writer(max_delay=0.01)
    try:
        writer.put(-1)
        assert writing.wait(10)
        time.sleep(0.05)  # the batch in flight is older than max_delay now
        yield writer, release
    finally:
        release.set()
        assert writer.close(timeout=10)


def _put_many(writer: Writer, n: int) -> threading.Thread:
    def put() -> None:
        for i in range(n):
            writer.put(i)

    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(60)
def test_the_jobs_do_not_wait_for_a_batch_being_written_while_it_is_recent(tmp_path: Path) -> None:
    # Issue 14: a burst's job threads waited for every 5,000 changes until the writer took
    # them, that is until its batch in flight was written (SQLite writing it, the jobs idle).
    # They wait only once the oldest unwritten change is older than max_delay.
    writer, writing, release = _held_writer(max_delay=10.0)
    try:
        writer.put(-1)
        assert writing.wait(10)  # a batch in flight, held
        producer = _put_many(writer, 20_000)
        producer.join(timeout=20)
        assert not producer.is_alive()  # never waited for the held batch
        assert len(writer.queue) == 20_000
    finally:
        release.set()
        assert writer.close(timeout=10)


@pytest.mark.timeout(60)
def test_a_flood_waits_for_a_writer_that_is_behind(tmp_path: Path) -> None:
    # The other side: changes older than max_delay unwritten slow the threads reporting
    # new ones to the writer's pace (each waits for it up to a second at a time).
    with _writer_behind() as (writer, release):
        producer = _put_many(writer, 20_000)
        producer.join(timeout=1.5)
        assert producer.is_alive()  # it waits for the writer
        release.set()
        producer.join(timeout=20)
        assert not producer.is_alive()


@pytest.mark.timeout(60)
def test_a_large_backlog_is_written_while_the_burst_goes_on() -> None:
    # Issue 14: during a burst the writer gathered for max_delay before each batch; what
    # piled up meanwhile (up to 0.5 s of a burst) was written alone after the burst's last
    # job, and wait() waited for it. A backlog of WRITE_AT changes is taken at once: the
    # batches stay large, and the writer writes them while the changes keep coming.
    sizes: list[int] = []
    took = threading.Event()

    def write(items: list[Any], everything: bool) -> None:
        sizes.append(len(items))
        took.set()

    writer = Writer(
        "test-writer", write, lambda: False, lambda: None,
        batch_delay=30.0, idle_timeout=60.0, max_delay=30.0,
    )  # fmt: skip
    try:
        for i in range(WRITE_AT + CHECK_EVERY):
            writer.put(i)
        assert took.wait(10)  # not after the 30 s of gathering
        assert sizes[0] >= WRITE_AT  # one large batch, not a batch per change
    finally:
        assert writer.close(timeout=10)
    assert sum(sizes) == WRITE_AT + CHECK_EVERY


def test_an_idle_writer_stops_and_the_next_change_starts_another(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, "idle", batch_delay=0, idle_timeout=0.1)
    try:
        job = Job(len, args=("ab",), name="j")
        _drive(store, job, Status.PENDING, Status.RUNNING)
        (first,) = [t for t in _store_threads() if t.name == "jupyter-executor-store-idle"]
        first.join(timeout=5)  # it stops by itself: an engine never shut down leaks nothing
        assert not first.is_alive()
        store.flush()  # no writer: everything was written
        assert store.history()[0]["status"] == "running"
        _drive(store, job, Status.DONE, result=2)
        store.flush(timeout=10)
        (run,) = store.history()
        assert [s for s, _ in run["transitions"]] == ["pending", "running", "done"]
    finally:
        store.close()
    assert not [t for t in _store_threads() if t.name == "jupyter-executor-store-idle"]


def test_a_failed_write_is_reported_and_retried(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    store = HistoryStore(folder, "e", batch_delay=0)
    try:
        folder.write_text("in the way")  # the folder cannot be created now
        job = Job(len, args=("ab",), name="j")
        _drive(store, job, Status.PENDING, Status.RUNNING, Status.DONE, result=2)
        with pytest.raises(StoreError, match="cannot write the history to"):
            store.flush(timeout=10)
        folder.unlink()
        store.flush(timeout=10)  # the same runs, written on the next try: nothing lost
        (run,) = store.history()
        assert run["status"] == "done"
    finally:
        store.close()


def test_flushed_settles_a_loop_s_future_from_the_writer(tmp_path: Path) -> None:
    # Issue 14: what a command's write-ahead awaits (test_write_ahead: no thread blocks for it).
    import asyncio

    folder = tmp_path / "h"
    store = HistoryStore(folder, "e", batch_delay=5)  # the flush cuts the batch's wait short
    job = Job(len, args=("ab",), name="j")

    async def flushed() -> None:
        await asyncio.wait_for(store.flushed(asyncio.get_running_loop()), 10)

    try:
        asyncio.run(flushed())  # nothing reported yet: done at once
        _drive(store, job, Status.PENDING, Status.RUNNING)
        asyncio.run(flushed())
        con = sqlite3.connect(store.path)
        try:  # on disk: read back by another connection
            assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]
        finally:
            con.close()
        store.close()
        store = HistoryStore(folder, "e", batch_delay=5)
        job = Job(len, args=("ab",), name="k")
        (folder / "history.db").unlink()
        (folder / "history.db").mkdir()  # in the way: the write fails
        _drive(store, job, Status.PENDING, Status.RUNNING, Status.DONE, result=2)
        with pytest.raises(StoreError, match="cannot write the history to"):
            asyncio.run(flushed())
    finally:
        store.close()


def test_replaced_job_and_reused_engine_id_never_overwrite(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, "e", batch_delay=0)
    try:
        for _ in range(2):  # a job, then another one of the same name (replace=True)
            job = Job(len, args=("ab",), name="same")
            _drive(store, job, Status.PENDING, Status.RUNNING, Status.DONE, result=2)
        store.flush(timeout=10)
    finally:
        store.close()
    again = HistoryStore(tmp_path, "e", batch_delay=0)  # a new kernel given the same id
    try:
        job = Job(len, args=("ab",), name="same")
        _drive(again, job, Status.PENDING, Status.RUNNING, Status.FAILED)
        assert [(r["attempt"], r["status"]) for r in again.runs("same")] == [
            (1, "done"), (2, "done"), (3, "failed"),
        ]  # fmt: skip
    finally:
        again.close()


def test_readers_last_success_running_detached_and_record_exit(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, "e", batch_delay=0)
    try:
        old = Tagged(len, args=("ab",), name="build")
        old.identity = "abc"
        _drive(store, old, Status.PENDING, Status.RUNNING, Status.DONE, result=2)
        other = Tagged(len, args=("ab",), name="build")
        other.identity = "def"
        _drive(store, other, Status.PENDING, Status.RUNNING, Status.DONE, result=3)
        server = Tagged(["sleep", "100"], name="server")
        server.detach, server.pid, server.pid_start_time = True, 4242, 1234.5
        _drive(store, server, Status.PENDING, Status.RUNNING)
        store.flush(timeout=10)
        best = store.last_success("build", "abc")
        assert best is not None and best["result"] == "2" and best["identity"] == "abc"
        assert store.last_success("build", "nope") is None
        (detached,) = store.running_detached()
        assert (detached["name"], detached["pid"], detached["pid_start_time"]) == (
            "server", 4242, 1234.5,
        )  # fmt: skip
        assert detached["detached"] is True and detached["finished"] is None
    finally:
        store.close()
    # A new kernel learns how the detached run ended.
    later = HistoryStore(tmp_path, "e2")
    end = time.time()
    later.record_exit(detached["id"], "failed", 1, end, "exited with code 1")
    later.record_exit(detached["id"], "done", 0, end + 1, None)  # the end is recorded once
    assert later.running_detached() == []
    (run,) = later.history("server")
    assert (run["status"], run["exit_code"], run["error"]) == ("failed", 1, "exited with code 1")
    assert run["finished"] == end and run["duration"] == pytest.approx(end - run["started"])
    assert run["transitions"][-1] == ["failed", end]
    assert later.runs("server") == []  # runs() is this engine's only; history() is everyone's
    with pytest.raises(ValueError, match="done, failed or cancelled"):
        later.record_exit(detached["id"], "running", None, end, None)
    later.close()


# the file: errors, crashes, several writers -------------------------------------------------------
def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "history.db")
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreError) as info:
        HistoryStore(tmp_path, "e")
    message = str(info.value)
    assert message == (
        f"the history database at {tmp_path / 'history.db'} was written by a newer "
        f"jupyter_executor (schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION}); upgrade"
    )


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "history.db").write_bytes(b"not a database at all, just some text " * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        HistoryStore(tmp_path, "e")


def test_an_unwritable_folder_is_refused_at_construction(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError) as info:
        HistoryStore(tmp_path / "file" / "sub", "e")
    assert str(info.value) == (
        f"cannot write the history in {tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is not "
        "a folder; pass folder=..."
    )
    assert "\n" not in str(info.value)
    if sys.platform == "linux":  # a folder no one can create files in, not even root
        with pytest.raises(StoreError, match=r"fdinfo: cannot create a file there \(.*\); pass"):
            HistoryStore(Path("/proc/self/fdinfo"), "e")


READ_ONLY = r"""
import os, sys
from pathlib import Path
from jupyter_executor.store import HistoryStore, StoreError

folder = Path(sys.argv[1])
if os.geteuid() == 0:
    # root writes in read-only folders: the check runs as nobody (after the imports, which
    # may live where nobody cannot read)
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
for where in (folder / "sub", folder):
    try:
        HistoryStore(where, "e")
    except StoreError as exc:
        print(exc)
    else:
        print("no error")
"""


def test_a_read_only_folder_is_refused_at_construction(tmp_path: Path) -> None:
    # In a folder that anyone may enter (tmp_path's parents may be closed to others), made
    # read-only; checked in a child, as an unprivileged user when the tests run as root.
    base = Path(tempfile.mkdtemp(prefix="je-ro-"))
    folder = base / "ro"
    try:
        base.chmod(0o755)
        folder.mkdir()
        folder.chmod(0o555)
        child = subprocess.run(
            [sys.executable, "-c", READ_ONLY, str(folder)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        sub, itself = child.stdout.splitlines()
        assert re.fullmatch(r"cannot write the history in .*ro/sub: .*; pass folder=.*", sub), sub
        assert re.fullmatch(r"cannot write the history in .*ro: .*; pass folder=.*", itself), itself
    finally:
        folder.chmod(0o700)
        shutil.rmtree(base)


WRITER = r"""
import sys, time
from pathlib import Path
from jupyter_executor import Job
from jupyter_executor._snapshot import snapshot_of
from jupyter_executor._status import Status
from jupyter_executor.store import HistoryStore

folder, engine_id = Path(sys.argv[1]), sys.argv[2]
total, per_batch = int(sys.argv[3]), int(sys.argv[4])
go = folder.parent / "go"
while not go.exists():
    time.sleep(0.002)
store = HistoryStore(folder, engine_id, batch_delay=0)
written = 0
while written < total:
    jobs = [Job(len, args=("ab",), name=f"{engine_id}-{written + i}") for i in range(per_batch)]
    for status in (Status.PENDING, Status.RUNNING, Status.DONE):
        now = time.time()
        for job in jobs:
            job.status = status
            job.submitted = job.submitted or now
            if status is Status.RUNNING:
                job.attempts, job.started = 1, now
            elif status is Status.DONE:
                job.finished, job.runstate.result = now, 2
            store.job_changed(job)
    store.flush(timeout=60)
    written += per_batch
    print(written, flush=True)
store.close()
"""


def _start_writer(
    folder: Path, engine_id: str, total: int, per_batch: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder), engine_id, str(total), str(per_batch)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(60)
def test_a_writer_killed_mid_batch_leaves_a_sound_database(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    (tmp_path / "go").touch()
    expected = 0
    # Killed at different moments of a batch; each writer starts on what the last one left.
    for round, delay in enumerate((0.01, 0.03, 0.06)):
        proc = _start_writer(folder, f"victim{round}", 10**9, 400)
        try:
            assert proc.stdout is not None
            committed = 0
            while committed < 1200:  # a few batches committed, the writer busy with the next
                line = proc.stdout.readline()
                assert line, "the writer died"
                committed = int(line)
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
        finally:
            kill_and_reap([proc], timeout=10)
        expected += committed
        con = sqlite3.connect(folder / "history.db")
        try:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            done = con.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
        finally:
            con.close()
        assert done >= expected  # every batch that was reported written is there
    # A new engine reads every row (decoding each) and writes to the same file.
    store = HistoryStore(folder, "next", batch_delay=0)
    try:
        runs = store.history()
        assert len(runs) >= expected
        assert {r["status"] for r in runs} <= {"pending", "running", "done"}
        _drive(store, Job(len, args=("ab",), name="after"), Status.PENDING)
        store.flush(timeout=10)
        assert store.runs("after")[0]["status"] == "pending"
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_two_engines_write_the_same_folder_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    procs = [_start_writer(folder, engine_id, 600, 25) for engine_id in ("a", "b")]
    reader = HistoryStore(folder, "reader")
    seen = 0
    try:
        (tmp_path / "go").touch()  # both create the file and write at the same moment
        while any(p.poll() is None for p in procs):
            seen = max(seen, len(reader.history()))  # reading while both write
            time.sleep(0.02)
        for proc in procs:
            assert proc.wait(timeout=30) == 0
    finally:
        kill_and_reap(procs, timeout=10)
        reader.close()
    runs = reader.history()
    assert len(runs) == 1200 >= seen
    for engine_id in ("a", "b"):
        mine = [r for r in runs if r["engine_id"] == engine_id]
        assert sorted(r["name"] for r in mine) == sorted(f"{engine_id}-{i}" for i in range(600))
        assert {(r["attempt"], r["status"]) for r in mine} == {(1, "done")}
    con = sqlite3.connect(folder / "history.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        con.close()


def test_the_engine_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    # It holds commands, output and tracebacks: 0o700 folders and 0o600 files, not 0o755/0o644.
    old = os.umask(0)  # the most permissive umask: every created file would be world-writable
    try:
        with Engine(folder=tmp_path / "runs", keep_logs=3) as engine:
            for _ in range(2):  # a rerun archives the first log
                engine.submit(print, "secret", name="job", replace=True)
                assert engine.wait(timeout=30)
            engine.submit("echo detached secret", name="detached", detach=True)
            assert engine.wait(timeout=30)
            engine.history()  # the database, its -wal and -shm are open now
            folder = tmp_path / "runs"
            files = [p for p in folder.rglob("*") if p.is_file() and ".exit" not in p.name]
            names = {p.name for p in files}
            assert {"history.db", "history.db-wal", "history.db-shm", "job.log"} <= names
            assert len(engine["job"].logs()) == 2 and "detached.log" in names
            modes = {str(p.relative_to(folder)): oct(p.stat().st_mode & 0o777) for p in files}
            assert set(modes.values()) == {"0o600"}, modes
            for path in (folder, folder / "logs"):
                assert oct(path.stat().st_mode & 0o777) == "0o700"
    finally:
        os.umask(old)


@pytest.mark.timeout(60)
def test_the_engine_s_notes_never_wait_for_a_writer_that_is_behind(tmp_path: Path) -> None:
    # Issue 14: the engine notes the jobs still waiting under its lock, by the thousand in a
    # long chain; a note that waited out the writer's backlog there (as a flood of single
    # changes does, above) held every job thread and the loop. put_many queues them at once.
    with _writer_behind() as (writer, release):
        done = threading.Event()

        def note() -> None:
            for _ in range(10):
                writer.put_many(list(range(2048)))
            done.set()

        threading.Thread(target=note, daemon=True).start()
        assert done.wait(10)  # with the held batch still held: it never waited for it
        assert not release.is_set()
        assert len(writer.queue) == 20_480
