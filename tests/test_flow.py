"""Flows: ``@flow`` functions, finding them in a file, running them sync, async and as jobs."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_executor import Engine, JobCancelled
from jupyter_executor._flow import Flow, UnknownFlow, find_flow, flow, load_flows, load_module

PY = sys.executable


@pytest.fixture(autouse=True)
def _restore_imports() -> Iterator[None]:
    """load_module() puts the flow file's folder on sys.path and imports it: undo both."""
    path, modules = list(sys.path), set(sys.modules)
    try:
        yield
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_decorator_names_and_descriptions() -> None:
    @flow
    async def sleepit(engine: Engine) -> None:
        """Sleep a little.

        More text.
        """

    @flow(name="other")
    def flow_plain() -> None:
        pass

    assert isinstance(sleepit, Flow) and sleepit.is_async
    assert (sleepit.name, sleepit.description) == ("sleepit", "Sleep a little.")
    assert (flow_plain.name, flow_plain.is_async, flow_plain.description) == ("other", False, "")
    assert flow(lambda: None, name="x").name == "x"
    with pytest.raises(ValueError, match="one word"):
        flow(lambda: None, name="two words")
    with pytest.raises(TypeError, match="decorates a function"):
        flow(int)


def test_awaiting_jobs_and_gather_inside_an_async_flow(engine: Engine) -> None:
    @flow
    async def pipeline(engine: Engine) -> int:
        a = engine.submit(lambda: 20, name="a")
        b = engine.submit([PY, "-c", "print('from b')"], name="b")
        c = engine.submit(asyncio.sleep, 0.01, 1, name="c")
        values = await engine.gather(a, b, c)  # scriptflow's bag(): results in order
        assert values == [20, 0, 1]
        return await engine.submit(lambda x: x + 1, a, name="d")  # await job -> its result

    assert pipeline.run(engine) == 21
    assert engine["b"].tail() == "from b"


def test_a_failed_job_raises_in_the_flow_that_awaits_it(engine: Engine) -> None:
    def boom() -> None:
        raise KeyError("missing")

    @flow
    async def fails(engine: Engine) -> None:
        bad = engine.submit(boom, name="bad")
        after = engine.submit(print, "never", name="after", requires=[bad])
        try:
            await bad
        except KeyError:
            pass
        else:  # pragma: no cover - the assertion below reports it
            raise AssertionError("await bad did not raise")
        await after  # cancelled because its requirement failed

    with pytest.raises(JobCancelled, match="'after' was cancelled: dependency 'bad' failed"):
        fails.run(engine)


def test_sync_flow_and_flow_without_engine_argument(engine: Engine) -> None:
    @flow
    def sync(engine: Engine) -> list[int]:
        jobs = [engine.submit(pow, i, 2, name=f"sq{i}") for i in range(3)]
        for job in jobs:
            engine.wait_job(job, timeout=10)
        return [job.result() for job in jobs]

    @flow
    async def no_argument() -> str:
        return "ran"

    assert sync.run(engine) == [0, 1, 4]
    assert no_argument.run(engine) == "ran"
    assert asyncio.run(no_argument()) == "ran"


def test_awaiting_a_flow_from_an_event_loop_and_run_inside_one(engine: Engine) -> None:
    @flow
    async def double(engine: Engine) -> int:
        return 2 * await engine.submit(lambda: 21, name="n")

    async def main() -> tuple[int, int]:
        awaited = await double(engine)  # what a notebook cell does: `await sleepit(engine)`
        engine.remove("n")
        # run() inside a running loop (a cell that forgot `await`) still works, in a thread
        return awaited, double.run(engine)

    assert asyncio.run(asyncio.wait_for(main(), 20)) == (42, 42)


def test_flow_submitted_as_a_job(engine: Engine) -> None:
    @flow
    async def background(engine: Engine) -> int:
        return await engine.submit(lambda: 5, name="inner") + 1

    @flow
    def background_sync(engine: Engine) -> str:
        job = engine.submit(lambda: "x", name="inner-sync")
        engine.wait_job(job)
        return job.result() * 2

    job = background.submit(engine)
    other = background_sync.submit(engine, name="custom")
    assert (job.name, job.backend, other.name, other.backend) == (
        "flow:background",
        "async",
        "custom",
        "thread",
    )
    assert engine.wait(timeout=20)
    assert (job.result(), other.result()) == (6, "xx")


def test_load_flows_from_a_file(tmp_path: Path, engine: Engine) -> None:
    write(tmp_path / "helper.py", "VALUE = 41\n")
    write(tmp_path / "other.py", "def flow_elsewhere(): pass\n")
    path = write(
        tmp_path / "myflows.py",
        """
        from jupyter_executor._flow import flow
        from helper import VALUE          # a module next to the file imports
        from other import flow_elsewhere  # a flow_ function defined elsewhere: not a flow

        @flow
        async def first(engine):
            '''The first flow.'''
            return VALUE + 1

        async def flow_second():          # scriptflow's naming convention
            return "second"

        def not_a_flow(engine):
            pass
        """,
    )
    flows = load_flows(path)
    assert list(flows) == ["first", "second"]
    assert flows["first"].description == "The first flow."
    assert asyncio.run(flows["first"](engine)) == 42
    assert find_flow(path, "second").run() == "second"
    with pytest.raises(
        UnknownFlow, match=r"no flow 'third' in .*myflows.py; its flows: first, second"
    ):
        find_flow(path, "third")
    empty = write(tmp_path / "empty.py", "x = 1\n")
    with pytest.raises(UnknownFlow, match="it defines none") as info:
        find_flow(empty, "any")
    assert info.value.available == []


def test_load_module_errors_and_name_clashes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_module(tmp_path / "missing.py")
    with pytest.raises(ValueError, match=r"a \.py file"):
        load_module(write(tmp_path / "flows.txt", ""))
    # a file named like a module that is already imported gets a name of its own
    clash = write(tmp_path / "json.py", "from jupyter_executor._flow import flow\nX = 1\n")
    module = load_module(clash)
    assert module.__name__ != "json" and module.X == 1
    assert sys.modules["json"].__name__ == "json"  # the real json module is untouched
    broken = write(tmp_path / "broken.py", "raise RuntimeError('bad flow file')\n")
    with pytest.raises(RuntimeError, match="bad flow file"):
        load_module(broken)
    assert "broken" not in sys.modules
