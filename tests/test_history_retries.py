"""Every attempt of a retried job is a row of the history, in the order of its attempts.

A retried attempt that fails within ``_events.NOTE_RUNNING_AFTER`` is never recorded while it
runs: the writer first sees it in the record of the retry that follows (the job back to
pending, with the attempt's traceback). That record must still make the attempt's own row,
whatever batches the records fall in, and the rows must come out oldest attempt first.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import pytest
from _folds import fold_both_ways

from jupyter_executor import Engine, Job
from jupyter_executor._snapshot import record_of
from jupyter_executor._status import Status
from jupyter_executor.store import HistoryStore, _schema
from jupyter_executor.store._schema import WRITTEN

pytestmark = pytest.mark.timeout(120)

_COLUMNS = ["id", "attempt", "status", "error", "traceback", "started", "finished"]


def flaky(counter: str, seconds: float = 0.0) -> int:
    """Fail the first two calls (``ValueError: try N``), succeed the third; each call takes
    ``seconds`` first. Counts its calls in the file ``counter`` (the process backend runs it
    in a worker)."""
    calls = int(Path(counter).read_text()) if os.path.exists(counter) else 0
    Path(counter).write_text(str(calls + 1))
    time.sleep(seconds)
    if calls < 2:
        msg = f"try {calls}"
        raise ValueError(msg)
    return calls


def _attempts(frame: Any) -> list[dict[str, Any]]:
    """The rows of a history frame, its missing values (NaN) as None."""
    frame = frame[_COLUMNS].astype(object)
    frame = frame.where(frame.notna(), None)
    return [dict(zip(_COLUMNS, row, strict=True)) for row in frame.itertuples(False)]


def _check_attempts(runs: list[dict[str, Any]]) -> None:
    """Three attempts, in order: two failed with their own errors, then one done."""
    assert [(r["attempt"], r["status"], r["error"]) for r in runs] == [
        (1, "failed", "ValueError: try 0"),
        (2, "failed", "ValueError: try 1"),
        (3, "done", None),
    ]
    assert "ValueError: try 0" in runs[0]["traceback"]
    assert "ValueError: try 1" in runs[1]["traceback"]
    assert runs[2]["traceback"] is None
    ids = [r["id"] for r in runs]
    assert ids == sorted(ids)  # oldest first, also by id
    for before, after in itertools.pairwise(runs):
        # each attempt's own start, after the end of the one before it
        assert before["started"] is not None and before["finished"] is not None
        assert before["started"] <= before["finished"] <= after["started"]


@pytest.mark.parametrize(
    ("backend", "seconds", "retry_delay"),
    [
        ("thread", 0.0, 0.0),  # all three within one batch of the writer
        ("thread", 0.0, 0.5),  # each retry in its own batch (batch_delay is 0.2 s)
        # each attempt recorded while it runs (after NOTE_RUNNING_AFTER, 0.5 s), its failure
        # in the same batch, written with the next attempt's run
        ("thread", 0.6, 0.05),
        ("process", 0.0, 0.0),
    ],
)
def test_every_attempt_of_a_retried_job_has_its_row_in_order(
    tmp_path: Path, backend: str, seconds: float, retry_delay: float
) -> None:
    counter = str(tmp_path / "calls")
    with Engine(folder=tmp_path) as engine:
        engine.submit(
            flaky, counter, seconds, name="flaky", backend=backend, retries=3,
            retry_delay=retry_delay,
        )  # fmt: skip
        assert engine.wait(timeout=60)
        _check_attempts(_attempts(engine.history("flaky")))
        _check_attempts(_attempts(engine.history()))  # (its only job)
    with Engine(folder=tmp_path) as again:
        _check_attempts(_attempts(again.history()))


def _retried_records(name: str) -> list[tuple[Any, ...]]:
    """The records (``_snapshot.record_of``) the engine's history gets of a job retried twice
    whose attempts fail at once: only each retry (back to pending with the attempt's
    traceback, the exception already cleared, no end time) and the last attempt's end."""
    job = Job(len, args=("ab",), name=name)
    job.submitted = 100.0
    out = []
    for attempts, started in ((1, 101.0), (2, 103.0)):
        job.status, job.attempts, job.started = Status.PENDING, attempts, started
        job.traceback = f"Traceback...\nValueError: try {attempts - 1}"
        out.append((*record_of(job)[:-1], started + 1))  # recorded a second after its start
    job.status, job.attempts, job.started, job.finished = Status.DONE, 3, 105.0, 105.5
    job.traceback = None
    job.runstate.result = 2
    out.append((*record_of(job)[:-1], 105.5))
    return out


@pytest.mark.parametrize("batches", ["one", "each"])
def test_retries_seen_only_as_their_records_make_a_row_per_attempt(
    tmp_path: Path, batches: str
) -> None:
    # The writer's first change of the job is the first retry: the first attempt's row is
    # made from it (failed, its traceback, its start), and the rows are written in the order
    # of their attempts (a failed row, written with the wide upsert, is not put after a
    # narrow row of a later attempt of the same batch).
    records = _retried_records("r")
    store = HistoryStore(tmp_path, "e", batch_delay=0)
    try:
        if batches == "one":
            store._write_batch(records, True)
        else:
            for record in records:
                store._write_batch([record], True)
        runs = store.history()
    finally:
        store.close()
    _check_attempts(runs)
    assert [r["started"] for r in runs] == [101.0, 103.0, 105.0]
    assert [r["finished"] for r in runs] == [102.0, 104.0, 105.5]  # (a retry's: when it came)
    steps = [[step for step, _ in r["transitions"]] for r in runs]
    assert steps == [["pending", "running", end] for end in ("failed", "failed", "done")]


def test_a_first_retry_folds_the_same_from_a_record_or_its_snapshot() -> None:
    # The dict runs take() makes and those of take_all() (records) are the same rows.
    assert fold_both_ways(_retried_records("r")) == {"r": 3}


def test_upsert_many_inserts_the_runs_of_a_job_in_the_order_given(tmp_path: Path) -> None:
    # The narrow rows (no error, pid...) go in their own statements: a job's run given after
    # a wide one of the same job must not be inserted first (its id would come first, and
    # history() orders the runs of one submission by id).
    def row(name: str, attempt: int, **values: Any) -> list[Any]:
        run = dict.fromkeys(WRITTEN)
        run.update(engine_id="e", name=name, attempt=attempt, status="done", detached=0)
        run.update(values)
        return [run[c] for c in WRITTEN]

    rows = [
        row("other", 1),
        row("j", 1, status="failed", error="E: x", traceback="tb"),
        row("j", 2),
        row("k", 1),
    ]
    con = _schema.connect(tmp_path / "h.db", 5, create=True)
    try:
        with _schema.transaction(con):
            _schema.upsert_many(con, rows)
        got = con.execute("SELECT name, attempt FROM runs ORDER BY id").fetchall()
    finally:
        con.close()
    j = [attempt for name, attempt in got if name == "j"]
    assert j == [1, 2]
    assert sorted(got) == [("j", 1), ("j", 2), ("k", 1), ("other", 1)]
