"""The history's layout, migrations, filtered reads, and the snapshots it folds into runs."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _folds import fold_both_ways

from jupyter_executor import Engine, Job
from jupyter_executor._snapshot import JobSnapshot, snapshot_of
from jupyter_executor._status import Status
from jupyter_executor.errors import InvalidOption
from jupyter_executor.store import SCHEMA_VERSION, HistoryStore, _fold
from jupyter_executor.store._query import select
from jupyter_executor.store._schema import STEPS, WRITTEN

pytestmark = pytest.mark.timeout(60)

# The layout every database had before the migration steps (schema_version 1 in meta,
# PRAGMA user_version 0), as store.py created it, with one run and one engine row.
_OLD_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY, engine_id TEXT NOT NULL, name TEXT NOT NULL,
        attempt INTEGER NOT NULL, backend TEXT, kind TEXT, description TEXT, requires TEXT,
        status TEXT NOT NULL, submitted REAL, started REAL, finished REAL, duration REAL,
        exit_code INTEGER, result TEXT, error TEXT, traceback TEXT, cancel_reason TEXT,
        log_path TEXT, pid INTEGER, pid_start_time REAL, detached INTEGER NOT NULL DEFAULT 0,
        identity TEXT, transitions TEXT, UNIQUE (engine_id, name, attempt))""",
    "CREATE INDEX runs_by_name ON runs (name)",
    "CREATE INDEX runs_open_detached ON runs (detached) WHERE finished IS NULL",
    "INSERT INTO meta VALUES ('schema_version', '1')",
    """CREATE TABLE engines (engine_id TEXT PRIMARY KEY, host TEXT, pid INTEGER,
        pid_start_time REAL, opened REAL)""",
    "INSERT INTO runs (engine_id, name, attempt, backend, kind, description, requires, status, "
    "submitted, started, finished, duration, result, detached, transitions) VALUES "
    "('old', 'etl', 1, 'thread', 'callable', 'etl()', '[\"extract\"]', 'done', 100.0, 101.0, "
    '103.0, 2.0, \'42\', 0, \'[["pending",100.0],["running",101.0],["done",103.0]]\')',
]


def _old_database(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "history.db"
    con = sqlite3.connect(db)
    for statement in _OLD_SCHEMA:
        con.execute(statement)
    con.commit()
    con.close()
    return db


def _layout(db: Path) -> tuple[int, str, set[str]]:
    con = sqlite3.connect(db)
    try:
        (version,) = con.execute("PRAGMA user_version").fetchone()
        (meta,) = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        names = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
    finally:
        con.close()
    return version, meta, names


# migrations ----------------------------------------------------------------------------------
def test_a_database_of_the_layout_before_the_steps_is_migrated_and_keeps_its_runs(
    tmp_path: Path,
) -> None:
    db = _old_database(tmp_path / "runs")
    with Engine(folder=tmp_path / "runs") as engine:
        version, meta, names = _layout(db)
        # Migrated when the engine opened it (it looks for runs to re-attach).
        assert version == SCHEMA_VERSION == len(STEPS)
        assert {"runs_by_time", "files", "schedules", "files_by_path"} <= names
        # Older versions check meta's schema_version: still 1, they can still use the file.
        assert meta == "1"
        job = engine.submit(sum, [1, 2], name="add")
        assert engine.wait(timeout=30)
        runs = engine._store.history() if engine._store is not None else []
        assert [(r["name"], r["status"], r["result"]) for r in runs] == [
            ("etl", "done", "42"),
            ("add", "done", "3"),
        ]
        assert runs[0]["requires"] == ["extract"]
        assert runs[0]["transitions"] == [["pending", 100.0], ["running", 101.0], ["done", 103.0]]
        assert job.status is Status.DONE


def test_a_reader_of_an_old_database_does_not_migrate_it(tmp_path: Path) -> None:
    db = _old_database(tmp_path)
    store = HistoryStore(tmp_path, "reader")
    try:
        assert [r["name"] for r in store.history(limit=5)] == ["etl"]
        assert store.schedules() == []  # a table it does not have yet: none
        assert _layout(db)[0] == 0  # reading needs no write access, and changes nothing
    finally:
        store.close()


def test_migrating_twice_or_at_once_is_harmless(tmp_path: Path) -> None:
    db = _old_database(tmp_path)
    stores = [HistoryStore(tmp_path, f"e{i}", batch_delay=0) for i in range(2)]
    try:
        for i, store in enumerate(stores):
            # a write: migrates (the second finds it done)
            store.save_schedule(f"s{i}", {"command": "true", "every": 60})
        assert _layout(db)[0] == SCHEMA_VERSION
        assert [row["owner"] for row in stores[1].schedules()] == ["e0", "e1"]
        assert _names(stores[0].history()) == ["etl"]
    finally:
        for store in stores:
            store.close()


def test_a_newer_user_version_is_refused_with_one_line(tmp_path: Path) -> None:
    db = _old_database(tmp_path)
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(Exception, match=r"newer jupyter_executor \(schema \d+ > \d+\); upgrade$"):
        HistoryStore(tmp_path, "e")


# filters -------------------------------------------------------------------------------------
@pytest.fixture
def filled(tmp_path: Path) -> Iterator[HistoryStore]:
    """A store with 30 runs: a0..a9 done, b0..b9 failed, c0..c9 cancelled, one per 10 s."""
    store = HistoryStore(tmp_path, "e", batch_delay=0)
    base = time.time() - 1000
    for i in range(30):
        name = "abc"[i // 10] + str(i % 10)
        status = ("done", "failed", "cancelled")[i // 10]
        job = Job(len, args=("ab",), name=name)
        job.status, job.submitted, job.attempts = Status.PENDING, base + 10 * i, 0
        store.job_changed(job)
        job.status, job.started, job.attempts = Status.RUNNING, base + 10 * i + 1, 1
        store.job_changed(job)
        job.status, job.finished = Status(status), base + 10 * i + 2
        store.job_changed(job)
    store.flush(timeout=30)
    store.base = base  # type: ignore[attr-defined]
    try:
        yield store
    finally:
        store.close()


def _names(runs: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in runs]


def test_each_filter_and_their_combination(filled: HistoryStore) -> None:
    base: float = filled.base  # type: ignore[attr-defined]
    assert len(filled.history()) == 30
    assert _names(filled.history("b3")) == ["b3"]
    assert _names(filled.history(since=base + 275)) == ["c8", "c9"]
    since = datetime.fromtimestamp(base + 275)
    assert _names(filled.history(since=since)) == ["c8", "c9"]
    assert len(filled.history(since="1h")) == 30
    assert len(filled.history(since=timedelta(seconds=1))) == 0
    assert _names(filled.history(status="failed", limit=2)) == ["b8", "b9"]  # latest, in order
    assert _names(filled.history(status=[Status.DONE, "cancelled"], limit=3)) == [
        "c7",
        "c8",
        "c9",
    ]
    assert _names(filled.history(limit=0)) == []
    assert _names(filled.history("a1", status="failed")) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"since": "soon"}, "history(since='soon')"),
        ({"since": float("nan")}, "history(since=nan)"),
        ({"since": True}, "history(since=True)"),
        ({"since": [1]}, "history(since=[1])"),
        ({"status": "finished"}, "history(status='finished')"),
        ({"status": []}, "history(status=[])"),
        ({"status": 3}, "history(status=3)"),
        ({"limit": -1}, "history(limit=-1)"),
        ({"limit": "3"}, "history(limit='3')"),
        ({"limit": True}, "history(limit=True)"),
        ({"name": 3}, "history(name=3)"),
        ({"stat": "done"}, "history(stat='done'): not a filter"),
    ],
)
def test_a_bad_filter_is_one_line_naming_the_option_and_value(
    filled: HistoryStore, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOption) as info:
        filled.history(**options)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_since_and_limit_read_through_the_time_index(filled: HistoryStore) -> None:
    # Pushed into SQL: the plan walks the runs_by_time index instead of sorting every run.
    con = sqlite3.connect(filled.path)
    try:
        for options in ({"since": 5.0}, {"limit": 10}, {"since": 5.0, "limit": 3}):
            sql, params = select(None, **options)
            plan = " ".join(str(row) for row in con.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "runs_by_time" in plan, (options, plan)
    finally:
        con.close()


def test_engine_history_filters_and_gives_datetimes(tmp_path: Path) -> None:
    with Engine(folder=tmp_path) as engine:
        engine.submit(sum, [1, 2], name="ok")
        engine.submit(lambda: 1 / 0, name="bad")
        engine.wait(timeout=30)
        frame = engine.history(status="failed")
        assert list(frame["name"]) == ["bad"]
        assert isinstance(frame["finished"].iloc[0], datetime)
        assert frame["detached"].dtype == bool
        assert list(engine.history(limit=1)["name"]) == [engine.history()["name"].iloc[-1]]
        assert engine.history("nothing").empty
        with pytest.raises(InvalidOption, match=r"history\(limit=-2\)"):
            engine.history(limit=-2)


def test_engine_history_keeps_none_for_times_not_reached(tmp_path: Path) -> None:
    with Engine(folder=tmp_path) as engine:
        gate = engine.submit(asyncio.sleep, 30, name="slow")  # async: cancelled at once
        engine.submit(sum, [1], name="after", requires=[gate])
        time.sleep(0.1)
        frame = engine.history("after")
        assert frame["started"].iloc[0] is None and frame["finished"].iloc[0] is None
        engine.cancel(gate)


# snapshots and folding -----------------------------------------------------------------------
def test_a_snapshot_is_frozen_and_matches_the_jobs_info(tmp_path: Path) -> None:
    with Engine(folder=tmp_path, history=False) as engine:
        ok = engine.submit(sum, [1, 2], name="ok")
        bad = engine.submit(lambda: 1 / 0, name="bad")
        engine.wait(timeout=30)
        for job in (ok, bad):
            snap = snapshot_of(job)
            assert type(snap) is JobSnapshot and dataclasses.is_dataclass(snap)
            with pytest.raises(dataclasses.FrozenInstanceError):
                snap.status = "running"  # type: ignore[misc]
            # the one row of a job (info(), list(), the views) is the snapshot's
            info = job.info()
            assert {**snap.info_dict(), "requires": []} == {**info.to_dict(), "tail": ""}
            assert (info.name, info.status, info.attempts) == (job.name, job.status.value, 1)
            assert (info.started, info.finished) == (job.started, job.finished)
            assert info.result == ("3" if job is ok else None)
            assert info.error == (None if job is ok else "ZeroDivisionError: division by zero")
            assert snap.log_path == str(job.log_path)
            assert snap == dataclasses.replace(snap)  # built like one made by its __init__


def test_a_snapshot_follows_a_rename_before_submit() -> None:
    job = Job(len, args=("ab",), name="first")
    assert snapshot_of(job).name == "first"
    job.name = "second"  # still allowed: the cached description must not keep the old name
    assert snapshot_of(job).name == "second"


def test_a_rerun_of_a_forgotten_finished_job_continues_its_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pure: no database. Finished jobs beyond KEEP_FINISHED are forgotten; a rerun of one
    # still gets the next attempt number from the highest recorded for its name.
    monkeypatch.setattr(_fold, "KEEP_FINISHED", 2)
    runs = _fold.Runs("e")
    highest: dict[str, int] = {}
    jobs = [Job(len, args=("ab",), name=f"j{i}") for i in range(4)]
    for job in jobs:
        for status in (Status.PENDING, Status.RUNNING, Status.DONE):
            job.status = status
            if status is Status.RUNNING:
                job.attempts += 1
            runs.take(snapshot_of(job))
    assert [row[2] for row in runs.rows(highest)] == [1, 1, 1, 1]  # attempt column
    runs.written()
    assert len(runs.states) == 2  # the two oldest are forgotten
    again = jobs[0]
    for status in (Status.PENDING, Status.RUNNING, Status.DONE):
        again.status = status
        if status is Status.RUNNING:
            again.attempts += 1
        runs.take(snapshot_of(again))
    ((name, attempt),) = [(row[1], row[2]) for row in runs.rows(highest)]
    assert (name, attempt) == ("j0", 2)


def test_a_new_run_has_every_column_of_the_table() -> None:
    runs = _fold.Runs("e")
    run = runs.take(snapshot_of(Job(len, args=("ab",), name="j")))
    assert run is not None and set(WRITTEN) <= set(run)


def _finished_snapshots(n: int) -> list[JobSnapshot]:
    snaps = []
    for i in range(n):
        job = Job(len, args=("ab",), name=f"j{i}")
        job.status, job.submitted = Status.PENDING, time.time()
        snaps.append(snapshot_of(job))
        job.status, job.attempts, job.started = Status.RUNNING, 1, time.time()
        snaps.append(snapshot_of(job))
        job.status, job.finished = Status.DONE, time.time()
        snaps.append(snapshot_of(job))
    return snaps


@pytest.mark.parametrize("enabled", [True, False])
def test_a_large_batch_is_written_without_collector_passes(tmp_path: Path, enabled: bool) -> None:
    # A burst's batch allocates per run: with the collector on, its passes walk every job
    # alive again and again. It is paused for the batch, and left as the program had it.
    store = HistoryStore(tmp_path, "e")
    snaps = _finished_snapshots(5000)
    passes: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    was = gc.isenabled()
    gc.callbacks.append(count)
    try:
        if not enabled:
            gc.disable()
        assert store._write_batch(snaps) is None
        assert gc.isenabled() is enabled
    finally:
        gc.callbacks.remove(count)
        if was:
            gc.enable()
        store.close()
    assert passes == []
    assert len(HistoryStore(tmp_path, "reader").history(status="done")) == 5000


def test_last_runs_is_the_latest_run_of_each_name_of_other_engines(tmp_path: Path) -> None:
    # What the dashboard shows of earlier kernels, picked by SQLite; checked against the same
    # rows picked in Python from the whole history (how the dashboard did it before).
    stores = [HistoryStore(tmp_path, f"e{i}", batch_delay=0) for i in range(3)]
    try:
        base = time.time() - 1000
        for i in range(60):
            store = stores[i % 3]
            job = Job(len, args=("ab",), name=f"n{i % 7}")
            job.status, job.submitted = Status.PENDING, base + i
            store.job_changed(job)
            job.status, job.attempts, job.started = Status.RUNNING, 1, base + i
            store.job_changed(job)
            job.status, job.finished = Status.DONE, base + i + 0.5
            store.job_changed(job)
            store.flush(timeout=30)
        reader = stores[0]
        for limit in (1, 3, 7, 100):
            expected: dict[str, dict[str, Any]] = {}
            for run in reader.history():
                if run["engine_id"] != "e0":
                    expected.pop(run["name"], None)
                    expected[run["name"]] = run
            want = list(expected.values())[-limit:]
            assert reader.last_runs(limit, other_than="e0") == want
        assert len(reader.last_runs(100)) == 7
    finally:
        for store in stores:
            store.close()


def test_a_pending_run_is_held_back_until_it_ends_or_has_waited(tmp_path: Path) -> None:
    # Pure: a burst's queued jobs noted as pending are written once, at their end, when they
    # end within the hold; one that still waits after it is written as pending.
    runs = _fold.Runs("e")
    highest: dict[str, int] = {}
    job = Job(len, args=("ab",), name="queued")
    job.status, job.submitted = Status.PENDING, time.time()
    pending = snapshot_of(job)
    runs.take(pending)
    assert runs.rows(highest, hold_after=pending.time) == []  # held: still dirty
    assert len(runs.dirty) == 1
    ((status, attempt),) = [(r[7], r[2]) for r in runs.rows(highest, hold_after=pending.time + 1)]
    assert (status, attempt) == ("pending", 1)  # waited long enough: written
    runs.written()
    assert not runs.dirty
    other = Job(len, args=("ab",), name="ends")
    other.status, other.submitted = Status.PENDING, time.time()
    first = snapshot_of(other)
    runs.take(first)
    assert runs.rows(highest, hold_after=first.time) == []
    other.status, other.attempts, other.started = Status.RUNNING, 1, time.time()
    other.status, other.finished = Status.DONE, time.time()
    runs.take(snapshot_of(other))
    ((name, status),) = [(r[1], r[7]) for r in runs.rows(highest, hold_after=first.time)]
    assert (name, status) == ("ends", "done")  # one row, at its end


def test_upsert_many_writes_full_chunks_and_the_rest(tmp_path: Path) -> None:
    # More rows than a statement takes (CHUNK), written twice: every row once, updated.
    from jupyter_executor.store import _schema

    con = _schema.connect(tmp_path / "h.db", 5, create=True)
    try:
        n = 2 * _schema.CHUNK + 3
        rows: list[list[Any]] = []
        for i in range(n):
            run = dict.fromkeys(WRITTEN)
            run.update(engine_id="e", name=f"j{i}", attempt=1, status="running", detached=0)
            rows.append([run[c] for c in WRITTEN])
        with _schema.transaction(con):
            _schema.upsert_many(con, rows)
        for row in rows:
            row[WRITTEN.index("status")] = "done"
        with _schema.transaction(con):
            _schema.upsert_many(con, rows)
        got = con.execute("SELECT name, status FROM runs ORDER BY id").fetchall()
    finally:
        con.close()
    assert got == [(f"j{i}", "done") for i in range(n)]


def _ended_snapshots() -> list[JobSnapshot]:
    # Snapshots of runs that ended, of every shape take_all's fast path takes (each first
    # seen ended): done, failed, cancelled, a subprocess' exit code, a retried job's second
    # attempt, a process, a detached command, requirements, code text, an odd name.
    job = Job(len, args=("ab",), name="base")
    job.status, job.attempts = Status.DONE, 1
    job.submitted, job.started, job.finished = 100.0, 101.25, 103.5
    base = snapshot_of(job)
    error = subprocess.CalledProcessError(3, ["false"])
    shapes: list[dict[str, Any]] = [
        {"result": 3},
        {"result": None},
        {"result": 7, "backend": "subprocess"},
        {"result": [1] * 100},
        {"status": "failed", "exception": ValueError("bad"), "traceback": "Traceback...\nbad"},
        {"status": "failed", "exception": error, "backend": "subprocess"},
        {"status": "cancelled", "cancel_reason": "user", "result": 5},
        {"attempts": 2, "result": 1},
        {"pid": 4242, "pid_start_time": 99.5},
        {"pid_start_time": 99.5},  # no pid: not written
        {"detached": True, "identity": "abc"},
        {"requires": ("a", "b\udcff")},
        {"source": "x = 1\nx"},
        {"started": 101, "finished": 0.1 + 0.2},
    ]
    snaps = [dataclasses.replace(base, key=-i - 1, name=f"j{i}", **s) for i, s in enumerate(shapes)]
    snaps.append(dataclasses.replace(base, key=-100, name="odd \udcff name"))
    return snaps


def test_the_fast_path_of_an_ended_run_writes_the_row_take_writes() -> None:
    # Pure: each snapshot through take_all (the row made at once) and through take (a dict
    # of columns, then its row) gives the same row.
    for snap in _ended_snapshots():
        fast, slow = _fold.Runs("e"), _fold.Runs("e")
        fast.take_all([snap])
        slow.take(snap)
        assert type(next(iter(fast.dirty.values()))) is tuple  # it took the fast path
        highest: dict[str, int] = {"j7": 4}
        assert fast.rows(dict(highest)) == slow.rows(dict(highest)), snap
        fast.written()
        assert not fast.dirty
        assert fast.states[snap.key].run is None  # only what places a later snapshot


def test_the_fast_path_keeps_the_order_attempts_are_given_in() -> None:
    # A job replaced by another of the same name within one batch: the first (seen pending
    # first: a dict) keeps attempt 1, the replacing one (seen ended: a row) continues after
    # it. A late copy of an ended run, and its rerun, in the same batch place as before.
    runs = _fold.Runs("e")
    first = Job(len, args=("ab",), name="same")
    first.status, first.submitted = Status.PENDING, 100.0
    waiting = snapshot_of(first)
    first.status, first.attempts, first.started, first.finished = Status.DONE, 1, 101.0, 102.0
    ended = snapshot_of(first)
    second = Job(len, args=("ab",), name="same")
    second.status, second.attempts = Status.DONE, 1
    second.submitted, second.started, second.finished = 103.0, 104.0, 105.0
    replacing = snapshot_of(second)
    second.status, second.attempts, second.started = Status.RUNNING, 2, 106.0
    rerun = snapshot_of(second)
    runs.take_all([waiting, ended, replacing, replacing, rerun])
    rows = runs.rows({})
    assert [(r[1], r[2], r[7]) for r in rows] == [
        ("same", 1, "done"),
        ("same", 2, "done"),
        ("same", 2, "done"),  # the late copy: the same row again
        ("same", 3, "running"),
    ]
    runs.written()
    assert not runs.dirty


def _failing() -> None:
    raise ValueError("bad")


@pytest.mark.parametrize("target", [len, _failing])
def test_a_record_makes_the_snapshot_snapshot_of_takes(tmp_path: Path, target: Any) -> None:
    # What the history reads of a plain job's change is the same whether the engine handed it
    # a snapshot or a record (nothing else took snapshots), and the job keeps one key.
    from jupyter_executor._snapshot import record_of, snapshot_of_record

    views = {"allows", "traceback_ansi", "progress", "progress_text", "last_line"}
    views |= {"output_version", "time"}
    with Engine(folder=tmp_path, history=False) as engine:
        job = Job(target, args=("ab",) if target is len else (), name="j")
        engine.submit(job)
        engine.wait(timeout=30)
        first = snapshot_of_record(record_of(job))
        second = snapshot_of(job)  # after the record: the key it gave
        for snap in (first, snapshot_of_record(record_of(job))):
            for field in dataclasses.fields(JobSnapshot):
                if field.name not in views:
                    assert getattr(snap, field.name) == getattr(second, field.name), field.name
        assert first.status == ("done" if target is len else "failed")


def test_upsert_many_steps_a_few_statements_not_one_per_row(tmp_path: Path) -> None:
    # Issue 14: each statement gives the GIL away while SQLite runs it and takes it back
    # after (up to 5 ms while the jobs keep it busy): the rows a batch has beyond full chunks
    # were written by executemany, one step per row. Now in statements of powers of two.
    from jupyter_executor.store import _schema

    con = _schema.connect(tmp_path / "h.db", 5, create=True)
    steps: list[str] = []
    try:
        n = 2 * _schema.CHUNK + _schema.CHUNK - 1
        rows: list[list[Any]] = []
        for i in range(n):
            run = dict.fromkeys(WRITTEN)
            run.update(engine_id="e", name=f"j{i}", attempt=1, status="done", detached=0)
            rows.append([run[c] for c in WRITTEN])
        con.set_trace_callback(steps.append)
        with _schema.transaction(con):
            _schema.upsert_many(con, rows)
        con.set_trace_callback(None)
        got = con.execute("SELECT name FROM runs ORDER BY id").fetchall()
    finally:
        con.close()
    assert got == [(f"j{i}",) for i in range(n)]
    inserts = [s for s in steps if s.startswith("INSERT")]
    assert len(inserts) == 2 + (_schema.CHUNK - 1).bit_length()


def test_the_writer_checkpoints_the_wal_every_few_megabytes_not_every_page_batch(
    tmp_path: Path,
) -> None:
    # Issue 14: SQLite's default, a checkpoint every 1,000 pages, copied the pages a burst
    # changes again and again into the database about once per batch. The writer's
    # connection checkpoints every WAL_CHECKPOINT pages, and cuts the WAL back after one.
    from jupyter_executor.store import _history

    store = HistoryStore(tmp_path, "e", batch_delay=0)
    try:
        store._write_batch(_finished_snapshots(2))
        assert store._con is not None
        con = store._con
        (pages,) = con.execute("PRAGMA wal_autocheckpoint").fetchone()
        (limit,) = con.execute("PRAGMA journal_size_limit").fetchone()
    finally:
        store.close()
    assert (pages, limit) == (_history.WAL_CHECKPOINT, _history.WAL_LIMIT)
    assert pages >= 10 * 1000


def _wait_on(event: Any) -> None:
    event.wait(30)


def test_a_record_of_an_end_makes_the_row_its_snapshot_makes(tmp_path: Path) -> None:
    # Pure but for the engine that runs the jobs: the record of each end (what the engine
    # hands the history when nothing else takes snapshots) folded without being made into a
    # snapshot gives the row its snapshot gives; a record whose job has another change in the
    # batch, or was seen before, is made into its snapshot and placed after what came before.
    import threading

    from jupyter_executor._snapshot import record_of, snapshot_of_record

    gate = threading.Event()
    with Engine(folder=tmp_path, history=False) as engine:
        jobs = [
            Job(len, args=("ab",), name="done"),
            Job(_failing, name="failed", backend="thread"),
            Job(["sh", "-c", "exit 3"], name="exit3"),
            Job(["true"], name="true"),
            Job(sum, args=([1, 2],), name="needs").requires("done"),
            Job(len, args=("ab",), name="odd name/é"),  # its log file's name is a slug
            Job(_wait_on, args=(gate,), name="cancelled", backend="thread"),
        ]
        engine.submit(*jobs)
        wait_until_running = time.monotonic() + 30
        while jobs[-1].status is not Status.RUNNING and time.monotonic() < wait_until_running:
            time.sleep(0.01)
        engine.cancel("cancelled")
        gate.set()
        engine.wait(timeout=60)
        records = [record_of(job) for job in jobs]
    assert [r[4] for r in records] == [
        "done", "failed", "failed", "done", "done", "done", "cancelled",
    ]  # fmt: skip
    for record in records:
        fast, slow = _fold.Runs("e"), _fold.Runs("e")
        fast.take_all(_fold.coalesce(_fold.ended_records([record])))
        slow.take(snapshot_of_record(record))
        assert isinstance(next(iter(fast.dirty.values())), tuple)  # the record's fast path
        assert fast.rows({}) == slow.rows({}), record[2]
    # A batch of only such records, taken in one pass (a burst's): the same rows, in order.
    burst, general = _fold.Runs("e"), _fold.Runs("e")
    assert burst.take_ends(records)
    general.take_all(_fold.coalesce(_fold.ended_records(records)))
    highest = {"done": 4}  # attempts recorded before by this engine continue
    assert burst.rows(dict(highest)) == general.rows(dict(highest))
    assert [r[2] for r in burst.rows(dict(highest))] == [5, 1, 1, 1, 1, 1, 1]
    # Anything else in the batch (a job seen before, twice, a snapshot): nothing is taken.
    for batch in (
        [records[1], records[0]],  # "done" taken before
        [records[1], records[1]],
        [snapshot_of_record(records[1])],
    ):
        runs = _fold.Runs("e")
        runs.take_ends(records[:1])
        before = (dict(runs.states), dict(runs.dirty))
        assert not runs.take_ends(batch)
        assert (runs.states, runs.dirty) == before
    # Seen twice in a batch: made into snapshots, folded into one run (as before records).
    runs = _fold.Runs("e")
    twice = [records[0], records[0], records[1]]
    changes = _fold.ended_records(twice)
    assert [type(c) for c in changes] == [JobSnapshot, JobSnapshot, tuple]
    runs.take_all(_fold.coalesce(changes))
    assert [(r[1], r[7]) for r in runs.rows({})] == [("done", "done"), ("failed", "failed")]
    runs.written()
    # Seen before (its state kept): the record's run is placed as its snapshot's would be.
    runs.take_all(_fold.coalesce(_fold.ended_records([records[0]])))
    assert all(isinstance(run, dict) for run in runs.dirty.values())
    assert [(r[1], r[2]) for r in runs.rows({})] == [("done", 1)]


def test_upsert_many_writes_runs_with_empty_columns_narrow_and_the_same_table(
    tmp_path: Path,
) -> None:
    # Issue 14: a run whose pid, error, traceback... are all empty is written by the narrow
    # upsert (those columns not bound: ~45% cheaper per row). The table is the same: a narrow
    # row written over a wide one empties those columns, a wide one over a narrow fills them,
    # and a run written twice in a batch (once of each) keeps the later.
    from jupyter_executor.store import _schema

    def row(i: int, **values: Any) -> list[Any]:
        run = dict.fromkeys(WRITTEN)
        run.update(engine_id="e", name=f"j{i}", attempt=1, status="done", detached=0)
        run.update(values)
        return [run[c] for c in WRITTEN]

    wide = {"pid": 7, "error": "E: x", "traceback": "tb", "exit_code": 3, "detached": 1}
    n = 300
    first = [row(i, **(wide if i % 3 == 0 else {})) for i in range(n)]
    second = [row(i, result=str(i), **(wide if i % 3 == 1 else {})) for i in range(n)]
    con = _schema.connect(tmp_path / "h.db", 5, create=True)
    steps: list[str] = []
    try:
        for batch in (first, second):
            with _schema.transaction(con):
                _schema.upsert_many(con, batch)
        con.set_trace_callback(steps.append)
        with _schema.transaction(con):  # one run twice: narrow, then wide (the later wins)
            _schema.upsert_many(con, [row(n, result="a"), row(n, result="b", pid=9)])
        con.set_trace_callback(None)
        got = con.execute(f"SELECT {', '.join(WRITTEN)} FROM runs").fetchall()
    finally:
        con.close()
    got.sort(key=lambda r: int(r[1][1:]))  # by name (the narrow ones were inserted first)
    assert [list(r) for r in got] == [*second, row(n, result="b", pid=9)]
    assert all("traceback" in s for s in steps if s.startswith("INSERT"))  # in order, wide
    narrow = _schema._upsert_rows(1, True)
    assert "traceback = NULL" in narrow and "(engine_id, name, attempt, backend" in narrow
    assert "pid," not in narrow.split(" VALUES ")[0]


def _steps_of(name: str, ending: str, *, retried: bool = False) -> list[tuple[Any, ...]]:
    """Records (``_snapshot.record_of``) of one plain job at each step: waiting, running,
    then ``ending`` ("done", "failed", "cancelled"); with ``retried``, its first attempt
    fails and it waits again (a retry's pending record carries that error) before running a
    second time."""
    from jupyter_executor._snapshot import record_of

    job = Job(len, args=("ab",), name=name)
    run = job.runstate
    out = []
    job.status, job.submitted = Status.PENDING, 100.0
    out.append(record_of(job))
    job.status, job.attempts, job.started = Status.RUNNING, 1, 101.0
    out.append(record_of(job))
    if retried:
        job.status, job.finished = Status.PENDING, 102.0
        run.exception, job.traceback = ValueError("first"), "Traceback...\nValueError: first"
        out.append(record_of(job))
        job.status, job.attempts, job.started = Status.RUNNING, 2, 103.0
        run.exception, job.traceback = None, None
        out.append(record_of(job))
    job.status, job.finished = Status(ending), 104.5
    if ending == "done":
        run.result = 2
    elif ending == "failed":
        run.exception, job.traceback = ValueError("bad"), "Traceback...\nValueError: bad"
    else:
        run.cancel_reason = "user"
    out.append(record_of(job))
    return out


@pytest.mark.parametrize("ending", ["done", "failed", "cancelled"])
@pytest.mark.parametrize("steps", [(0, 1, 2), (0, 2), (1, 2), (0, 1)])
def test_records_of_a_waiting_or_running_run_fold_as_their_snapshots(
    ending: str, steps: tuple[int, ...]
) -> None:
    # Issue 14: a plain job noted still waiting (or running), then ended, each change in
    # another batch: in a long chain or a burst queued behind a limit, most of the jobs. Its
    # records are folded without being made into snapshots (a row made from the record, its
    # later steps written over it in place), into the rows take() makes of their snapshots.
    from jupyter_executor._snapshot import snapshot_of_record

    records = _steps_of("j", ending)
    records = [records[0], records[1], records[-1]]
    fast, slow = _fold.Runs("e"), _fold.Runs("e")
    fast_high: dict[str, int] = {"j": 2}
    slow_high = dict(fast_high)
    for step in steps:
        fast.take_all(_fold.coalesce(_fold.ended_records([records[step]])))
        slow.take(snapshot_of_record(records[step]))
        assert all(isinstance(run, list) for run in fast.dirty.values())  # the record's path
        assert fast.rows(fast_high) == slow.rows(slow_high), step
        fast.written()
        slow.written()
        assert not fast.dirty
    assert fast_high == slow_high == {"j": 3}
    # A finished run is forgotten as any other (only what places a later change stays).
    state = fast.states[records[0][1]]
    assert state.open is None if steps[-1] == 2 else state.open is not None


def test_records_of_a_waiting_run_held_back_then_ended_write_it_once() -> None:
    # Issue 14: a waiting run is held back (HOLD_PENDING) like a pending dict run; its end,
    # a batch later, makes it one row written once, at its place among the dirty runs.
    first = _steps_of("first", "done")
    second = _steps_of("second", "done")
    runs = _fold.Runs("e")
    runs.take_all(_fold.ended_records([first[0]]))
    assert runs.rows({}, hold_after=first[0][14]) == []  # held back: waits since then
    runs.take_all(_fold.ended_records([second[-1], first[-1]]))
    rows = runs.rows({})
    assert [(r[1], r[2], r[7]) for r in rows] == [("first", 1, "done"), ("second", 1, "done")]
    assert rows[0][22] is None  # its three steps at its own times: made on read
    runs.written()
    assert not runs.dirty


@pytest.mark.parametrize("ending", ["done", "failed", "cancelled"])
def test_a_retried_run_seen_as_records_folds_as_its_snapshots(ending: str) -> None:
    # A run noted waiting, then retried (back to pending with the first attempt's error): the
    # retry's record is folded by take() (the first run closed as failed), the second attempt
    # as before. Each change in its own batch, each batch as take() of the snapshots writes it.
    assert fold_both_ways(_steps_of("r", ending, retried=True)) == {"r": 2}


def test_names_json_is_json_dumps() -> None:
    for names in [(), ("a",), ("a", "b-1 x"), ('q"uote',), ("back\\slash",), ("é",), ("\x01",)]:
        assert _fold.names_json(names) == __import__("json").dumps(list(names))


def test_a_snapshot_after_records_of_a_waiting_run_folds_as_take_would() -> None:
    # A run seen as a record while it waits (written), then as a snapshot (a view took one),
    # then as the record of its end: made a dict run at the snapshot, the same rows as take()
    # of the three snapshots, batch by batch.
    from jupyter_executor._snapshot import snapshot_of_record

    records = _steps_of("v", "failed")
    changes: list[Any] = [records[0], snapshot_of_record(records[1]), records[-1]]
    fast, slow = _fold.Runs("e"), _fold.Runs("e")
    fast_high: dict[str, int] = {}
    slow_high: dict[str, int] = {}
    for change in changes:
        fast.take_all(_fold.coalesce(_fold.ended_records([change])))
        slow.take(change if isinstance(change, JobSnapshot) else snapshot_of_record(change))
        assert fast.rows(fast_high) == slow.rows(slow_high)
        fast.written()
        slow.written()
    assert fast_high == slow_high == {"v": 1}


def test_a_waiting_run_written_keeps_no_reference_to_its_job() -> None:
    # The record of a waiting run holds its job (and engine): once its row is made, the
    # writer keeps the row only (a job dropped by the engine is not kept alive by the history).
    import weakref

    from jupyter_executor._snapshot import record_of

    job = Job(len, args=("ab",), name="w")
    job.status, job.submitted = Status.PENDING, 100.0
    runs = _fold.Runs("e")
    runs.take_all(_fold.ended_records([record_of(job)]))
    assert [r[7] for r in runs.rows({})] == ["pending"]
    runs.written()
    gone = weakref.ref(job)
    del job
    gc.collect()
    assert gone() is None


def test_the_transitions_of_a_run_that_ended_at_its_own_times_are_made_on_read(
    tmp_path: Path,
) -> None:
    # Issue 14: writing "[["pending",t0],["running",t1],["done",t2]]" for every run was a
    # fifth of the writer's time per run in a burst. A run that went pending, running, then
    # ended at its own submit, start and end times is written without the text; every read
    # (history(), the frame, last_runs) gives the same transitions as before. A run with other
    # steps (cancelled before it started, a waiting run) keeps its text.
    import json

    from jupyter_executor._snapshot import record_of, snapshot_of_record

    never = Job(len, args=("ab",), name="never")
    never.status, never.submitted = Status.PENDING, 100.0
    waits = record_of(never)
    never.status, never.finished = Status.CANCELLED, 100.5
    never.runstate.cancel_reason = "user"
    store = HistoryStore(tmp_path, "e", batch_delay=0)
    try:
        plain = _steps_of("plain", "done")
        retried = [snapshot_of_record(r) for r in _steps_of("retried", "failed", retried=True)]
        waiting = _steps_of("waiting", "done")[0]
        store._write_batch([plain[-1], *retried, waiting, waits, record_of(never)], True)
        con = sqlite3.connect(tmp_path / "history.db")
        raw = {
            (name, attempt): (text, finished)
            for name, attempt, text, finished in con.execute(
                "SELECT name, attempt, transitions, finished FROM runs"
            )
        }
        con.close()
        assert raw[("plain", 1)][0] is None
        assert raw[("retried", 1)][0] is None  # its end: when the retry came
        # (waiting for its retry since the retry came, not since its submission: written)
        assert json.loads(raw[("retried", 2)][0])[1:] == [["running", 103.0], ["failed", 104.5]]
        assert raw[("waiting", 1)][0] == '[["pending",100.0]]'
        assert json.loads(raw[("never", 1)][0]) == [["pending", 100.0], ["cancelled", 100.5]]
        expected = {
            ("plain", 1): [["pending", 100.0], ["running", 101.0], ["done", 104.5]],
            ("retried", 1): [
                ["pending", 100.0], ["running", 101.0], ["failed", raw[("retried", 1)][1]],
            ],
            ("retried", 2): json.loads(raw[("retried", 2)][0]),
            ("waiting", 1): [["pending", 100.0]],
            ("never", 1): [["pending", 100.0], ["cancelled", 100.5]],
        }  # fmt: skip
        got = {(r["name"], r["attempt"]): r["transitions"] for r in store.history()}
        assert got == expected
        frame = store.frame()
        names, attempts = frame["name"], frame["attempt"]
        steps = frame["transitions"]
        assert dict(zip(zip(names, attempts, strict=True), steps, strict=True)) == expected
        assert {r["name"]: r["transitions"] for r in store.last_runs(10)} == {
            "plain": expected[("plain", 1)],
            "retried": expected[("retried", 2)],
            "waiting": expected[("waiting", 1)],
            "never": expected[("never", 1)],
        }
    finally:
        store.close()
