"""``@launcher`` and ``@command``: functions and command templates that submit themselves."""

from __future__ import annotations

import asyncio
import sys

import pytest

from jupyter_executor import CommandFailed, Engine, Job
from jupyter_executor._launcher import Command, Launcher, command, launcher

PY = sys.executable


def test_sync_launcher_stays_callable_and_submits(engine: Engine) -> None:
    @launcher(engine=engine)
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert isinstance(add, Launcher)
    assert add(1, 2) == 3  # a plain call, no job
    assert add.__name__ == "add" and add.__doc__ == "Add two numbers."
    assert len(engine) == 0
    first, second = add.submit(1, 2), add.submit(b=5, a=5)
    assert isinstance(first, Job) and first.backend == "thread"
    assert (first.name, second.name) == ("add", "add-2")  # generated names never collide
    assert engine.wait(timeout=10)
    assert (first.result(), second.result()) == (3, 10)


def test_launcher_options_reach_the_job(engine: Engine) -> None:
    @launcher(engine=engine, backend="process", retries=1, timeout=30)
    def square(x: int) -> int:
        return x * x

    job = square.options(name="sq").submit(7)
    assert (job.name, job.backend, job.retries, job.timeout) == ("sq", "process", 1, 30)
    assert engine.wait_job(job, timeout=30) and job.result() == 49
    # options() returns a copy: the original launcher is unchanged
    assert square.job_options == {"backend": "process", "retries": 1, "timeout": 30}


def test_bare_decorator_and_plain_engine_argument(engine: Engine) -> None:
    @launcher
    def hello() -> str:
        return "hi"

    assert hello.engine is None and hello.job_options == {}
    job = hello.options(engine=engine).submit()
    assert engine.wait_job(job, timeout=10) and job.result() == "hi"


def test_async_function_launcher_with_asubmit(engine: Engine) -> None:
    @launcher(engine=engine)
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    async def main() -> tuple[Job, int, list[int]]:
        job = await double.asubmit(21)  # the Job, at once
        value = await job  # its result, awaited from this (foreign) event loop
        more = await engine.gather(double.submit(1), await double.asubmit(2))
        return job, value, more

    job, value, more = asyncio.run(asyncio.wait_for(main(), 10))
    assert job.backend == "async" and value == 42 and more == [2, 4]
    assert asyncio.run(double(5)) == 10  # still a coroutine function when called directly


def test_failure_of_a_launched_job_is_stored_not_raised(engine: Engine) -> None:
    @launcher(engine=engine)
    def boom() -> None:
        raise ValueError("bad input")

    job = boom.submit()
    assert engine.wait_job(job, timeout=10) is False
    with pytest.raises(ValueError, match="bad input"):
        job.result()


def test_command_template_as_a_subprocess_job(engine: Engine) -> None:
    @launcher(engine=engine)
    @command
    def cmd_add(a: int, b: int) -> str:
        return f"{PY} -c 'print({a} + {b})'"

    job = cmd_add.submit(1, 2)
    assert job.backend == "subprocess" and job.kind == "command"
    assert job.name == "cmd_add"  # named after the template, not after "python"
    assert engine.wait_job(job, timeout=20)
    assert job.result() == 0 and job.tail() == "3"
    assert "print(1 + 2)" in job.describe()


def test_command_argv_template_and_failure(engine: Engine) -> None:
    @launcher(engine=engine)
    @command
    def fail(code: int) -> list[str]:
        return [PY, "-c", f"import sys; print('failing'); sys.exit({code})"]

    job = fail.submit(4)
    assert engine.wait_job(job, timeout=20) is False
    assert isinstance(job.exception(), CommandFailed)
    assert job.exception().returncode == 4  # type: ignore[union-attr]
    assert job.tail() == "failing"


def test_command_called_directly_runs_now(capsys: pytest.CaptureFixture[str]) -> None:
    @command
    def echo(word: str) -> list[str]:
        return [PY, "-c", f"print({word!r})"]

    assert isinstance(echo, Command) and echo.__name__ == "echo"
    assert echo.render("hi") == [PY, "-c", "print('hi')"]
    assert echo("hi") == 0
    assert capsys.readouterr().out == "hi\n"  # through sys.stdout, so a notebook shows it

    @command
    def bad() -> str:
        return "exit 5"

    with pytest.raises(CommandFailed, match="exited with code 5") as info:
        bad()
    assert info.value.returncode == 5


def test_bad_uses_are_clear_errors() -> None:
    # the messages of Job(...): one option schema (_options.py)
    with pytest.raises(TypeError, match=r"colour='red' is not a job option"):
        launcher(colour="red")(print)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="backend='gpu' is not a backend"):
        launcher(backend="gpu")
    with pytest.raises(ValueError, match="timeout='soon' is not a duration"):
        launcher(timeout="soon")
    with pytest.raises(TypeError, match="decorates a function, not the class"):
        launcher(int)

    @command
    def empty() -> str:
        return "  "

    with pytest.raises(ValueError, match="empty command"):
        empty.render()
    with pytest.raises(ValueError, match="runs on the subprocess backend, not 'process'"):
        launcher(backend="process")(empty)
    with pytest.raises(TypeError, match="must return a command string"):
        command(lambda: 3).render()  # type: ignore[arg-type, return-value]
