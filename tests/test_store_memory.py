"""What the history keeps alive per finished job (issue 14: retained heap with the history on)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from jupyter_executor import Engine, Job
from jupyter_executor._snapshot import JobSnapshot, snapshot_of, snapshot_of_record

pytestmark = pytest.mark.timeout(180)

N = 3000


async def _anoop() -> None:
    return None


def _fail() -> None:
    raise ValueError("bad")


def _noop() -> None:
    return None


def _retained_per_job(folder: Path, history: bool) -> float:
    """Bytes of Python heap still alive per finished no-op job (the jobs kept alive)."""
    with Engine(folder=folder, history=history) as engine:
        engine.submit(*[Job(_anoop()) for _ in range(100)])  # imports, first-call caches
        assert engine.wait(timeout=60)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            jobs = [Job(_anoop()) for _ in range(N)]
            engine.submit(*jobs)
            assert engine.wait(timeout=120)  # also waits for the history to be written
            time.sleep(0.05)  # the loop thread drops what it holds on its next iteration
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert all(job.status == "done" for job in jobs)
        return retained / N


def test_the_history_keeps_little_alive_per_finished_job(tmp_path: Path) -> None:
    # Measured against the same jobs without the history, in the same process: what the jobs
    # and the engine keep is the same on both sides. Before: ~700 bytes per job more with the
    # history (each job kept its description and log path, the writer a state per job).
    off = _retained_per_job(tmp_path / "off", history=False)
    on = _retained_per_job(tmp_path / "on", history=True)
    assert on - off < 300, f"the history keeps {on - off:.0f} bytes per finished job"


def test_a_finished_job_keeps_its_snapshot_key_and_fields_through_a_rerun(
    tmp_path: Path,
) -> None:
    with Engine(folder=tmp_path / "e") as engine:
        job = engine.submit(_noop, name="again", backend="thread")
        assert engine.wait(timeout=30)
        first = snapshot_of(job)
        assert first.status == "done"
        again = snapshot_of(job)  # built again from the job: the same job, the same fields
        assert (again.key, again.name, again.description, again.log_path) == (
            first.key,
            first.name,
            first.description,
            first.log_path,
        )
        engine.rerun(job)
        assert engine.wait(timeout=30)
        assert snapshot_of(job).key == first.key
        runs = engine.history("again")
        assert list(runs["attempt"]) == [1, 2]
        assert list(runs["status"]) == ["done", "done"]
        assert set(runs["log_path"]) == {first.log_path}


def _record_changes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(name, status) of every change the engine hands its history store, in order: as a
    snapshot, or as the record of a plain job's change (see _snapshot.record_of)."""
    store = engine._store
    assert store is not None
    seen: list[tuple[str, str]] = []
    keep, keep_record = store.job_changed, store.job_recorded

    def recording(snap: Any) -> None:
        seen.append((snap.name, snap.status))
        keep(snap)

    def recording_record(record: tuple[Any, ...]) -> None:
        snap = snapshot_of_record(record)
        seen.append((snap.name, snap.status))
        keep_record(record)

    def recording_records(records: list[tuple[Any, ...]]) -> None:
        for record in records:
            snap = snapshot_of_record(record)
            seen.append((snap.name, snap.status))
        keep_records(records)

    keep_records = store.jobs_recorded
    monkeypatch.setattr(store, "job_changed", recording)
    monkeypatch.setattr(store, "job_recorded", recording_record)
    monkeypatch.setattr(store, "jobs_recorded", recording_records)
    return seen


def test_a_short_job_is_recorded_once_and_a_long_one_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14: a burst of short jobs costs the history one snapshot (and one row) per job, not
    # one at the start and one at the end; a job that runs longer is still on disk as running
    # within a second of its start (a kernel that dies does not lose it), and at once in what
    # a read of the history shows.
    import threading

    from _wait import wait_until

    with Engine(folder=tmp_path / "e") as engine:
        seen = _record_changes(engine, monkeypatch)
        engine.submit(*[Job(_noop, name=f"short{i}", backend="thread") for i in range(20)])
        assert engine.wait(timeout=30)
        assert sorted(seen) == sorted((f"short{i}", "done") for i in range(20))
        runs = engine.history().to_dict("records")
        assert len(runs) == 20
        for run in runs:
            assert [s for s, _ in run["transitions"]] == ["pending", "running", "done"]
            assert run["submitted"] <= run["started"] <= run["finished"]

        gate = threading.Event()
        long = engine.submit(gate.wait, 30, name="long", backend="thread")
        wait_until(lambda: long.status.value == "running", timeout=20)
        # What the user saw running is in what they read at once (a read flushes the starts
        # not recorded yet), and on disk by itself a moment later (a kernel that dies).
        (row,) = engine.history("long").to_dict("records")
        assert row["status"] == "running"
        gate.set()
        assert engine.wait(timeout=30)
        (run,) = engine.history("long").to_dict("records")
        assert run["status"] == "done"
        assert [s for s, _ in run["transitions"]] == ["pending", "running", "done"]


def test_a_check_of_started_jobs_records_only_those_started_a_delay_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14: each check recorded every job noted until then; in a steady flow of short
    # jobs, those started an instant before a check (most of which end a moment later) were
    # written twice, running then ended. A job is checked a delay after it was noted.
    import threading

    from _wait import wait_until

    from jupyter_executor import _events

    monkeypatch.setattr(_events, "NOTE_RUNNING_AFTER", 2.0)  # wide margins on a loaded machine
    with Engine(folder=tmp_path / "e") as engine:
        seen = _record_changes(engine, monkeypatch)
        first_gate, late_gate = threading.Event(), threading.Event()
        engine.submit(first_gate.wait, 60, name="first", backend="thread")
        time.sleep(1.0)  # the check of "first" comes 1 s after "late" started
        late = engine.submit(late_gate.wait, 60, name="late", backend="thread")
        wait_until(lambda: ("first", "running") in seen, timeout=30)  # the first check
        late_gate.set()  # "late" ends before its own check (2 s after it started)
        assert engine.wait_job(late, timeout=30)
        assert [status for name, status in seen if name == "late"] == ["done"]
        first_gate.set()
        assert engine.wait(timeout=30)


def test_a_chain_records_each_job_once_and_a_waiting_one_while_it_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10/14: a job submitted behind another (a chain, one submit per job) is not
    # snapshotted at its submission; it is recorded once at its end, or while it waits if it
    # still waits a moment later, and at once in what a read of the history shows — with the
    # time it has waited since.
    import threading

    with Engine(folder=tmp_path / "e") as engine:
        seen = _record_changes(engine, monkeypatch)
        previous = None
        for i in range(20):
            previous = engine.submit(
                _noop, name=f"link{i}", backend="thread", requires=[previous] if previous else []
            )
        assert engine.wait(timeout=30)
        assert sorted(seen) == sorted((f"link{i}", "done") for i in range(20))
        for run in engine.history().to_dict("records"):
            assert [s for s, _ in run["transitions"]] == ["pending", "running", "done"]

        gate = threading.Event()
        first = engine.submit(gate.wait, 30, name="first", backend="thread")
        waiter = engine.submit(_noop, name="waiter", backend="thread", requires=[first])
        assert ("waiter", "pending") not in seen  # not at its submission
        (row,) = engine.history("waiter").to_dict("records")  # a read records it at once
        assert row["status"] == "pending"
        assert row["transitions"] == [["pending", waiter.submitted]]
        gate.set()
        assert engine.wait(timeout=30)
        (run,) = engine.history("waiter").to_dict("records")
        assert [s for s, _ in run["transitions"]] == ["pending", "running", "done"]
        assert run["transitions"][0][1] == waiter.submitted


@pytest.mark.parametrize("views", [False, True])
def test_a_plain_job_s_end_is_snapshotted_under_the_lock_only_for_a_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, views: bool
) -> None:
    # Issue 14: a snapshot taken under the engine's lock at each end (~3 us) was what a
    # burst's job threads waited on. With no subscriber taking snapshots the history gets a
    # record of the values that change (snapshotted in its writer's thread); a view that takes
    # snapshots still gets one per change, and the history the same runs either way.
    import threading

    from jupyter_executor import _scheduler

    taken: list[str] = []
    keep = snapshot_of

    def counting(job: Any) -> Any:
        taken.append(threading.current_thread().name)
        return keep(job)

    monkeypatch.setattr(_scheduler, "snapshot_of", counting)
    got: list[Any] = []
    with Engine(folder=tmp_path / "e") as engine:
        if views:
            engine.subscribe(lambda event, snap: got.append(snap), snapshots=True)
        engine.submit(*[Job(_noop, name=f"j{i}", backend="thread") for i in range(30)])
        engine.submit(Job(_fail, name="bad", backend="thread"))
        assert not engine.wait(timeout=30)
        runs = {run["name"]: run for run in engine.history().to_dict("records")}
    assert len(taken) == (31 if views else 0)
    assert sum(isinstance(s, JobSnapshot) and s.done for s in got) == (31 if views else 0)
    assert len(runs) == 31
    assert {runs[f"j{i}"]["status"] for i in range(30)} == {"done"}
    assert runs["bad"]["status"] == "failed" and runs["bad"]["error"] == "ValueError: bad"
    assert "ValueError: bad" in runs["bad"]["traceback"]


def test_jobs_still_waiting_are_noted_as_records_and_written_once_they_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14: in a chain longer than the note's delay, the "still waiting" note recorded
    # every waiting job with a whole snapshot taken under the engine's lock (most of the
    # loop's time per hop). A plain job (nothing takes snapshots) is noted as a record, all
    # of them queued at once; the waiting runs are on disk by themselves (a kernel that dies
    # keeps them), each with the time it has waited since, and each ends as one row.
    import sqlite3
    import threading

    from _wait import wait_until

    from jupyter_executor import _events

    with Engine(folder=tmp_path / "e") as engine:
        seen = _record_changes(engine, monkeypatch)
        snapshots: list[str] = []
        keep = engine._store.job_changed  # (the recording one)

        def no_snapshot(snap: Any) -> None:
            snapshots.append(snap.name)
            keep(snap)

        monkeypatch.setattr(engine._store, "job_changed", no_snapshot)
        gate = threading.Event()
        first = engine.submit(gate.wait, 30, name="first", backend="thread")
        links = [Job(_noop, name=f"link{i}", backend="thread") for i in range(50)]
        for before, link in zip([first, *links], links, strict=False):
            link.requires(before)
        engine.submit(*links)
        time.sleep(_events.NOTE_RUNNING_AFTER)  # at least: the note comes after this delay

        path = engine._store.path

        def on_disk() -> list[tuple[Any, ...]]:
            if not path.exists():
                return []
            con = sqlite3.connect(path)
            try:
                return con.execute(
                    "SELECT name, status, submitted, transitions FROM runs "
                    "WHERE name LIKE 'link%' ORDER BY name"
                ).fetchall()
            except sqlite3.OperationalError:
                return []  # not created yet
            finally:
                con.close()

        waiting = wait_until(lambda: len(on_disk()) == 50 and on_disk(), timeout=30)
        assert {status for _, status, _, _ in waiting} == {"pending"}
        submitted = {link.name: link.submitted for link in links}
        for name, _, when, transitions in waiting:
            assert when == submitted[name]
            assert transitions == f'[["pending",{submitted[name]!r}]]'
        assert not [name for name in snapshots if name.startswith("link")]  # records only
        gate.set()
        assert engine.wait(timeout=30)
        runs = engine.history().to_dict("records")
    links_seen = [status for name, status in seen if name.startswith("link")]
    assert sorted(links_seen) == ["done"] * 50 + ["pending"] * 50  # noted once, then the end
    assert len(runs) == 51
    for run in runs:
        assert run["status"] == "done" and run["attempt"] == 1
        assert [s for s, _ in run["transitions"]] == ["pending", "running", "done"]
        assert run["transitions"][0][1] == submitted.get(run["name"], first.submitted)
        assert run["submitted"] <= run["started"] <= run["finished"]
