"""What the history store writes at once, in the caller's thread: one room of the store.

The writer thread (``_writer.py``) batches the snapshots of the engine's jobs; the rest is
written here, each in one transaction before the call returns: the durable schedules (see
``_durable.py``; a schedule the user armed is on disk at once), what is learnt of a run after
the fact (the pid, the exit of a detached process of an old kernel), a make-like run's files and
the notes of runs that did not run. :class:`HistoryStore` inherits these methods; they use only
its transaction and read helpers.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._status import FINISHED
from .._text import safe_text

logger = logging.getLogger("jupyter_executor")

T = TypeVar("T")

__all__ = ["DirectWrites"]

_FINISHED = frozenset(s.value for s in FINISHED)


class DirectWrites:
    """Schedules, late-learnt pids and exits, files and notes (a part of HistoryStore)."""

    if TYPE_CHECKING:
        path: Path
        engine_id: str

        def _transaction(
            self, what: str, step: Callable[[sqlite3.Connection], T], *, register: bool = False
        ) -> T: ...

        def _read(
            self, sql: str, params: Iterable[Any] = (), *, needs: str = "runs", flush: bool = True
        ) -> tuple[list[str], list[tuple[Any, ...]]]: ...

    def save_schedule(self, name: str, spec: dict[str, Any]) -> None:
        """Store (or replace) the schedule ``name``, armed by this engine; written at once.

        ``created`` is kept when the same spec is saved again (a re-armed schedule).
        """
        text = json.dumps(spec, sort_keys=True)
        self._transaction(
            "the schedules",
            lambda con: con.execute(
                "INSERT INTO schedules (name, spec, created, owner) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "created = CASE WHEN spec = excluded.spec THEN created ELSE excluded.created END, "
                "spec = excluded.spec",
                (safe_text(name), text, time.time(), self.engine_id),
            ),
            register=True,
        )

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule ``name`` for good; True if there was one."""
        if not self.path.exists():
            return False
        cur = self._transaction(
            "the schedules",
            lambda con: con.execute("DELETE FROM schedules WHERE name = ?", (safe_text(name),)),
            register=True,
        )
        return bool(cur.rowcount)

    def claim_schedule(self, name: str, owner: str | None) -> bool:
        """Take schedule ``name`` for this engine if ``owner`` still has it; True if taken.

        A compare-and-set: of two engines re-arming the schedule of a dead one at once, one
        gets it.
        """
        cur = self._transaction(
            "the schedules",
            lambda con: con.execute(
                "UPDATE schedules SET owner = ? WHERE name = ? AND owner IS ?",
                (self.engine_id, safe_text(name), owner),
            ),
            register=True,
        )
        return bool(cur.rowcount)

    def release_schedules(self) -> None:
        """Let the next engine re-arm the schedules this one has armed (at its shutdown)."""
        if self.path.exists():
            self._transaction(
                "the schedules",
                lambda con: con.execute(
                    "UPDATE schedules SET owner = NULL WHERE owner = ?", (self.engine_id,)
                ),
                register=True,
            )

    def schedules(self) -> list[dict[str, Any]]:
        """Every stored schedule, by name, with where its owner runs.

        Each row has ``name``, ``spec`` (a dict), ``created``, ``owner`` and ``owner_host``,
        ``owner_pid``, ``owner_pid_start_time`` (None when no engine has it armed).
        """
        columns, rows = self._read(
            "SELECT schedules.*, engines.host AS owner_host, engines.pid AS owner_pid, "
            "engines.pid_start_time AS owner_pid_start_time FROM schedules "
            "LEFT JOIN engines ON engines.engine_id = schedules.owner ORDER BY name",
            needs="schedules",
            flush=False,
        )
        out = []
        for row in rows:
            data = dict(zip(columns, row, strict=True))
            try:
                spec = json.loads(data["spec"])
            except (TypeError, ValueError, RecursionError):
                spec = None
            if not isinstance(spec, dict):
                # One damaged row must not keep every other schedule from being re-armed.
                logger.warning(
                    "jupyter_executor: the stored schedule of %r is not readable; skipped",
                    data["name"],
                )
                continue
            data["spec"] = spec
            out.append(data)
        return out

    def record_pid(self, run_id: int, pid: int, pid_start_time: float | None) -> None:
        """Record the process of an open run, learnt after the fact (written at once)."""
        self._transaction(
            "the history",
            lambda con: con.execute(
                "UPDATE runs SET pid = ?, pid_start_time = ? WHERE id = ? AND finished IS NULL",
                (pid, pid_start_time, run_id),
            ),
        )

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
        if status not in _FINISHED:
            msg = f"a run ends done, failed or cancelled, not {status!r}"
            raise ValueError(msg)

        def end(con: sqlite3.Connection) -> None:
            row = con.execute(
                "SELECT started, transitions FROM runs WHERE id = ? AND finished IS NULL",
                (run_id,),
            ).fetchone()
            if row is None:
                return
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

        self._transaction("the history", end)

    def record_files(
        self, name: str, attempt: int, files: list[tuple[str, str, str | None, int, float]]
    ) -> None:
        """Record the ``(role, path, sha256, size, mtime)`` of a run's inputs and outputs.

        Written at once, in the caller's thread (the engine calls it from a worker thread,
        after hashing). ``role`` is ``"input"`` or ``"output"``; paths are absolute.
        """
        now = time.time()
        self._transaction(
            "the history",
            lambda con: con.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(self.engine_id, name, attempt, *f, now) for f in files],
            ),
        )

    def record_note(self, name: str, status: str, note: str, when: float) -> None:
        """Record a run that did not run (``note`` as its reason), e.g. runs missed while no
        engine was alive. Filed under attempts 0, -1, ... of this engine, apart from its runs."""
        if status not in _FINISHED:
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

        self._transaction("the schedules", insert, register=True)
