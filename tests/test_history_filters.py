"""The filters of ``history()`` given values at the edge of what they take.

Each bad value must be refused with a one-line :class:`InvalidOption` (or
:class:`InvalidOptionType`) that names the filter and the value as given: never a raw
``ValueError``/``OverflowError`` from the conversion, nor a :class:`StoreError` that blames the
database for a value SQLite could not bind. Read from a real database, through the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jupyter_executor import Engine
from jupyter_executor.errors import InvalidOption, InvalidOptionType
from jupyter_executor.store import HistoryStore

NAMES = ("first", "second", "third")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An engine's folder holding one finished run of each of NAMES, in that order."""
    path = tmp_path_factory.mktemp("filters") / "runs"
    with Engine(folder=path) as engine:
        for name in NAMES:
            engine.submit(sum, [1, 2], name=name)
            assert engine.wait(timeout=30)
    return path


@pytest.fixture
def store(folder: Path) -> Iterator[HistoryStore]:
    reader = HistoryStore(folder, "reader")
    try:
        yield reader
    finally:
        reader.close()


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


@pytest.mark.parametrize(
    "limit",
    [2**63 - 1, 2**63, 10**30, np.uint64(2**64 - 1)],
    ids=["2**63-1", "2**63", "1e30", "u64"],
)
def test_a_limit_beyond_any_count_of_runs_is_no_limit(store: HistoryStore, limit: Any) -> None:
    # A limit is "at most this many": more than SQLite can count is all of them, not an error.
    assert names(store.history(limit=limit)) == list(NAMES)


def test_limits_that_are_not_a_count_are_refused(store: HistoryStore) -> None:
    assert names(store.history(limit=np.int64(2))) == ["second", "third"]
    with pytest.raises(InvalidOption, match=r"^history\(limit=-1\): .*0 or more$"):
        store.history(limit=-1)
    with pytest.raises(InvalidOptionType, match=r"^history\(limit=1\.5\)"):
        store.history(limit=1.5)


@pytest.mark.parametrize(
    "since",
    [datetime.min, datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 2)],
    ids=["min", "min-utc", "year-1"],
)
def test_since_the_earliest_datetime_is_every_run(store: HistoryStore, since: datetime) -> None:
    # datetime.min is a fair "since ever"; its local time is out of range (year 0), which must
    # not leak out as a raw ValueError.
    assert names(store.history(since=since)) == list(NAMES)


def test_since_the_latest_datetime_is_no_run(store: HistoryStore) -> None:
    assert store.history(since=datetime.max) == []


@pytest.mark.parametrize("since", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_since_an_integer_beyond_a_float_is_refused(store: HistoryStore, since: int) -> None:
    with pytest.raises(InvalidOption, match=r"^history\(since=-?10{400}\): .*finite") as info:
        store.history(since=since)
    assert "\n" not in str(info.value)
    assert not isinstance(info.value, OverflowError)


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (b"done", r"b'done'"),
        (bytearray(b"done"), r"bytearray\(b'done'\)"),
        (["done", 5], r"\['done', 5\]"),
        ([["done"]], r"\[\['done'\]\]"),
    ],
    ids=["bytes", "bytearray", "int-item", "list-item"],
)
def test_a_status_of_the_wrong_type_is_named_as_given(
    store: HistoryStore, status: Any, shown: str
) -> None:
    # Bytes iterate as numbers: the message said history(status=100) for b"done".
    with pytest.raises(InvalidOptionType, match=rf"^history\(status={shown}\): ") as info:
        store.history(status=status)
    assert "\n" not in str(info.value)


def test_an_unknown_status_in_a_list_is_named_with_the_list(store: HistoryStore) -> None:
    with pytest.raises(InvalidOption, match=r"^history\(status=\['done', 'DONE'\]\): 'DONE' "):
        store.history(status=["done", "DONE"])
    assert names(store.history(status=("done",))) == list(NAMES)


def test_the_engine_refuses_the_same_values(folder: Path) -> None:
    with Engine(folder=folder) as engine:
        assert len(engine.history(limit=2**64)) == len(NAMES)
        assert len(engine.history(since=datetime.min)) == len(NAMES)
        with pytest.raises(InvalidOption, match=r"^history\(since=10{400}\)"):
            engine.history(since=10**400)
        with pytest.raises(InvalidOptionType, match=r"^history\(status=b'done'\)"):
            engine.history(status=b"done")
