"""The history store: every run of every job, kept in ``FOLDER/history.db`` (SQLite).

The engine reports each change of a job (submitted, started, finished, restarted) with
:meth:`HistoryStore.job_changed`. That call is on the engine's hot path, so it only appends a
snapshot of a few fields to a queue (about a microsecond) and wakes a writer thread once per
batch. The writer thread turns snapshots into *runs* (one row per job name and attempt),
coalesces the changes of a batch (a job submitted, started and finished within a batch is one
row written once) and writes each batch in one transaction.

Why SQLite in WAL mode: a reader never blocks the writer, a crash (even ``kill -9``) loses at
most the batch being gathered or written (the changes of the last second: see ``max_delay``)
and never corrupts what was committed, and several engines (kernels)
sharing a folder can write the same file at once (each batch waits its turn on the busy timeout).
``synchronous=NORMAL`` keeps commits cheap: a committed batch survives the process being killed;
only a power loss may undo the last few.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import operator
import os
import reprlib
import socket
import sqlite3
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import create_private, private_dir
from ._status import FINISHED, Status
from ._text import safe_text
from .errors import JobCancelled, StoreError

if TYPE_CHECKING:
    from .job import Job

__all__ = ["SCHEMA_VERSION", "HistoryStore", "StoreError"]

logger = logging.getLogger("jupyter_executor")

#: Version of the database layout; a database written by a newer version is refused.
SCHEMA_VERSION = 1


# The columns of a run, in table order (``id`` first).
COLUMNS = (
    "id", "engine_id", "name", "attempt", "backend", "kind", "description", "requires",
    "status", "submitted", "started", "finished", "duration", "exit_code", "result", "error",
    "traceback", "cancel_reason", "log_path", "pid", "pid_start_time", "detached", "identity",
    "transitions",
)  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    engine_id TEXT NOT NULL,
    name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    backend TEXT,
    kind TEXT,
    description TEXT,
    requires TEXT,
    status TEXT NOT NULL,
    submitted REAL,
    started REAL,
    finished REAL,
    duration REAL,
    exit_code INTEGER,
    result TEXT,
    error TEXT,
    traceback TEXT,
    cancel_reason TEXT,
    log_path TEXT,
    pid INTEGER,
    pid_start_time REAL,
    detached INTEGER NOT NULL DEFAULT 0,
    identity TEXT,
    transitions TEXT,
    UNIQUE (engine_id, name, attempt)
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name);
CREATE INDEX IF NOT EXISTS runs_open_detached ON runs (detached) WHERE finished IS NULL;
"""

# Which process each engine ran in, so that a later engine can tell the runs of a kernel that
# died (still "pending" or "running" on disk) from those of a live one. Created apart from
# _SCHEMA because databases of schema 1 were made before it (the table is additive).
_ENGINES = """
CREATE TABLE IF NOT EXISTS engines (
    engine_id TEXT PRIMARY KEY,
    host TEXT,
    pid INTEGER,
    pid_start_time REAL,
    opened REAL
)
"""

# The files each make-like run read and wrote, with their content hashes ("which run made
# final.txt?"). Additive like the engines table: created when first written, so that older
# databases (same schema version) gain it without a migration.
_FILES = """
CREATE TABLE IF NOT EXISTS files (
    engine_id TEXT NOT NULL,
    name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    role TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT,
    size INTEGER,
    mtime REAL,
    recorded REAL NOT NULL
)
"""
_FILES_INDEX = "CREATE INDEX IF NOT EXISTS files_by_path ON files (path)"

# Durable schedules (see _durable.py): the every=/cron= schedules and restart policies of
# commands, so that the next engine on the folder re-arms them. Additive, like the engines
# table: a database without it is still schema 1 and older versions ignore it. ``spec`` is
# JSON (the command and its options), so that new options need no change of the table;
# ``owner`` is the engine that has it armed (a row of the engines table), NULL when none.
_SCHEDULES = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created REAL NOT NULL,
    owner TEXT
)
"""

_WRITTEN = COLUMNS[1:]
# Positional parameters: binding tuples costs sqlite3 far less than binding dicts by name.
_UPSERT = (
    f"INSERT INTO runs ({', '.join(_WRITTEN)}) VALUES ({', '.join('?' for _ in _WRITTEN)}) "
    "ON CONFLICT (engine_id, name, attempt) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _WRITTEN[3:])
)

_TRANSITIONS = _WRITTEN.index("transitions")


def _row(run: dict[str, Any]) -> list[Any]:
    return list(_row_values(run))


_row_values = operator.itemgetter(*_WRITTEN)
_ORDER = " ORDER BY COALESCE(submitted, started, finished), id"

# What job_changed copies off a job, in one C call: the fields that change from one attempt to
# the next (the writer may run after the engine has moved on). Slow things (repr, describe,
# json) are done by the writer thread.
_snapshot = operator.attrgetter(
    "status._value_", "attempts", "submitted", "started", "finished", "_result", "_exception",
    "traceback", "_cancel_reason", "pid",
)  # fmt: skip
_now = time.time
# What job_changed queues per change: the job, its snapshot (10 fields) and the time.
_ITEMS = 12
_NO_SNAPSHOT = (None,) * (_ITEMS - 1)

# Changes per batch_delay that make a burst, during which the writer waits (see _gather), and
# how many queued changes it lets a burst pile up at most.
_BURST = 1000
_MAX_DEFERRED = 200_000
# Unwritten changes beyond which the threads reporting changes wait for the writer to take
# them: a flood of jobs faster than the writer can record them (it needs more CPU time per run
# than a no-op job) is slowed to its pace, so that an end never waits long in memory.
_BACKLOG = 5000 * _ITEMS

# Keyed by the statuses' values: a snapshot holds the value, so that it holds no object the
# garbage collector must track (the result aside) while it waits in the queue.
_RANK = {Status.CREATED.value: 0, Status.PENDING.value: 0, Status.RUNNING.value: 1}  # finished: 2

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = 6
_short.maxdict = 4


class _Marker:
    """Put in the queue by flush() and close(): set once everything before it is written."""

    __slots__ = ("done", "error", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.stop = stop


class _JobState:
    """What the writer thread remembers of one job: its latest run (writer thread only)."""

    __slots__ = (
        "backend",
        "base",
        "description",
        "kind",
        "local",
        "log_path",
        "name",
        "owner",
        "rank",
        "requires",
        "run",
        "template",
    )  # fmt: skip

    def __init__(self, job: Job) -> None:
        # Made safe now (a lone surrogate from a non-UTF-8 file name cannot be stored), so that
        # the name the writer keys on is the one in the database.
        self.name = safe_text(str(job.name))
        self.backend = job.backend
        self.kind = job.kind
        self.description = getattr(job, "source", None) or job.describe()
        self.requires = json.dumps(list(job.requirements)) if job.requirements else "[]"
        engine = job.engine
        self.log_path = engine._log_file(self.name) if engine is not None else None
        self.base: int | None = None  # added to job.attempts; fixed on the first write
        self.local = 0  # job.attempts of the latest run
        self.run: dict[str, Any] | None = None  # None once a finished run is written
        self.rank = -1  # _RANK of the latest run's status (-1: no run yet)
        self.template: dict[str, Any] | None = None
        self.owner: HistoryStore | None = None


class HistoryStore:
    """Every run of every job of an engine, in ``folder/history.db``, shared by all engines.

    Parameters
    ----------
    folder
        The engine's folder; ``history.db`` is created in it on the first write.
    engine_id
        The engine's id, stored with each run.
    batch_delay
        Seconds the writer waits after a change to gather more into the same transaction
        (:meth:`flush` and :meth:`close` do not wait for it).
    busy_timeout
        Seconds a write waits while another engine writes the same file.
    idle_timeout
        Seconds without changes after which the writer thread stops (and closes the file);
        the next change starts it again.
    max_delay
        Seconds the writer waits at most, while changes keep pouring in (a burst of short
        jobs), before it writes what it has. With the time a batch takes to write, this bounds
        how long a run's end can stay in memory only: the default keeps it within a second.

    Raises
    ------
    StoreError
        The folder cannot be written, or ``history.db`` is not a database or was written by a
        newer version of jupyter_executor.

    Notes
    -----
    A *run* is one attempt of one job: a retry, a rerun, a restart or a scheduled run each
    make a new row. ``attempt`` is ``job.attempts`` of that run; when a job replaces another of
    the same name (or an engine id is reused) it continues after the highest attempt already
    recorded for that name and engine, so that no run ever overwrites another.

    The writer thread (``jupyter-executor-store-ID``) starts with the first change, stops
    when idle, and for good with :meth:`close`, which the owner must call (the engine does at
    shutdown): it writes what is queued. Changes reported after :meth:`close` are not written.

    Examples
    --------
    >>> import tempfile
    >>> from jupyter_executor import Engine
    >>> folder = Path(tempfile.mkdtemp())
    >>> store = HistoryStore(folder, "demo")
    >>> with Engine(folder=folder / "engine") as engine:
    ...     job = engine.submit(sum, [1, 2], name="add")
    ...     engine.wait()
    ...     store.job_changed(job)
    True
    >>> [(run["name"], run["status"], run["result"]) for run in store.history()]
    [('add', 'done', '3')]
    >>> store.close()
    """

    def __init__(
        self,
        folder: Path,
        engine_id: str,
        *,
        batch_delay: float = 0.2,
        busy_timeout: float = 30.0,
        idle_timeout: float = 1.0,
        max_delay: float = 0.5,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "history.db"
        self.engine_id = str(engine_id)
        self.batch_delay = float(batch_delay)
        self.busy_timeout = float(busy_timeout)
        self.idle_timeout = float(idle_timeout)
        self.max_delay = float(max_delay)
        _check_writable(self.folder, self.path)
        import psutil

        # Where this engine runs, for the engines table (see _register). Known now, in the
        # caller's thread: importing psutil in the writer would stall the jobs of a first burst.
        self._process = (socket.gethostname(), os.getpid(), psutil.Process().create_time())
        if self.path.exists():
            con = self._connect()  # fail now, not in the writer thread, on a newer or bad file
            con.close()
        self._queue: deque[Any] = deque()
        self._signalled = False  # the writer was woken and has not taken the queue yet
        self._wake = threading.Event()
        self._urgent = threading.Event()  # a flush or close waits: skip the batch delay
        self._taken = threading.Condition(threading.Lock())  # notified when a batch is taken
        self._batches = 0  # batches taken so far
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # writer thread only
        self._con: sqlite3.Connection | None = None
        self._states: weakref.WeakKeyDictionary[Job, _JobState] = weakref.WeakKeyDictionary()
        self._dirty: dict[int, dict[str, Any]] = {}
        self._max_attempt: dict[str, int] = {}
        self._last_error: str | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<HistoryStore {self.path} engine={self.engine_id} {state}>"

    # writing (hot path) ----------------------------------------------------------------------
    def job_changed(self, job: Job) -> None:
        """Record the current state of ``job`` (cheap: no I/O, safe from any thread).

        Call it after each status change (submitted, started, finished, back to pending for a
        retry, a rerun or a restart) and when something worth keeping appears (the pid of a
        process). The state is copied now and written by the writer thread.
        """
        if self._closed:
            return
        # Loose items rather than a tuple: a change allocates no container, so that a burst of
        # changes waiting in the queue does not set the garbage collector off (each of its
        # passes walks through every job alive). One extend is atomic: the items of two
        # changes never interleave.
        queue = self._queue
        queue.extend((job, *_snapshot(job), _now()))
        if not self._signalled:
            self._signal()
        elif len(queue) > _BACKLOG:
            self._throttle()

    def _throttle(self) -> None:
        # Wake the writer now and wait until it has taken the queue (bounded: a writer stuck on
        # another engine's lock slows the jobs, it does not stop them). No live writer (it
        # failed): nothing to wait for.
        thread = self._thread
        if thread is None or thread is threading.current_thread() or not thread.is_alive():
            return
        with self._taken:
            seen = self._batches
            self._urgent.set()
            self._wake.set()
            self._taken.wait_for(lambda: self._batches != seen, 1.0)

    def _signal(self) -> None:
        # Once per batch. Under the lock, so that the writer cannot decide to exit (idle) between
        # this change being queued and the check that it runs.
        with self._lock:
            self._signalled = True
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._writer, name=f"jupyter-executor-store-{self.engine_id}"
                )
                # Daemon: interpreter exit joins non-daemon threads *before* atexit runs the
                # engine's shutdown, which is what closes the store.
                self._thread.daemon = True
                self._thread.start()
        self._wake.set()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every change reported so far is written to disk.

        Raises
        ------
        StoreError
            The batch could not be written (it is retried later).
        TimeoutError
            Not written within ``timeout`` seconds.
        """
        if self._thread is threading.current_thread():
            return
        marker = _Marker()
        with self._lock:
            if self._closed or self._thread is None:
                return  # no writer: everything was written (it stops only when nothing waits)
            self._queue.extend((marker, *_NO_SNAPSHOT))
        self._urgent.set()
        self._wake.set()
        if not marker.done.wait(timeout):
            msg = f"the history was not written to {self.path} within {timeout} s"
            raise TimeoutError(msg)
        if marker.error is not None:
            msg = f"cannot write the history to {self.path}: {marker.error}"
            raise StoreError(msg) from marker.error

    def close(self) -> None:
        """Write what is queued and stop the writer thread (idempotent).

        Never raises: a batch that cannot be written is logged as an error.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.extend((_Marker(stop=True), *_NO_SNAPSHOT))
        if thread is None:
            return
        self._urgent.set()
        self._wake.set()
        # Bounded: the final write waits at most busy_timeout for another engine's transaction.
        thread.join(timeout=2 * self.busy_timeout + 10)
        if thread.is_alive():
            logger.error("jupyter_executor: the history writer of %s did not stop", self.path)

    # writer thread ---------------------------------------------------------------------------
    def _writer(self) -> None:
        retry_in = 0.5
        stop = False
        try:
            while not stop:
                # Sleep until woken; while a failed batch waits, retry it now and then.
                woken = self._wake.wait(retry_in if self._dirty else self.idle_timeout)
                if not woken and not self._dirty:
                    with self._lock:
                        if not self._queue and not self._signalled:
                            # Idle: stop (the next change starts a new writer), so that an
                            # engine nobody shut down leaves no thread behind for long.
                            self._close_connection()  # before a new writer may open one
                            self._thread = None
                            return
                    continue
                if not self._urgent.is_set() and self.batch_delay > 0:
                    self._gather()
                # Clear the event before the flag: a change reported meanwhile sets both again.
                self._wake.clear()
                self._signalled = False
                self._urgent.clear()
                markers: list[_Marker] = []
                error = self._batch(markers)
                stop = stop or any(marker.stop for marker in markers)
                retry_in = 0.5 if error is None else min(2 * retry_in, 30.0)
                for marker in markers:
                    marker.error = error
                    marker.done.set()
            self._close_connection()  # closed for good: no other writer will start
            if self._dirty:
                logger.error(
                    "jupyter_executor: %d runs could not be written to %s",
                    len(self._dirty),
                    self.path,
                )
        except BaseException:
            # A bug: log it, release whoever waits, and let the next change start a new writer.
            logger.exception("jupyter_executor: the history writer of %s failed", self.path)
            with self._lock:
                self._close_connection()
                self._thread = None
                for item in self._queue:
                    if type(item) is _Marker:
                        item.done.set()

    def _batch(self, markers: list[_Marker]) -> BaseException | None:
        """Write what is queued now; return the error, if any (writer thread).

        A method rather than inline in the loop so that the snapshots of a batch (and the
        results they hold) are released when it is written, not when the next one comes.
        """
        touched: dict[int, tuple[dict[str, Any], Job]] = {}
        queue = self._queue
        # What is there now, not what keeps coming: a batch always ends.
        items = []
        pop = queue.popleft
        for _ in range(len(queue) // _ITEMS):
            first = pop()
            snap = (pop(), pop(), pop(), pop(), pop(), pop(), pop(), pop(), pop(), pop())
            now = pop()
            if type(first) is _Marker:
                markers.append(first)
                continue
            items.append((first, snap, now))
        with self._taken:  # release the threads waiting out a flood (see _throttle)
            self._batches += 1
            self._taken.notify_all()
        for item in _fold(items):
            try:
                run = self._take(*item)
            except Exception:
                logger.exception("jupyter_executor: cannot record a change of a job")
            else:
                if run is not None:
                    touched[id(run)] = (run, item[0])
        del items
        # Once per run and batch, not per change: what is slow to read or format.
        for run, job in touched.values():
            try:
                _complete(run, job)
            except Exception:
                logger.exception("jupyter_executor: cannot record job %r", job.name)
        del touched
        try:
            return self._write() if self._dirty else None
        except Exception as exc:  # a bug here must not stop the thread: flush() waits
            logger.exception("jupyter_executor: cannot write the history")
            return exc

    def _gather(self) -> None:
        """Wait for a batch to gather; while a burst of changes goes on, for the burst to end.

        The writer competes with the jobs for the GIL (it needs about twice the CPU time of a
        no-op job per run): a burst of short jobs ends sooner when its history is written
        after it. The wait is bounded by ``max_delay`` and by the size of the queue, and
        :meth:`flush` and :meth:`close` cut it short.
        """
        urgent, queue = self._urgent, self._queue
        deadline = time.monotonic() + self.max_delay
        if urgent.wait(min(self.batch_delay, self.max_delay)):
            return
        seen = len(queue) // _ITEMS
        while seen >= _BURST and seen < _MAX_DEFERRED:
            left = deadline - time.monotonic()
            if left <= 0 or urgent.wait(min(self.batch_delay, left)):
                return
            now = len(queue) // _ITEMS
            if now - seen < _BURST:
                return  # the burst is over
            seen = now

    def _close_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(sqlite3.Error):
                con.close()

    def _take(self, job: Job, snap: tuple[Any, ...], now: float) -> dict[str, Any] | None:
        """Fold one snapshot into the run it belongs to; return that run (writer thread)."""
        status, attempts, submitted, started, finished, result, exc, tb, reason, pid = snap
        # The job carries the state of its first store (a slot: a weak-key lookup per change cost
        # more than the rest of this method); any other store keeps its own in a weak dict.
        state: _JobState | None = job._history
        if state is None or state.owner is not self:
            state = self._states.get(job)
            if state is None:
                state = _JobState(job)
                state.owner = self
                if job._history is None:
                    job._history = state
                else:
                    self._states[job] = state
        run = state.run
        seen = state.rank >= 0
        rank = _RANK.get(status, 2)
        # Which attempt this snapshot is about: a pending job waits for its next attempt, a
        # running one is in its current attempt, a finished one ended the run it was in (the
        # next attempt when it was cancelled, or found up to date, before it started).
        if rank == 1:
            local = attempts
        elif rank == 0:
            local = attempts + 1
        elif seen and state.local in (attempts, attempts + 1):
            local = state.local
        else:
            local = attempts if attempts > 0 and started is not None else attempts + 1
        if seen and local <= state.local:
            if local < state.local or rank < state.rank:
                return None  # an older snapshot that another thread queued late
            if run is None:
                # Its finished run was written and released (see _write): written again,
                # rebuilt from this snapshot.
                run = state.run = _new_run(state, self.engine_id, local)
        else:
            if run is not None and state.rank < 2:
                # The previous attempt ended without a finished status: a retry sent the job
                # straight back to pending (or its end was not reported).
                _end_retried(run, exc, tb, reason, now)
                self._dirty[id(run)] = run
            run = state.run = _new_run(state, self.engine_id, local)
            state.local = local
        value = status
        run["status"] = value
        state.rank = rank
        ran = rank > 0 and local == attempts
        # The states this run went through, at the job's own times: snapshots of one attempt
        # that arrive in the same batch are folded into the last one (see _fold), so the
        # states in between are rebuilt from its timestamps.
        transitions = run["transitions"]
        if rank and not transitions and submitted is not None:
            transitions.append(["pending", submitted])
        if rank == 2 and ran and started is not None and transitions[-1][0] == "pending":
            transitions.append(["running", started])
        if not transitions or transitions[-1][0] != value:
            stamp = started if rank == 1 and started is not None else now
            if rank == 2 and finished is not None:
                stamp = finished
            transitions.append([value, stamp])
        run["_ran"] = ran
        run["submitted"] = submitted
        run["started"] = started if ran else None
        if rank == 2:
            run["finished"] = finished
            if ran and finished is not None and started is not None:
                run["duration"] = finished - started
            run["_end"] = (value, result, exc, tb, reason)
        if ran and pid is not None:
            run["pid"] = pid
        self._dirty[id(run)] = run
        return run

    def _write(self) -> BaseException | None:
        """Write the changed runs in one transaction; return the error, if any (writer thread)."""
        try:
            con = self._con
            if con is None:
                con = self._con = self._connect(create=True)
                self._register(con)
                rows = con.execute(
                    "SELECT name, MAX(attempt) FROM runs WHERE engine_id = ? GROUP BY name",
                    (self.engine_id,),
                ).fetchall()
                self._max_attempt = {name: attempt for name, attempt in rows}
            runs = list(self._dirty.values())
            highest = dict(self._max_attempt)
            params = []
            for run in runs:
                state: _JobState = run["_state"]
                if state.base is None:
                    # Continue after the highest attempt recorded for this name and engine; a
                    # replacing job's attempts already count its predecessor's runs.
                    state.base = max(0, highest.get(state.name, 0) - run["_local"] + 1)
                attempt = state.base + run["_local"]
                highest[state.name] = max(highest.get(state.name, 0), attempt)
                run["attempt"] = attempt
                # Statuses are plain words and times finite floats: no need for json here.
                steps = ",".join([f'["{status}",{t!r}]' for status, t in run["transitions"]])
                row = _row(run)
                row[_TRANSITIONS] = f"[{steps}]"
                params.append(row)
            con.execute("BEGIN IMMEDIATE")
            try:
                try:
                    con.executemany(_UPSERT, params)
                except sqlite3.OperationalError:
                    raise  # locked, disk full, read-only: the whole batch is retried later
                except (sqlite3.Error, ValueError, TypeError, OverflowError):
                    # A value SQLite cannot take (text with a lone surrogate, a huge int): a
                    # bad row must not hold back the others, nor be retried forever.
                    _write_each(con, params, self.path)
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError, StoreError) as exc:
            # Retried later; said once per kind of failure, not at every retry.
            if str(exc) != self._last_error:
                self._last_error = str(exc)
                logger.warning(
                    "jupyter_executor: cannot write the history to %s (will retry): %s",
                    self.path,
                    exc,
                )
            if self._con is not None and not isinstance(exc, sqlite3.OperationalError):
                with contextlib.suppress(sqlite3.Error):
                    self._con.close()
                self._con = None  # open afresh next time
            return exc
        self._max_attempt = highest
        for run in runs:
            state = run["_state"]
            if state.rank == 2 and state.run is run:
                # Final: keep only what places the next snapshot (state.local, state.rank),
                # so that a finished job holds no containers for the garbage collector to
                # walk through again and again.
                state.run = state.template = None
        self._dirty.clear()
        self._last_error = None
        return None

    # database --------------------------------------------------------------------------------
    def _register(self, con: sqlite3.Connection) -> None:
        """Record this process as the one running this engine (before its first run is written)."""
        host, pid, started = self._process
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(_ENGINES)
            con.execute(
                "INSERT OR REPLACE INTO engines VALUES (?, ?, ?, ?, ?)",
                (self.engine_id, host, pid, started, time.time()),
            )
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise

    def _connect(self, create: bool = False) -> sqlite3.Connection:
        """A connection with the schema checked (and created when ``create``)."""
        if create:
            # User-only: the history holds commands, results and tracebacks. SQLite gives the
            # -wal and -shm files the permissions of the database file.
            private_dir(self.folder)
            create_private(self.path)
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE takes the write
            # lock up front, so that two writers wait in turn instead of deadlocking).
            con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            msg = f"cannot open the history database at {self.path}: {exc}"
            raise StoreError(msg) from exc
        try:
            if create:
                _retry_locked(lambda: con.execute("PRAGMA journal_mode=WAL"), self.busy_timeout)
            con.execute("PRAGMA synchronous=NORMAL")
            version = _schema_version(con)
            if version is None and create:
                con.execute("BEGIN IMMEDIATE")
                try:
                    # Statement by statement: executescript() would commit the transaction first.
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            con.execute(statement)
                    con.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
                    con.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")
                    raise
                version = _schema_version(con)
            if version is not None and version > SCHEMA_VERSION:
                msg = (
                    f"the history database at {self.path} was written by a newer "
                    f"jupyter_executor (schema {version} > {SCHEMA_VERSION}); upgrade"
                )
                raise StoreError(msg)
        except sqlite3.Error as exc:
            con.close()
            msg = f"cannot use the history database at {self.path}: {exc}"
            raise StoreError(msg) from exc
        except BaseException:
            con.close()
            raise
        return con

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if self._thread is not None and not self._closed:
            # This engine's latest changes too; a failed write is logged by the writer, and
            # what is on disk is read anyway.
            with contextlib.suppress(StoreError, TimeoutError):
                self.flush(timeout=self.busy_timeout)
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            if _schema_version(con) is None:
                return []  # another engine is creating the file right now
            con.row_factory = sqlite3.Row
            rows = con.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            msg = f"cannot read the history database at {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()
        return [_decode(row) for row in rows]

    # reading -----------------------------------------------------------------------------------
    def history(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every run recorded in this folder, by all engines, oldest first.

        Parameters
        ----------
        name
            Only the runs of jobs with this name.

        Returns
        -------
        list of dict
            One dict per run with the keys of :data:`COLUMNS`; ``requires`` is a list of
            names, ``transitions`` a list of ``[status, epoch seconds]``, ``detached`` a bool.
        """
        if name is None:
            return self._query("SELECT * FROM runs" + _ORDER)
        return self._query("SELECT * FROM runs WHERE name = ?" + _ORDER, (safe_text(name),))

    def runs(self, name: str) -> list[dict[str, Any]]:
        """The runs of job ``name`` by this engine, by attempt (see :meth:`history`)."""
        return self._query(
            "SELECT * FROM runs WHERE engine_id = ? AND name = ? ORDER BY attempt",
            (self.engine_id, safe_text(name)),
        )

    def last_success(self, name: str, identity: str) -> dict[str, Any] | None:
        """The latest ``done`` run of ``name`` with this ``identity`` (any engine), or None."""
        rows = self._query(
            "SELECT * FROM runs WHERE name = ? AND identity = ? AND status = 'done' "
            "ORDER BY finished DESC, id DESC LIMIT 1",
            (safe_text(name), identity),
        )
        return rows[0] if rows else None

    def running_attached(self) -> list[dict[str, Any]]:
        """Attached runs with no end recorded, of any engine (maybe of a kernel that died).

        Each row also has ``engine_host``, ``engine_pid`` and ``engine_pid_start_time``: where
        its engine ran, or None for an engine that recorded no process (older versions).
        """
        return self._open_runs(detached=False)

    def running_detached(self) -> list[dict[str, Any]]:
        """Detached runs (any engine) with no end recorded: candidates for re-attaching.

        With the keys of :meth:`running_attached`. A run without a pid was recorded before its
        process started (write-ahead): its engine may not have started it yet.
        """
        return self._open_runs(detached=True)

    def _open_runs(self, detached: bool) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        con = self._connect(create=True)
        try:
            con.execute(_ENGINES)  # a database made before the table existed
        except sqlite3.Error as exc:
            msg = f"cannot use the history database at {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()
        return self._query(
            "SELECT runs.*, engines.host AS engine_host, engines.pid AS engine_pid, "
            "engines.pid_start_time AS engine_pid_start_time "
            "FROM runs LEFT JOIN engines USING (engine_id) "
            "WHERE detached = ? AND finished IS NULL" + _ORDER,
            (int(detached),),
        )

    def record_pid(self, run_id: int, pid: int, pid_start_time: float | None) -> None:
        """Record the process of an open run, learnt after the fact (written at once)."""
        self._execute(
            "UPDATE runs SET pid = ?, pid_start_time = ? WHERE id = ? AND finished IS NULL",
            (pid, pid_start_time, run_id),
        )

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        con = self._connect(create=True)
        try:
            con.execute(sql, params)
        except sqlite3.Error as exc:
            msg = f"cannot write the history to {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()

    def record_exit(
        self,
        run_id: int,
        status: str,
        exit_code: int | None,
        finished: float,
        error: str | None,
        reason: str | None = None,
    ) -> None:
        """Record how a run ended, learnt after the fact (a detached process of an old kernel).

        Written at once, in the caller's thread. A run whose end is already recorded is left
        as it is, so that two engines re-attaching the same run do not both write it.
        ``reason`` is recorded as the run's cancel reason (for a run ended as cancelled).
        """
        if status not in {s.value for s in FINISHED}:
            msg = f"a run ends done, failed or cancelled, not {status!r}"
            raise ValueError(msg)
        con = self._connect(create=True)
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute(
                    "SELECT started, transitions FROM runs WHERE id = ? AND finished IS NULL",
                    (run_id,),
                ).fetchone()
                if row is not None:
                    started, transitions = row
                    steps = json.loads(transitions) if transitions else []
                    steps.append([status, finished])
                    con.execute(
                        "UPDATE runs SET status = ?, exit_code = ?, finished = ?, error = ?, "
                        "duration = ?, transitions = ?, "
                        "cancel_reason = COALESCE(?, cancel_reason) WHERE id = ?",
                        (
                            status,
                            exit_code,
                            finished,
                            None if error is None else safe_text(error),
                            finished - started if started is not None else None,
                            json.dumps(steps),
                            None if reason is None else safe_text(reason),
                            run_id,
                        ),
                    )
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            msg = f"cannot write the history to {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()

    def record_files(
        self, name: str, attempt: int, files: list[tuple[str, str, str | None, int, float]]
    ) -> None:
        """Record the ``(role, path, sha256, size, mtime)`` of a run's inputs and outputs.

        Written at once, in the caller's thread (the engine calls it from a worker thread,
        after hashing). ``role`` is ``"input"`` or ``"output"``; paths are absolute.
        """
        con = self._connect(create=True)
        now = time.time()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(_FILES)
                con.execute(_FILES_INDEX)
                con.executemany(
                    "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(self.engine_id, name, attempt, *f, now) for f in files],
                )
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            msg = f"cannot write the history to {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()

    def made(self, path: str) -> list[dict[str, Any]]:
        """The files of the runs that wrote ``path`` (absolute), the latest run first.

        One dict per file (keys of the ``files`` table: engine_id, name, attempt, role, path,
        sha256, size, mtime, recorded), the runs' inputs and outputs together.
        """
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            con.row_factory = sqlite3.Row
            if not con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'files'"
            ).fetchone():
                return []  # a database that never recorded files
            rows = con.execute(
                "SELECT f.* FROM files f JOIN (SELECT DISTINCT engine_id, name, attempt, "
                "recorded FROM files WHERE role = 'output' AND path = ?) r "
                "USING (engine_id, name, attempt, recorded) "
                "ORDER BY f.recorded DESC, f.role, f.path",
                (path,),
            ).fetchall()
        except sqlite3.Error as exc:
            msg = f"cannot read the history database at {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()
        return [dict(row) for row in rows]

    # durable schedules (see _durable.py) -------------------------------------------------------
    def _schedules_txn(self, step: Any) -> Any:
        """Run ``step(con)`` in one write transaction on the schedules table; return its value.

        Registers this engine first (the engines table), so that another engine can tell
        whether the owner of a schedule is alive.
        """
        con = self._connect(create=True)
        try:
            self._register(con)
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(_SCHEDULES)
                value = step(con)
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            msg = f"cannot write the schedules to {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()
        return value

    def save_schedule(self, name: str, spec: dict[str, Any]) -> None:
        """Store (or replace) the schedule ``name``, armed by this engine; written at once.

        ``created`` is kept when the same spec is saved again (a re-armed schedule).
        """
        text = json.dumps(spec, sort_keys=True)
        self._schedules_txn(
            lambda con: con.execute(
                "INSERT INTO schedules (name, spec, created, owner) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "created = CASE WHEN spec = excluded.spec THEN created ELSE excluded.created END, "
                "spec = excluded.spec",
                (safe_text(name), text, time.time(), self.engine_id),
            )
        )

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule ``name`` for good; True if there was one."""
        if not self.path.exists():
            return False
        cur = self._schedules_txn(
            lambda con: con.execute("DELETE FROM schedules WHERE name = ?", (safe_text(name),))
        )
        return bool(cur.rowcount)

    def claim_schedule(self, name: str, owner: str | None) -> bool:
        """Take schedule ``name`` for this engine if ``owner`` still has it; True if taken.

        A compare-and-set: of two engines re-arming the schedule of a dead one at once, one
        gets it.
        """
        cur = self._schedules_txn(
            lambda con: con.execute(
                "UPDATE schedules SET owner = ? WHERE name = ? AND owner IS ?",
                (self.engine_id, safe_text(name), owner),
            )
        )
        return bool(cur.rowcount)

    def release_schedules(self) -> None:
        """Let the next engine re-arm the schedules this one has armed (at its shutdown)."""
        if self.path.exists():
            self._schedules_txn(
                lambda con: con.execute(
                    "UPDATE schedules SET owner = NULL WHERE owner = ?", (self.engine_id,)
                )
            )

    def schedules(self) -> list[dict[str, Any]]:
        """Every stored schedule, by name, with where its owner runs.

        Each row has ``name``, ``spec`` (a dict), ``created``, ``owner`` and ``owner_host``,
        ``owner_pid``, ``owner_pid_start_time`` (None when no engine has it armed).
        """
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            if _schema_version(con) is None:
                return []
            con.row_factory = sqlite3.Row
            has = con.execute(
                "SELECT 1 FROM sqlite_master WHERE name IN ('schedules', 'engines')"
            ).fetchall()
            if len(has) < 2:
                return []
            rows = con.execute(
                "SELECT schedules.*, engines.host AS owner_host, engines.pid AS owner_pid, "
                "engines.pid_start_time AS owner_pid_start_time FROM schedules "
                "LEFT JOIN engines ON engines.engine_id = schedules.owner ORDER BY name"
            ).fetchall()
        except sqlite3.Error as exc:
            msg = f"cannot read the schedules in {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()
        out = []
        for row in rows:
            data = dict(zip(row.keys(), tuple(row), strict=True))
            data["spec"] = json.loads(data["spec"])
            out.append(data)
        return out

    def last_started(self, name: str, since: float) -> float | None:
        """When the latest run of ``name`` started at or after ``since`` (any engine), or None."""
        if not self.path.exists():
            return None
        con = self._connect()
        try:
            if _schema_version(con) is None:
                return None
            (started,) = con.execute(
                "SELECT MAX(started) FROM runs WHERE name = ? AND started >= ?",
                (safe_text(name), since),
            ).fetchone()
        except sqlite3.Error as exc:
            msg = f"cannot read the history database at {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()
        return None if started is None else float(started)

    def record_note(self, name: str, status: str, note: str, when: float) -> None:
        """Record a run that did not run (``note`` as its reason), e.g. runs missed while no
        engine was alive. Filed under attempts 0, -1, ... of this engine, apart from its runs."""
        if status not in {s.value for s in FINISHED}:
            msg = f"a note is recorded as done, failed or cancelled, not {status!r}"
            raise ValueError(msg)
        name = safe_text(name)

        def insert(con: sqlite3.Connection) -> None:
            (low,) = con.execute(
                "SELECT MIN(attempt) FROM runs WHERE engine_id = ? AND name = ? AND attempt <= 0",
                (self.engine_id, name),
            ).fetchone()
            attempt = 0 if low is None else low - 1
            con.execute(
                "INSERT INTO runs (engine_id, name, attempt, backend, kind, status, submitted, "
                "finished, cancel_reason, detached, transitions) "
                "VALUES (?, ?, ?, 'subprocess', 'command', ?, ?, ?, ?, 0, ?)",
                (
                    self.engine_id, name, attempt, status, when, when, safe_text(note),
                    json.dumps([[status, when]]),
                ),
            )  # fmt: skip

        self._schedules_txn(insert)


# helpers ---------------------------------------------------------------------------------------
def _write_each(con: sqlite3.Connection, params: list[list[Any]], path: Path) -> None:
    """Write rows one by one with their values made safe; drop (and log) a row that still fails.

    The upsert is idempotent, so rows the failed ``executemany`` already wrote are simply
    written again.
    """
    for row in params:
        safe = [_safe_value(value) for value in row]
        try:
            con.execute(_UPSERT, safe)
        except sqlite3.OperationalError:
            raise
        except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
            logger.warning(
                "jupyter_executor: run %s of job %r not recorded in %s: %s",
                safe[_ATTEMPT],
                safe[_NAME],
                path,
                exc,
            )


_NAME = _WRITTEN.index("name")
_ATTEMPT = _WRITTEN.index("attempt")
_SQLITE_INT = range(-(2**63), 2**63)


def _safe_value(value: Any) -> Any:
    if value is None or type(value) is float:
        return value
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, int):
        return value if value in _SQLITE_INT else None
    if isinstance(value, float):
        return float(value)
    return safe_text(str(value))


def _fold(items: list[Any]) -> list[Any]:
    """Keep, of consecutive snapshots of one job's attempt, only the latest (in order).

    A no-op job reports submitted, running and done within microseconds: folding makes the
    writer's work one step per job instead of three. A snapshot of another attempt (a retry,
    a restart, a rerun) is never folded into the previous attempt's.
    """
    latest: dict[int, int] = {}  # id(job) -> index in out
    out: list[Any] = []
    for item in items:
        key = id(item[0])
        at = latest.get(key)
        if at is not None:
            prev = out[at]
            snap, old = item[1], prev[1]
            new_rank, old_rank = _RANK.get(snap[0], 2), _RANK.get(old[0], 2)
            # One attempt going forward: pending -> its attempt running (or finished), or
            # running -> finished. Never a pending one ending before it started (that run is
            # the next attempt's), nor a step back to pending (a retry, a restart, a rerun).
            same = old_rank >= 1 and snap[1] == old[1] and new_rank >= old_rank
            starts = old_rank == 0 and new_rank >= 1 and snap[1] == old[1] + 1
            if same or starts:
                out[at] = item
                continue
        latest[key] = len(out)
        out.append(item)
    return out


def _new_run(state: _JobState, engine_id: str, local: int) -> dict[str, Any]:
    template = state.template
    if template is None:
        # What every run of this job shares, built once per job rather than once per run.
        template = state.template = dict.fromkeys(_WRITTEN)
        template.update(
            engine_id=engine_id,
            name=state.name,
            backend=state.backend,
            kind=state.kind,
            description=state.description,
            requires=state.requires,
            log_path=state.log_path,
            detached=0,
            _state=state,
            _ran=False,
            _end=None,
        )
    run = template.copy()
    run["transitions"] = []
    run["_local"] = local
    return run


def _end_retried(
    run: dict[str, Any], exc: BaseException | None, tb: str | None, reason: str | None, now: float
) -> None:
    # The engine reports the retry with the error still on the job when it can; otherwise the
    # traceback's last line says what went wrong.
    cancelled = isinstance(exc, JobCancelled) or (exc is None and reason is not None)
    status = "cancelled" if cancelled else "failed"
    run["status"] = status
    run["_state"].rank = 2
    run["_end"] = None
    run["transitions"].append([status, now])
    run["finished"] = now
    if run["started"] is not None:
        run["duration"] = now - run["started"]
    run["error"] = _error(exc) if exc is not None else _last_line(tb)
    run["exit_code"] = getattr(exc, "returncode", None)
    run["traceback"] = None if cancelled else tb
    run["cancel_reason"] = reason if cancelled else None


def _complete(run: dict[str, Any], job: Job) -> None:
    """Fill in what a run needs beyond the snapshot (writer thread, once per batch)."""
    end = run["_end"]
    if end is not None:
        run["_end"] = None  # do not keep the result object alive
        status, result, exc, tb, reason = end
        run["result"] = _repr(result) if status == "done" else None
        run["error"] = _error(exc)
        run["traceback"] = tb if status == "failed" else None
        run["cancel_reason"] = reason if status == "cancelled" else None
        if status == "done":
            is_code = job.backend == "subprocess" and isinstance(result, int)
            run["exit_code"] = result if is_code else None
        else:
            run["exit_code"] = getattr(exc, "returncode", None)
    if run["_ran"] and run["_local"] == job.attempts:
        # Read now rather than at the call: the pid comes a little after "running".
        if run["pid"] is None:
            run["pid"] = job.pid
        run["pid_start_time"] = getattr(job, "pid_start_time", None)
    run["detached"] = 1 if getattr(job, "detach", False) else 0
    run["identity"] = getattr(job, "identity", None)
    run["log_path"] = run["_state"].log_path


def _error(exc: BaseException | None) -> str | None:
    return None if exc is None else f"{type(exc).__name__}: {exc}"


def _last_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def _repr(value: Any) -> str:
    if value is None:  # what most jobs return
        return "None"
    try:
        return _short.repr(value)
    except Exception:  # a broken __repr__ of a user object must not lose the run
        return f"<{type(value).__name__} object>"


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(zip(row.keys(), tuple(row), strict=True))
    data["requires"] = json.loads(data["requires"]) if data["requires"] else []
    data["transitions"] = json.loads(data["transitions"]) if data["transitions"] else []
    data["detached"] = bool(data["detached"])
    return data


def _schema_version(con: sqlite3.Connection) -> int | None:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return int(row[0]) if row is not None else None


def _retry_locked(step: Any, timeout: float) -> None:
    # Switching to WAL needs a moment alone with the file; the busy handler does not always
    # cover it, so wait for a second engine that is creating the same file.
    deadline = time.monotonic() + timeout
    for pause in itertools.chain((0.01, 0.02, 0.05), itertools.repeat(0.1)):
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)


def _check_writable(folder: Path, db: Path) -> None:
    """Raise StoreError when the history cannot be written in ``folder`` (nothing created)."""
    reason = None
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        reason = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
    elif existing == folder:
        # os.access says yes to root everywhere, and knows nothing of some mounts: try it.
        probe = folder / f".history-probe-{os.getpid()}-{threading.get_ident()}"
        try:
            fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = f"cannot create a file there ({exc.strerror or exc})"
        if reason is None and db.exists() and not os.access(db, os.W_OK):
            reason = f"{db} is read-only"
    if reason is not None:
        msg = f"cannot write the history in {folder}: {reason}; pass folder=..."
        raise StoreError(msg)
