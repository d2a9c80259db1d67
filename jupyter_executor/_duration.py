"""Durations: one grammar for every option that takes seconds (timeout, every, delays, magics).

A duration is a number of seconds (``90``, ``1.5``, a :class:`~datetime.timedelta`) or text: a
bare number (``"90"``), one or more ``<number> <unit>`` parts (``"5m"``, ``"2 min"``,
``"1h30m"``, ``"1 h, 30 min"``, ``"1d"``), a bare unit (``"hour"``) or an adverb
(``"hourly"``, ``"daily"``, ``"weekly"``). Units: ms, s, m/min, h/hr, d/day, w/week (with their
plurals).
"""

from __future__ import annotations

import argparse
import math
import numbers
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .errors import InvalidOption, InvalidOptionType

__all__ = [
    "DURATIONS",
    "EXAMPLES",
    "Duration",
    "duration_argument",
    "flag_expects",
    "parse_duration",
    "seconds_in",
]

#: What a duration option accepts: seconds, a timedelta, or text such as ``"1h30m"``.
Duration = float | str | timedelta

_UNITS: dict[str, float] = {}
for _names, _seconds in (
    (("ms", "msec", "millisecond", "milliseconds"), 0.001),
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "wk", "week", "weeks"), 7 * 86400),
):
    for _name in _names:
        _UNITS[_name] = _seconds
_ADVERBS = {"hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0}

# One "<number> <unit>" part; a whole duration is one or more of them ("1h30m", "1 h 30 min").
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)?\s*([a-z]+)\s*,?")

#: What error messages suggest.
EXAMPLES = "seconds, or text like '90', '5m', '1h30m'"
#: What the magics' help and errors show.
DURATIONS = "90, 1.5, 5m, 2 min, 1h30m, 1d"


def seconds_in(text: str) -> float | None:
    """The seconds ``text`` says (any sign), or None when it is not a duration.

    Examples
    --------
    >>> seconds_in("1h30m"), seconds_in("2 min"), seconds_in("1.5"), seconds_in("soon")
    (5400.0, 120.0, 1.5, None)
    """
    words = text.strip().lower()
    if not words:
        return None
    try:
        seconds = float(words)  # a bare number is seconds, as for a float argument
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    if words in _ADVERBS:
        return _ADVERBS[words]
    parts: list[tuple[str | None, str]] = []
    pos = 0
    while pos < len(words):
        match = _PART.match(words, pos)
        if match is None or match.group(2) not in _UNITS:
            return None
        parts.append((match.group(1), match.group(2)))
        pos = match.end()
    if len(parts) > 1 and any(number is None for number, _ in parts):
        return None  # a bare unit ("day") is a whole duration only by itself
    seconds = sum(float(number or 1) * _UNITS[unit] for number, unit in parts)
    return seconds if math.isfinite(seconds) else None  # ("1" and 400 zeros "s")


def parse_duration(value: Any, option: str, *, zero: bool = False) -> float:
    """Seconds from a number, a timedelta or duration text, for the option named ``option``.

    Parameters
    ----------
    value
        ``90``, ``1.5``, ``timedelta(minutes=5)``, ``"90"``, ``"5m"``, ``"2 min"``, ``"1h30m"``...
    option
        How the error message names the option (``"timeout"``, ``"--timeout"``).
    zero
        Accept 0 (a delay may be zero; a timeout or a period may not).

    Returns
    -------
    float
        Finite seconds, > 0 (>= 0 with ``zero``).

    Raises
    ------
    InvalidOption
        Text that is not a duration, or a duration out of range (one line, naming the option).
    InvalidOptionType
        Neither a number, a timedelta nor text.

    Examples
    --------
    >>> parse_duration("1h30m", "timeout")
    5400.0
    >>> parse_duration("abc", "timeout")
    Traceback (most recent call last):
    ...
    jupyter_executor.errors.InvalidOption: timeout='abc' is not a duration (seconds, or text like '90', '5m', '1h30m')
    """  # noqa: E501
    if isinstance(value, timedelta):
        seconds: float | None = value.total_seconds()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond a float (10**400)
            seconds = None
        if seconds is not None and not math.isfinite(seconds):
            seconds = None
    elif isinstance(value, str):
        seconds = seconds_in(value)
    else:
        msg = f"{option}={value!r} is not a duration ({EXAMPLES}, or a timedelta)"
        raise InvalidOptionType(msg)
    if seconds is None:
        msg = f"{option}={value!r} is not a duration ({EXAMPLES})"
        raise InvalidOption(msg)
    if seconds < 0 or (seconds == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        msg = f"{option}={value!r} must be a duration {bound} ({EXAMPLES})"
        raise InvalidOption(msg)
    return seconds


def flag_expects(*, zero: bool = False) -> str:
    """What a duration flag takes, as its one-line errors say it."""
    bound = "a positive number of seconds, 0," if zero else "a positive number of seconds"
    return f"{bound} or a duration ({DURATIONS})"


def duration_argument(option: str, *, zero: bool = False) -> Callable[[str], float]:
    """An argparse ``type=`` for a flag that takes a duration (the magics', the CLI's).

    argparse shows what it raises as ``argument --timeout: takes ..., not 'soon'``: one line,
    naming the flag and the value.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--grace", type=duration_argument("grace", zero=True))
    >>> parser.parse_args(["--grace", "1m30s"]).grace
    90.0
    """
    expects = flag_expects(zero=zero)

    def convert(text: str) -> float:
        try:
            return parse_duration(text, option, zero=zero)
        except InvalidOption:
            msg = f"takes {expects}, not {text!r}"
            raise argparse.ArgumentTypeError(msg) from None

    convert.__name__ = option  # argparse names the type in some messages
    return convert
