"""The scheduler under hostile use (found by a hostile-input hunt; each test fails on the tree
before its fix): a requirement that ends done twice, a job of another engine, retries and
restarts past a thousand, periods under a microsecond, a condition at no time, a shutdown from
a job, a coroutine that swallows its cancellation."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

import pytest
from _wait import wait_until

from jupyter_executor import AfterTime, Engine, InvalidOption, Job, SubmitError


def _value(x: object) -> object:
    return x


def _fail() -> None:
    raise ValueError("boom")


@pytest.mark.parametrize("how", ["rerun", "replace"])
def test_a_requirement_done_twice_counts_once(engine: Engine, how: str) -> None:
    # d requires a and b; a is done, b runs. A second end of a (rerun, or a job replacing it)
    # counted again, and d started with b still running.
    go = threading.Event()
    seen: list[str] = []
    a = engine.submit(_value, "a", name="a", backend="thread")
    b = engine.submit(go.wait, 30, name="b", backend="thread")
    d = engine.submit(
        lambda: seen.append(str(engine["b"].status)), name="d", requires=[a, b], backend="thread"
    )
    assert engine.wait_job(a, timeout=30)
    if how == "rerun":
        engine.rerun(a)
    else:
        engine.submit(_value, "a again", name="a", replace=True, backend="thread")
    assert engine.wait_job("a", timeout=30)
    time.sleep(0.3)  # (d would start at once)
    assert d.status == "pending" and seen == []
    go.set()
    assert engine.wait(timeout=30)
    assert seen == ["done"]


def test_a_periodic_requirement_counts_once(engine: Engine) -> None:
    go = threading.Event()
    seen: list[str] = []
    tick = engine.submit(_value, 1, name="tick", every=0.05, backend="thread")
    b = engine.submit(go.wait, 30, name="b", backend="thread")
    d = engine.submit(
        lambda: seen.append(str(engine["b"].status)),
        name="d",
        requires=[tick, b],
        backend="thread",
    )
    wait_until(lambda: len(tick.previous) >= 3, 30, "three runs of the periodic job")
    assert d.status == "pending" and seen == []
    go.set()
    assert engine.wait_job(d, timeout=30)
    assert seen == ["done"]
    engine.cancel(tick)


def test_a_job_of_another_engine_is_refused_as_a_requirement(
    engine: Engine, tmp_path: Path
) -> None:
    # It was taken for this engine's job of the same name (here a failed one).
    other = Engine(folder=tmp_path / "other")
    try:
        theirs = other.submit(_value, "theirs", name="a")
        assert other.wait(timeout=30)
        engine.submit(_fail, name="a")
        engine.wait(timeout=30)
        with pytest.raises(SubmitError, match="of another engine"):
            engine.submit(_value, 1, name="b", requires=theirs)
        with pytest.raises(SubmitError, match="of another engine"):
            engine.submit(_value, theirs, name="c")  # a job as an argument
        assert "b" not in engine.jobs and "c" not in engine.jobs
        fine = engine.submit(_value, 2, name="fine")
        assert engine.wait_job(fine, timeout=30) and fine.result() == 2
    finally:
        other.shutdown()


def test_more_than_a_thousand_retries_without_delay(engine: Engine) -> None:
    # The backoff, in ints, overflowed the conversion to a float at attempt 1,025: the job
    # stayed running for ever.
    job = engine.submit(_fail, name="flaky", retries=1100, retry_delay=0, backend="thread")
    assert not engine.wait(timeout=60)
    assert job.status == "failed" and job.attempts == 1101


def test_more_than_a_thousand_restarts_without_delay(engine: Engine) -> None:
    job = engine.submit(
        _fail,
        name="crashy",
        restart="on-failure",
        restart_delay=0,
        max_restarts=1100,
        backend="thread",
    )
    assert not engine.wait(timeout=60)
    assert job.status == "failed"
    assert len(job.previous) == 50  # (the last runs are kept)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("every", 1e-7),  # a timedelta of 0: a period that spun the loop
        ("every", "0.0000001"),
        ("timeout", 10**400),  # OverflowError, not the option's error
        ("retry_delay", 10**400),
        ("timeout", "1" + "0" * 400 + "s"),  # an infinite timeout, taken
    ],
    ids=["every-1e-7", "every-text", "timeout-10**400", "retry_delay-10**400", "timeout-inf-text"],
)
def test_durations_out_of_range_are_refused_at_the_door(
    engine: Engine, option: str, value: object
) -> None:
    with pytest.raises(InvalidOption, match=option):
        engine.submit(_value, 1, name="x", **{option: value})
    assert "x" not in engine.jobs


def test_a_condition_at_no_time_is_refused() -> None:
    # NaN: never met and never not met; its wake-up at max(0, nan - now) spun the loop.
    with pytest.raises(InvalidOption, match="not a point in time"):
        AfterTime(math.nan)
    assert AfterTime(math.inf).wake_at() == math.inf
    assert AfterTime(0).wake_at() == 0


@pytest.mark.parametrize("backend", ["thread", "async"])
def test_shutdown_from_a_job_is_refused_and_changes_nothing(engine: Engine, backend: str) -> None:
    # It cancelled every job, then raised that the job could not wait for itself: a
    # half-closed engine whose threads nothing could stop any more.
    def stop() -> str:
        try:
            engine.shutdown()
        except SubmitError as exc:
            return str(exc)
        return "shut down"

    async def astop() -> str:
        return stop()

    go = threading.Event()
    other = engine.submit(go.wait, 30, name="other", backend="thread")
    job = engine.submit(astop if backend == "async" else stop, name="stopper", backend=backend)
    engine.wait_job(job, timeout=30)
    assert "would stop the engine that runs that job" in str(job.result())
    assert not engine.closed and other.status == "running"
    go.set()
    after = engine.submit(_value, 3, name="after")
    assert engine.wait_job(after, timeout=30) and after.result() == 3


def test_a_coroutine_that_swallows_its_cancellation_is_abandoned(engine: Engine) -> None:
    # It stayed running for ever after a cancel or a timeout, its slot taken.
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    engine.set_limits(**{"async": 1})
    job = engine.submit(stubborn, name="stubborn")
    after = engine.submit(_value, 5, name="after", backend="async")
    wait_until(lambda: job.status == "running", 30, "the stubborn job runs")
    engine.cancel(job)
    assert engine.wait_job(after, timeout=30)  # engine.cancel_grace is 0.5 s here
    assert job.status == "cancelled"
    assert "abandoned" in str(job.cancel_reason)
    assert after.result() == 5
    timed = engine.submit(stubborn, name="timed", timeout=0.2, retries=1)
    assert not engine.wait(timeout=30)
    assert timed.status == "cancelled" and timed.attempts == 2


def test_a_cron_that_never_matches_is_refused_at_the_door(engine: Engine) -> None:
    # "0 0 31 2 *" (February 31st) is well formed: it was accepted, then the loop failed to
    # compute its first time, and the job stayed pending for ever.
    with pytest.raises(InvalidOption, match=r"'0 0 31 2 \*'.*no date ever matches it"):
        engine.submit(_value, 1, name="never", cron="0 0 31 2 *")
    assert "never" not in engine
    job = engine.submit(["true"], name="leap", cron="0 0 29 2 *")  # once in four years
    assert job.status == "pending"
    engine.cancel(job)


def test_a_job_the_loop_cannot_start_fails_alone_and_its_batch_goes_on(engine: Engine) -> None:
    # An error while the loop admitted one job of a batch (here a schedule whose next time
    # cannot be computed, past the door's check) left it and every later job of the batch
    # pending for ever, and the engine counting the batch as still being admitted.
    odd = Job(_value, args=(1,), name="odd", every="1h", backend="thread")
    life = odd.runstate.life
    assert life is not None and life.schedule is not None
    life.schedule.every, life.schedule.cron = None, "0 0 31 2 *"
    after = [Job(_value, args=(i,), name=f"after{i}", backend="thread") for i in range(3)]
    engine.submit(odd, *after)
    for job in after:
        assert engine.wait_job(job, timeout=30) and job.result() == int(job.name[-1])
    wait_until(lambda: odd.status == "failed", 30, "the job that cannot start fails")
    assert "failed to find next date" in str(odd.traceback)
    assert engine._admitting == 0
    late = engine.submit(_value, 9, name="late", backend="thread")
    assert engine.wait_job(late, timeout=30) and late.result() == 9


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        pytest.param(1e12, None, id="1e12"),  # beyond what a lock can wait: OverflowError
        pytest.param(10**400, None, id="10**400"),
        pytest.param(math.inf, None, id="inf"),
        pytest.param("2m", None, id="2m"),  # the duration grammar of the options
        pytest.param(-1.0, None, id="negative"),  # a deadline already past: no wait at all
        pytest.param(math.nan, "timeout=nan is not a number of seconds", id="nan"),
        pytest.param("soon", "timeout='soon' is not a duration", id="soon"),
        pytest.param(True, "timeout=True is not a duration", id="True"),
    ],
)
def test_the_waits_check_their_timeout_at_the_door(
    engine: Engine, timeout: object, error: str | None
) -> None:
    go = threading.Event()
    job = engine.submit(go.wait, 30, name="held", backend="thread")
    waits = {
        "wait": lambda: engine.wait(timeout),  # type: ignore[arg-type]
        "wait_job": lambda: engine.wait_job(job, timeout),  # type: ignore[arg-type]
        "join": lambda: asyncio.run(engine.join(timeout)),  # type: ignore[arg-type]
    }
    for name, wait in waits.items():
        if error is not None:
            with pytest.raises(InvalidOption, match=error):
                wait()
            continue
        if timeout == -1.0:
            assert wait() is False, name  # returns at once: the job still runs
            continue
        threading.Timer(0.2, go.set).start()
        assert wait() is True, name
        go.clear()
        job = engine.submit(go.wait, 30, name=f"held-{name}", backend="thread")
    go.set()
    assert engine.wait(timeout=30)
