"""Schedules: periods, start times and cron expressions, also across a daylight-saving change."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jupyter_executor._schedule import Schedule, parse_every, parse_start

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def paris() -> Iterator[None]:
    """Local time is Europe/Paris (DST from 2024-03-31 02:00 to 2024-10-27 03:00)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30 s", 30), ("30s", 30), ("2 min", 120), ("1h30m", 5400), ("1 h, 30 min", 5400),
        ("1.5h", 5400), ("1 day", 86400), ("2 weeks", 14 * 86400), ("day", 86400),
        ("hour", 3600), ("week", 7 * 86400), ("Daily", 86400), ("hourly", 3600),
        ("250 ms", 0.25), ("90", 90), (90, 90), (2.5, 2.5), (timedelta(minutes=5), 300),
    ],
)  # fmt: skip
def test_parse_every(value: object, seconds: float) -> None:
    assert parse_every(value).total_seconds() == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["", "soon", "3 parsecs", "0 s", "-1 s", "day 3", "1h day", "nan", "inf", 0, -5,
     float("nan"), float("inf"), 1e20, timedelta(0)],
)  # fmt: skip
def test_parse_every_refuses_with_one_line_and_examples(value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_every(value)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(value) in message and "e.g. '30 s'" in message and "\n" not in message


def test_parse_every_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="every= takes"):
        parse_every(True)
    with pytest.raises(TypeError, match="every= takes"):
        parse_every([1])  # type: ignore[arg-type]


def test_parse_start(paris: None) -> None:
    assert parse_start(None) is None
    assert parse_start("2030-01-31T08:00:00+00:00") == datetime(2030, 1, 31, 8, tzinfo=UTC)
    assert parse_start("2030-01-31T08:00:00Z") == datetime(2030, 1, 31, 8, tzinfo=UTC)
    naive = parse_start("2030-07-01 08:00")  # local time, with that day's offset (summer)
    assert naive is not None and naive.utcoffset() == timedelta(hours=2)
    assert naive == datetime(2030, 7, 1, 6, tzinfo=UTC)
    winter = parse_start(datetime(2030, 1, 1, 8))
    assert winter is not None and winter.utcoffset() == timedelta(hours=1)
    aware = datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=-5)))
    assert parse_start(aware) is aware
    assert parse_start(0) == datetime(1970, 1, 1, tzinfo=UTC)
    today = parse_start("08:15")  # a time alone is today
    assert today is not None and today.tzinfo is not None
    assert (today.date(), today.hour, today.minute) == (datetime.now().date(), 8, 15)
    with pytest.raises(ValueError, match=r"cannot use start='tomorrow': give a date-time, e\.g\."):
        parse_start("tomorrow")
    with pytest.raises(TypeError, match="start= takes"):
        parse_start([2030])  # type: ignore[arg-type]


def test_every_with_a_start_keeps_to_its_grid() -> None:
    s = Schedule(every="1 h", start=T0)
    assert s.next_after(T0 - timedelta(days=3)) == T0  # never before start
    assert s.next_after(T0) == T0 + timedelta(hours=1)  # strictly after
    assert s.next_after(T0 + timedelta(minutes=59, seconds=59)) == T0 + timedelta(hours=1)
    assert s.next_after(T0 + timedelta(hours=5, minutes=1)) == T0 + timedelta(hours=6)
    assert s.first(T0 - timedelta(minutes=1)) == T0  # start ahead: start
    assert s.first(T0) == T0
    assert s.first(T0 + timedelta(minutes=90)) == T0 + timedelta(hours=2)  # start past: the grid
    # no drift: chaining next_after from scheduled times stays on the grid
    t = T0
    for _ in range(1000):
        t = s.next_after(t)
    assert t == T0 + timedelta(hours=1000)


def test_every_without_a_start_runs_now_then_each_period() -> None:
    s = Schedule(every=timedelta(seconds=30))
    assert s.first(T0) == T0
    assert s.next_after(T0) == T0 + timedelta(seconds=30)
    naive = s.next_after(datetime(2030, 1, 1))  # naive is local time: the result is aware
    assert naive.tzinfo is not None


def test_cron() -> None:
    s = Schedule(cron="*/15 * * * *")
    local = datetime(2030, 1, 1, 10, 7).astimezone()
    assert s.next_after(local) == datetime(2030, 1, 1, 10, 15).astimezone()
    assert (
        s.next_after(datetime(2030, 1, 1, 10, 15).astimezone())
        == datetime(2030, 1, 1, 10, 30).astimezone()
    )  # strictly after
    assert s.first(local) == datetime(2030, 1, 1, 10, 15).astimezone()  # no start: next match
    started = Schedule(cron="0 2 * * *", start=datetime(2030, 1, 5, 2, 0))
    assert started.first(local) == datetime(2030, 1, 5, 2, 0).astimezone()  # start matches
    assert started.next_after(local) == datetime(2030, 1, 5, 2, 0).astimezone()
    late = Schedule(cron="0 2 * * *", start=datetime(2030, 1, 5, 2, 0, 1))
    assert late.first(local) == datetime(2030, 1, 6, 2, 0).astimezone()  # never before start
    assert Schedule(cron="@hourly").next_after(local) == datetime(2030, 1, 1, 11).astimezone()


def test_cron_follows_wall_clock_time_and_every_is_a_fixed_duration(paris: None) -> None:
    # Paris moves its clocks from 02:00 to 03:00 on 2024-03-31.
    before = datetime(2024, 3, 30, 10, 0)
    cron = Schedule(cron="30 9 * * *")
    nxt = cron.next_after(before)
    assert (nxt.hour, nxt.minute, nxt.utcoffset()) == (9, 30, timedelta(hours=2))
    assert nxt - cron.next_after(before - timedelta(days=1)) == timedelta(hours=23)
    every = Schedule(every="1 day", start=datetime(2024, 3, 30, 9, 30))
    after = every.next_after(before)
    assert after - every.first(datetime(2024, 3, 30, 9, 0)) == timedelta(days=1)
    assert after.astimezone().hour == 10  # 24 hours later is 10:30 on the new clock


def test_a_single_run_at_start() -> None:
    s = Schedule(start=T0)
    assert s.first(T0 - timedelta(days=1)) == T0
    assert s.first(T0 + timedelta(days=1)) == T0  # even when past: the caller decides
    assert s.next_after(T0 - timedelta(seconds=1)) == T0
    with pytest.raises(ValueError, match="single-run schedule"):
        s.next_after(T0)
    assert Schedule().first(T0) == T0


def test_bad_schedules() -> None:
    with pytest.raises(ValueError, match=r"^bad cron expression '0 25 \* \* \*': .*out of range"):
        Schedule(cron="0 25 * * *")
    with pytest.raises(ValueError, match=r"^bad cron expression 'every day': .*columns"):
        Schedule(cron="every day")
    with pytest.raises(ValueError, match="give every= or cron=, not both"):
        Schedule(every="1 h", cron="0 * * * *")
    with pytest.raises(ValueError, match="cannot use every='1 parsec'"):
        Schedule(every="1 parsec")
    with pytest.raises(ValueError, match="cannot use start='yesterday-ish'"):
        Schedule(every="1 h", start="yesterday-ish")
    with pytest.raises(TypeError, match="cron= takes"):
        Schedule(cron=5)  # type: ignore[arg-type]


def test_repr_and_equality() -> None:
    s = Schedule(every="90 min", start=T0)
    assert repr(s) == (
        "Schedule(every=datetime.timedelta(seconds=5400), start='2030-01-01T00:00:00+00:00')"
    )
    assert s == Schedule(every=5400, start="2030-01-01T00:00:00+00:00")
    assert hash(s) == hash(Schedule(every=5400, start=T0))
    assert s != Schedule(cron="0 * * * *")
