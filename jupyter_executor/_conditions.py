"""Conditions that gate when a job may start, combinable with ``&`` and ``|``.

A condition answers :meth:`Condition.check` with True (met: the job may start), False (can never
be met: the job is cancelled with :meth:`Condition.describe` as the reason) or None (not yet).
The engine asks again only when something the condition depends on changes: a job it names
finishes (:meth:`Condition.jobs`) or a time it names comes (:meth:`Condition.wake_at`); there is
no polling loop whose cost grows with the number of waiting jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import Job

__all__ = [
    "AfterAll",
    "AfterAny",
    "AfterJob",
    "AfterTime",
    "AllOf",
    "AnyOf",
    "Condition",
    "FunctionCondition",
]

Lookup = Callable[[Any], "Job"]


class Condition:
    """Base class of conditions; subclass it and implement :meth:`check` for your own."""

    def check(self, lookup: Lookup) -> bool | None:
        """True when met, False when it can never be met, None when not yet."""
        raise NotImplementedError

    def jobs(self) -> tuple[Any, ...]:
        """The jobs (or names) whose end may change the answer."""
        return ()

    def wake_at(self) -> float | None:
        """An epoch time at which the answer may change by itself, or None."""
        return None

    def describe(self) -> str:
        """A short human description, used in messages."""
        return type(self).__name__

    def __and__(self, other: Condition) -> AllOf:
        return AllOf(self, other)

    def __or__(self, other: Condition) -> AnyOf:
        return AnyOf(self, other)


def _status_of(lookup: Lookup, ref: Any) -> str:
    return str(lookup(ref).status)


def _name(ref: Any) -> str:
    return ref if isinstance(ref, str) else str(ref.name)


@dataclass(frozen=True)
class AfterJob(Condition):
    """Met when ``job`` is done; with ``success=False``, when it has finished in any way."""

    job: Any
    success: bool = True

    def check(self, lookup: Lookup) -> bool | None:
        status = _status_of(lookup, self.job)
        if status == "done":
            return True
        if status in ("failed", "cancelled"):
            return not self.success
        return None

    def jobs(self) -> tuple[Any, ...]:
        return (self.job,)

    def describe(self) -> str:
        return f"after {_name(self.job)!r}" + ("" if self.success else " finishes")


class AllOf(Condition):
    """Met when every condition is met."""

    def __init__(self, *conditions: Condition) -> None:
        self.conditions = tuple(conditions)

    def check(self, lookup: Lookup) -> bool | None:
        answers = [c.check(lookup) for c in self.conditions]
        if any(a is False for a in answers):
            return False
        return True if all(answers) else None

    def jobs(self) -> tuple[Any, ...]:
        return tuple(j for c in self.conditions for j in c.jobs())

    def wake_at(self) -> float | None:
        times = [t for c in self.conditions if (t := c.wake_at()) is not None]
        return min(times) if times else None

    def describe(self) -> str:
        return "(" + " & ".join(c.describe() for c in self.conditions) + ")"


class AnyOf(AllOf):
    """Met when at least one condition is met."""

    def check(self, lookup: Lookup) -> bool | None:
        answers = [c.check(lookup) for c in self.conditions]
        if any(a is True for a in answers):
            return True
        return False if all(a is False for a in answers) else None

    def describe(self) -> str:
        return "(" + " | ".join(c.describe() for c in self.conditions) + ")"


def AfterAll(*jobs: Any, success: bool = True) -> AllOf:
    """Met when all ``jobs`` are done (or finished, with ``success=False``)."""
    return AllOf(*(AfterJob(j, success) for j in _flatten(jobs)))


def AfterAny(*jobs: Any, success: bool = True) -> AnyOf:
    """Met when any of ``jobs`` is done (or finished, with ``success=False``)."""
    return AnyOf(*(AfterJob(j, success) for j in _flatten(jobs)))


@dataclass(frozen=True)
class AfterTime(Condition):
    """Met from a point in time on (a datetime, an ISO string or epoch seconds)."""

    when: datetime | str | float
    _at: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        when = self.when
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        at = when.timestamp() if isinstance(when, datetime) else float(when)
        object.__setattr__(self, "_at", at)

    def check(self, lookup: Lookup) -> bool | None:
        return True if time.time() >= self._at else None

    def wake_at(self) -> float | None:
        return self._at

    def describe(self) -> str:
        return f"after {datetime.fromtimestamp(self._at).isoformat(timespec='seconds')}"


class FunctionCondition(Condition):
    """A user-defined condition from a function returning a truth value.

    It is asked again when one of ``watch`` finishes and, if ``every`` is given, every ``every``
    seconds (opt-in polling, for conditions on the outside world such as a file appearing).
    """

    def __init__(
        self,
        fn: Callable[[], bool | None],
        *,
        watch: Iterable[Any] = (),
        every: float | None = None,
    ) -> None:
        self.fn = fn
        self.watch = tuple(watch)
        self.every = every

    def check(self, lookup: Lookup) -> bool | None:
        return True if self.fn() else None

    def jobs(self) -> tuple[Any, ...]:
        return self.watch

    def wake_at(self) -> float | None:
        return time.time() + self.every if self.every else None

    def describe(self) -> str:
        return getattr(self.fn, "__name__", "condition")


def _flatten(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple, set, frozenset)):
            out.extend(_flatten(item))
        elif item is not None:
            out.append(item)
    return out
