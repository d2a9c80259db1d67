"""``engine.submit(fn, detach=True)``: a function run in a detached process, in plain Python.

The kernel side (a ``%%job NAME --detach`` cell surviving a SIGKILL of its kernel, re-attached
and fetched by the next one) is in ``test_detached_kernel.py``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _leaks import assert_nothing_left, child_processes

from jupyter_executor import Engine, Job
from jupyter_executor._detached import OutputsError
from jupyter_executor.errors import InvalidOption, JobNotFinished

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    before = {p.pid for p in child_processes()}
    eng = Engine(folder=tmp_path / "runs")
    try:
        yield eng
    finally:
        eng.shutdown()
        assert_nothing_left(before)


def scale(values: list[int], factor: int = 1) -> list[int]:
    return [v * factor for v in values]


def test_a_detached_function_returns_its_result_through_outputs(engine: Engine) -> None:
    job = engine.submit(scale, [1, 2, 3], factor=10, detach=True, name="scale")
    assert job.detach and job.backend == "subprocess"
    assert job.describe() == "scale(...)"
    assert engine.wait_job("scale", 60)
    assert job.outputs == {"result": [10, 20, 30]}
    for suffix in (".input.pkl", ".result.pkl"):
        path = engine.log_path("scale").with_name("scale" + suffix)
        assert os.stat(path).st_mode & 0o777 == 0o600
    # A later engine on the folder reads them too (the job is not in it: it ended before).
    other = Engine(folder=engine.folder)
    try:
        late = Job(["true"], name="scale", detach=True)
        late.engine = other
        with pytest.raises(JobNotFinished, match="is created: its outputs come when it is done"):
            late.outputs  # noqa: B018 - the property raises
    finally:
        other.shutdown()


def test_a_failing_function_leaves_no_outputs_and_says_where_to_look(engine: Engine) -> None:
    job = engine.submit(scale, None, detach=True, name="broken")
    assert not engine.wait_job("broken", 60)
    assert "TypeError" in (job.log_path.read_text() if job.log_path else "")
    with pytest.raises(OutputsError, match=r"left no outputs \(it failed\); see its log"):
        job.outputs  # noqa: B018


def test_detach_of_a_function_is_checked_at_the_door(engine: Engine) -> None:
    with pytest.raises(InvalidOption, match="submit\\(fn, detach=True\\) needs name="):
        engine.submit(scale, [1], detach=True)
    with pytest.raises(ValueError, match=r"cannot ship .* to a detached process .*lock"):
        engine.submit(scale, threading.Lock(), detach=True, name="lock")
    assert not engine.jobs
