"""Hostile values at the door: limits, commands, environments and working directories that used
to be accepted and then hung the engine, failed the job far from the call, or reached the
shared subprocess zygote; and keywords a command has no function to pass to.

Each is refused at once, with one line naming the option and showing the value.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_executor import Engine, InvalidOption, InvalidOptionType, Job

NAN = float("nan")


def _one_line(exc: BaseException, *parts: str) -> None:
    message = str(exc)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)


# -- max_jobs=, limits=, keep_logs= --------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "expected"),
    [
        # nan compared False with everything: the jobs then stayed pending for ever.
        ({"max_jobs": NAN}, InvalidOption, "max_jobs=nan is not a whole number >= 1 or None"),
        ({"max_jobs": float("inf")}, InvalidOption, "max_jobs=inf is not a whole number"),
        ({"max_jobs": 1.5}, InvalidOption, "max_jobs=1.5 is not a whole number >= 1 or None"),
        ({"max_jobs": 0}, InvalidOption, "max_jobs=0 is not a whole number >= 1 or None"),
        ({"max_jobs": True}, InvalidOptionType, "max_jobs=True is not a whole number"),
        ({"max_jobs": 10**30}, InvalidOption, f"max_jobs={10**30} is too large"),
        ({"max_jobs": "3"}, InvalidOptionType, "max_jobs='3' is not a whole number"),
        ({"max_jobs": []}, InvalidOptionType, "max_jobs=[] is not a whole number"),
        ({"limits": {"thread": NAN}}, InvalidOption, "limits['thread']=nan is not a whole number >= 1 or None"),  # noqa: E501
        ({"limits": {"process": NAN}}, InvalidOption, "limits['process']=nan is not a whole number"),  # noqa: E501
        ({"limits": {"process": 1.5}}, InvalidOption, "limits['process']=1.5 is not a whole number"),  # noqa: E501
        ({"limits": {"thread": True}}, InvalidOptionType, "limits['thread']=True is not a whole number"),  # noqa: E501
        ({"limits": {"thread": "3"}}, InvalidOptionType, "limits['thread']='3' is not a whole number"),  # noqa: E501
        ({"limits": {"thread": 0}}, InvalidOption, "limits['thread']=0 is not a whole number >= 1 or None"),  # noqa: E501
        ({"limits": {"thread": 10**30}}, InvalidOption, f"limits['thread']={10**30} is too large"),
        ({"limits": 5}, InvalidOptionType, "limits=5 is not a mapping of backend names to limits"),
        ({"limits": [("thread", 2)]}, InvalidOptionType, "limits=[('thread', 2)] is not a mapping"),
        ({"limits": {1: 2}}, InvalidOptionType, "limits: 1 is not a backend"),
        ({"limits": {"gpu": 2}}, InvalidOption, "limits: unknown backend 'gpu'; use one of async"),
        ({"keep_logs": "3"}, InvalidOptionType, "keep_logs='3' is not a whole number >= 0"),
        ({"keep_logs": NAN}, InvalidOption, "keep_logs=nan is not a whole number >= 0"),
        ({"keep_logs": -1}, InvalidOption, "keep_logs=-1 is not a whole number >= 0"),
        ({"keep_logs": True}, InvalidOptionType, "keep_logs=True is not a whole number >= 0"),
        ({"keep_logs": None}, InvalidOptionType, "keep_logs=None is not a whole number >= 0"),
        ({"history": "no"}, InvalidOptionType, "history='no' is not True or False"),
        ({"folder": 5}, InvalidOptionType, "folder=5 is not a folder"),
        ({"default_backend": "gpu"}, InvalidOption, "default_backend='gpu' is not a backend"),
        ({"cluster_options": {"cores": 2}}, InvalidOption, "cluster_options= needs dask='slurm'"),
    ],
)  # fmt: skip
def test_a_bad_engine_option_is_refused_naming_it(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], expected: str
) -> None:
    before = set(threading.enumerate())
    with pytest.raises(error) as info:
        Engine(**{"folder": tmp_path, **options})
    _one_line(info.value, expected)
    assert set(threading.enumerate()) <= before  # refused before anything was started


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"thread": NAN}, "limits['thread']=nan is not a whole number >= 1 or None"),
        ({"process": "2"}, "limits['process']='2' is not a whole number >= 1 or None"),
        ({"gpu": 1}, "limits: unknown backend 'gpu'; use one of async"),
        # Checked whole before any is set: the good one is not half applied.
        ({"thread": 3, "process": 0}, "limits['process']=0 is not a whole number >= 1"),
    ],
)
def test_set_limits_refuses_what_engine_refuses(
    tmp_path: Path, limits: dict[str, Any], expected: str
) -> None:
    with Engine(folder=tmp_path, history=False) as engine:
        before = dict(engine.limits)
        with pytest.raises(InvalidOption) as info:
            engine.set_limits(**limits)
        _one_line(info.value, expected)
        assert engine.limits == before


def test_whole_limits_are_kept_as_ints_and_none_means_no_limit(tmp_path: Path) -> None:
    # As retries=2.0 is 2: an integral float is the whole number it is.
    with Engine(
        folder=tmp_path, history=False, max_jobs=2.0, limits={"thread": 3.0, "process": None},
        keep_logs=0,
    ) as engine:  # fmt: skip
        assert engine.max_jobs == 2 and type(engine.max_jobs) is int
        assert engine.limits["thread"] == 3 and type(engine.limits["thread"]) is int
        assert engine.limits["process"] is None
        assert engine.keep_logs == 0  # keep no earlier log (what _logs.archive(keep=0) does)
        engine.set_limits(thread=None, process=2.0)
        assert engine.limits["thread"] is None and type(engine.limits["process"]) is int
        jobs = [engine.submit(sum, [i], name=f"j{i}") for i in range(4)]
        assert engine.wait(timeout=30)
        assert [job.result() for job in jobs] == [0, 1, 2, 3]


# -- commands: every argv item is text the system can pass ---------------------------------------


class _BytesPath:
    def __fspath__(self) -> bytes:
        return b"/tmp"


@pytest.mark.parametrize(
    ("command", "error", "expected"),
    [
        # Before: accepted, then a TypeError (or "bytes is not JSON serializable") at run time.
        (["echo", 1], InvalidOptionType, "command[1]=1 is not text"),
        (["echo", None], InvalidOptionType, "command[1]=None is not text"),
        (["echo", b"x"], InvalidOptionType, "command[1]=b'x' is bytes: give text, os.fsdecode(b'x')"),  # noqa: E501
        (("echo", 2.5), InvalidOptionType, "command[1]=2.5 is not text"),
        (["echo", _BytesPath()], InvalidOptionType, "command[1]=b'/tmp' is bytes"),
        # Before: accepted, and the command line reached the shared zygote.
        ("echo a\x00b", InvalidOption, "command='echo a\\x00b' holds a NUL character"),
        (["echo", "a\x00b"], InvalidOption, "command[1]='a\\x00b' holds a NUL character"),
        ("echo \ud800", InvalidOption, "command='echo \\ud800' holds a lone surrogate"),
        (["echo", "\ud800"], InvalidOption, "command[1]='\\ud800' holds a lone surrogate"),
        ([Path("/bin/echo\x00")], InvalidOption, "command[0]='/bin/echo\\x00' holds a NUL"),
    ],
)  # fmt: skip
def test_a_bad_command_is_refused_at_submit(
    engine: Engine, command: Any, error: type[Exception], expected: str
) -> None:
    for make in (lambda: Job(command), lambda: engine.submit(command, name="bad")):
        with pytest.raises(error) as info:
            make()
        _one_line(info.value, expected)
    with pytest.raises(error):
        engine.submit(command, name="bad", detach=True)
    assert not engine.jobs


def test_a_long_command_with_a_nul_is_shown_around_it() -> None:
    script = "echo start; " + "x" * 10_000 + "\x00" + "y" * 10_000
    with pytest.raises(InvalidOption) as info:
        Job(script)
    message = str(info.value)
    assert "\\x00" in message and "index 10012" in message and len(message) < 300


def test_paths_and_undecodable_bytes_stay_good_command_items(engine: Engine) -> None:
    # A path is text (os.fspath); os.fsdecode(b"\xff") is a legal non-UTF-8 file name.
    odd = os.fsdecode(b"x\xff")
    job = engine.submit([sys.executable, "-c", "import sys; print(len(sys.argv))", Path("/x"), odd])
    assert engine.wait(timeout=30) and job.output.tail() == "3"
    assert Job(f"echo {odd}").kind == "command"


# -- env= and cwd=: no NUL, no lone surrogate ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "expected"),
    [
        ({"env": {"X": "\ud800"}}, InvalidOption, "env['X']='\\ud800' holds a lone surrogate"),
        ({"env": {"X\ud800": "1"}}, InvalidOption, "env: 'X\\ud800' is not an environment variable name"),  # noqa: E501
        ({"env": {"X": "a\x00"}}, InvalidOption, "env['X']='a\\x00' holds a NUL character"),
        ({"cwd": "/tmp\x00x"}, InvalidOption, "cwd='/tmp\\x00x' holds a NUL character"),
        ({"cwd": Path("/tmp\x00x")}, InvalidOption, "cwd='/tmp\\x00x' holds a NUL character"),
        ({"cwd": "/tmp/\ud800"}, InvalidOption, "cwd='/tmp/\\ud800' holds a lone surrogate"),
        ({"cwd": _BytesPath()}, InvalidOptionType, "is not a folder"),
    ],
)  # fmt: skip
def test_a_bad_env_or_cwd_is_refused_at_submit(
    engine: Engine, options: dict[str, Any], error: type[Exception], expected: str
) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: Job(["true"], **options),
        lambda: engine.submit(["true"], name="bad", **options),
        lambda: engine.submit(["true"], name="bad", detach=True, **options),
        lambda: engine.submit(print, name="bad", detach=True, **options),
    ]
    for call in calls:
        with pytest.raises(error) as info:
            call()
        _one_line(info.value, expected)
    assert not engine.jobs


def test_undecodable_bytes_stay_good_in_env_and_cwd(engine: Engine, tmp_path: Path) -> None:
    odd = os.fsdecode(b"d\xff")
    folder = tmp_path / odd
    folder.mkdir()
    job = engine.submit("printf %s \"$V\" | od -An -tx1 | tr -d ' \\n'", env={"V": odd}, cwd=folder)
    assert engine.wait(timeout=30), job.exception()
    assert job.output.tail() == "64ff"


# -- keywords a command has no function to pass to ------------------------------------------------


@pytest.mark.parametrize("target", ["true", ["true"], ("true",)])
@pytest.mark.parametrize(
    ("keywords", "expected"),
    [
        ({"timout": 5}, "timout=5 is not a job option (did you mean timeout=?)"),
        ({"limits": 5}, "limits=5 is not a job option"),
        ({"max_jobs": 2}, "max_jobs=2 is not a job option"),
    ],
)
def test_a_command_refuses_a_keyword_that_is_no_option(
    engine: Engine, target: Any, keywords: dict[str, Any], expected: str
) -> None:
    # Before: the keyword went to kwargs, which a command ignores: no timeout, no warning.
    with pytest.raises(InvalidOptionType) as info:
        engine.submit(target, **keywords)
    _one_line(info.value, expected)
    assert not engine.jobs


def test_a_command_refuses_arguments_it_would_ignore(engine: Engine) -> None:
    with pytest.raises(InvalidOption) as info:
        engine.submit("echo", "hi")
    _one_line(info.value, "a command takes no arguments: write them in it")
    with pytest.raises(InvalidOption):
        Job(["echo"], kwargs={"x": 1})
    assert not engine.jobs


def test_a_function_still_gets_the_keywords_that_are_no_options(engine: Engine) -> None:
    job = engine.submit(dict, timout=5)
    assert engine.wait(timeout=30) and job.result() == {"timout": 5}


def test_an_odd_job_name_reaches_its_command_as_text_it_can_hold(engine: Engine) -> None:
    # The name is given to the command as JUPYTER_EXECUTOR_JOB: a lone surrogate in it made
    # posix_spawn fail (the zygote died of it, with every other command it ran).
    job = engine.submit(["sh", "-c", 'printf "%s" "$JUPYTER_EXECUTOR_JOB"'], name="a\ud800b\x00c")
    assert engine.wait_job(job, timeout=30)
    assert job.tail() == "a\\ud800b\\x00c"
