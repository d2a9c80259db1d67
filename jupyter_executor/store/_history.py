"""The history store: every run of every job, kept in ``FOLDER/history.db`` (SQLite).

The engine reports each change of a job (submitted, started, finished, restarted) with
:meth:`HistoryStore.job_changed`, as a :class:`~jupyter_executor._snapshot.JobSnapshot`, or,
for a plain job when nothing else takes snapshots, with :meth:`HistoryStore.job_recorded`, as a
record of the values that change (``_snapshot.record_of``: read under the engine's lock, where
a whole snapshot cost the job threads of a burst their time). That call is on the engine's hot
path, so it only queues; the writer thread (``_writer.py``) folds the changes of a batch into
*runs* (``_fold.py``: one row per job name and attempt; a job submitted, started and finished
within a batch is one row written once; the record of an end, its job's only change in the
batch, is made into its row directly) and writes each batch in one transaction.

What a burst of short jobs costs the history is one snapshot and one row per job: the engine
records a plain job's start only if it still runs half a second later
(``_events.NOTE_RUNNING_AFTER``; one that ends sooner is recorded at its end, its states
rebuilt from its times), and a run that only waits is held back from the disk for
:data:`HOLD_PENDING` unless a flush waits (most of a burst's queued jobs end meanwhile).

Why SQLite in WAL mode: a reader never blocks the writer, a crash (even ``kill -9``) loses at
most the batch being gathered or written (the changes of the last second: see ``max_delay``)
and never corrupts what was committed, and several engines (kernels) sharing a folder can write
the same file at once (each batch waits its turn on the busy timeout). ``synchronous=NORMAL``
keeps commits cheap: a committed batch survives the process being killed; only a power loss may
undo the last few. The layout and its migrations are in ``_schema.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from .._snapshot import JobSnapshot, SnapshotSource, snapshot_of
from .._text import safe_text
from ..errors import StoreError
from . import _schema
from ._direct import DirectWrites
from ._fold import Runs, coalesce, ended_records
from ._query import HistoryFilters, decode, json_column, select, transitions_column
from ._schema import (
    ATTEMPT,
    NAME,
    ORDER,
    ORDER_KEY,
    UPSERT,
    check_writable,
    transaction,
    upsert_many,
)
from ._writer import Writer

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["HistoryStore"]

logger = logging.getLogger("jupyter_executor")

T = TypeVar("T")
_SQLITE_INT = range(-(2**63), 2**63)
# Changes in a batch from which the garbage collector is paused while it is written.
BIG_BATCH = 1000
# Seconds a run that only waits (pending) is held back from the disk, unless a flush waits
# (see Runs.rows): in a burst the engine notes the queued jobs as pending (see
# _slots._note_queued) and most end within this time: then each is written once.
HOLD_PENDING = 1.0
# The writer's checkpoints: pages of WAL between two (about 40 MB), and the size the WAL file
# is cut back to after one (see _write).
WAL_CHECKPOINT = 10_000
WAL_LIMIT = 16 * 2**20


class HistoryStore(DirectWrites):
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
    read_only
        Only read the history (``jupyter-executor list``): the folder need not be writable,
        and every write raises :class:`StoreError`.

    Raises
    ------
    StoreError
        The folder cannot be written (unless ``read_only``), or ``history.db`` is not a
        database or was written by a newer version of jupyter_executor.

    Notes
    -----
    A *run* is one attempt of one job: a retry, a rerun, a restart or a scheduled run each
    make a new row. ``attempt`` is ``job.attempts`` of that run; when a job replaces another of
    the same name (or an engine id is reused) it continues after the highest attempt already
    recorded for that name and engine, so that no run ever overwrites another.

    The writer thread (``jupyter-executor-store-ID``) starts with the first change, stops
    when idle, and for good with :meth:`close`, which the owner must call (the engine does at
    shutdown): it writes what is queued. Changes reported after :meth:`close` are not written.

    A burst of many short jobs keeps every job and its snapshots alive until they are written;
    Python's garbage collector walks through all of them at each full pass. A program that
    submits very large bursts can call :func:`gc.freeze` after submitting them, so that those
    passes skip the objects alive then (and :func:`gc.unfreeze` after the wait).

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
        read_only: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "history.db"
        self.engine_id = str(engine_id)
        self.busy_timeout = float(busy_timeout)
        self.read_only = bool(read_only)
        if not self.read_only:
            check_writable(self.folder, self.path)
        import psutil

        # Where this engine runs, for the engines table (see _register). Known now, in the
        # caller's thread: importing psutil in the writer would stall the jobs of a first burst.
        self._process = (socket.gethostname(), os.getpid(), psutil.Process().create_time())
        if self.path.exists():
            con = self._connect()  # fail now, not in the writer thread, on a newer or bad file
            con.close()
        self._writer = Writer(
            f"jupyter-executor-store-{self.engine_id}",
            self._write_batch,
            lambda: bool(self._runs.dirty),
            self._close_connection,
            batch_delay=float(batch_delay),
            idle_timeout=float(idle_timeout),
            max_delay=float(max_delay),
        )
        #: Called (in the caller's thread) before a flush or a read: the engine reports there
        #: the changes it deferred (see _events.NOTE_RUNNING_AFTER).
        self.before_flush: Callable[[], None] | None = None
        # writer thread only
        self._runs = Runs(self.engine_id)
        self._con: sqlite3.Connection | None = None
        self._max_attempt: dict[str, int] = {}
        self._last_error: str | None = None

    def __repr__(self) -> str:
        state = "closed" if self._writer.closed else "open"
        return f"<HistoryStore {self.path} engine={self.engine_id} {state}>"

    @property
    def batch_delay(self) -> float:
        """Seconds the writer waits after a change to gather more (see the class docstring)."""
        return self._writer.batch_delay

    @property
    def idle_timeout(self) -> float:
        """Seconds without changes after which the writer thread stops."""
        return self._writer.idle_timeout

    @property
    def max_delay(self) -> float:
        """Seconds the writer waits at most during a burst before it writes what it has."""
        return self._writer.max_delay

    # writing (hot path) ----------------------------------------------------------------------
    def job_changed(self, job: JobSnapshot | SnapshotSource) -> None:
        """Record the current state of a job (cheap: no I/O, safe from any thread).

        Call it after each status change (submitted, started, finished, back to pending for a
        retry, a rerun or a restart) and when something worth keeping appears (the pid of a
        process), with the job (its snapshot is taken now) or the snapshot taken at the change.
        It is written by the writer thread.
        """
        # The engine hands the snapshot it took for this change (one per change, shared with
        # the views); a job given directly is snapshotted here.
        self._writer.put(job if type(job) is JobSnapshot else snapshot_of(job))  # type: ignore[arg-type]

    def job_recorded(self, record: tuple[Any, ...]) -> None:
        """Record a change of a plain job given as :func:`~jupyter_executor._snapshot.record_of`
        made it (cheap: no I/O, safe from any thread; the snapshot is made by the writer)."""
        self._writer.put(record)

    def jobs_recorded(self, records: list[Any]) -> None:
        """Record the changes of several jobs, each as :meth:`job_recorded` (a record) or
        :meth:`job_changed` (a snapshot) takes it, queued at once and never slowed by the
        writer's backlog (the engine's notes of jobs still waiting, taken under its lock)."""
        self._writer.put_many(records)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every change reported so far is written to disk.

        Raises
        ------
        StoreError
            The batch could not be written (it is retried later).
        TimeoutError
            Not written within ``timeout`` seconds.
        """
        self._report_deferred()
        try:
            error = self._writer.flush(timeout)
        except TimeoutError:
            msg = f"the history was not written to {self.path} within {timeout} s"
            raise TimeoutError(msg) from None
        if error is not None:
            raise self._write_error(error) from error

    def _write_error(self, error: BaseException) -> StoreError:
        # What flush() raises, and a flushed() future fails with, for a batch not written.
        return StoreError(f"cannot write the history to {self.path}: {error}")

    def flushed(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future of ``loop``, done once every change reported so far is written to disk.

        :meth:`flush` for an event loop, which must not block: the writer thread itself
        settles the future (no thread of the loop's waits for it meanwhile). It fails with
        :class:`StoreError` when the batch could not be written. Unlike :meth:`flush`, the
        changes the engine deferred (see ``before_flush``) are not reported first: this is for
        a change just reported (a command's write-ahead), not for a read. Never times out:
        bound the wait with ``asyncio.wait_for``.

        Parameters
        ----------
        loop
            The running event loop that awaits the future (settled through
            ``call_soon_threadsafe``).

        Returns
        -------
        asyncio.Future
            Its result is None; its exception a :class:`StoreError`.
        """
        future: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if future.done():
                return  # the waiter gave up (timed out, cancelled)
            if error is None:
                future.set_result(None)
            else:
                exc = self._write_error(error)
                exc.__cause__ = error
                future.set_exception(exc)

        def then(error: BaseException | None) -> None:  # (the writer thread, or this one)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, error)

        self._writer.flush_then(then)
        return future

    def _report_deferred(self) -> None:
        # What the engine saw and has not reported yet (the starts of jobs that may end soon,
        # see _events.NOTE_RUNNING_AFTER): a flush or a read must see them.
        hook = self.before_flush
        if hook is not None:
            try:
                hook()
            except Exception:
                logger.exception("jupyter_executor: cannot report the deferred changes")

    def close(self) -> None:
        """Write what is queued and stop the writer thread (idempotent).

        Never raises: a batch that cannot be written is logged as an error.
        """
        # Bounded: the final write waits at most busy_timeout for another engine's transaction.
        if not self._writer.close(timeout=2 * self.busy_timeout + 10):
            logger.error("jupyter_executor: the history writer of %s did not stop", self.path)

    # writer thread ---------------------------------------------------------------------------
    def _write_batch(
        self, snaps: Sequence[JobSnapshot | tuple[Any, ...]], everything: bool = False
    ) -> BaseException | None:
        # A large batch allocates a row (and a state) per run, all alive until written:
        # with the collector on, they set off full passes that walk every live job of the
        # burst again and again (13 passes, 1.3 s, in a burst of 1e5). It is paused for the
        # batch (a bounded time: one batch), unless the program turned it off itself.
        pause = len(snaps) >= BIG_BATCH and gc.isenabled()
        if pause:
            gc.disable()
        try:
            runs = self._runs
            if not runs.take_ends(snaps):
                runs.take_all(coalesce(ended_records(snaps)))
            del snaps  # release the results they hold before the write
            hold_after = None if everything else time.time() - HOLD_PENDING
            return self._write(hold_after) if runs.dirty else None
        finally:
            if pause:
                gc.enable()

    def _close_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(sqlite3.Error):
                con.close()
        if self._writer.closed and self._runs.dirty:
            logger.error(
                "jupyter_executor: %d runs could not be written to %s",
                len(self._runs.dirty),
                self.path,
            )

    def _write(self, hold_after: float | None = None) -> BaseException | None:
        """Write the changed runs in one transaction; return the error, if any (writer thread).

        Pending runs that became so at ``hold_after`` or later are held back (see Runs.rows).
        """
        try:
            con = self._con
            if con is None:
                con = self._con = self._connect(create=True)
                # A checkpoint (the WAL copied into the database) every WAL_CHECKPOINT pages,
                # not SQLite's 1,000: the pages a burst changes again and again (the indexes,
                # the last page of the table) are copied once per checkpoint (~15% of the
                # cost of a row). The WAL left after one is cut back to WAL_LIMIT bytes.
                con.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT}")
                con.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
                self._register(con)
                rows = con.execute(
                    "SELECT name, MAX(attempt) FROM runs WHERE engine_id = ? GROUP BY name",
                    (self.engine_id,),
                ).fetchall()
                self._max_attempt = {name: attempt for name, attempt in rows}
            highest = dict(self._max_attempt)
            params = self._runs.rows(highest, hold_after)
            if not params:
                return None  # all held back
            with transaction(con):
                try:
                    upsert_many(con, params)
                except sqlite3.OperationalError:
                    raise  # locked, disk full, read-only: the whole batch is retried later
                except (sqlite3.Error, ValueError, TypeError, OverflowError):
                    # A value SQLite cannot take (text with a lone surrogate, a huge int): a
                    # bad row must not hold back the others, nor be retried forever.
                    _write_each(con, params, self.path)
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
        self._runs.written()
        self._last_error = None
        return None

    # database --------------------------------------------------------------------------------
    def _register(self, con: sqlite3.Connection) -> None:
        """Record this process as the one running this engine (before its first run is written)."""
        host, pid, started = self._process
        with transaction(con):
            con.execute(
                "INSERT OR REPLACE INTO engines VALUES (?, ?, ?, ?, ?)",
                (self.engine_id, host, pid, started, time.time()),
            )

    def _connect(self, create: bool = False) -> sqlite3.Connection:
        """A connection with the schema checked (created or migrated when ``create``).

        A read-only store is refused every connection that would write (``create``).
        """
        if self.read_only and create:
            msg = f"cannot write to the history at {self.path}: it was opened read-only"
            raise StoreError(msg)
        return _schema.connect(self.path, self.busy_timeout, create, read_only=self.read_only)

    def _transaction(
        self, what: str, step: Callable[[sqlite3.Connection], T], *, register: bool = False
    ) -> T:
        """Run ``step(con)`` in one write transaction, at once, in the caller's thread.

        The one way the store writes outside the writer thread: ``what`` names what is written
        in the error. With ``register``, records this engine's process first (the engines
        table), so that another engine can tell whether the owner of a schedule is alive.

        Raises
        ------
        StoreError
            The database cannot be written (locked beyond the busy timeout, read-only, ...).
        """
        con = self._connect(create=True)
        try:
            if register:
                self._register(con)
            with transaction(con):
                return step(con)
        except sqlite3.Error as exc:
            msg = f"cannot write {what} to {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()

    def _read(
        self, sql: str, params: Iterable[Any] = (), *, needs: str = "runs", flush: bool = True
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Columns and rows of a query (none while the file or table ``needs`` is missing).

        With ``flush``, this engine's queued changes are written first (the runs; the files and
        schedules are written at once and need no flush).
        """
        if flush:
            self._report_deferred()  # may start the writer thread
        if flush and self._writer.thread is not None and not self._writer.closed:
            # This engine's latest changes too; a failed write is logged by the writer, and
            # what is on disk is read anyway.
            with contextlib.suppress(StoreError, TimeoutError):
                self.flush(timeout=self.busy_timeout)
        if not self.path.exists():
            return [], []
        con = self._connect()
        try:
            if _schema.schema_version(con) is None:
                return [], []  # another engine is creating the file right now
            if (
                needs != "runs"
                and not con.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (needs,)
                ).fetchone()
            ):
                return [], []  # a database made before that table existed
            cur = con.execute(sql, tuple(params))
            columns = [d[0] for d in cur.description]
            rows = cur.fetchall()
        except sqlite3.Error as exc:
            msg = f"cannot read the history database at {self.path}: {exc}"
            raise StoreError(msg) from exc
        finally:
            con.close()
        return columns, rows

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Runs as dicts, their JSON columns decoded (see :meth:`history`)."""
        columns, rows = self._read(sql, params)
        return decode(columns, rows)

    # reading -----------------------------------------------------------------------------------
    def history(
        self, name: str | None = None, **filters: Unpack[HistoryFilters]
    ) -> list[dict[str, Any]]:
        """Every run recorded in this folder, by all engines, oldest first.

        The filters are applied by SQLite: a filtered read reads only what it returns.

        Parameters
        ----------
        name
            Only the runs of jobs with this name.
        **filters
            The keys of :class:`~jupyter_executor.store._query.HistoryFilters`. ``since``: only
            the runs submitted (or started, or ended) at or after this time: epoch seconds, a
            :class:`~datetime.datetime`, or how long ago as a duration (a
            :class:`~datetime.timedelta` or text such as ``"2h"``, ``"1d"``). ``status``: only
            the runs with this status (or one of these statuses): ``"pending"``,
            ``"running"``, ``"done"``, ``"failed"``, ``"cancelled"``. ``limit``: at most this
            many runs, the latest ones.

        Returns
        -------
        list of dict
            One dict per run with the keys of :data:`COLUMNS`; ``requires`` is a list of
            names, ``transitions`` a list of ``[status, epoch seconds]``, ``detached`` a bool.

        Raises
        ------
        InvalidOption
            A filter's value cannot be used (the message names it).
        """
        sql, params = select(name, **filters)
        return self._query(sql, params)

    def frame(self, name: str | None = None, **filters: Unpack[HistoryFilters]) -> pd.DataFrame:
        """:meth:`history` as a DataFrame, times as local :class:`~datetime.datetime` (or None).

        Built column by column from the query's rows (no dict per run): the cost of reading
        the history into pandas is close to that of a plain ``SELECT *``.
        """
        import pandas as pd

        sql, params = select(name, **filters)
        columns, rows = self._read(sql, params)
        if not columns:
            return pd.DataFrame()
        frame = pd.DataFrame(rows, columns=columns)
        frame["requires"] = json_column(frame["requires"].tolist())
        frame["transitions"] = transitions_column(columns, rows)
        frame["detached"] = frame["detached"].astype(bool)
        fromtimestamp = datetime.fromtimestamp
        for column in ("submitted", "started", "finished"):
            frame[column] = pd.Series(
                [None if t is None or t != t else fromtimestamp(t) for t in frame[column].tolist()],
                dtype=object,
                index=frame.index,
            )
        return frame

    def last_runs(self, limit: int, *, other_than: str | None = None) -> list[dict[str, Any]]:
        """The latest run of each job name, for the ``limit`` names that ran last, oldest first.

        Parameters
        ----------
        limit
            How many names at most (those whose latest run is the latest).
        other_than
            Leave out the runs of this engine id (the dashboard shows its own jobs live).

        Returns
        -------
        list of dict
            Runs as :meth:`history` gives them. SQLite picks them: the whole history is not
            read (the dashboard asks at each snapshot).
        """
        where = "WHERE engine_id != ?" if other_than is not None else ""
        params: list[Any] = [other_than] if other_than is not None else []
        return self._query(
            "SELECT runs.* FROM runs JOIN ("
            f"SELECT id, ROW_NUMBER() OVER (PARTITION BY name ORDER BY {ORDER_KEY} DESC, id DESC)"
            f" AS newest, {ORDER_KEY} AS at FROM runs {where}"
            f") latest USING (id) WHERE newest = 1 ORDER BY at DESC, id DESC LIMIT {int(limit)}",
            params,
        )[::-1]

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
        if not self.read_only:
            self._connect(create=True).close()  # migrated: made before the engines table
        return self._query(
            "SELECT runs.*, engines.host AS engine_host, engines.pid AS engine_pid, "
            "engines.pid_start_time AS engine_pid_start_time "
            "FROM runs LEFT JOIN engines USING (engine_id) "
            "WHERE detached = ? AND finished IS NULL" + ORDER,
            (int(detached),),
        )

    def last_started(self, name: str, since: float) -> float | None:
        """When the latest run of ``name`` started at or after ``since`` (any engine), or None."""
        _, rows = self._read(
            "SELECT MAX(started) FROM runs WHERE name = ? AND started >= ?",
            (safe_text(name), since),
            flush=False,  # the started runs of other engines: on disk already
        )
        started = rows[0][0] if rows else None
        return None if started is None else float(started)

    def made(self, path: str) -> list[dict[str, Any]]:
        """The files of the runs that wrote ``path`` (absolute), the latest run first.

        One dict per file (keys of the ``files`` table: engine_id, name, attempt, role, path,
        sha256, size, mtime, recorded), the runs' inputs and outputs together.
        """
        columns, rows = self._read(
            "SELECT f.* FROM files f JOIN (SELECT DISTINCT engine_id, name, attempt, "
            "recorded FROM files WHERE role = 'output' AND path = ?) r "
            "USING (engine_id, name, attempt, recorded) "
            "ORDER BY f.recorded DESC, f.role, f.path",
            (safe_text(path),),  # as record_files stored it (no lone surrogates)
            needs="files",
            flush=False,
        )
        return [dict(zip(columns, row, strict=True)) for row in rows]

    # writing at once (caller's thread) --------------------------------------------------------


# helpers ---------------------------------------------------------------------------------------
def _write_each(con: sqlite3.Connection, params: list[list[Any]], path: Path) -> None:
    """Write rows one by one with their values made safe; drop (and log) a row that still fails.

    The upsert is idempotent, so rows the failed ``executemany`` already wrote are simply
    written again.
    """
    for row in params:
        safe = [_safe_value(value) for value in row]
        try:
            con.execute(UPSERT, safe)
        except sqlite3.OperationalError:
            raise
        except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
            logger.warning(
                "jupyter_executor: run %s of job %r not recorded in %s: %s",
                safe[ATTEMPT],
                safe[NAME],
                path,
                exc,
            )


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
