from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jupyter_executor import (
    Engine,
    InvalidOption,
    InvalidTransition,
    Job,
    JobNotFinished,
    Status,
    SubmitError,
)
from jupyter_executor._status import check_transition


async def coro() -> int:
    return 1


def test_status_is_a_str_enum() -> None:
    assert Status.DONE == "done"
    assert str(Status.FAILED) == "failed"
    assert Status.CANCELLED.finished and not Status.RUNNING.finished


@pytest.mark.parametrize(
    ("old", "new"),
    [("created", "running"), ("done", "running"), ("running", "created"), ("failed", "done")],
)
def test_invalid_transitions_are_refused(old: str, new: str) -> None:
    with pytest.raises(InvalidTransition, match=f"from {old} to {new}"):
        check_transition("j", Status(old), Status(new))


def test_allowed_transitions() -> None:
    allowed = [
        ("created", "pending"), ("pending", "running"), ("running", "done"),
        ("running", "failed"), ("running", "cancelled"), ("pending", "cancelled"),
        ("done", "pending"), ("running", "pending"),
    ]  # fmt: skip
    for old, new in allowed:
        check_transition("j", Status(old), Status(new))


def test_backend_inferred_from_target() -> None:
    c = coro()
    assert Job(c).backend == "async"
    assert Job(coro).backend == "async"
    assert Job(print).backend == "thread"
    assert Job("echo hi").backend == "subprocess"
    assert Job(["echo", "hi"]).backend == "subprocess"
    assert Job(print, backend="process").backend == "process"
    c.close()  # never submitted


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="backend='gpu' is not a backend"):
        Job(print, backend="gpu")
    with pytest.raises(ValueError, match="coroutine object runs on the async backend only"):
        Job(coro(), backend="thread")
    c = coro()
    with pytest.raises(ValueError, match="cannot be retried"):
        Job(c, retries=2)
    assert c.cr_frame is None  # the refused coroutine was closed: no "never awaited" warning
    with pytest.raises(ValueError, match="timeout=0 must be a duration > 0"):
        Job(print, timeout=0)
    with pytest.raises(TypeError, match="cannot run 42"):
        Job(42)
    with pytest.raises(ValueError, match="not both"):
        Job(print, name="a", label="b")


def test_label_is_an_alias_and_requires_chains() -> None:
    a = Job(print, label="a")
    b = Job(print, name="b").requires(a, None, ["x", [a]])
    assert a.name == "a"
    assert b.required_jobs() == [a, "x", a]
    assert Job(print, requires=["a"]).required_jobs() == ["a"]


def test_result_of_an_unfinished_job_is_a_clear_error() -> None:
    job = Job(print, name="p")
    with pytest.raises(JobNotFinished, match="'p' is created"):
        job.result()
    assert job.exception() is None


def test_coroutine_job_closes_unrun_coroutine() -> None:
    c = coro()
    with pytest.raises(ValueError):
        Job(c, backend="process")
    assert c.cr_frame is None  # closed: no "never awaited" warning later


@pytest.mark.parametrize(
    "value",
    [None, 0, -7, 10**39, 10**45, 1.5, -1e300, float("nan"), True, 3 + 4j, "text", "x" * 100,
     [1, 2, 3, 4, 5, 6, 7, 8], {"a": 1}, object()],
)  # fmt: skip
def test_a_results_short_repr_is_reprlibs(value: object) -> None:
    # info() takes a shortcut for plain numbers; what it shows must not change with it.
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlist, short.maxdict = 6, 4
    with Engine(history=False) as engine:
        job = engine.submit(lambda: value, name="v")
        assert engine.wait(timeout=10)
        info = job.info()
    assert info.result == short.repr(value)
    assert len(info.result) <= 60


@pytest.mark.timeout(30)
def test_awaiting_a_job_never_submitted_raises_at_once(tmp_path: Path) -> None:
    job = Job(sum, args=([1, 2],), name="lonely")

    async def wait_for_it() -> object:
        return await job

    with pytest.raises(SubmitError, match=r"'lonely' was never submitted.*submit it first"):
        asyncio.run(asyncio.wait_for(wait_for_it(), 10))  # a hang would be a TimeoutError
    with Engine(folder=tmp_path, history=False) as engine:
        engine.submit(job)
        assert asyncio.run(asyncio.wait_for(wait_for_it(), 10)) == 3
        assert engine.wait(timeout=10)


@pytest.mark.timeout(30)
def test_what_the_engine_files_a_job_under_is_fixed_once_submitted(tmp_path: Path) -> None:
    job = Job(sum, args=([1],), name="first")
    job.name = "renamed"  # before submitting: fine
    job.backend = "thread"
    # the option's own check and message (_options.py), as for Job(backend=...)
    with pytest.raises(InvalidOption, match="backend='gpu' is not a backend"):
        job.backend = "gpu"
    with pytest.raises(InvalidOption, match="name=' ' is not a job name"):
        job.name = " "
    with Engine(folder=tmp_path, history=False) as engine:
        engine.submit(job)
        for attribute, value in (
            ("name", "other"),
            ("backend", "process"),
            ("forever", True),
            ("requirements", ("x",)),
        ):
            with pytest.raises(
                SubmitError, match=f"'renamed' is already submitted: its {attribute}"
            ):
                setattr(job, attribute, value)
        assert engine.wait(timeout=10)
        assert engine["renamed"] is job and job.name == "renamed" and job.backend == "thread"
        assert "other" not in engine
