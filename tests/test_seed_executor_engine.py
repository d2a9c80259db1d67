"""executor-engine's getting-started page (seeds/001), example by example, on our API.

``LocalJob``/``ThreadJob``/``ProcessJob`` are ``Job(..., backend="local"|"thread"|"process")``;
conditions are ours (``AfterJob``, ``AfterAll``, ``AfterTime``, ``&``, ``|``); the custom
condition with ``satisfy(engine)`` works as written there. Web apps and subprocess jobs have
their own tests (test_lifecycle.py, test_backends.py); here, the seed's own examples.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from _wait import wait_until

from jupyter_executor import (
    AfterAll,
    AfterJob,
    AfterTime,
    AnyOf,
    Condition,
    Engine,
    Job,
    command,
    launcher,
)

pytestmark = pytest.mark.timeout(90)


def add(a: int, b: int) -> int:
    return a + b


def raise_exception() -> None:
    raise Exception("error")


def test_basic_usage_local_thread_process(tmp_path: Path) -> None:
    with Engine(folder=tmp_path) as engine:
        job1 = Job(add, args=(1, 2), backend="local")
        job2 = Job(add, args=(job1.future, 4), backend="thread")
        job3 = Job(add, args=(job2.future, 5), backend="process")
        engine.submit(job1, job2, job3)
        assert engine.wait(30)
        assert (job1.result(), job2.result(), job3.result()) == (3, 7, 12)


def test_local_jobs_run_on_the_engines_loop_thread(tmp_path: Path) -> None:
    seen: list[str] = []

    def where() -> str:
        print("hello from", threading.current_thread().name)
        return threading.current_thread().name

    with Engine(folder=tmp_path, id="e1") as engine:
        job = engine.submit(where, backend="local")
        engine.wait(30)
        seen.append(job.result())
        assert job.tail() == "hello from jupyter-executor-e1"  # its print went to the job
    assert seen == ["jupyter-executor-e1"]

    async def coro() -> None:
        pass

    with pytest.raises(ValueError, match="local backend calls a plain function"):
        Job(coro, backend="local")


def test_with_asyncio(tmp_path: Path) -> None:
    engine = Engine(folder=tmp_path)

    async def main() -> None:
        job1 = Job(add, args=(1, 2), backend="process")
        job2 = Job(add, args=(job1.future, 4), backend="process")
        engine.submit(job1, job2)  # submit_async: submitting never blocks
        assert await engine.join(30)
        assert (job1.result(), job2.result()) == (3, 7)

    try:
        asyncio.run(main())
    finally:
        engine.shutdown()


def test_six_statuses_and_rerun(tmp_path: Path) -> None:
    with Engine(folder=tmp_path) as engine:
        job = Job(add, args=(1, 2))
        assert job.status.value == "created"
        gate = threading.Event()
        blocker = engine.submit(gate.wait, 30, name="blocker")
        engine.submit(job.requires(blocker))
        assert job.status.value == "pending"
        gate.set()
        engine.wait(30)
        assert job.status.value == "done"
        failing = engine.submit(raise_exception)
        engine.wait(30)
        assert failing.status.value == "failed"
        slow = engine.submit(time.sleep, 30)
        engine.cancel(slow)
        engine.wait_job(slow, 30)
        assert slow.status.value == "cancelled"
        for finished in (job, failing, slow):
            engine.rerun(finished)
        engine.cancel(slow)
        engine.wait(30)
        assert job.attempts == 2 and failing.attempts == 2


def test_conditions_after_another_others_timepoint(tmp_path: Path) -> None:
    order: list[str] = []

    def step(name: str) -> None:
        order.append(name)

    with Engine(folder=tmp_path) as engine:
        job1 = Job(step, args=("job1",))
        job2 = Job(step, args=("job2",), condition=AfterJob(job1))  # AfterAnother(job_id=...)
        engine.submit(job2, job1)
        engine.wait(30)
        assert order == ["job1", "job2"]
        job3 = Job(step, args=("job3",))
        job4 = Job(step, args=("job4",))
        job5 = Job(step, args=("job5",), condition=AfterAll(job3, job4))  # AfterOthers
        engine.submit(job5, job4, job3)
        engine.wait(30)
        assert order[-1] == "job5"
        at = datetime.now() + timedelta(seconds=0.5)
        later = engine.submit(step, "later", condition=AfterTime(at))  # AfterTimepoint
        engine.wait(30)
        assert later.started is not None and later.started >= at.timestamp() - 0.01


def test_all_satisfied_and_any_satisfied(tmp_path: Path) -> None:
    s: set[int] = set()

    def has_two_elements() -> None:
        assert len(s) == 2

    def sleep_and_add_1() -> None:
        time.sleep(1.0)
        s.add(1)

    def has_one_element() -> None:
        assert len(s) == 1

    with Engine(folder=tmp_path) as engine:
        job1 = Job(lambda: s.add(1))
        job2 = Job(lambda: s.add(2))
        job3 = Job(has_two_elements, condition=AfterJob(job1) & AfterJob(job2))
        engine.submit(job3, job2, job1)
        assert engine.wait(30)
        s.clear()
        job1 = Job(lambda: s.add(1))
        job2 = Job(sleep_and_add_1)
        job3 = Job(has_one_element, condition=AnyOf(AfterJob(job1), AfterJob(job2)))
        engine.submit(job3, job2, job1)
        assert engine.wait(30)


@dataclass
class RandomCondition(Condition):
    probability: float = 0.5

    def satisfy(self, engine: Engine) -> bool:
        return random.random() <= self.probability


def test_custom_condition_as_written_in_the_seed(tmp_path: Path) -> None:
    with Engine(folder=tmp_path) as engine:
        cond = RandomCondition(0.5)
        cond.poll_every = 0.05  # the seed's wait_time_delta
        job = engine.submit(lambda: "hi", condition=cond)
        assert engine.wait(30) and job.result() == "hi"


def test_start_and_stop_by_hand(tmp_path: Path) -> None:
    engine = Engine(folder=tmp_path)
    engine.start()  # executor-engine's start(): the loop thread runs
    assert engine._thread is not None and engine._thread.is_alive()
    job1 = engine.submit(Job(add, args=(1, 2), backend="process"))
    engine.wait_job(job1)
    assert job1.result() == 3
    engine.stop()  # executor-engine's stop(): the engine shuts down
    assert engine.closed and engine._thread is None


SETTING = """
import sys
from jupyter_executor import Engine, Job

def add(a, b):
    return a + b

def raise_exception():
    raise Exception("error")

with Engine(folder=sys.argv[1], max_jobs=1, print_traceback=sys.argv[2] == "1") as engine:
    job1 = Job(add, args=(1, 2), backend="process")
    job2 = Job(raise_exception, backend="process")
    engine.submit(job1, job2)
    engine.wait()
    print(job1.result())
    print(repr(job2.exception()))
"""


@pytest.mark.parametrize("print_traceback", [False, True])
def test_engine_settings_max_jobs_and_print_traceback(
    tmp_path: Path, print_traceback: bool
) -> None:
    script = tmp_path / "setting.py"
    script.write_text(SETTING)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "runs"), str(int(print_traceback))],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["3", "Exception('error')"]
    if print_traceback:
        assert "Traceback" in done.stderr and "Exception: error" in done.stderr
    else:
        assert done.stderr == ""  # nothing printed: the failure is on the job (and logged)


def test_failures_go_to_the_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jupyter_executor")
    with Engine(folder=tmp_path) as engine:
        ok = engine.submit(add, 1, 2, name="ok")
        bad = engine.submit(raise_exception, name="bad")
        engine.wait(30)
    by_level = {(r.levelname, r.getMessage().split("\n")[0]) for r in caplog.records}
    assert ("INFO", "started ok add()") in by_level
    assert ("INFO", "done ok") in by_level
    assert ("WARNING", "failed bad: Exception: error") in by_level
    assert ("DEBUG", "traceback of bad:") in by_level
    assert ok.result() == 3 and bad.status.value == "failed"


def test_jobs_manager(tmp_path: Path) -> None:
    with Engine(folder=tmp_path) as engine:
        gate = threading.Event()
        job1 = Job(lambda: (gate.wait(30), 3)[1])
        engine.submit(job1)
        assert engine.jobs.get_job_by_id(job1.id) is job1
        assert engine.get(job1.id) is job1
        job2 = Job(lambda: (gate.wait(30), 7)[1])
        engine.submit(job2)
        wait_until(lambda: len(engine.jobs.running) == 2, what="two running jobs")
        assert f"<Job {job1.name!r} running" in repr(engine.jobs)  # print(engine.jobs)
        gate.set()
        engine.wait(30)
        assert len(engine.jobs.done) == 2
        assert sorted(job.result() for job in engine.jobs.done.values()) == [3, 7]
        assert job1.id != job2.id and job1.id == job1.id  # stable for the job's life


def test_launcher_and_async_launcher(tmp_path: Path) -> None:
    engine = Engine(folder=tmp_path)

    @launcher(job_type="process", engine=engine)
    def padd(a: int, b: int) -> int:
        time.sleep(0.1)
        return a + b

    job = padd.submit(1, 2)
    engine.wait_job(job)
    assert job.result() == 3 and job.backend == "process"

    @launcher(async_mode=True, engine=engine)
    def aadd(a: int, b: int) -> int:
        time.sleep(0.1)
        return a + b

    async def main() -> int:
        job = await aadd.submit(1, 2)
        assert isinstance(job, Job)  # the job, not its result
        await job.join()
        return int(job.result())

    try:
        assert asyncio.run(main()) == 3
    finally:
        engine.shutdown()


def test_command_line_launcher(tmp_path: Path) -> None:
    with Engine(folder=tmp_path) as engine:

        @launcher(engine=engine)
        @command
        def cmd_add(a: int, b: int) -> str:
            return f"{sys.executable} -c 'print({a} + {b})'"

        job = cmd_add.submit(1, 2)
        engine.wait_job(job)
        assert job.result() == 0 and job.tail() == "3"
