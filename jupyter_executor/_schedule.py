"""Schedules: when a job runs, from a period (``every="2 min"``), a cron expression and a start.

Pure time arithmetic: no threads, no timers. The engine asks :meth:`Schedule.first` when a job
is submitted and :meth:`Schedule.next_after` after each run, and arms its own timer.

All datetimes returned are timezone-aware. A naive datetime given in is local time. A period
is a fixed duration (``every="1 day"`` is 24 hours, also across a daylight-saving change);
a cron expression is matched against local wall-clock time, as cron does.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

from croniter import croniter

from ._duration import parse_duration
from .errors import InvalidOption, InvalidOptionType

__all__ = ["Schedule", "check_cron", "parse_every", "parse_start"]

_EVERY_EXAMPLES = "e.g. '30 s', '2 min', '1h30m', '1 day', 'hour', 'week' or a number of seconds"
_START_EXAMPLES = "e.g. '2030-01-31 08:00', '2030-01-31T08:00:00+01:00', '08:00' or a datetime"


#: The longest period of a schedule: now + a period must stay a datetime (year 9999 at most).
MAX_EVERY = timedelta(days=36_525)


def parse_every(value: str | timedelta | float) -> timedelta:
    """The period of a schedule, from a duration string, a timedelta or seconds.

    Parameters
    ----------
    value
        ``"30 s"``, ``"2 min"``, ``"1h30m"``, ``"1 day"``, a bare unit (``"day"``, ``"hour"``,
        ``"week"``), ``"hourly"``/``"daily"``/``"weekly"``, a :class:`~datetime.timedelta` or a
        number of seconds.

    Returns
    -------
    timedelta
        A strictly positive duration.

    Raises
    ------
    InvalidOption
        (A ValueError.) The value is zero, negative or not understood (the message gives examples).

    Examples
    --------
    >>> parse_every("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_every("day")
    datetime.timedelta(days=1)
    """
    if isinstance(value, timedelta) and timedelta(0) < value <= MAX_EVERY:
        return value  # exactly (a round trip through float seconds could round it)
    # The one duration grammar (_duration.py), with a schedule's own messages.
    try:
        seconds = parse_duration(value, "every")
    except InvalidOptionType:
        msg = f"every= takes a duration string, a timedelta or seconds, not {value!r}"
        raise InvalidOptionType(msg) from None
    except InvalidOption:  # not a duration, zero or negative
        raise InvalidOption(_bad_every(value)) from None
    try:
        period = timedelta(seconds=seconds)
    except OverflowError:  # beyond 999,999,999 days
        raise InvalidOption(_bad_every(value)) from None
    if period <= timedelta(0):  # under a microsecond: a timedelta of 0, a period that spins
        raise InvalidOption(_bad_every(value))
    if period > MAX_EVERY:  # the next time would be past what a datetime holds (year 9999)
        msg = f"cannot use every={value!r}: a schedule's period is at most 100 years"
        raise InvalidOption(msg)
    return period


def _bad_every(value: object) -> str:
    return f"cannot use every={value!r}: give a positive duration, {_EVERY_EXAMPLES}"


def parse_start(value: str | datetime | float | None) -> datetime | None:
    """When a schedule starts, as a timezone-aware datetime.

    Parameters
    ----------
    value
        An ISO 8601 string (``"2030-01-31 08:00"``, with or without a UTC offset), a time of
        day alone (``"08:00"``: today at that time), a :class:`~datetime.datetime`, epoch
        seconds, or None. Naive values are local time.

    Returns
    -------
    datetime or None
        A timezone-aware datetime; None for None.

    Raises
    ------
    InvalidOption
        (A ValueError.) The string is not a date-time (the message gives examples).

    Examples
    --------
    >>> parse_start("2030-01-31T08:00:00+00:00").isoformat()
    '2030-01-31T08:00:00+00:00'
    >>> parse_start(None) is None
    True
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            msg = f"cannot use start={value!r}: give a date-time, {_START_EXAMPLES}"
            raise InvalidOption(msg)
        return datetime.fromtimestamp(value).astimezone()
    if isinstance(value, str):
        text = value.strip()
        try:
            return _aware(datetime.fromisoformat(text))
        except ValueError:
            pass
        try:
            at = time.fromisoformat(text)
        except ValueError:
            msg = f"cannot use start={value!r}: give a date-time, {_START_EXAMPLES}"
            raise InvalidOption(msg) from None
        if at.tzinfo is not None:
            return datetime.combine(datetime.now(at.tzinfo).date(), at)
        return _aware(datetime.combine(date.today(), at))
    msg = f"start= takes a date-time string, a datetime or epoch seconds, not {value!r}"
    raise InvalidOptionType(msg)


def check_cron(cron: object) -> str:
    """``cron`` if it is a cron expression croniter understands.

    Raises
    ------
    InvalidOption
        Not a cron expression (one line, naming it).
    InvalidOptionType
        Not a string.
    """
    if not isinstance(cron, str):
        msg = f"cron= takes a cron expression string, not {cron!r}"
        raise InvalidOptionType(msg)
    try:
        matcher = croniter(cron, datetime(2000, 1, 1))
    # croniter's errors are ValueErrors (CroniterError is not exported before 2.0.2),
    # but for a field out of range in some versions, a TypeError
    except (ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())
        msg = f"bad cron expression {cron!r}: {reason}"
        raise InvalidOption(msg) from None
    try:
        # Well formed is not enough: "0 0 31 2 *" (February 31st) never comes, and its job
        # would fail only when the engine asks for its first time.
        matcher.get_next(datetime)
    except ValueError:
        msg = f"bad cron expression {cron!r}: no date ever matches it"
        raise InvalidOption(msg) from None
    return cron


def _aware(moment: datetime) -> datetime:
    # astimezone() on a naive datetime reads it as local time (with the DST rule of that day).
    return moment if moment.tzinfo is not None else moment.astimezone()


class Schedule:
    """When a job runs: every period, or at the times of a cron expression, from ``start`` on.

    Parameters
    ----------
    every
        A period (see :func:`parse_every`); runs are at ``start + k * every``.
    cron
        A cron expression (5 fields, or 6 with seconds last; ``@daily`` etc.), matched against
        local wall-clock time.
    start
        The first possible run (see :func:`parse_start`). With neither ``every`` nor ``cron``
        the schedule is a single run at ``start``.

    Raises
    ------
    InvalidOption
        (A ValueError.) A bad period, cron expression or start, or both ``every`` and ``cron``.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> s = Schedule(every="1 h", start="2030-01-01T00:00:00+00:00")
    >>> s.next_after(datetime(2030, 1, 1, 0, 30, tzinfo=timezone.utc)).isoformat()
    '2030-01-01T01:00:00+00:00'
    >>> Schedule(cron="0 2 * * *")
    Schedule(cron='0 2 * * *')
    """

    __slots__ = ("cron", "every", "start")

    def __init__(
        self,
        every: str | timedelta | float | None = None,
        cron: str | None = None,
        start: str | datetime | float | None = None,
    ) -> None:
        if every is not None and cron is not None:
            msg = "give every= or cron=, not both"
            raise InvalidOption(msg)
        self.every: timedelta | None = parse_every(every) if every is not None else None
        self.cron: str | None = None
        if cron is not None:
            self.cron = check_cron(cron)
        self.start: datetime | None = parse_start(start)

    def next_after(self, t: datetime) -> datetime:
        """The first run time strictly after ``t`` (and not before ``start``).

        Parameters
        ----------
        t
            Usually the previous *scheduled* time (not when that run finished), so that runs
            do not drift. Naive means local time.

        Raises
        ------
        ValueError
            A single-run schedule (``start`` only) has no run after its start.
        """
        t = _aware(t)
        start = self.start
        if self.every is not None:
            if start is None:
                return t + self.every
            if t < start:
                return start
            return start + ((t - start) // self.every + 1) * self.every
        if self.cron is not None:
            if start is not None and t < start:
                return self._cron_at_or_after(start)
            return self._cron_after(t)
        if start is not None and t < start:
            return start
        msg = f"a single-run schedule (start={start}) has no run after {t}"
        raise ValueError(msg)

    def first(self, now: datetime) -> datetime:
        """The first run time, seen at ``now``.

        ``start`` when it is still ahead (for cron, the first matching time from ``start``);
        otherwise the next run after ``now``. With no ``start``: ``now`` for a period, the next
        matching time for cron. A single-run schedule returns ``start`` even when it is past
        (the caller decides whether that is an error), or ``now`` without a start.
        """
        now = _aware(now)
        start = self.start
        if self.every is not None:
            if start is None:
                return now
            return start if start >= now else self.next_after(now)
        if self.cron is not None:
            if start is not None and start >= now:
                return self._cron_at_or_after(start)
            return self._cron_after(now)
        return start if start is not None else now

    def _cron_after(self, t: datetime) -> datetime:
        assert self.cron is not None
        # Matched in local wall-clock time (naive), then made aware: that is what cron does,
        # and it keeps "0 2 * * *" at 02:00 on both sides of a daylight-saving change.
        local = t.astimezone().replace(tzinfo=None)
        nxt: datetime = croniter(self.cron, local).get_next(datetime)
        return nxt.astimezone()

    def _cron_at_or_after(self, t: datetime) -> datetime:
        nxt = self._cron_after(t - timedelta(microseconds=1))
        return nxt if nxt >= t else self._cron_after(nxt)

    def __repr__(self) -> str:
        start = None if self.start is None else self.start.isoformat()
        given = {"every": self.every, "cron": self.cron, "start": start}
        return f"Schedule({', '.join(f'{k}={v!r}' for k, v in given.items() if v is not None)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (self.every, self.cron, self.start) == (other.every, other.cron, other.start)

    def __hash__(self) -> int:
        return hash((self.every, self.cron, self.start))
