"""Folding job snapshots into runs: the history's bookkeeping, pure (no SQLite, no threads).

A *run* is one attempt of one job: one row of the ``runs`` table. :class:`Runs` takes the
:class:`~jupyter_executor._snapshot.JobSnapshot` of each change, in the order they were taken,
and keeps, per job, the run the latest snapshot belongs to, as a dict of the table's columns
(plus a few private ``_keys``). The writer (``_writer.py``) hands it a batch of snapshots and
writes the rows it gives back (:meth:`Runs.rows`), then tells it they are written
(:meth:`Runs.written`), so that a finished run is dropped from memory.

Which attempt a snapshot is about: a pending job waits for its next attempt, a running one is
in its current attempt, a finished one ended the run it was in (the next attempt when it was
cancelled, or found up to date, before it started). A run that ends without a finished status
(a retry sent the job straight back to pending) is closed as failed or cancelled from the
error the retry left on the job; an attempt first seen in that retry (it ended before the
engine recorded its start) is made from it, as a run of its own before the next one's.

Most changes of a burst or a chain are *records* of plain jobs (``_snapshot.record_of``), not
snapshots: a run seen only at its end is made into its row at once (an ``_Ended`` tuple), and
one seen while it waits or runs is an ``_Open`` entry whose row is made when it is written and
whose next records update it in place; a snapshot of such a run (a view took one, a retry)
makes it a dict run again. A run that went pending, running, then ended at its own times is
written without its transitions text (made on read: ``_query.transitions_column``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from typing import TYPE_CHECKING, Any

from .._logs import log_stem
from .._snapshot import log_dir_of, short_repr, snapshot_of_record, static_of_record
from .._status import Status
from .._text import error_text, safe_text
from ..errors import JobCancelled
from ._schema import ATTEMPT, TRANSITIONS, WRITTEN, row_values

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._snapshot import JobSnapshot

__all__ = ["Runs", "coalesce"]

logger = logging.getLogger("jupyter_executor")

# Keyed by the statuses' values; finished statuses rank 2.
RANK = {Status.CREATED.value: 0, Status.PENDING.value: 0, Status.RUNNING.value: 1}

# Finished jobs whose last attempt is remembered (to place a late or repeated snapshot, and a
# rerun's attempt) beyond which the oldest are forgotten: a rerun of a forgotten job still gets
# the right attempt, from the highest attempt recorded for its name (see Runs.rows). A late
# snapshot comes from a thread preempted between taking and queueing it (the engine reports
# a job's changes in order), so a window of a thousand jobs that finished after it is ample;
# each state kept costs ~150 bytes.
KEEP_FINISHED = 1024

# The finished statuses' values: a snapshot with one of these may take the fast path (see
# Runs.take_all).
_ENDS = frozenset({Status.DONE.value, Status.FAILED.value, Status.CANCELLED.value})


class JobState:
    """What the writer remembers of one job: its latest run, and what places the next one.

    Only what places a snapshot: the run's other columns come from the snapshot that opens
    it, so that the states of finished jobs (kept for a while, see KEEP_FINISHED) hold no
    description or path of their own.
    """

    __slots__ = ("base", "key", "local", "name", "open", "rank", "run")

    def __init__(self, key: int, name: str) -> None:
        # Made safe now (a lone surrogate from a non-UTF-8 file name cannot be stored), so that
        # the name the writer keys on is the one in the database.
        self.key = key
        self.name = safe_text(name)
        self.base: int | None = None  # added to the job's attempts; fixed on the first write
        self.local = 0  # job.attempts of the latest run
        self.run: dict[str, Any] | None = None  # None once a finished run is written
        self.rank = -1  # RANK of the latest run's status (-1: no run yet)
        # The latest run while it is an _Open row (waiting or running, seen only as records),
        # else None; then run is None too (see Runs._take_open).
        self.open: _Open | None = None


#: A run made whole from the one snapshot of its end (see Runs.take_all): the job's state, the
#: row (attempt not placed yet) and the attempt's number in the job's own count (as a run's
#: ``_local``: the state's moves on with a later attempt).
_Ended = tuple[JobState, list[Any], int]

#: A run seen so far only as records of a plain job waiting or running (see
#: Runs._take_open): ``[state, row, local, since, record, fixed]``, a list so that the record
#: of the run's next step (running, its end) updates it in place, at its place among the dirty
#: runs (the order attempts are given in). ``row``: made from ``record`` when written (None
#: until then; the record is dropped then). ``since``: when a waiting run became dirty (held
#: back like a pending dict run, see Runs.rows), 0.0 for a running or ended one. ``fixed``:
#: the columns that come from what stays the same of the job (see _fixed).
_Open = list[Any]


def coalesce(snaps: Iterable[Any]) -> list[Any]:
    """Keep, of consecutive snapshots of one job's attempt, only the latest (in order).

    A no-op job reports submitted, running and done within microseconds: folding makes the
    writer's work one step per job instead of three. A snapshot of another attempt (a retry,
    a restart, a rerun) is never folded into the previous attempt's.
    """
    latest: dict[int, int] = {}  # job key -> index in out
    out: list[Any] = []
    rank = RANK.get
    for snap in snaps:
        if type(snap) is tuple:
            out.append(snap)  # a record, its job's only change (see ended_records)
            continue
        key = snap.key
        at = latest.get(key)
        if at is not None:
            old = out[at]
            new_rank, old_rank = rank(snap.status, 2), rank(old.status, 2)
            # One attempt going forward: pending -> its attempt running (or finished), or
            # running -> finished. Never a pending one ending before it started (that run is
            # the next attempt's), nor a step back to pending (a retry, a restart, a rerun).
            same = old_rank >= 1 and snap.attempts == old.attempts and new_rank >= old_rank
            # A retry's pending snapshot carries how the attempt before ended (its traceback,
            # error or cancel reason): it is that run's end, not only the next one's start.
            starts = (
                old_rank == 0
                and new_rank >= 1
                and snap.attempts == old.attempts + 1
                and old.traceback is None
                and old.exception is None
                and old.cancel_reason is None
            )
            if same or starts:
                out[at] = snap
                continue
        latest[key] = len(out)
        out.append(snap)
    return out


def _is_whole_end(record: tuple[Any, ...]) -> bool:
    """A record of an end with its run's times (submitted, started, finished, attempts)."""
    return (
        record[4] in _ENDS
        and bool(record[8])
        and record[5] is not None
        and record[6] is not None
        and record[7] is not None
    )


def _is_open(record: tuple[Any, ...]) -> bool:
    """A record of a job's first attempt waiting, or running, with nothing of an earlier
    attempt on it (no error, traceback or cancel reason): its row is made from it alone (see
    :meth:`Runs._take_open`)."""
    status, submitted, started, _, attempts = record[4:9]
    return (
        submitted is not None
        and record[10] is None
        and record[11] is None
        and record[12] is None
        and (
            (status == "pending" and attempts == 0)
            or (status == "running" and attempts == 1 and started is not None)
        )
    )


def ended_records(changes: Iterable[JobSnapshot | tuple[Any, ...]]) -> list[Any]:
    """The changes of a batch, in order, as :func:`coalesce` and :meth:`Runs.take_all` take
    them: snapshots, and records made into snapshots, except the record that is its job's
    only change in the batch and is of an end with the times of its run, or of a first
    attempt waiting or running (see :func:`_is_open`), which stays a record.

    A record that cannot be made into its snapshot is logged and left out.
    """
    changes = list(changes)
    seen: dict[int, int] = {}
    for change in changes:
        key = change[1] if isinstance(change, tuple) else change.key
        seen[key] = seen.get(key, 0) + 1
    out: list[Any] = []
    for change in changes:
        if type(change) is not tuple:
            out.append(change)
            continue
        if seen[change[1]] == 1 and (_is_whole_end(change) or _is_open(change)):
            out.append(change)
            continue
        try:
            out.append(snapshot_of_record(change))
        except Exception:
            logger.exception("jupyter_executor: cannot record a change of job %r", change[2])
    return out


class Runs:
    """The runs of one engine's jobs that are not yet written, and what places the next ones.

    Parameters
    ----------
    engine_id
        Stored with each run.
    """

    def __init__(self, engine_id: str) -> None:
        self.engine_id = engine_id
        self.states: dict[int, JobState] = {}  # by job key
        # Keys of jobs whose run was finished and written, oldest first (a key may be there
        # twice: forgetting a job early is harmless, see KEEP_FINISHED).
        self._finished: deque[int] = deque()
        # id(run) -> run: a dict of the run's columns, or an _Ended run made whole
        # from one snapshot (see take_all), in the order they became dirty (which is the
        # order attempts are given in: a replacing job continues after its predecessor).
        self.dirty: dict[int, dict[str, Any] | _Ended | _Open] = {}
        # the runs rows() gave, until written()
        self._out: list[dict[str, Any] | _Ended | _Open] = []

    def take_all(self, snaps: Iterable[JobSnapshot | tuple[Any, ...]]) -> None:
        """Fold snapshots in order (see :meth:`take`); one that fails is logged and skipped.

        The fast path of a burst: the only snapshot of a job that ended (first seen ended:
        the engine reports a short job once, at its end) is made into its row at once (one
        list, no dict of columns), as :meth:`take` would make it. Records
        (:func:`~jupyter_executor._snapshot.record_of`) kept by :func:`ended_records` take it
        without being made into snapshots.
        """
        states = self.states
        dirty = self.dirty
        engine_id = self.engine_id
        take = self.take
        for snap in snaps:
            if isinstance(snap, tuple):
                # A record, its job's only change in the batch (see ended_records).
                self._take_record(snap)
                continue
            try:
                key = snap.key
                if (
                    key not in states
                    and snap.status in _ENDS
                    and snap.attempts
                    and snap.started is not None
                    and snap.submitted is not None
                    and snap.finished is not None
                ):
                    state = states[key] = JobState(key, snap.name)
                    state.local = local = snap.attempts
                    state.rank = 2
                    entry = (state, _ended_row(engine_id, state.name, snap), local)
                    dirty[id(entry)] = entry
                else:
                    take(snap)
            except Exception:
                logger.exception("jupyter_executor: cannot record a change of job %r", snap.name)

    def take_ends(self, changes: Sequence[Any]) -> bool:
        """Take a batch made only of the records of ends, each its job's only change and its
        job's first (the batch of a burst of short plain jobs), in one pass; True when taken.

        What :meth:`take_all` makes of them (an :data:`_Ended` run each), without its steps
        per record (:func:`ended_records`, :func:`coalesce`, a static tuple, the row made in
        two calls): the writer's share per job of a burst, which holds the GIL the jobs need.
        False when one is anything else (a snapshot, a second change of a job, a job seen
        before, a waiting or running one, an end without its times): nothing is taken then,
        and the caller folds the batch the general way.
        """
        states = self.states
        engine_id = self.engine_id
        new: dict[int, JobState] = {}
        entries: list[_Ended] = []
        ends = _ENDS
        # The log folder of the batch's engine (nearly always one), looked up once.
        last_engine: Any = None
        logs: str | None = None
        for change in changes:
            if type(change) is not tuple:
                return False
            key, engine, status, submitted, started, finished, attempts = change[1], *change[3:9]
            if (
                status not in ends
                or not attempts
                or submitted is None
                or started is None
                or finished is None
                or key in states
                or key in new
            ):
                return False
            if engine is not last_engine:
                last_engine, logs = engine, log_dir_of(engine)
            name, fixed = _record_fixed(change, logs)
            state = new[key] = JobState(key, name)
            state.local = attempts
            state.rank = 2
            entries.append((state, _record_row(engine_id, state.name, fixed, change), attempts))
        states.update(new)
        dirty = self.dirty
        for entry in entries:
            dirty[id(entry)] = entry
        return True

    def take(self, snap: JobSnapshot) -> dict[str, Any] | None:
        """Fold one snapshot into the run it belongs to; return that run (None: too old)."""
        state = self.states.get(snap.key)
        if state is None:
            state = self.states[snap.key] = JobState(snap.key, snap.name)
        elif state.open is not None:
            self._reopen(state)
        rank = RANK.get(snap.status, 2)
        local = _attempt_of(state, snap, rank)
        run = self._run_for(state, snap, rank, local)
        if run is None:
            return None
        run["status"] = snap.status
        state.rank = rank
        ran = rank > 0 and local == snap.attempts
        _add_transitions(run["transitions"], snap, rank, ran)
        _update(run, snap, rank, ran)
        self.dirty[id(run)] = run
        return run

    def _reopen(self, state: JobState) -> None:
        """Make the :data:`_Open` run of ``state`` the dict run :meth:`take` would have made
        of the same changes (a snapshot of its job comes, or a retry), at the end of the
        dirty runs if it was dirty."""
        entry = state.open
        assert entry is not None
        state.open = None
        run = dict(zip(WRITTEN, self._open_row(entry), strict=True))
        run["attempt"] = None
        steps = [("pending", run["submitted"])]
        if run["status"] == "running":
            steps.append(("running", run["started"]))
        run.update(transitions=steps, _state=state, _local=entry[2], _since=entry[3])
        state.run = run
        if self.dirty.pop(id(entry), None) is not None:
            self.dirty[id(run)] = run

    def _run_for(
        self, state: JobState, snap: JobSnapshot, rank: int, local: int
    ) -> dict[str, Any] | None:
        """The run of attempt ``local`` (a new one after the latest); None for an older one."""
        run = state.run
        if state.rank >= 0 and local <= state.local:
            if local < state.local or rank < state.rank:
                return None  # an older snapshot that another thread queued late
            if run is None:
                # Its finished run was written and released (see written): written again,
                # rebuilt from this snapshot.
                run = state.run = self._new_run(state, snap, local)
            return run
        if run is not None and state.rank < 2:
            # The previous attempt ended without a finished status: a retry sent the job
            # straight back to pending (or its end was not reported).
            _end_retried(run, snap)
            self.dirty[id(run)] = run
        if rank == 0 and state.local < snap.attempts and _retried(snap):
            # The attempt a retry ended was never seen: it failed before the engine recorded
            # its start (see _events.NOTE_RUNNING_AFTER), so this record is the first news of
            # it. It is a run of its own, made from what the retry says of it, before the next.
            ended = self._new_run(state, snap, snap.attempts)
            ended["submitted"] = snap.submitted
            if snap.attempts == 1 and snap.submitted is not None:
                ended["transitions"].append(("pending", snap.submitted))
            _end_retried(ended, snap)
            self.dirty[id(ended)] = ended
        run = state.run = self._new_run(state, snap, local)
        state.local = local
        return run

    def _new_run(self, state: JobState, snap: JobSnapshot, local: int) -> dict[str, Any]:
        # One dict display: no template to build and copy for the many jobs that run once.
        requires = snap.requires
        return {
            "engine_id": self.engine_id,
            "name": state.name,
            "attempt": None,
            "backend": snap.backend,
            "kind": snap.kind,
            "description": snap.source or snap.description,
            "requires": names_json(requires),
            "status": None,
            "submitted": None,
            "started": None,
            "finished": None,
            "duration": None,
            "exit_code": None,
            "result": None,
            "error": None,
            "traceback": None,
            "cancel_reason": None,
            "log_path": snap.log_path,
            "pid": None,
            "pid_start_time": None,
            "detached": 0,
            "identity": None,
            "transitions": [],
            "_state": state,
            "_local": local,
            "_since": snap.time,  # when it became dirty (see rows: pending runs held back)
        }

    def _take_record(self, record: tuple[Any, ...]) -> None:
        """Fold a record kept by :func:`ended_records` (see :meth:`take_all`), as its snapshot
        would be folded."""
        try:
            key = record[1]
            state = self.states.get(key)
            if state is not None:
                entry = state.open
                rank = RANK.get(record[4], 2)
                if entry is None or entry[2] != record[8] + (rank == 0):
                    self.take(snapshot_of_record(record))  # placed after what came before
                    return
                if rank < state.rank:
                    return  # an older change that another thread queued late (see take)
                # The next step of a run seen so far waiting or running (see _take_open): its
                # row, made again from this record when it is written, at its place.
                state.rank = rank
                if rank == 2:
                    state.open = None
                # (a run waiting since before keeps that time: held back from then, see rows)
                since = entry[3] if rank == 0 and entry[3] else _since(record)
                entry[1], entry[3], entry[4] = None, since, record
                self.dirty[id(entry)] = entry
                return
            name, fixed = _record_fixed(record, log_dir_of(record[3]))
            state = self.states[key] = JobState(key, name)
            if record[4] not in _ENDS:
                self._take_open(record, state, fixed)
                return
            state.local = local = record[8]
            state.rank = 2
            ended = (state, _record_row(self.engine_id, state.name, fixed, record), local)
            self.dirty[id(ended)] = ended
        except Exception:
            logger.exception("jupyter_executor: cannot record a change of job %r", record[2])

    def _take_open(self, record: tuple[Any, ...], state: JobState, fixed: tuple[Any, ...]) -> None:
        """Fold the first record of a first attempt waiting or running (see :func:`_is_open`).

        A plain job noted still waiting (or running) a moment after it was submitted (or
        started): in a long chain or a burst queued behind a limit, most jobs are, and each
        ends soon after. Its run is an :data:`_Open` entry (no dict of columns) that the
        records of its next steps update in place (see :meth:`_take_record`), and whose row is
        made only when it is written: what :meth:`take` makes of the same changes, at a
        fraction of the cost.
        """
        state.local = local = record[8] or 1
        state.rank = RANK[record[4]]
        entry = state.open = [state, None, local, _since(record), record, fixed]
        self.dirty[id(entry)] = entry

    def _open_row(self, entry: _Open) -> list[Any]:
        """The row of an :data:`_Open` run (made once per write, from its latest record)."""
        row: list[Any] | None = entry[1]
        if row is None:
            row = entry[1] = _record_row(self.engine_id, entry[0].name, entry[5], entry[4])
            entry[4] = None  # the record holds the job and its engine: not kept past its row
        return row

    def rows(self, highest: dict[str, int], hold_after: float | None = None) -> list[list[Any]]:
        """The dirty runs as rows of the upsert (in :data:`WRITTEN` order).

        ``highest`` (name -> highest attempt recorded by this engine) is updated with the
        attempts given to new runs: a job continues after the highest attempt recorded for its
        name and engine (a replacing job's attempts already count its predecessor's runs).

        With ``hold_after``, runs that only wait (pending) since that time or later are held
        back (they stay dirty): in a burst, the engine notes thousands of queued jobs as
        pending, most of which end a moment later; held, each is written once, at its end.
        """
        params = []
        out: list[dict[str, Any] | _Ended | _Open] = []
        self._out = out  # (a failed write leaves the previous ones: given again)
        for run in self.dirty.values():
            if not isinstance(run, dict):
                # A row made at once (take_all, _take_open): only its attempt is left to place.
                state, local = run[0], run[2]
                if isinstance(run, list):
                    if hold_after is not None and run[3] >= hold_after:
                        continue  # waiting since hold_after: held back (see above)
                    row = self._open_row(run)
                else:
                    row = run[1]
                if state.base is None:
                    state.base = max(0, highest.get(state.name, 0) - local + 1)
                attempt = state.base + local
                if attempt > highest.get(state.name, 0):
                    highest[state.name] = attempt
                row[ATTEMPT] = attempt
                params.append(row)
                out.append(run)
                continue
            state = run["_state"]
            if hold_after is not None and state.rank == 0 and run["_since"] >= hold_after:
                continue
            if state.base is None:
                state.base = max(0, highest.get(state.name, 0) - run["_local"] + 1)
            attempt = state.base + run["_local"]
            if attempt > highest.get(state.name, 0):
                highest[state.name] = attempt
            run["attempt"] = attempt
            row = list(row_values(run))
            row[TRANSITIONS] = _transitions_text(run)
            params.append(row)
            out.append(run)
        return params

    def written(self) -> None:
        """The rows of :meth:`rows` are on disk: release the finished runs."""
        finished = self._finished
        dirty = self.dirty
        for run in self._out:
            if not isinstance(run, dict):
                # Never held as a dict: only its state stays (see below), and, while it waits
                # or runs, its row (state.open).
                if run[0].rank == 2:
                    finished.append(run[0].key)
                continue
            state: JobState = run["_state"]
            if state.rank == 2 and state.run is run:
                # Final: keep only what places the next snapshot (state.local, state.rank).
                state.run = None
                finished.append(state.key)
        if len(self._out) == len(dirty):
            dirty.clear()
        else:
            for run in self._out:
                del dirty[id(run)]
        self._out.clear()
        while len(finished) > KEEP_FINISHED:
            key = finished.popleft()
            old = self.states.get(key)
            if old is not None and old.run is None:
                del self.states[key]


def _ended_row(engine_id: str, name: str, snap: JobSnapshot) -> list[Any]:
    """The row (:data:`WRITTEN` order, attempt left None) of the one snapshot of a run that
    ended, whose job is first seen: what take() makes of it, without a dict of columns.

    The snapshot has ``attempts`` >= 1 and its submit, start and end times (see
    :meth:`Runs.take_all`): its run went pending, running, then ended.
    """
    fixed = (
        snap.backend, snap.kind, snap.source or snap.description, names_json(snap.requires),
        snap.log_path,
    )  # fmt: skip
    return _end_row(
        engine_id, name, fixed, snap.status, snap.submitted, snap.started, snap.finished,
        snap.result, snap.exception, snap.traceback, snap.cancel_reason, snap.pid,
        snap.pid_start_time, snap.detached, snap.identity,
    )  # fmt: skip


def _fixed(static: tuple[Any, ...]) -> tuple[Any, ...]:
    """The columns of a run that come from what stays the same of its job (see
    ``_snapshot.static_of_record``): backend, kind, description, requires, log_path."""
    # (static: key, name, backend, kind, description, source, requires, forever, log_path,
    # tags)
    return (static[2], static[3], static[5] or static[4], names_json(static[6]), static[8])


def _record_fixed(record: tuple[Any, ...], logs: str | None) -> tuple[str, tuple[Any, ...]]:
    """The name and the fixed columns (see :func:`_fixed`) of the run of ``record`` (a plain
    Job's, see ``_snapshot.record_of``); ``logs``: the folder of its engine's logs
    (``_snapshot.log_dir_of``).

    What ``_snapshot.static_of_record`` gives, without its static tuple: the cached one when a
    snapshot was taken, else read from the job as ``_snapshot._static`` reads a plain Job
    (its log path made without the views' cache of paths: a burst's names are all new to it).
    """
    job, name = record[0], record[2]
    if type(job.runstate.history) is tuple:
        static = static_of_record(record)
        return static[1], _fixed(static)
    name = "" if name is None else str(name)
    log = f"{logs}{log_stem(name)}.log" if name and logs is not None else None
    return name, (job.backend, job.kind, job.describe(), names_json(job.requirements), log)


def _since(record: tuple[Any, ...]) -> float:
    # When the run of an _Open entry became a waiting one (held back since, see Runs.rows);
    # 0.0 when it runs or ended (never held).
    return record[14] if record[4] == "pending" else 0.0


def _record_row(
    engine_id: str, name: str, fixed: tuple[Any, ...], record: tuple[Any, ...]
) -> list[Any]:
    """The row of a record (:func:`~jupyter_executor._snapshot.record_of`): of a Job
    without a lifecycle record (no pid start time, not detached, no identity)."""
    return _end_row(
        engine_id, name, fixed, record[4], record[5], record[6], record[7], record[9],
        record[10], record[11], record[12], record[13], None, False, None,
    )  # fmt: skip


def _end_row(
    engine_id: str, name: str, fixed: tuple[Any, ...], status: str, submitted: float | None,
    started: float | None, finished: float | None, result: Any, exc: BaseException | None,
    traceback: str | None, cancel_reason: str | None, pid: int | None,
    pid_start_time: float | None, detached: bool, identity: str | None,
) -> list[Any]:  # fmt: skip
    """The row (:data:`WRITTEN` order, attempt left None) of a run seen once, at its end, from
    a snapshot (:func:`_ended_row`) or a record (``Runs._take_record``); or of a first
    attempt seen only as records while it waits or runs (``Runs._take_open``).

    ``fixed``: backend, kind, description, requires (as JSON), log_path (see :func:`_fixed`).
    """
    backend, kind, what, requires, log_path = fixed
    if status == "done":
        result_text: str | None = short_repr(result)
        is_code = backend == "subprocess" and isinstance(result, int)
        exit_code = result if is_code else None
    else:
        result_text = None
        exit_code = getattr(exc, "returncode", None)
    return [
        engine_id,
        name,
        None,  # attempt: placed by rows()
        backend,
        kind,
        what,
        requires,
        status,
        submitted,
        started,
        finished,
        None if finished is None else finished - started,  # type: ignore[operator]
        exit_code,
        result_text,
        None if exc is None else error_text(exc),
        traceback if status == "failed" else None,
        cancel_reason if status == "cancelled" else None,
        log_path,
        pid,
        pid_start_time if pid is not None else None,
        1 if detached else 0,
        identity,
        # An ended run's three steps at its own times: no text, made on read from its times
        # (see _query.transitions_column). As rows() writes the others (see there).
        None if finished is not None else _OPEN_TRANSITIONS[status].format(submitted, started),
    ]


# The transitions of a run that waits or runs (see Runs._take_open), as rows() writes them.
_OPEN_TRANSITIONS = {
    "pending": '[["pending",{0!r}]]',
    "running": '[["pending",{0!r}],["running",{1!r}]]',
}

# Job names that JSON writes as they are (printable ASCII but the quote and the backslash).
_PLAIN_NAMES = re.compile(r"[ !#-\[\]-~]*")


def names_json(names: tuple[str, ...]) -> str:
    """``json.dumps(list(names))``, without the encoder for plain names (a chain's every run
    has one: the encoder was a tenth of the writer's time per run)."""
    if not names:
        return "[]"
    if len(names) == 1:  # a chain's, a fan-out's: no list to join
        (name,) = names
        return f'["{name}"]' if _PLAIN_NAMES.fullmatch(name) else json.dumps([name])
    if _PLAIN_NAMES.fullmatch("".join(names)):
        return '["' + '", "'.join(names) + '"]'
    return json.dumps(list(names))


assert len(WRITTEN) == 23 and WRITTEN[ATTEMPT] == "attempt"  # _end_row's layout


def _transitions_text(run: dict[str, Any]) -> str | None:
    """The transitions of a dict run as written: None for an ended run's three steps at its
    own times (made on read, see _end_row), else JSON."""
    steps = run["transitions"]
    status = run["status"]
    if (
        len(steps) == 3
        and status in _ENDS
        and steps[0] == ("pending", run["submitted"])
        and steps[1] == ("running", run["started"])
        and steps[2] == (status, run["finished"])
    ):
        return None
    # Statuses are plain words and times finite floats: no need for json here.
    return "[" + ",".join([f'["{s}",{t!r}]' for s, t in steps]) + "]"


def _attempt_of(state: JobState, snap: JobSnapshot, rank: int) -> int:
    """Which attempt (the job's own count) a snapshot is about (see the module docstring)."""
    attempts = snap.attempts
    if rank == 1:
        return attempts
    if rank == 0:
        return attempts + 1
    if state.rank >= 0 and state.local in (attempts, attempts + 1):
        return state.local
    return attempts if attempts > 0 and snap.started is not None else attempts + 1


def _add_transitions(
    transitions: list[tuple[str, float]], snap: JobSnapshot, rank: int, ran: bool
) -> None:
    """Add the states this run went through, at the job's own times.

    Snapshots of one attempt that arrive in the same batch are folded into the last one (see
    coalesce), and the history may see a run only at its end: the states in between are
    rebuilt from its timestamps.
    """
    status, submitted, started = snap.status, snap.submitted, snap.started
    if rank and not transitions and submitted is not None:
        transitions.append(("pending", submitted))
    last = transitions[-1][0] if transitions else None
    if rank == 2 and ran and started is not None and last == "pending":
        transitions.append(("running", started))
        last = "running"
    if last != status:
        transitions.append((status, _stamp(snap, rank)))


def _stamp(snap: JobSnapshot, rank: int) -> float:
    """When the run entered the snapshot's status, by the job's own times when it has them."""
    if rank == 1 and snap.started is not None:
        return snap.started
    if rank == 2 and snap.finished is not None:
        return snap.finished
    if rank == 0 and not snap.attempts and snap.submitted is not None:
        # A waiting job is recorded a moment after its submission (the engine's _note_later):
        # it has waited since then.
        return snap.submitted
    return snap.time


def _update(run: dict[str, Any], snap: JobSnapshot, rank: int, ran: bool) -> None:
    """Copy a snapshot's times, process and end into its run (``ran``: this attempt started)."""
    started, finished = snap.started, snap.finished
    run["submitted"] = snap.submitted
    run["started"] = started if ran else None
    if rank == 2:
        run["finished"] = finished
        if ran and finished is not None and started is not None:
            run["duration"] = finished - started
        _end(run, snap)
    if ran and snap.pid is not None:
        run["pid"] = snap.pid
        run["pid_start_time"] = snap.pid_start_time
    run["detached"] = 1 if snap.detached else 0
    run["identity"] = snap.identity


def _end(run: dict[str, Any], snap: JobSnapshot) -> None:
    """What a finished run needs beyond its times: result, error, traceback, exit code."""
    status = snap.status
    exc = snap.exception
    run["result"] = short_repr(snap.result) if status == "done" else None
    run["error"] = _error(exc)
    run["traceback"] = snap.traceback if status == "failed" else None
    run["cancel_reason"] = snap.cancel_reason if status == "cancelled" else None
    if status == "done":
        result = snap.result
        is_code = snap.backend == "subprocess" and isinstance(result, int)
        run["exit_code"] = result if is_code else None
    else:
        run["exit_code"] = getattr(exc, "returncode", None)


def _retried(snap: JobSnapshot) -> bool:
    """A pending snapshot of a retry: it carries how the attempt before it ended (traceback,
    error or cancel reason), with no end time.

    The engine reports such an end nowhere else. A restart's pending snapshot may carry the
    same, but comes after its run's end was reported, with its end time (``finished``): that
    run is made from that report, and is not made again when the writer has forgotten its job
    (see KEEP_FINISHED).
    """
    return (
        snap.attempts > 0
        and snap.finished is None
        and (
            snap.traceback is not None
            or snap.exception is not None
            or snap.cancel_reason is not None
        )
    )


def _end_retried(run: dict[str, Any], snap: JobSnapshot) -> None:
    # The engine reports the retry with the error still on the job when it can; otherwise the
    # traceback's last line says what went wrong.
    exc, tb, reason, now = snap.exception, snap.traceback, snap.cancel_reason, snap.time
    cancelled = isinstance(exc, JobCancelled) or (exc is None and reason is not None)
    status = "cancelled" if cancelled else "failed"
    started = snap.started
    if run["started"] is None and started is not None and run["_local"] == snap.attempts:
        # The attempt ran, but its start was not recorded (it ended within
        # NOTE_RUNNING_AFTER): the retry still holds when it started.
        run["started"] = started
        run["transitions"].append(("running", started))
    run["status"] = status
    run["_state"].rank = 2
    run["transitions"].append((status, now))
    run["finished"] = now
    if run["started"] is not None:
        run["duration"] = now - run["started"]
    run["error"] = _error(exc) if exc is not None else _last_line(tb)
    run["exit_code"] = getattr(exc, "returncode", None)
    run["traceback"] = None if cancelled else tb
    run["cancel_reason"] = reason if cancelled else None


def _error(exc: BaseException | None) -> str | None:
    return None if exc is None else error_text(exc)


def _last_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None
