"""The job status enum and the only place where a status is allowed to change.

::

    created ──► pending ──► running ──► done
       │           │  ▲        │  └────► failed
       │           │  └────────┘  (retry)   │
       └───────────┴──► cancelled ◄─────────┘ (running → cancelled)
    done | failed | cancelled ──► pending   (rerun)
    pending ──► done                       (up to date: nothing to run)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .errors import InvalidTransition

__all__ = ["FINISHED", "Status", "check_transition", "set_status"]


class Status(StrEnum):
    """Where a job is in its life; compares equal to its string value (``job.status == "done"``)."""

    CREATED = "created"
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """True for ``done``, ``failed`` and ``cancelled``."""
        return self in FINISHED


FINISHED = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.PENDING, Status.CANCELLED}),
    Status.PENDING: frozenset({Status.RUNNING, Status.CANCELLED, Status.DONE}),
    Status.RUNNING: frozenset({Status.DONE, Status.FAILED, Status.CANCELLED, Status.PENDING}),
    Status.DONE: frozenset({Status.PENDING}),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset({Status.PENDING}),
}


def check_transition(name: str, old: Status, new: Status) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is allowed."""
    if new not in _ALLOWED[old]:
        msg = f"job {name!r} cannot go from {old.value} to {new.value}"
        raise InvalidTransition(msg)


def set_status(job: Any, new: Status) -> None:
    """Move ``job`` to status ``new``: the one place where a job's status changes.

    The engine's scheduler calls it under its lock (and ``Job.cancel`` before a job is
    submitted); raises :class:`InvalidTransition` for a move the table does not allow.
    """
    old = job.status
    if new not in _ALLOWED[old]:  # the table lookup inline: twice per job
        check_transition(str(job.name), old, new)  # raises, with the message
    job.status = new
