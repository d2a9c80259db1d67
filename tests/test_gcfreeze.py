"""The collector during a burst (issue 14): what is alive when a burst is submitted is frozen
until the engine is idle, for MAX_FROZEN seconds at most, and never behind a program's back."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _wait import wait_until

from jupyter_executor import Engine, Job, _gcfreeze


def _noop() -> None:
    return None


@pytest.fixture(autouse=True)
def _small_bursts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_gcfreeze, "FREEZE_AT", 5)
    assert gc.get_freeze_count() == 0
    yield
    assert gc.get_freeze_count() == 0, "a test left objects frozen"


def test_a_burst_freezes_what_is_alive_until_the_engine_is_idle(tmp_path: Path) -> None:
    gate = threading.Event()
    with Engine(folder=tmp_path) as engine:
        engine.submit(*[Job(gate.wait, args=(30,), backend="thread") for _ in range(5)])
        assert gc.get_freeze_count() > 0  # frozen at the submit, before any job ran
        gate.set()
        assert engine.wait(timeout=30)
        assert gc.get_freeze_count() == 0  # idle: given back before wait() returned
        engine.submit(*[Job(_noop) for _ in range(4)])  # smaller than a burst
        assert gc.get_freeze_count() == 0
        assert engine.wait(timeout=30)


def test_a_freeze_ends_after_max_frozen_and_at_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_gcfreeze, "MAX_FROZEN", 0.3)
    gate = threading.Event()
    engine = Engine(folder=tmp_path)
    try:
        engine.submit(*[Job(gate.wait, args=(30,), backend="thread") for _ in range(5)])
        assert gc.get_freeze_count() > 0
        wait_until(lambda: gc.get_freeze_count() == 0, timeout=20)  # still busy: bounded
        engine.submit(*[Job(gate.wait, args=(30,), backend="thread") for _ in range(5)])
        assert gc.get_freeze_count() > 0
        monkeypatch.setattr(_gcfreeze, "MAX_FROZEN", 60.0)
        engine.submit(*[Job(gate.wait, args=(30,), backend="thread") for _ in range(5)])
    finally:
        gate.set()
        engine.shutdown()
    assert gc.get_freeze_count() == 0


def test_a_program_that_froze_objects_itself_is_left_alone(tmp_path: Path) -> None:
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        with Engine(folder=tmp_path) as engine:
            engine.submit(*[Job(_noop) for _ in range(5)])
            assert engine.wait(timeout=30)
        # neither frozen further nor thawed (some of its frozen objects may have been freed)
        assert 0 < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with Engine(folder=tmp_path) as engine:
            engine.submit(*[Job(_noop) for _ in range(5)])
            assert gc.get_freeze_count() == 0  # the collector is off: nothing to spare it
            assert engine.wait(timeout=30)
    finally:
        gc.enable()
