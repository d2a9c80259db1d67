"""The layout of ``history.db``, its migrations, and how a connection to it is opened.

The layout is built by an ordered list of steps (:data:`STEPS`); ``PRAGMA user_version`` says how
many of them a database has had. Opening a database to write applies the steps it lacks, in one
transaction, so that an older database is migrated the first time a newer engine writes to it
(and two engines migrating the same file at once wait in turn). Databases made before the
steps existed (``user_version`` 0) carry ``schema_version`` 1 in their ``meta`` table: they had
step 1, and maybe, created on demand, the tables of step 2.

``meta.schema_version`` is what older versions of jupyter_executor check: they refuse a
database whose ``schema_version`` is above theirs. It stays 1 while every step keeps the file
readable and writable by them (new tables and indexes only); a step that breaks that must raise
it. A database whose ``user_version`` (or, before the steps, ``schema_version``) is above
:data:`SCHEMA_VERSION` was written by a newer version and is refused.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._files import create_private, private_dir
from ..errors import StoreError

__all__ = ["COLUMNS", "SCHEMA_VERSION", "STEPS", "check_writable", "connect", "transaction"]

# The columns of a run, in table order (``id`` first). ``transitions`` is JSON, or NULL for a
# run that went pending, running, then ended at its own submit, start and end times: those
# three steps, made on read (_query.transitions_column; an older version reads no steps).
COLUMNS = (
    "id", "engine_id", "name", "attempt", "backend", "kind", "description", "requires",
    "status", "submitted", "started", "finished", "duration", "exit_code", "result", "error",
    "traceback", "cancel_reason", "log_path", "pid", "pid_start_time", "detached", "identity",
    "transitions",
)  # fmt: skip

# The migrations, in order: step N (1-based) takes a database from user_version N-1 to N.
STEPS: tuple[tuple[str, ...], ...] = (
    # 1: the runs (one row per attempt of a job) and the meta table.
    (
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
        """CREATE TABLE IF NOT EXISTS runs (
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
        )""",
        "CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name)",
        "CREATE INDEX IF NOT EXISTS runs_open_detached ON runs (detached) WHERE finished IS NULL",
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1')",
    ),
    # 2: which process each engine ran in (so that a later engine tells the runs of a kernel
    # that died from those of a live one), the files each make-like run read and wrote with
    # their hashes ("which run made final.txt?"), and the durable schedules (_durable.py):
    # ``spec`` is JSON, so that new options need no change of the table; ``owner`` is the
    # engine that has it armed, NULL when none. Before the steps, made on first use.
    (
        """CREATE TABLE IF NOT EXISTS engines (
            engine_id TEXT PRIMARY KEY,
            host TEXT,
            pid INTEGER,
            pid_start_time REAL,
            opened REAL
        )""",
        """CREATE TABLE IF NOT EXISTS files (
            engine_id TEXT NOT NULL,
            name TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            role TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT,
            size INTEGER,
            mtime REAL,
            recorded REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS files_by_path ON files (path)",
        """CREATE TABLE IF NOT EXISTS schedules (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            created REAL NOT NULL,
            owner TEXT
        )""",
    ),
    # 3: the runs in history order, so that history(since=..., limit=...) reads only what it
    # returns (the expression is ORDER_KEY, written the same way).
    (
        "CREATE INDEX IF NOT EXISTS runs_by_time "
        "ON runs (COALESCE(submitted, started, finished), id)",
    ),
)

#: Version of the database layout (the number of migration steps); newer databases are refused.
SCHEMA_VERSION = len(STEPS)

ORDER_KEY = "COALESCE(submitted, started, finished)"
# The runs of one submission (a job's retries and restarts keep its submit time) come in the
# order they were inserted: their attempts' (see upsert_many).
ORDER = f" ORDER BY {ORDER_KEY}, id"

WRITTEN = COLUMNS[1:]
# Positional parameters: binding tuples costs sqlite3 far less than binding dicts by name.
UPSERT = (
    f"INSERT INTO runs ({', '.join(WRITTEN)}) VALUES ({', '.join('?' for _ in WRITTEN)}) "
    "ON CONFLICT (engine_id, name, attempt) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in WRITTEN[3:])
)
# Rows per statement of upsert_many: one statement binds them all and SQLite inserts them in
# one call, made without the GIL; executemany gives the GIL away and takes it back at each
# row, which during a burst of thread jobs costs both sides a hand-off per row (each up to the
# switch interval, 5 ms, when the jobs keep the GIL busy). A power of two (see upsert_many).
CHUNK = 256

# The columns most runs leave empty (NULL; detached 0): a row whose columns these all are is
# written by the narrow upsert, which binds the others only and sets these (on a conflict) to
# empty: 2.9 us a row instead of 5.1-5.3 (the NULLs cost their binding, and SQLite its share).
EMPTY = (
    "exit_code", "error", "traceback", "cancel_reason", "pid", "pid_start_time", "detached",
    "identity",
)  # fmt: skip
NARROW = tuple(c for c in WRITTEN if c not in EMPTY)
UPSERT_NARROW = (
    f"INSERT INTO runs ({', '.join(NARROW)}) VALUES ({', '.join('?' for _ in NARROW)}) "
    "ON CONFLICT (engine_id, name, attempt) DO UPDATE SET "
    + ", ".join(
        [f"{c} = excluded.{c}" for c in NARROW[3:]]
        + [f"{c} = {'0' if c == 'detached' else 'NULL'}" for c in EMPTY]
    )
)
_narrow_of = operator.itemgetter(*[WRITTEN.index(c) for c in NARROW])
_EMPTY_AT = tuple(WRITTEN.index(c) for c in EMPTY)
assert NARROW[:3] == WRITTEN[:3] == ("engine_id", "name", "attempt")  # the key, first in both


@functools.lru_cache(maxsize=32)
def _upsert_rows(n: int, narrow: bool = False) -> str:
    # The upsert (narrow or not) with n rows of parameters after VALUES.
    head, conflict = (UPSERT_NARROW if narrow else UPSERT).split(" ON CONFLICT ", 1)
    insert, values = head.split(" VALUES ", 1)
    return f"{insert} VALUES {', '.join([values] * n)} ON CONFLICT {conflict}"


def upsert_many(con: sqlite3.Connection, rows: list[list[Any]]) -> None:
    """Write ``rows`` (:data:`WRITTEN` order) with :data:`UPSERT`, :data:`CHUNK` per statement.

    The rows whose :data:`EMPTY` columns are all empty go first, with the narrow upsert, the
    others after, in order; when one job has runs in both (a run written twice in a batch, a
    failed attempt and its retry), all in order with the wide one: the runs of a job are
    inserted in the order given (their ids in the order of their attempts). The rest of each
    (fewer than CHUNK) in statements of the powers of two its count is made of (137 = 128 + 8
    + 1): few statements, each prepared once for good (a statement per count would be prepared
    again for most batches; executemany would step once per row).
    """
    ex, er, tb, cr, pid, pst, det, ide = _EMPTY_AT
    narrow: list[Any] = []
    wide: list[list[Any]] = []
    for row in rows:
        if (
            row[ex] is None
            and row[er] is None
            and row[tb] is None
            and row[cr] is None
            and row[pid] is None
            and row[pst] is None
            and not row[det]
            and row[ide] is None
        ):
            narrow.append(_narrow_of(row))
        else:
            wide.append(row)
    if narrow and wide:
        # Narrow first, a run would be inserted before a run of the same job given earlier
        # (a retry after the failed attempt: its id, which orders the runs of one submission,
        # would come first), or a run written twice would keep the earlier row.
        jobs = {(r[0], r[1]) for r in wide}
        if any((r[0], r[1]) in jobs for r in narrow):
            narrow, wide = [], rows
    _upsert_chunks(con, narrow, narrow=True)
    _upsert_chunks(con, wide, narrow=False)


def _upsert_chunks(con: sqlite3.Connection, rows: list[Any], *, narrow: bool) -> None:
    chain = itertools.chain.from_iterable
    start, left = 0, len(rows)
    size = CHUNK
    while left:
        if left >= size:
            con.execute(_upsert_rows(size, narrow), list(chain(rows[start : start + size])))
            start += size
            left -= size
        else:
            size //= 2


TRANSITIONS = WRITTEN.index("transitions")
NAME = WRITTEN.index("name")
ATTEMPT = WRITTEN.index("attempt")
row_values = operator.itemgetter(*WRITTEN)


@contextlib.contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back when it raises.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so that two writers wait in turn (on the
    busy timeout) instead of deadlocking when both upgrade a read lock.
    """
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise


def schema_version(con: sqlite3.Connection) -> int | None:
    """The steps a database has had (None: an empty file, or one being created)."""
    (user_version,) = con.execute("PRAGMA user_version").fetchone()
    if user_version:
        return int(user_version)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return int(row[0]) if row is not None else None


def migrate(con: sqlite3.Connection) -> int:
    """Apply the steps the database lacks (all of them to a new one); its version after."""
    with transaction(con):
        # Read again under the write lock: another engine may have migrated it meanwhile.
        version = schema_version(con) or 0
        if version < SCHEMA_VERSION:
            for step in STEPS[version:]:
                # Statement by statement: executescript() would commit the transaction first.
                for statement in step:
                    con.execute(statement)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return max(version, SCHEMA_VERSION)


def connect(
    path: Path, busy_timeout: float, create: bool = False, *, read_only: bool = False
) -> sqlite3.Connection:
    """A connection to ``path`` with its version checked (created or migrated when ``create``).

    With ``read_only``, for a reader that never writes: ``path`` must exist, and a folder that
    cannot be written is no obstacle (see :func:`_open_read_only`).

    Raises
    ------
    StoreError
        The file is not a database, cannot be opened, or was written by a newer version.
    """
    if create:
        # User-only: the history holds commands, results and tracebacks. SQLite gives the
        # -wal and -shm files the permissions of the database file.
        private_dir(path.parent)
        create_private(path)
    try:
        # isolation_level=None: transactions are explicit (see transaction()).
        if read_only:
            con = _open_read_only(path, busy_timeout)
        else:
            con = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        msg = f"cannot open the history database at {path}: {exc}"
        raise StoreError(msg) from exc
    try:
        if create:
            retry_locked(lambda: con.execute("PRAGMA journal_mode=WAL"), busy_timeout)
        if not read_only:
            con.execute("PRAGMA synchronous=NORMAL")
        version = schema_version(con)
        if version is not None and version > SCHEMA_VERSION:
            msg = (
                f"the history database at {path} was written by a newer "
                f"jupyter_executor (schema {version} > {SCHEMA_VERSION}); upgrade"
            )
            raise StoreError(msg)
        if create and (version or 0) < SCHEMA_VERSION:
            migrate(con)
    except sqlite3.Error as exc:
        con.close()
        msg = f"cannot use the history database at {path}: {exc}"
        raise StoreError(msg) from exc
    except BaseException:
        con.close()
        raise
    return con


def _open_read_only(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection that reads ``path`` (which must exist), also where nothing can be written.

    Opened as usual first (``mode=rw`` only so that a missing file is not created): a reader
    that could write leaves the folder as it was, where SQLite's ``mode=ro`` would leave the
    ``-wal`` and ``-shm`` files it made behind. A database in WAL mode needs a ``-shm`` file
    beside it, though, which a read-only folder (or mount) cannot get: when none exists and no
    ``-wal`` either (its last writer closed it: nothing is in flight), the file is read as
    *immutable*, without one. With a ``-wal`` left in such a folder its runs could not be read
    that way: the error is raised.
    """
    uri = "file:" + urllib.parse.quote(os.fsencode(path.absolute()))
    con = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=busy_timeout, isolation_level=None)
    try:
        con.execute("PRAGMA user_version").fetchone()  # the first read opens the WAL index
    except sqlite3.OperationalError:
        con.close()
        if Path(f"{path}-wal").exists():
            raise
    else:
        return con
    immutable = f"{uri}?mode=ro&immutable=1"
    return sqlite3.connect(immutable, uri=True, timeout=busy_timeout, isolation_level=None)


def retry_locked(step: Callable[[], Any], timeout: float) -> None:
    """Run ``step``, again while the database is locked, for up to ``timeout`` seconds.

    Switching to WAL needs a moment alone with the file; the busy handler does not always cover
    it, so wait for a second engine that is creating the same file.
    """
    deadline = time.monotonic() + timeout
    for pause in itertools.chain((0.01, 0.02, 0.05), itertools.repeat(0.1)):
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)


def check_writable(folder: Path, db: Path) -> None:
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
