"""Reading the runs: the query of ``history()`` with its filters, and decoding its rows.

The filters (``name``, ``since``, ``status``, ``limit``) become SQL, so that SQLite reads only
what is returned (``since`` and ``limit`` through the ``runs_by_time`` index of ``_schema.py``);
their values are checked here, at the API's edge, with one-line :class:`InvalidOption` errors
that name the option and the value. The JSON columns are decoded a column at a time.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias, TypedDict

from .._duration import parse_duration
from .._status import Status
from .._text import safe_text
from ..errors import InvalidOption, InvalidOptionType
from ._schema import ORDER, ORDER_KEY

__all__ = ["HistoryFilters", "Since", "StatusFilter", "decode", "json_column", "select"]

#: ``since=`` of the history: epoch seconds, a datetime, or how long ago (``"2h"``, a timedelta).
Since: TypeAlias = "float | datetime | timedelta | str | None"
#: ``status=`` of the history: one status or several.
StatusFilter: TypeAlias = "str | Status | Iterable[str | Status] | None"


class HistoryFilters(TypedDict, total=False):
    """The filters of a history read besides the job's name, one list for every reader
    (:meth:`Engine.history <jupyter_executor.Engine.history>`, :meth:`HistoryStore.history`,
    :meth:`HistoryStore.frame`); :func:`select` checks their values."""

    since: Since
    status: StatusFilter
    limit: int | None


_STATUSES = frozenset(s.value for s in Status) - {Status.CREATED.value}
# The largest LIMIT SQLite takes (a signed 64-bit integer).
_MAX_ROWS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def select(name: Any, **filters: Any) -> tuple[str, list[Any]]:
    """The query of :meth:`HistoryStore.history` with its filters checked (InvalidOption)."""
    for key in filters.keys() - HistoryFilters.__optional_keys__:
        known = ", ".join(sorted(HistoryFilters.__optional_keys__))
        msg = f"history({key}={filters[key]!r}): not a filter of the history (name, {known})"
        raise InvalidOptionType(msg)  # a TypeError, as an unknown keyword is
    since, status, limit = filters.get("since"), filters.get("status"), filters.get("limit")
    where: list[str] = []
    params: list[Any] = []
    if name is not None:
        if not isinstance(name, str):
            msg = f"history(name={name!r}): a job name is text"
            raise InvalidOptionType(msg)
        where.append("name = ?")
        params.append(safe_text(name))
    if since is not None:
        where.append(f"{ORDER_KEY} >= ?")
        params.append(_since(since))
    if status is not None:
        statuses = _statuses(status)
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    sql = "SELECT * FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if limit is None:
        return sql + ORDER, params
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral):
        msg = f"history(limit={limit!r}): a number of runs is a whole number"
        raise InvalidOptionType(msg)
    count = int(limit)
    if count < 0:
        msg = f"history(limit={limit!r}): a number of runs is 0 or more"
        raise InvalidOption(msg)
    if count > _MAX_ROWS:
        # "At most more runs than SQLite can count" is all of them; SQLite itself would refuse
        # the number (a datatype mismatch, which would blame the database).
        return sql + ORDER, params
    # The latest ones (through the runs_by_time index), then oldest first like the rest.
    latest = f"{sql} ORDER BY {ORDER_KEY} DESC, id DESC LIMIT {count}"
    return f"SELECT * FROM ({latest})" + ORDER, params


def _since(value: Any) -> float:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, bool):
        msg = f"history(since={value!r}): expected epoch seconds, a datetime or a duration"
        raise InvalidOptionType(msg)
    if isinstance(value, numbers.Real):
        try:
            seconds = float(value)
        except (OverflowError, ValueError):  # an int beyond a float (10**400)
            seconds = math.nan
        if not math.isfinite(seconds):
            msg = f"history(since={value!r}): epoch seconds are a finite number"
            raise InvalidOption(msg)
        return seconds
    if isinstance(value, timedelta | str):
        # How long ago, in the duration grammar of every option ("2h", "1d", "90 min").
        try:
            ago = parse_duration(value, "since")
        except InvalidOption as exc:
            msg = (
                f"history(since={value!r}): expected epoch seconds, a datetime, or how long ago "
                "as a duration such as '2h' or '1d'"
            )
            raise type(exc)(msg) from exc
        return time.time() - ago
    msg = f"history(since={value!r}): expected epoch seconds, a datetime or a duration"
    raise InvalidOptionType(msg)


def _timestamp(when: datetime) -> float:
    """Epoch seconds of ``when``, also at the ends of the datetime range.

    A naive datetime is local time, and the C library cannot convert one near year 1 or 9999
    (``datetime.min.timestamp()`` raises "year 0 is out of range"). There, hours of time zone
    make no difference to which runs are returned: it is counted as UTC.
    """
    try:
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        return (aware - _EPOCH).total_seconds()


def _statuses(value: Any) -> list[str]:
    single = isinstance(value, str | Status)
    try:
        # Bytes iterate as numbers: refused whole (b"done" was named as history(status=100)).
        if isinstance(value, bytes | bytearray | memoryview):
            raise TypeError  # the same refusal as any other value that is not a list
        items = [value] if single else list(value)
    except TypeError:
        msg = f"history(status={value!r}): expected a status or a list of statuses"
        raise InvalidOptionType(msg) from None
    out = []
    for item in items:
        text = item.value if isinstance(item, Status) else item
        if not isinstance(text, str) or text not in _STATUSES:
            # The value is shown as given, an item of a list named after it.
            what = "not" if single else f"{item!r} is not"
            known = ", ".join(sorted(_STATUSES))
            msg = f"history(status={value!r}): {what} a status of a run ({known})"
            raise (InvalidOption if isinstance(text, str) else InvalidOptionType)(msg)
        out.append(text)
    if not out:
        msg = f"history(status={value!r}): no status given"
        raise InvalidOption(msg)
    return out


def json_column(texts: list[str | None]) -> list[Any]:
    """Decode a column of JSON texts with one ``json.loads`` (NULL as an empty list).

    One call for the whole column instead of one per row: at 100,000 runs the per-call
    overhead was half the time of reading the history.
    """
    if not texts:
        return []
    return list(json.loads("[" + ",".join([t or "[]" for t in texts]) + "]"))


#: The statuses a run ends with.
_ENDS = frozenset({"done", "failed", "cancelled"})
_TIMES = ("status", "submitted", "started", "finished")


def transitions_column(columns: list[str], rows: list[tuple[Any, ...]]) -> list[Any]:
    """The ``transitions`` of ``rows`` decoded, the NULL ones of a run that ended made from
    its times.

    A run that went pending, running, then ended at its own submit, start and end times (most
    runs) is written with no transitions text: they are these three steps, made here from its
    columns (writing the text was a fifth of the writer's time per run in a burst). NULL for
    any other run is no transitions at all (an empty list).
    """
    at = columns.index("transitions")
    out = json_column([row[at] for row in rows])
    if not all(c in columns for c in _TIMES):
        return out
    st, sub, sta, fin = (columns.index(c) for c in _TIMES)
    for i, row in enumerate(rows):
        if row[at] is None and row[st] in _ENDS:
            submitted, started, finished = row[sub], row[sta], row[fin]
            if submitted is not None and started is not None and finished is not None:
                out[i] = [["pending", submitted], ["running", started], [row[st], finished]]
    return out


def decode(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    out = [dict(zip(columns, row, strict=True)) for row in rows]
    if "requires" in columns:
        at = columns.index("requires")
        for data, value in zip(out, json_column([r[at] for r in rows]), strict=True):
            data["requires"] = value
    if "transitions" in columns:
        for data, value in zip(out, transitions_column(columns, rows), strict=True):
            data["transitions"] = value
    if "detached" in columns:
        for data in out:
            data["detached"] = bool(data["detached"])
    return out
