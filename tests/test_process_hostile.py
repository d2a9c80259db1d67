"""The process backend under hostile jobs: what a job sends back, reads, forks or raises never
leaves a job running for ever, fails a job that did nothing wrong, or takes a worker down
unnoticed (found by a hostile-input hunt; each test fails on the tree before its fix)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
from _wait import wait_until

from jupyter_executor import Engine, WorkerCrashed

# A module only the worker imports: the kernel has no such folder on its sys.path.
_MODULE = """
class Value:
    def __init__(self, x):
        self.x = x

class Failure(Exception):
    pass
"""


def _only_in_the_worker(folder: str, what: str) -> object:
    sys.path.insert(0, folder)
    import worker_only  # type: ignore[import-not-found]

    if what == "raise":
        raise worker_only.Failure("from the worker")
    return worker_only.Value(42)


def _double(x: int) -> int:
    return 2 * x


def _pid() -> int:
    return os.getpid()


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _exit(code: int) -> None:
    os._exit(code)


def _ask() -> str:
    return input("your answer? ")


class _BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def _raise_bad_str() -> None:
    raise _BadStr


def _fork_then_crash(pid_file: str) -> None:
    child = os.fork()
    if child == 0:  # a multiprocessing-like child that outlives its parent
        time.sleep(60)
        os._exit(0)
    Path(pid_file).write_text(str(child))
    os._exit(3)


@pytest.mark.parametrize("what", ["return", "raise"])
def test_what_only_the_worker_can_unpickle_fails_that_job_and_the_worker_goes_on(
    engine: Engine, tmp_path: Path, what: str
) -> None:
    folder = tmp_path / "only_here"
    folder.mkdir()
    (folder / "worker_only.py").write_text(_MODULE)
    engine.set_limits(process=1)
    first = engine.submit(_pid, backend="process", name="first")
    bad = engine.submit(_only_in_the_worker, str(folder), what, backend="process", name="bad")
    after = [engine.submit(_double, i, backend="process", name=f"after{i}") for i in range(3)]
    last = engine.submit(_pid, backend="process", name="last")
    assert not engine.wait(timeout=60)  # it returns: nothing is left running
    assert bad.status == "failed"
    message = str(bad.exception())
    assert "cannot be unpickled in the kernel" in message and "worker_only" in message
    assert [j.result() for j in after] == [0, 2, 4]
    assert last.result() == first.result()  # the same worker served them all
    rows = engine.history()
    assert dict(zip(rows["name"], rows["status"], strict=True))["bad"] == "failed"


def test_jobs_held_behind_jobs_that_time_out_are_not_failed(engine: Engine) -> None:
    # One worker: each timeout kills it, and the jobs it held go to the next one. Four in a row
    # failed the held jobs, which never ran, as crashed ("killed by signal SIGTERM").
    engine.set_limits(process=1)
    slow = [
        engine.submit(_sleep, 30, backend="process", name=f"slow{i}", timeout=0.5) for i in range(4)
    ]
    held = [engine.submit(_double, i, backend="process", name=f"held{i}") for i in range(3)]
    engine.wait(timeout=90)
    assert [j.status for j in slow] == ["cancelled"] * 4
    assert [j.status for j in held] == ["done"] * 3
    assert [j.result() for j in held] == [0, 2, 4]


def test_jobs_held_behind_jobs_that_crash_are_not_failed(engine: Engine) -> None:
    engine.set_limits(process=1)
    crashes = [engine.submit(_exit, 3 + i, backend="process", name=f"crash{i}") for i in range(4)]
    held = [engine.submit(_double, i, backend="process", name=f"held{i}") for i in range(3)]
    engine.wait(timeout=90)
    for i, job in enumerate(crashes):
        assert isinstance(job.exception(), WorkerCrashed)
        assert f"exited with code {3 + i}" in str(job.exception())
    assert [j.result() for j in held] == [0, 2, 4]


def test_a_job_that_reads_stdin_gets_an_end_of_file(engine: Engine) -> None:
    # Its stdin was the kernel's pipe of frames: input() waited for ever (and the jobs the
    # worker held with it), or read the kernel's next frame.
    engine.set_limits(process=1)
    ask = engine.submit(_ask, backend="process", name="ask")
    after = [engine.submit(_double, i, backend="process", name=f"after{i}") for i in range(3)]
    engine.wait(timeout=60)
    assert ask.status == "failed"
    assert isinstance(ask.exception(), EOFError)
    assert [j.result() for j in after] == [0, 2, 4]


def test_an_exception_whose_str_raises_fails_its_job_only(engine: Engine) -> None:
    # The worker formatted its message unguarded: it died, and the job was said to have
    # crashed (tests/test_error_text.py: the same in the engine, for every backend).
    engine.set_limits(process=1)
    bad = engine.submit(_raise_bad_str, backend="process", name="bad")
    after = engine.submit(_double, 4, backend="process")
    engine.wait(timeout=60)
    assert bad.status == "failed"
    assert type(bad.exception()).__name__ == "_BadStr"
    assert after.result() == 8
    row = engine.history("bad").iloc[-1]
    assert row["status"] == "failed"
    assert row["error"] == "_BadStr: <exception str() failed>"


def test_a_worker_that_crashes_with_a_forked_child_alive_ends_its_job_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    # The child held the worker's pipes: the job showed running, and the jobs held behind it
    # pending, until the child ended (here a minute); then the child ran on, an orphan.
    engine.set_limits(process=1)
    pid_file = tmp_path / "child.pid"
    crash = engine.submit(_fork_then_crash, str(pid_file), backend="process", name="crash")
    held = [engine.submit(_double, i, backend="process", name=f"held{i}") for i in range(3)]
    start = time.monotonic()
    engine.wait(timeout=60)
    assert time.monotonic() - start < 30
    assert isinstance(crash.exception(), WorkerCrashed)
    assert "exited with code 3" in str(crash.exception())
    assert [j.result() for j in held] == [0, 2, 4]
    child = int(pid_file.read_text())
    wait_until(lambda: not psutil.pid_exists(child), 10, "the crashed job's child is stopped")


def test_a_fork_server_killed_as_it_is_asked_for_a_worker(engine: Engine) -> None:
    # The engine learns that its fork server died from the end of its socket; jobs that asked
    # for a worker before that failed, all of them, as "cannot start a worker process".
    engine.set_limits(process=4)
    engine.submit(_pid, backend="process", name="first")
    assert engine.wait(timeout=60)
    me = psutil.Process()
    servers = [p for p in me.children() if "zygote" in " ".join(p.cmdline())]
    assert len(servers) == 1
    busy = [engine.submit(_sleep, 1.0, backend="process", name="busy")]
    os.kill(servers[0].pid, signal.SIGKILL)
    jobs = [engine.submit(_double, i, backend="process", name=f"new{i}") for i in range(6)]
    engine.wait(timeout=60)
    assert [j.status for j in jobs] == ["done"] * 6
    assert [j.result() for j in jobs] == [0, 2, 4, 6, 8, 10]
    assert busy[0].result() == 1.0


def _fd_level(i: int) -> int:
    import subprocess

    os.write(1, f"fd 1 of job {i}\n".encode())
    subprocess.run(["echo", f"a command of job {i}"], check=True)  # its stdout: our fd 1
    os.write(2, f"fd 2 of job {i}\n".encode())
    return i


def _close_fds() -> str:
    os.close(1)
    os.close(2)
    return "closed"


def test_what_jobs_write_at_the_file_descriptor_level_is_each_its_own(engine: Engine) -> None:
    # One worker runs the jobs it holds one after the other without waiting for the kernel:
    # what they wrote to fd 1 and 2 (C code, os.write, commands) was read later, apart from
    # the frames, and shown with whichever job ran then (here all with the first, or lost).
    # A job that closes them does not close them for the next ones.
    engine.set_limits(process=1)
    jobs = [engine.submit(_fd_level, i, backend="process", name=f"j{i}") for i in range(3)]
    closer = engine.submit(_close_fds, backend="process", name="closer")
    more = [engine.submit(_fd_level, i, backend="process", name=f"j{i}") for i in range(3, 6)]
    assert engine.wait(timeout=60)
    assert closer.result() == "closed"
    for i, job in enumerate([*jobs, *more]):
        assert job.tail(10).splitlines() == [
            f"fd 1 of job {i}",
            f"a command of job {i}",
            f"fd 2 of job {i}",
        ], job.name


def test_the_marks_between_jobs_are_found_across_reads() -> None:
    # The stderr pipe is read as it comes: a mark may be cut by a read anywhere, and so may
    # a character; text that is no mark is kept whole.
    import asyncio

    from jupyter_executor._worker import END_MARK
    from jupyter_executor.backends.process import _RawOutput

    got: list[str] = []
    stream = "a€b".encode() + END_MARK + b"c\0\0d" + END_MARK + END_MARK + b"e"

    async def main() -> None:
        read, write = os.pipe()
        raw = _RawOutput(asyncio.get_running_loop(), read, got.append, lambda: got.append("|"))
        for i in range(len(stream)):  # one byte at a time, each read apart
            os.write(write, stream[i : i + 1])
            raw.drain()
        os.close(write)
        await asyncio.wait_for(raw.done, 10)

    asyncio.run(main())
    assert "".join(got) == "a€b|c\0\0d||e"
