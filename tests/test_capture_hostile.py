"""Hostile input to the output routing: what a job writes lands in that run's output, no other."""

from __future__ import annotations

import asyncio
import contextvars
import io
import sys
import threading
from pathlib import Path

import pytest
from _script import run_python
from _wait import wait_until

from jupyter_executor import Engine
from jupyter_executor._capture import Output


@pytest.mark.timeout(30)
def test_binary_writes_land_in_the_job(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    def binary() -> None:
        sys.stdout.buffer.write(b"raw bytes\n")
        sys.stdout.buffer.flush()
        letter = "ß".encode()
        sys.stderr.buffer.write(letter[:1])  # a character split between two writes
        sys.stderr.buffer.write(letter[1:] + b"\n")

    job = engine.submit(binary, name="binary")
    assert engine.wait(timeout=20)
    assert job.exception() is None
    assert job.tail() == "raw bytes\nß"
    assert job.log_path is not None
    assert job.log_path.read_text(encoding="utf-8") == "raw bytes\nß\n"
    captured = capsys.readouterr()
    assert "raw bytes" not in captured.out and "ß" not in captured.err


@pytest.mark.timeout(10)
def test_undecodable_bytes_are_replaced_as_in_a_commands_output() -> None:
    out = Output()
    out.write_bytes(b"bad \xff byte\n")
    out.write_bytes("é".encode()[:1])  # cut short by the end of the run
    out.close()
    assert out.tail() == "bad \ufffd byte\n\ufffd"


@pytest.mark.timeout(30)
def test_writing_bytes_to_the_text_stream_raises(engine: Engine) -> None:
    job = engine.submit(lambda: sys.stdout.write(b"x"), name="bytes")  # type: ignore[arg-type]
    assert not engine.wait(timeout=20)
    assert isinstance(job.exception(), TypeError)
    assert "b'x'" not in job.tail()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("backend", ["thread", "async"])
def test_what_run_one_left_running_does_not_write_into_run_two(
    engine: Engine, backend: str
) -> None:
    go = threading.Event()
    wrote = threading.Event()
    runs: list[int] = []

    def later() -> None:
        go.wait(10)
        print("late line of run 1")
        wrote.set()

    def start_leftover() -> None:
        runs.append(1)
        print(f"run {len(runs)}")
        if len(runs) == 1:
            # A thread started in the run's context, as a task would be.
            threading.Thread(target=contextvars.copy_context().run, args=(later,)).start()

    async def astart_leftover() -> None:
        runs.append(1)
        print(f"run {len(runs)}")
        if len(runs) == 1:

            async def alater() -> None:
                await asyncio.to_thread(go.wait, 10)
                print("late line of run 1")
                wrote.set()

            asyncio.get_running_loop().create_task(alater())

    target = start_leftover if backend == "thread" else astart_leftover
    job = engine.submit(target, name="leftover", backend=backend)
    assert engine.wait(timeout=20)
    first = job.output
    engine.rerun(job)
    assert engine.wait(timeout=20)
    go.set()
    assert wrote.wait(10)
    assert job.output is not first
    assert job.tail() == "run 2"
    assert first.tail() == "run 1\nlate line of run 1"


@pytest.mark.timeout(10)
def test_progress_ending_with_carriage_returns_keeps_one_line() -> None:
    out = Output()
    for i in range(101):
        out.write(f"{i}%\r")  # print(f"{i}%", end="\r")
    assert out.tail() == "100%"
    out.write("\n")
    out.write("done\n")
    assert out.tail() == "100%\ndone"
    assert out.line_count == 2


@pytest.mark.timeout(30)
def test_a_redirect_left_by_run_one_does_not_swallow_run_two(engine: Engine) -> None:
    runs: list[int] = []

    def redirects() -> None:
        runs.append(threading.get_ident())
        print(f"run {len(runs)}")
        if len(runs) == 1:
            sys.stdout = io.StringIO()  # never put back

    job = engine.submit(redirects, name="redirects", backend="thread")
    assert engine.wait(timeout=20)
    assert job.tail() == "run 1"
    # the same worker thread (and its context) runs the rerun: the one thread is idle again
    wait_until(lambda: engine._backends["thread"]._idle == 1, what="an idle thread")  # type: ignore[attr-defined]
    engine.rerun(job)
    assert engine.wait(timeout=20)
    assert runs[0] == runs[1]
    assert job.tail() == "run 2"


@pytest.mark.timeout(60)
def test_a_job_detaching_its_stdout_leaves_the_programs_attached(tmp_path: Path) -> None:
    # The idiom that makes stdout UTF-8, in a job: it detached the program's own stdout, so
    # that the job's prints went around its output and the program's raised from then on.
    script = (
        "import io, sys\n"
        "from jupyter_executor import Engine\n"
        "engine = Engine(folder='engine', history=False)\n"
        "def utf8():\n"
        "    sys.stdout = io.TextIOWrapper(sys.stdout.detach(), encoding='utf-8')\n"
        "    print('from the job', flush=True)\n"
        "job = engine.submit(utf8, name='utf8')\n"
        "engine.wait(timeout=20)\n"
        "print('from the program', job.status.value, repr(job.tail()))\n"
        "engine.shutdown()\n"
    )
    done = run_python(script, tmp_path, 50)
    assert done.stdout == "from the program done 'from the job'\n"


@pytest.mark.timeout(30)
def test_a_job_that_sets_stdout_to_none_prints_nothing(engine: Engine) -> None:
    # As in plain Python, where print() with sys.stdout None writes nothing: the job's
    # prints still went to its output.
    def quiet() -> str:
        import sys

        saved = sys.stdout
        sys.stdout = None  # type: ignore[assignment]
        try:
            print("hidden")
        finally:
            sys.stdout = saved
        print("shown")
        return "ok"

    job = engine.submit(quiet, name="quiet", backend="thread")
    assert engine.wait_job(job, timeout=10) and job.result() == "ok"
    assert job.tail() == "shown"
