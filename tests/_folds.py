"""Folding the same changes two ways: as records (``take_all``) and as snapshots (``take``)."""

from __future__ import annotations

from typing import Any

from jupyter_executor._snapshot import snapshot_of_record
from jupyter_executor.store import _fold


def fold_both_ways(records: list[Any]) -> dict[str, int]:
    """Fold ``records`` one batch each, as records and as their snapshots; check at each step
    that both give the same rows, and return the attempts they placed (name: highest)."""
    fast, slow = _fold.Runs("e"), _fold.Runs("e")
    fast_high: dict[str, int] = {}
    slow_high: dict[str, int] = {}
    for record in records:
        fast.take_all(_fold.coalesce(_fold.ended_records([record])))
        slow.take(snapshot_of_record(record))
        assert fast.rows(fast_high) == slow.rows(slow_high), record[4]
        fast.written()
        slow.written()
    assert fast_high == slow_high
    return fast_high
