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
error the retry left on the job.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from .._snapshot import short_repr, snapshot_of_record, static_of_record
from .._status import Status
from .._text import safe_text
from ..errors import JobCancelled
from ._schema import ATTEMPT, TRANSITIONS, WRITTEN, row_values

if TYPE_CHECKING:
    from collections.abc import Iterable

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

    __slots__ = ("base", "key", "local", "name", "rank", "run")

    def __init__(self, key: int, name: str) -> None:
        # Made safe now (a lone surrogate from a non-UTF-8 file name cannot be stored), so that
        # the name the writer keys on is the one in the database.
        self.key = key
        self.name = safe_text(name)
        self.base: int | None = None  # added to the job's attempts; fixed on the first write
        self.local = 0  # job.attempts of the latest run
        self.run: dict[str, Any] | None = None  # None once a finished run is written
        self.rank = -1  # RANK of the latest run's status (-1: no run yet)


#: A run made whole from the one snapshot of its end (see Runs.take_all): the job's state, the
#: row (attempt not placed yet) and the attempt's number in the job's own count (as a run's
#: ``_local``: the state's moves on with a later attempt).
_Ended = tuple[JobState, list[Any], int]


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


def ended_records(changes: Iterable[JobSnapshot | tuple[Any, ...]]) -> list[Any]:
    """The changes of a batch, in order, as :func:`coalesce` and :meth:`Runs.take_all` take
    them: snapshots, and records made into snapshots, except the record of an end that is its
    job's only change in the batch (with the times of its run), which stays a record.

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
        if (
            seen[change[1]] == 1
            and change[4] in _ENDS
            and change[8]
            and change[5] is not None
            and change[6] is not None
            and change[7] is not None
        ):
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
        self.dirty: dict[int, dict[str, Any] | _Ended] = {}
        self._out: list[dict[str, Any] | _Ended] = []  # the runs rows() gave, until written()

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
                # A record of an end, its job's only change in the batch (see ended_records).
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

    def take(self, snap: JobSnapshot) -> dict[str, Any] | None:
        """Fold one snapshot into the run it belongs to; return that run (None: too old)."""
        state = self.states.get(snap.key)
        if state is None:
            state = self.states[snap.key] = JobState(snap.key, snap.name)
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
            "requires": json.dumps(list(requires)) if requires else "[]",
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
        """Fold a record of an end (see :meth:`take_all`), as its snapshot would be folded."""
        try:
            key = record[1]
            if key in self.states:
                self.take(snapshot_of_record(record))  # placed after what came before
                return
            status, submitted, started, finished, local = record[4:9]
            static = static_of_record(record)
            state = self.states[key] = JobState(key, static[1])
            state.local = local
            state.rank = 2
            # (static: key, name, backend, kind, description, source, requires, forever,
            # log_path, tags; a record is of a Job without a lifecycle record: no pid start
            # time, not detached, no identity)
            row = _end_row(
                self.engine_id, state.name, static[2], static[3], static[5] or static[4],
                static[6], status, submitted, started, finished, record[9], record[10],
                record[11], record[12], static[8], record[13], None, False, None,
            )  # fmt: skip
            entry = (state, row, local)
            self.dirty[id(entry)] = entry
        except Exception:
            logger.exception("jupyter_executor: cannot record a change of job %r", record[2])

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
        out: list[dict[str, Any] | _Ended] = []
        self._out = out  # (a failed write leaves the previous ones: given again)
        for run in self.dirty.values():
            if isinstance(run, tuple):
                # Made whole by take_all: only its attempt is left to place.
                state, row, local = run
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
            # Statuses are plain words and times finite floats: no need for json here.
            row[TRANSITIONS] = (
                "[" + ",".join([f'["{s}",{t!r}]' for s, t in run["transitions"]]) + "]"
            )
            params.append(row)
            out.append(run)
        return params

    def written(self) -> None:
        """The rows of :meth:`rows` are on disk: release the finished runs."""
        finished = self._finished
        dirty = self.dirty
        for run in self._out:
            if isinstance(run, tuple):
                # Ended, never held as a dict: only its state stays (see below).
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
    return _end_row(
        engine_id, name, snap.backend, snap.kind, snap.source or snap.description,
        snap.requires, snap.status, snap.submitted, snap.started, snap.finished, snap.result,
        snap.exception, snap.traceback, snap.cancel_reason, snap.log_path, snap.pid,
        snap.pid_start_time, snap.detached, snap.identity,
    )  # fmt: skip


def _end_row(
    engine_id: str, name: str, backend: str, kind: str, what: str | None,
    requires: tuple[str, ...], status: str, submitted: float | None, started: float | None,
    finished: float | None,
    result: Any, exc: BaseException | None, traceback: str | None, cancel_reason: str | None,
    log_path: str | None, pid: int | None, pid_start_time: float | None, detached: bool,
    identity: str | None,
) -> list[Any]:  # fmt: skip
    """The row (:data:`WRITTEN` order, attempt left None) of a run seen once, at its end, from
    a snapshot (:func:`_ended_row`) or a record (``Runs._take_record``)."""
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
        json.dumps(list(requires)) if requires else "[]",
        status,
        submitted,
        started,
        finished,
        finished - started,  # type: ignore[operator]  # (both set: the run ended)
        exit_code,
        result_text,
        None if exc is None else f"{type(exc).__name__}: {exc}",
        traceback if status == "failed" else None,
        cancel_reason if status == "cancelled" else None,
        log_path,
        pid,
        pid_start_time if pid is not None else None,
        1 if detached else 0,
        identity,
        # As rows() writes them (see there): statuses are plain words, times finite floats.
        f'[["pending",{submitted!r}],["running",{started!r}],["{status}",{finished!r}]]',
    ]


assert len(WRITTEN) == 23 and WRITTEN[ATTEMPT] == "attempt"  # _end_row's layout


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


def _end_retried(run: dict[str, Any], snap: JobSnapshot) -> None:
    # The engine reports the retry with the error still on the job when it can; otherwise the
    # traceback's last line says what went wrong.
    exc, tb, reason, now = snap.exception, snap.traceback, snap.cancel_reason, snap.time
    cancelled = isinstance(exc, JobCancelled) or (exc is None and reason is not None)
    status = "cancelled" if cancelled else "failed"
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
    return None if exc is None else f"{type(exc).__name__}: {exc}"


def _last_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None
