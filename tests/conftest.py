"""Shared fixtures: an engine per test that must leave no thread and no child process behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _leaks import assert_nothing_left, child_processes

from jupyter_executor import Engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine writing into tmp_path; shut down and checked for leftovers after the test."""
    before = {p.pid for p in child_processes()}
    eng = Engine(folder=tmp_path / "runs")
    eng.cancel_grace = 0.5
    try:
        yield eng
    finally:
        eng.shutdown()
        assert_nothing_left(before)
