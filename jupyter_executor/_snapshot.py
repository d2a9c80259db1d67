"""One frozen snapshot of a job per change: what the history, the views and ``list()`` read.

A :class:`JobSnapshot` is taken at a status change (or when something worth keeping appears,
such as a process id) by :func:`snapshot_of`, in the thread that made the change. It holds
plain values only (and, until a view or the history formats them, the job's result and
exception objects), so that a consumer in another thread never reads a live job that moved on
meanwhile, and never reads a job's run state itself: this module is the one place that does.

Examples
--------
>>> from jupyter_executor import Job
>>> snap = snapshot_of(Job(len, args=("ab",), name="count"))
>>> snap.name, snap.status, snap.backend, snap.attempts
('count', 'created', 'thread', 0)
>>> snap.info_dict()["description"]
'len()'
"""

from __future__ import annotations

import functools
import itertools
import time
import weakref
from dataclasses import dataclass, fields, make_dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._logs import log_stem
from ._status import Status
from ._text import error_text, short_repr

if TYPE_CHECKING:
    from ._runstate import RunState

__all__ = [
    "JobSnapshot",
    "SnapshotSource",
    "log_dir_of",
    "record_of",
    "short_repr",
    "snapshot_of",
    "snapshot_of_record",
    "static_of_record",
]

_FINISHED_VALUES = frozenset({Status.DONE.value, Status.FAILED.value, Status.CANCELLED.value})


class SnapshotSource(Protocol):
    """What :func:`~jupyter_executor._snapshot.snapshot_of` reads of a job (a ``Job`` is one).

    A protocol, not ``Job``: the snapshot and the history it feeds never import job.py (which
    reads its own snapshot in ``Job.info()``), so that the job model, the engine and the store
    do not know each other in a circle. Typed loosely (``Any``): a snapshot copies the values,
    it does not check them.
    """

    #: The job's run state; its ``history`` is written (the fields that stay the same).
    runstate: RunState

    @property
    def name(self) -> Any: ...
    @property
    def requirements(self) -> Any: ...
    @property
    def engine(self) -> Any: ...
    @property
    def backend(self) -> Any: ...
    @property
    def kind(self) -> Any: ...
    @property
    def forever(self) -> Any: ...
    @property
    def status(self) -> Any: ...
    @property
    def allows(self) -> Any: ...
    @property
    def submitted(self) -> Any: ...
    @property
    def started(self) -> Any: ...
    @property
    def finished(self) -> Any: ...
    @property
    def attempts(self) -> Any: ...
    @property
    def traceback(self) -> Any: ...
    @property
    def pid(self) -> Any: ...
    @property
    def pid_start_time(self) -> Any: ...
    @property
    def detach(self) -> Any: ...
    @property
    def identity(self) -> Any: ...
    @property
    def next_run(self) -> Any: ...
    @property
    def restarts(self) -> Any: ...
    @property
    def url(self) -> Any: ...

    def describe(self) -> str:
        """One line saying what the job runs."""


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """The state of one job at one change, as plain values (immutable).

    Attributes
    ----------
    key
        A number that is the same for every snapshot of one job object, and unique to it in
        this process (a job replacing another of the same name has another key). Not
        ``job.id``: that random token costs a system call to make, which lets other threads
        take the GIL in the middle of a burst.
    name, status, backend, kind, description
        As the job says them; ``status`` is the status's value (``"running"``...).
    source
        The code or script text the job was made from (a ``%%job`` cell), if any.
    requires, allows
        Names of the jobs this one requires, and of those that require it.
    forever
        A job no ``wait()`` waits for.
    submitted, started, finished
        Epoch seconds, None until they happen (``finished`` is the latest end, also while a
        job waits for a retry).
    attempts
        Attempts started so far.
    result, exception
        The job's result object and exception (what the history and the views format).
    traceback, traceback_ansi
        The plain text traceback of a failure, and the coloured one the views show (when a
        formatter made one).
    cancel_reason
        Why it was cancelled (also kept while a cancelled attempt is retried).
    pid, pid_start_time
        Its process, once it has one.
    detached, identity
        A detached command; the make-like identity of what it runs.
    log_path
        Its log file (None before it is submitted).
    progress, progress_text, last_line, output_version
        What the views show of its output.
    next_run, restarts, url
        Of scheduled, restarted and web app jobs.
    tags
        Labels the job carries, if any.
    time
        When the snapshot was taken (epoch seconds).
    """

    # what stays the same from one change to the next (see _static)
    key: int
    name: str
    backend: str
    kind: str
    description: str
    source: str | None
    requires: tuple[str, ...]
    forever: bool
    log_path: str | None
    tags: tuple[str, ...]
    # what changes
    status: str
    allows: tuple[str, ...]
    submitted: float | None
    started: float | None
    finished: float | None
    attempts: int
    result: Any
    exception: BaseException | None
    traceback: str | None
    traceback_ansi: str | None
    cancel_reason: str | None
    pid: int | None
    pid_start_time: float | None
    detached: bool
    identity: str | None
    progress: float | None
    progress_text: str
    last_line: str
    output_version: int
    next_run: float | None
    restarts: int
    url: str | None
    time: float

    @property
    def done(self) -> bool:
        """True when the snapshot is of a finished job (done, failed or cancelled)."""
        return self.status in _FINISHED_VALUES

    @property
    def error(self) -> str | None:
        """``"Type: message"`` of the exception, or ``"cancelled: reason"``, or None."""
        exc = self.exception
        if exc is not None:
            return error_text(exc)
        if self.status == "cancelled":
            return f"cancelled: {self.cancel_reason or 'cancelled'}"
        return None

    @property
    def result_text(self) -> str | None:
        """A short repr of the result of a done job (None otherwise)."""
        if self.status != "done":
            return None
        return short_repr(self.result)

    def duration(self, now: float | None = None) -> float | None:
        """Seconds the latest attempt ran (until ``now`` while it runs); None before it starts."""
        started = self.started
        if started is None:
            return None
        finished = self.finished
        if finished is not None and self.status in _FINISHED_VALUES:
            return max(0.0, finished - started)
        return max(0.0, (time.time() if now is None else now) - started)

    def info_dict(self, now: float | None = None) -> dict[str, Any]:
        """The row of ``JobInfo.to_dict()`` (without the output tail) for this snapshot.

        Parameters
        ----------
        now
            The time a running job's duration is counted to (default: now).
        """
        status = self.status
        cancelled = status == "cancelled"
        return {
            "name": self.name,
            "status": status,
            "backend": self.backend,
            "kind": self.kind,
            "description": self.description,
            "requires": self.requires,
            "forever": self.forever,
            "submitted": self.submitted,
            "started": self.started,
            "finished": self.finished if status in _FINISHED_VALUES else None,
            "duration": self.duration(now),
            "attempts": self.attempts,
            "result": self.result_text,
            "error": self.error,
            "traceback": self.traceback,
            "cancel_reason": self.cancel_reason if cancelled else None,
            "tail": "",
            "last_line": self.last_line,
            "progress": self.progress,
            "progress_text": self.progress_text,
            "output_version": self.output_version,
            "next_run": self.next_run,
            "restarts": self.restarts,
            "url": self.url,
        }


# A frozen dataclass sets each field with object.__setattr__ (3.4 us for these 32 fields, 7x a
# plain slots class): snapshot_of builds this mutable twin with the same slots and turns it into
# a JobSnapshot (a __class__ switch, checked compatible by CPython), so that a snapshot per change
# costs about 0.5 us, and is then as frozen as one built by JobSnapshot(...).
_Builder = make_dataclass(
    "_Builder", [(f.name, f.type) for f in fields(JobSnapshot)], slots=True, repr=False, eq=False
)


# The keys of jobs (see JobSnapshot.key); next() on a count is atomic under the GIL.
_keys = itertools.count(1)

# The log folder of each engine, as a string ending in a separator: a path built by hand per
# snapshot costs a fraction of pathlib's (the history records one per change).
_log_dirs: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


# The last engine's (a weak reference to it, its folder): a WeakKeyDictionary lookup makes a
# weak reference per call, and nearly every snapshot is of the same engine's jobs.
_last_log_dir: tuple[weakref.ref[Any], str] | None = None


def log_dir_of(engine: Any) -> str | None:
    """The folder of ``engine``'s job logs (``engine``: what ``job.engine`` holds), as a
    string ending in a separator; None for no engine."""
    # engine: what job.engine holds (its log_path), typed Any: the snapshot never imports it.
    global _last_log_dir
    if engine is None:
        return None
    last = _last_log_dir
    if last is not None and last[0]() is engine:
        return last[1]
    prefix = _log_dirs.get(engine)
    if prefix is None:
        prefix = _log_dirs[engine] = str(engine.log_path("x").parent) + "/"
    _last_log_dir = (weakref.ref(engine), prefix)
    return prefix


def _log_path(engine: Any, name: str) -> str | None:
    """The log file of job ``name`` of ``engine`` (what ``job.engine`` holds), as a string."""
    prefix = log_dir_of(engine)
    return None if prefix is None else _join_log(prefix, name)


@functools.lru_cache(maxsize=256)
def _join_log(prefix: str, name: str) -> str:
    # Cached (a few: a burst's names are new, and the cache's entries stay alive): log_stem
    # checks the name with a regex, and a view snapshots the same finished jobs again.
    return f"{prefix}{log_stem(name)}.log"


def _ran(job: SnapshotSource, run: RunState) -> tuple[Any, ...]:
    # What an attempt changes, in the snapshot's order (snapshot_of reads it so; record_of
    # writes it out): submitted, started, finished, attempts, result, exception, traceback.
    return (
        job.submitted,
        job.started,
        job.finished,
        job.attempts,
        run.result,
        run.exception,
        job.traceback,
    )


def snapshot_of(job: SnapshotSource, now: float | None = None) -> JobSnapshot:
    """Take the snapshot of ``job`` as it is now (safe from any thread; no I/O).

    Parameters
    ----------
    job
        The job.
    now
        The time to stamp it with (default: now).

    Returns
    -------
    JobSnapshot
        Its state; later changes of the job do not change it.
    """
    # The one reader of a job's run state (job.runstate) for the history and the views: they
    # read snapshots. Each field is read once, in one place.
    name, engine = job.name, job.engine
    run = job.runstate
    progress, out, life = run.progress, run.output, run.life
    status = job.status._value_
    if life is None and _is_plain_job(type(job)):
        # Most jobs have no lifecycle record: its six fields are their defaults (a subclass may
        # override the properties: read them then).
        pid_start_time = identity = next_run = url = None
        detached, restarts = False, 0
    else:
        pid_start_time, detached, identity = job.pid_start_time, job.detach, job.identity
        next_run, restarts, url = job.next_run, job.restarts, job.url
    snap = _Builder(
        *_static_of(job, name, engine, status),
        status,
        job.allows if engine is not None and name else (),
        *_ran(job, run),
        run.traceback_ansi,
        run.cancel_reason,
        job.pid,
        pid_start_time,
        detached,
        identity,
        progress[0] if progress else None,
        progress[1] if progress else "",
        out.last_line() if out is not None else "",
        out.version if out is not None else 0,
        next_run,
        restarts,
        url,
        time.time() if now is None else now,
    )
    snap.__class__ = JobSnapshot
    return cast(JobSnapshot, snap)


def _key(cached: Any) -> int:
    # What job.runstate.history held: None (never snapshotted), the key (finished), or the cache.
    if cached is None:
        return next(_keys)
    return cached if type(cached) is int else int(cached[4][0])


@functools.cache
def _is_plain_job(cls: type) -> bool:
    # Job itself, known by name: importing job.py here (even in a function) would close an
    # import circle (job -> engine -> history -> snapshot -> job). A subclass may override the
    # properties the fast path skips, so only Job itself takes it.
    return cls.__module__ == f"{__package__}.job" and cls.__qualname__ == "Job"


def _static_of(job: SnapshotSource, name: Any, engine: Any, status: str) -> tuple[Any, ...]:
    """:func:`_static`, cached in ``job.runstate.history`` while what it depends on stays."""
    requires, backend = job.requirements, job.backend
    run = job.runstate
    cached = run.history
    if (
        type(cached) is not tuple
        or cached[0] is not name
        or cached[1] is not requires
        or cached[2] is not engine
        or cached[3] is not backend
    ):
        cached = (name, requires, engine, backend, _static(job, _key(cached), name, engine))
    # A finished job keeps only its key: its static fields (a description, a log path: ~400
    # bytes) would stay alive with every finished job the engine keeps; a rerun (or a view of
    # the finished job) builds them again.
    run.history = cached[4][0] if status in _FINISHED_VALUES else cached
    static: tuple[Any, ...] = cached[4]
    return static


def _static(job: SnapshotSource, key: int, job_name: Any, engine: Any) -> tuple[Any, ...]:
    """The fields that stay the same while the job keeps its name, requirements and engine.

    Kept on the job (``job.runstate.history``) and checked by identity at each snapshot: what it
    runs is described once per job, not once per change. ``job_name`` and ``engine``: those
    the job had at the change (read once by the caller).
    """
    name = "" if job_name is None else str(job_name)
    if _is_plain_job(type(job)):
        # Job itself has neither: getattr's default would cost a raised AttributeError each.
        source, tags = None, ()
    else:
        source, tags = getattr(job, "source", None), tuple(getattr(job, "tags", ()) or ())
    return (
        key,
        name,
        job.backend,
        job.kind,
        job.describe(),
        source,
        job.requirements,
        job.forever,
        _log_path(engine, name) if name else None,
        tags,
    )


def record_of(job: SnapshotSource) -> tuple[Any, ...]:
    """What the history needs of a change of a plain job, read now (cheap: no call).

    For :class:`~jupyter_executor.job.Job` itself without a lifecycle record, when nothing
    but the history takes snapshots: the engine reads these values under its lock (a full
    snapshot there cost ~3 us, and the lock is what the job threads of a burst wait on),
    and the history's writer makes the snapshot from them in its own thread
    (:func:`snapshot_of_record`), reading the fields that stay the same from the job then.

    Returns
    -------
    tuple
        The job, its snapshot key, name, engine, then the values that change, and the time.
    """
    run = job.runstate
    cached = run.history
    status = job.status._value_  # (the enum's .value is a property: 4x the cost)
    if cached is None:
        # The key is given here, under the engine's lock: the writer must not give one (a
        # view's snapshot_of in another thread could give another).
        key = run.history = next(_keys)
    elif type(cached) is int:
        key = cached
    else:
        key = cached[4][0]
        if status in _FINISHED_VALUES:
            run.history = key  # as _static_of: a finished job keeps only its key
    # _ran's fields written out (no call, no tuple to unpack: one record per job's end).
    return (
        job, key, job.name, job.engine, status,
        job.submitted, job.started, job.finished, job.attempts,
        run.result, run.exception, job.traceback,
        run.cancel_reason, job.pid, time.time(),
    )  # fmt: skip


def static_of_record(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """The fields of the snapshot of ``record`` (see :func:`record_of`) that stay the same:
    key, name, backend, kind, description, source, requires, forever, log_path, tags."""
    job, key, name, engine = record[:4]
    cached = job.runstate.history
    if (
        type(cached) is tuple
        and cached[4][0] == key
        and cached[0] is name
        and cached[1] is job.requirements
        and cached[2] is engine
        and cached[3] is job.backend
    ):
        static: tuple[Any, ...] = cached[4]  # read, never written here (the lock guards it)
        return static
    return _static(job, key, name, engine)


# The fields of a record's snapshot that only the views read, left empty: pid_start_time,
# detached, identity, progress, progress_text, last_line, output_version, next_run, restarts, url.
_UNREAD = (None, False, None, None, "", "", 0, None, 0, None)


def snapshot_of_record(record: tuple[Any, ...]) -> JobSnapshot:
    """The snapshot :func:`snapshot_of` would have taken at the change ``record`` holds.

    Called by the history's writer (any thread, later): the fields that stay the same are
    read from the job now (those of a submitted job do not change: its name, requirements
    and backend are frozen; its name and engine come from the record), the others from the
    record. The fields only the views read (``allows``, the output, the progress, the
    coloured traceback) are left empty: the history alone reads these snapshots.
    """
    # after the job, key, name and engine; ``ran``: submitted, started, finished, attempts,
    # result, exception, traceback
    status, *ran, cancel_reason, pid, now = record[4:]
    snap = _Builder(
        *static_of_record(record), status, (), *ran, None, cancel_reason, pid, *_UNREAD, now
    )
    snap.__class__ = JobSnapshot
    return cast(JobSnapshot, snap)
