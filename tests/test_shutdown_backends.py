"""Shutdown with a backend that does not close: the rest of the shutdown happens anyway."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
from _leaks import assert_nothing_left, child_processes

from jupyter_executor import Engine, _slots


def _pid() -> int:
    return os.getpid()


@pytest.mark.timeout(180)
def test_a_backend_whose_close_hangs_does_not_keep_the_engine_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # (raising=False: the tree before the fix had no such bound, and waited 30 s, then raised)
    monkeypatch.setattr(_slots, "_CLOSE_TIMEOUT", 1.0, raising=False)
    before = {p.pid for p in child_processes()}
    engine = Engine(folder=tmp_path / "runs")
    engine.submit(_pid, name="worker", backend="process")
    engine.submit(_pid, name="thread")
    assert engine.wait(timeout=120)

    async def hang() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(engine._backends["thread"], "aclose", hang)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, "jupyter_executor"):
        engine.shutdown(timeout=1)
    took = time.monotonic() - t0
    assert took < 15, f"shutdown took {took:.1f} s"
    assert "backend thread did not close within 1 s; left behind" in caplog.text
    assert engine._thread is None and "closed" in repr(engine._store)
    # The other backends closed all the same: no worker process is left.
    assert_nothing_left(before)
