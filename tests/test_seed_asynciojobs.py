"""asynciojobs' README notebook (seeds/003), example by example, on our API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from jupyter_executor import AbstractJob, Engine, Job

pytestmark = pytest.mark.timeout(60)


async def mycoro(timeout: float) -> float:
    await asyncio.sleep(timeout)
    return 1000 * timeout


def test_example_a_in_parallel(tmp_path: Path) -> None:
    a1, a2, a3 = Job(mycoro(0.3)), Job(mycoro(0.6)), Job(mycoro(0.45))
    started = time.monotonic()
    assert Engine(a1, a2, a3, folder=tmp_path).orchestrate() is True
    assert time.monotonic() - started < 0.3 + 0.6 + 0.45  # not one after the other
    assert [a1.result(), a2.result(), a3.result()] == [300, 600, 450]


def test_example_b_requirements_and_inspecting_results(tmp_path: Path) -> None:
    b1, b2, b3 = Job(mycoro(0.1), label="b1"), Job(mycoro(0.2)), Job(mycoro(0.15), label="b3")
    b3.requires(b1)
    eb = Engine(b1, b2, b3, folder=tmp_path)
    assert eb.orchestrate()
    assert b3.started is not None and b1.finished is not None and b3.started >= b1.finished
    # for job in eb.jobs: print(job) -- printing the jobs shows results and who allows whom
    lines = repr(eb.jobs).splitlines()
    assert lines == [
        "<Job 'b1' done -> 100.0 backend=async allows=['b3']>",
        "<Job 'mycoro' done -> 200.0 backend=async>",
        "<Job 'b3' done -> 150.0 backend=async requires=['b1']>",
    ]
    assert [str(job) for job in eb] == lines  # iterating the engine gives the jobs
    assert b1.is_done() is True and b3.result() == 150.0
    frame = eb.list().set_index("name")
    assert frame.loc["b1", "allows"] == ["b3"] and frame.loc["b3", "requires"] == ["b1"]


def test_example_c_forever_jobs_on_a_message_bus(tmp_path: Path) -> None:
    seen: list[str] = []

    async def monitor_loop(bus: asyncio.Queue[str]) -> None:
        while True:
            seen.append(await bus.get())

    async def mycoro_bus(timeout: float, bus: asyncio.Queue[str]) -> float:
        await bus.put(f"-> mycoro({timeout})")
        await asyncio.sleep(timeout)
        await bus.put(f"<- mycoro({timeout})")
        return 10 * timeout

    async def main() -> None:
        # The queue must belong to the engine's loop: make it there, in a job.
        bus: asyncio.Queue[str] = asyncio.Queue()
        c1 = Job(mycoro_bus(0.1, bus), label="c1")
        c2 = Job(mycoro_bus(0.2, bus), label="c2")
        c3 = Job(mycoro_bus(0.15, bus), label="c3").requires(c1)
        c4 = Job(monitor_loop(bus), forever=True, label="monitor")
        ec = Engine(c1, c2, c3, c4, folder=tmp_path)
        assert await asyncio.to_thread(ec.orchestrate)
        assert c4.status.value == "cancelled" and c3.result() == 1.5
        assert "<Job 'monitor' cancelled" in repr(ec.jobs)

    asyncio.run(main())
    assert "<- mycoro(0.15)" in seen or len(seen) >= 5


def test_orchestrate_timeout_and_exceptions(tmp_path: Path) -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    slow, bad = Job(mycoro(30), label="slow"), Job(boom(), label="bad")
    after = Job(mycoro(0), label="after").requires(bad)
    engine = Engine(slow, bad, after, folder=tmp_path)
    assert engine.orchestrate(timeout=0.5) is False
    assert slow.status.value == "cancelled" and bad.status.value == "failed"
    assert after.cancel_reason == "dependency 'bad' failed"


def test_custom_job_class_with_a_shutdown_hook(tmp_path: Path) -> None:
    events: list[str] = []

    class Ssh(AbstractJob):
        def __init__(self, host: str, label: str) -> None:
            super().__init__(label=label)
            self.host = host

        def shared_key(self) -> str:
            return self.host

        async def setup(self) -> None:
            events.append("connect")

        async def run(self) -> str:
            return f"ran on {self.host}"

        async def shutdown(self) -> None:
            events.append("close")

    jobs = [Ssh("h", "one"), Ssh("h", "two")]
    assert Engine(*jobs, folder=tmp_path).orchestrate()
    assert events == ["connect", "close"] and jobs[1].result() == "ran on h"
