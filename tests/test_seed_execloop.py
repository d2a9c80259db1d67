"""execloop's README (seeds/004) on our API: tasks with pre/post actions and sub-tasks, a plan
asked again until it returns no task, errors tolerated, sleep between runs, a timeout."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from jupyter_executor import Engine, Job, cancelled, get_engine

pytestmark = pytest.mark.timeout(60)


def test_pre_action_post_and_returned_subtasks(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    done: list[str] = []
    lock = threading.Lock()

    def note(what: str) -> None:
        with lock:
            done.append(what)

    def perform(name: str) -> list[Job]:
        note(name)
        # PerformAction() ([]Task, error): the sub-tasks run after it, in the same round
        return [Job(note, args=(f"{name}/sub{i}",), name=f"{name}-sub{i}") for i in range(2)]

    def plan() -> list[Job]:
        if "b/sub1" in done:
            return []  # the desired state is reached
        return [
            Job(perform, args=(n,), name=n, before=lambda j: note(f"pre {j.name}"),
                after=lambda j: note(f"post {j.name}"))
            for n in ("a", "b")
        ]  # fmt: skip

    log = logging.getLogger("test.execloop")
    caplog.set_level(logging.INFO, logger="test.execloop")
    assert engine.converge(plan, logger=log) is True
    assert done.index("pre a") < done.index("a") < done.index("post a") < done.index("a/sub0")
    assert {"a/sub0", "a/sub1", "b/sub0", "b/sub1"} <= set(done)
    messages = [r.getMessage() for r in caplog.records if r.name == "test.execloop"]
    assert messages == ["round 1: 2 tasks remaining", "converged after 1 rounds"]


def test_submitted_subtasks_are_waited_for_and_their_failures_counted(engine: Engine) -> None:
    rounds = 0

    def bad() -> None:
        time.sleep(0.2)
        raise RuntimeError("sub-task failed")

    def parent() -> str:
        # a sub-task submitted from inside the job, to the same engine
        get_engine_of_test.submit(bad, name="child")
        return "parent done"

    get_engine_of_test = engine

    def plan() -> list[Job]:
        nonlocal rounds
        rounds += 1
        return [Job(parent, name="parent")]

    assert engine.converge(plan, errors_to_tolerate=0) is False
    assert rounds == 1
    assert engine["parent"].children == [engine["child"]]
    assert engine["child"].status.value == "failed"  # waited for, and counted


def test_errors_to_tolerate_sleep_and_timeout(engine: Engine) -> None:
    tries = 0

    def flaky() -> None:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise RuntimeError("not yet")

    state = {"ok": False}

    def plan() -> list[Job]:
        if state["ok"]:
            return []

        def step() -> None:
            flaky()
            state["ok"] = True

        return [Job(step, name="step")]

    assert engine.converge(plan, errors_to_tolerate=2, sleep_between_runs=0.01) is True
    assert tries == 3

    def slow() -> None:
        while not cancelled():  # stops when cancelled (a C-level sleep would not)
            time.sleep(0.02)

    assert engine.converge(lambda: [Job(slow, name="slow")], timeout=0.5) is False
    engine.wait_job("slow", 30)
    assert engine["slow"].status.value == "cancelled"


def test_subtasks_inside_the_process_engine(tmp_path: Path) -> None:
    # submitted with get_engine(), as a job written for the notebook would
    engine = get_engine(folder=tmp_path)
    try:

        def parent() -> None:
            get_engine().submit(lambda: 1, name="kid")

        assert engine.converge(lambda: [] if "kid" in engine else [Job(parent, name="p")]) is True
        assert engine["kid"].result() == 1 and engine["p"].children == [engine["kid"]]
    finally:
        engine.shutdown()
