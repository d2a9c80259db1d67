"""AbstractJob: custom job classes, with setup()/shutdown() run once per group per engine run."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _leaks import assert_nothing_left, child_processes

from jupyter_executor import Engine, JobTimeout
from jupyter_executor._abstract import AbstractJob

#: What the hooks did, in order: ("setup", key) / ("run", name) / ("shutdown", key).
calls: list[tuple[str, Any]] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Engine(*jobs) in tmp_path; each one shut down afterwards, leaving no thread or process."""
    before = {p.pid for p in child_processes()}
    engines: list[Engine] = []

    def make(*jobs: AbstractJob) -> Engine:
        engine = Engine(*jobs, folder=tmp_path / f"e{len(engines)}")
        engines.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in engines:
            engine.shutdown()
        assert_nothing_left(before)


class Conn(AbstractJob):
    """A job using a connection that several jobs share (asynciojobs' SshJob, without ssh)."""

    def __init__(self, value: Any, host: str = "h1", delay: float = 0.0, **options: Any):
        super().__init__(**options)
        self.value, self.host, self.delay = value, host, delay

    def shared_key(self) -> Hashable:
        return ("conn", self.host)

    async def setup(self) -> dict[str, Any]:
        calls.append(("setup", self.host))
        await asyncio.sleep(0.05)  # a slow connect: the group's other jobs must wait for it
        return {"host": self.host, "open": True}

    async def run(self) -> Any:
        assert self.shared["open"], "run() started before setup() finished"
        calls.append(("run", self.name))
        await asyncio.sleep(self.delay)
        if self.value == "fail":
            raise RuntimeError(f"{self.name} failed")
        return (self.shared["host"], self.value)

    async def shutdown(self) -> None:
        calls.append(("shutdown", self.host))
        self.shared["open"] = False


def count(kind: str) -> Counter[Any]:
    return Counter(key for what, key in calls if what == kind)


def test_setup_and_shutdown_once_for_a_group(make: Callable[..., Engine]) -> None:
    jobs = [Conn(i, name=f"j{i}") for i in range(4)]
    assert make(*jobs).orchestrate(timeout=10) is True
    assert [j.result() for j in jobs] == [("h1", i) for i in range(4)]
    assert count("setup") == {"h1": 1} and count("shutdown") == {"h1": 1}
    assert calls[0] == ("setup", "h1") and calls[-1] == ("shutdown", "h1")
    assert jobs[0].kind == "custom" and jobs[0].backend == "async"
    assert jobs[0].describe() == "Conn.run()"


def test_one_setup_per_shared_key(make: Callable[..., Engine]) -> None:
    jobs = [Conn(i, host=f"h{i % 2}") for i in range(4)]
    assert make(*jobs).orchestrate(timeout=10) is True
    assert count("setup") == {"h0": 1, "h1": 1} and count("shutdown") == {"h0": 1, "h1": 1}
    assert [j.name for j in jobs] == ["Conn", "Conn-2", "Conn-3", "Conn-4"]


def test_shutdown_runs_after_failures_and_timeouts(make: Callable[..., Engine]) -> None:
    ok = Conn(1, name="ok")
    bad = Conn("fail", name="bad")
    slow = Conn(2, name="slow", delay=30, timeout=0.2)
    after = Conn(3, name="after").requires(bad)  # cancelled: its requirement failed
    engine = make(ok, bad, slow, after)
    assert engine.orchestrate(timeout=20) is False
    assert ok.status == "done" and bad.status == "failed" and after.status == "cancelled"
    assert isinstance(slow.exception(), JobTimeout)
    assert count("setup") == {"h1": 1} and count("shutdown") == {"h1": 1}


def test_a_failed_setup_fails_its_job_and_is_tried_again(make: Callable[..., Engine]) -> None:
    class Flaky(AbstractJob):
        attempts_left = 1

        async def setup(self) -> str:
            calls.append(("setup", "flaky"))
            if Flaky.attempts_left:
                Flaky.attempts_left -= 1
                raise ConnectionError("cannot connect")
            return "connected"

        async def run(self) -> str:
            return str(self.shared)

        async def shutdown(self) -> None:
            calls.append(("shutdown", "flaky"))

    first = Flaky(name="first")
    second = Flaky(name="second").requires()  # independent of first
    engine = make(first)
    assert engine.orchestrate(timeout=10) is False
    assert isinstance(first.exception(), ConnectionError)
    assert count("shutdown") == {}  # nothing was opened: nothing to close
    engine.submit(second)
    engine.orchestrate(timeout=10)  # False: the engine still counts the first failure
    assert second.result() == "connected"
    assert count("setup") == {"flaky": 2} and count("shutdown") == {"flaky": 1}


def test_each_engine_run_sets_up_again(make: Callable[..., Engine]) -> None:
    engine = make(Conn(1))
    assert engine.orchestrate(timeout=10)
    engine.submit(Conn(2))
    assert engine.orchestrate(timeout=10)
    assert count("setup") == {"h1": 2} and count("shutdown") == {"h1": 2}
    assert [w for w, _ in calls] == ["setup", "run", "shutdown"] * 2


def test_shutdown_hook_runs_at_engine_shutdown(make: Callable[..., Engine]) -> None:
    engine = make()
    try:
        jobs = [engine.submit(Conn(i)) for i in range(3)]
        assert engine.wait(timeout=10)
        assert [j.result()[1] for j in jobs] == [0, 1, 2]
        assert count("shutdown") == {}  # the run is not over until shutdown
    finally:
        engine.shutdown()
    assert count("setup") == {"h1": 1} and count("shutdown") == {"h1": 1}
    engine.shutdown()  # idempotent: no second shutdown()
    assert count("shutdown") == {"h1": 1}


def test_hooks_are_optional_and_run_is_required(make: Callable[..., Engine]) -> None:
    class Plain(AbstractJob):
        async def run(self) -> int:
            return 7

    job = Plain()
    assert make(job).orchestrate(timeout=10) and job.result() == 7
    assert job.shared is None

    class NoRun(AbstractJob):
        pass

    with pytest.raises(TypeError, match="NoRun must define `async def run"):
        NoRun()
