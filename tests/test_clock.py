"""The engine's injectable clock (_clock.py) and the MockClock of jupyter_executor.testing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _leaks import assert_nothing_left, child_processes
from _wait import wait_until

from jupyter_executor import Engine, JobTimeout, cancelled
from jupyter_executor._clock import SYSTEM_CLOCK
from jupyter_executor.testing import MockClock


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, like the engine's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_mock_timers_fire_in_time_order_on_their_loop_and_only_when_advanced(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = MockClock(start=1000.0)
    fired: list[tuple[str, float, bool]] = []

    def note(what: str) -> None:
        fired.append((what, clock.time(), threading.current_thread() is not main))

    main = threading.current_thread()
    clock.call_later(loop, 2.0, note, "b")
    clock.call_later(loop, 1.0, note, "a")
    dropped = clock.call_later(loop, 1.5, note, "dropped")
    dropped.cancel()

    def chain() -> None:  # a callback arming a timer due within the same advance: it fires too
        note("c")
        clock.call_later(loop, 0.5, note, "d")

    clock.call_later(loop, 2.5, chain)
    time.sleep(0.05)
    assert fired == [] and clock.time() == 1000.0  # real time passing changes nothing
    assert clock.pending() == [1001.0, 1002.0, 1002.5]
    clock.advance(4.0)
    assert fired == [
        ("a", 1001.0, True),
        ("b", 1002.0, True),
        ("c", 1002.5, True),
        ("d", 1003.0, True),
    ]
    assert clock.time() == 1004.0 and clock.pending() == []
    with pytest.raises(ValueError, match=r"MockClock.advance\(seconds=-1\): time cannot go back"):
        clock.advance(-1)
    with pytest.raises(TimeoutError, match="no timer was armed"):
        clock.advance_to_next(timeout=0.05)


def test_an_engine_without_a_clock_keeps_the_real_one(tmp_path: Path) -> None:
    with Engine(folder=tmp_path, history=False) as engine:
        assert engine._clock is SYSTEM_CLOCK
        before = time.time()
        job = engine.submit(sum, [1], name="now")
        assert engine.wait(timeout=10)
        assert job.submitted is not None and before <= job.submitted <= time.time()


@pytest.mark.timeout(30)
def test_timeouts_and_timestamps_follow_the_mock_clock(tmp_path: Path) -> None:
    before = {p.pid for p in child_processes()}
    clock = MockClock(start=2_000_000_000.0)
    engine = Engine(folder=tmp_path, clock=clock)
    engine.cancel_grace = 0.5
    try:

        def patient() -> str:
            while not cancelled():  # until the timeout asks it to stop
                time.sleep(0.01)
            return "stopped"

        job = engine.submit(patient, name="patient", timeout="1h")
        wait_until(lambda: clock.pending(), 10, "the timeout to be armed")
        assert clock.pending() == [2_000_000_000.0 + 3600]
        assert job.started == 2_000_000_000.0  # the job's times are the clock's
        clock.advance(3599)
        assert job.status.value == "running"  # a second early: still running
        clock.advance(1)
        assert not engine.wait(timeout=10)
        assert job.status.value == "cancelled"
        assert isinstance(job.exception(), JobTimeout)
        assert "timed out after 3600 s" in (job.cancel_reason or "")
        assert job.finished == 2_000_003_600.0
        assert [e.time for e in engine.log if e.job == "patient"][-1] == 2_000_003_600.0
    finally:
        engine.shutdown()
        assert_nothing_left(before)


def test_advancing_from_the_timers_own_loop_calls_at_once(loop: asyncio.AbstractEventLoop) -> None:
    clock = MockClock(start=0.0)
    fired: list[float] = []
    clock.call_later(loop, 1.0, lambda: fired.append(clock.time()))

    async def advance() -> None:
        clock.advance(2.0)  # on the loop the timer runs on: no hand-off (it would deadlock)

    asyncio.run_coroutine_threadsafe(advance(), loop).result(timeout=10)
    assert fired == [1.0] and clock.time() == 2.0
