"""Conditions that gate when a job may start, combinable with ``&`` and ``|``.

A condition answers :meth:`Condition.check` with True (met: the job may start), False (can never
be met: the job is cancelled with :meth:`Condition.describe` as the reason) or None (not yet).
The engine asks again when something the condition depends on changes: a job it names
finishes (:meth:`Condition.jobs`) or a time it names comes (:meth:`Condition.wake_at`).

A condition that names neither (executor-engine's ``satisfy(engine)`` form, or a ``check``
with no ``jobs()``/``wake_at()``) depends on things the engine cannot see: the engine asks it
again whenever one of its jobs finishes, and every :attr:`Condition.poll_every` seconds (one
timer for all such jobs, not a loop per job). :meth:`Condition.polls` says which kind it is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import InvalidOption, InvalidOptionType

__all__ = ["AfterAll", "AfterAny", "AfterJob", "AfterTime", "AllOf", "AnyOf", "Condition"]
__all__ += ["FunctionCondition"]  # not re-exported: what a plain callable condition becomes

#: The engine's lookup: a job or a name -> the Job. Typed Any so that this module, which job.py
#: imports, never imports job.py back (no import circle, issue 10).
Lookup = Callable[[Any], Any]


class Condition:
    """Base class of conditions; subclass it and implement :meth:`check` or :meth:`satisfy`.

    ``check(lookup)`` is the full form (True, False for "never", None for "not yet"), woken by
    :meth:`jobs` and :meth:`wake_at`. ``satisfy(engine)`` is executor-engine's form: return
    True when the job may start; it is asked again on every job that finishes and every
    :attr:`poll_every` seconds.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from jupyter_executor import Condition, Engine
    >>> @dataclass
    ... class FewRunning(Condition):
    ...     most: int = 4
    ...     def satisfy(self, engine):
    ...         return engine.counts().get("running", 0) < self.most
    >>> with Engine() as engine:
    ...     job = engine.submit(sum, [1, 2], condition=FewRunning(2))
    ...     engine.wait(timeout=30), job.result()
    (True, 3)
    """

    #: Seconds between two checks of a condition the engine cannot be woken for.
    poll_every: float = 1.0

    def check(self, lookup: Lookup) -> bool | None:
        """True when met, False when it can never be met, None when not yet.

        The default asks :meth:`satisfy` (True, or None for "not yet").
        """
        if not _defines(self, "satisfy"):
            msg = f"{type(self).__name__} defines neither check(lookup) nor satisfy(engine)"
            raise NotImplementedError(msg)
        # The engine's lookup is its bound method: its __self__ is the engine.
        return True if self.satisfy(getattr(lookup, "__self__", None)) else None

    def satisfy(self, engine: Any) -> bool:
        """executor-engine's form: True when the job may start (``engine`` is the Engine)."""
        raise NotImplementedError

    def polls(self) -> bool:
        """True when the engine must ask again on every job end and on a timer.

        That is a :meth:`satisfy` condition, or a :meth:`check` that names no job and no time.
        """
        if _defines(self, "satisfy") and not _defines(self, "check"):
            return True
        return not self.jobs() and not _defines(self, "wake_at")

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

    def polls(self) -> bool:
        return any(c.polls() for c in self.conditions)

    @property
    def poll_every(self) -> float:  # type: ignore[override]
        return min((c.poll_every for c in self.conditions if c.polls()), default=1.0)

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
    return AllOf(*(AfterJob(j, success) for j in flatten(jobs)))


def AfterAny(*jobs: Any, success: bool = True) -> AnyOf:
    """Met when any of ``jobs`` is done (or finished, with ``success=False``)."""
    return AnyOf(*(AfterJob(j, success) for j in flatten(jobs)))


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
        if math.isnan(at):  # never met, and never not met: its wake-up would spin the loop
            msg = f"AfterTime({self.when!r}): not a point in time"
            raise InvalidOption(msg)
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

    def polls(self) -> bool:
        # Neither jobs to watch nor a period: it would never be asked again otherwise.
        return not self.watch and not self.every

    def describe(self) -> str:
        return getattr(self.fn, "__name__", "condition")


def _defines(condition: Condition, method: str) -> bool:
    """True when ``condition``'s class overrides :class:`Condition`'s ``method``."""
    return getattr(type(condition), method) is not getattr(Condition, method)


def check_condition(condition: Any) -> None:
    """Refuse, with a one-line message, what cannot work as a condition (at submit time).

    Raises
    ------
    InvalidOptionType
        ``condition`` is not a :class:`Condition`, or defines neither ``check`` nor ``satisfy``
        (a ``TypeError``).
    """
    if not isinstance(condition, Condition):
        msg = f"condition must be a Condition (AfterJob, AfterTime, ...), not {condition!r}"
        raise InvalidOptionType(msg)
    if isinstance(condition, AllOf):
        for part in condition.conditions:
            check_condition(part)
    elif not _defines(condition, "check") and not _defines(condition, "satisfy"):
        msg = (
            f"condition {type(condition).__name__} defines neither check(lookup) nor "
            "satisfy(engine): implement one of them"
        )
        raise InvalidOptionType(msg)


def flatten(items: Iterable[Any]) -> list[Any]:
    """``items`` with nested lists, tuples and sets opened and None left out."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple, set, frozenset)):
            out.extend(flatten(item))
        elif item is not None:
            out.append(item)
    return out
