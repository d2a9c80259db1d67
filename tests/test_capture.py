"""Output routing: every job's prints go to that job, bounded in memory, complete in its log."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from _script import run_python

from jupyter_executor import Engine
from jupyter_executor._capture import MAX_LINE, TAIL_LINES, Output


def test_two_jobs_printing_at_once_stay_separate(engine: Engine) -> None:
    barrier = threading.Barrier(2)

    def chatter(tag: str) -> None:
        barrier.wait()
        for i in range(200):
            print(f"{tag} {i}")
            if i % 50 == 0:
                time.sleep(0.001)

    async def achatter(tag: str) -> None:
        for i in range(200):
            print(f"{tag} {i}")
            await asyncio.sleep(0)

    caller = io.StringIO()
    with contextlib.redirect_stdout(caller):
        pass  # the proxies wrap whatever sys.stdout is when the first job starts
    a = engine.submit(chatter, "a", name="a")
    b = engine.submit(chatter, "b", name="b")
    c = engine.submit(achatter, "c", name="c")
    d = engine.submit(achatter, "d", name="d")
    print("caller line")
    assert engine.wait(timeout=10)
    for job, tag in ((a, "a"), (b, "b"), (c, "c"), (d, "d")):
        lines = job.tail(1000).splitlines()
        assert lines == [f"{tag} {i}" for i in range(200)]
        assert job.log_path is not None
        assert job.log_path.read_text().splitlines() == lines


def test_caller_output_is_untouched(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    job = engine.submit(print, "from the job", name="p")
    print("from the caller")
    engine.wait(timeout=10)
    out = capsys.readouterr().out
    assert "from the caller" in out and "from the job" not in out
    assert job.tail() == "from the job"


def test_stderr_warnings_and_logging_are_routed(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    logger = logging.getLogger("user.code")
    logger.addHandler(handler)
    logger.propagate = False

    def noisy() -> None:
        print("to stderr", file=sys.stderr)
        # (pytest records warnings.warn instead of printing it; the kernel tests cover warnings)
        sys.stderr.write(warnings.formatwarning("careful", UserWarning, "cell.py", 1))
        logger.warning("logged")

    try:
        job = engine.submit(noisy, name="noisy")
        engine.wait(timeout=10)
    finally:
        logger.removeHandler(handler)
    tail = job.tail()
    assert "to stderr" in tail and "UserWarning: careful" in tail and "logged" in tail
    err = capsys.readouterr().err
    assert "careful" not in err and "logged" not in err


def test_hundred_megabytes_of_output_stay_bounded(engine: Engine) -> None:
    line = "x" * 99 + "\n"

    def flood() -> None:
        chunk = line * 1000
        for _ in range(1000):  # 100 MB
            sys.stdout.write(chunk)

    job = engine.submit(flood, name="flood")
    assert engine.wait(timeout=60)
    out = job.output
    assert out.nbytes == 100 * 1000 * 1000
    assert len(out._lines) == TAIL_LINES  # the tail keeps only the last lines
    assert job.log_path is not None and job.log_path.stat().st_size == 100 * 1000 * 1000


def test_carriage_returns_rewrite_the_line() -> None:
    out = Output()
    out.write("epoch 1\n")
    for i in range(1000):
        out.write(f"\r{i / 10:.0f}%|####|")
    out.write("\n")
    out.write("done")
    assert out.tail(10) == "epoch 1\n100%|####|\ndone"
    assert out.line_count == 2
    assert out.lines_since(1) == (2, ["100%|####|"])


def test_endless_line_is_capped() -> None:
    out = Output()
    for _ in range(100):
        out.write("y" * 1000)
    assert len(out.tail(1)) == MAX_LINE


def test_subprocess_progress_bar(engine: Engine) -> None:
    script = (
        "import sys\nfor i in range(300):\n    sys.stdout.write(f'\\r{i}/299')\n"
        "print()\nprint('end')"
    )
    job = engine.submit([sys.executable, "-c", script], name="bar")
    engine.wait(timeout=20)
    assert job.tail() == "299/299\nend"


def test_sys_still_pickles_while_the_proxies_are_installed() -> None:
    """A function shipped by value (process and dask jobs) may use ``sys``: it travels by name."""
    import pickle

    import cloudpickle

    from jupyter_executor import _capture

    _capture.install()
    try:

        def uses_sys() -> str:
            return sys.platform

        clone = pickle.loads(cloudpickle.dumps(uses_sys))
        assert clone() == sys.platform
        assert pickle.loads(pickle.dumps(sys)) is sys
    finally:
        _capture.uninstall()


def test_the_engines_own_log_lines_stay_out_of_the_jobs_output(engine: Engine) -> None:
    """Logging set up after the proxies (a handler on the routing ``sys.stderr``): the lines
    the engine logs about a job (started, its pid, done) are not filed in that job's output,
    while what the job itself logs is."""
    from jupyter_executor import _capture

    _capture.install()
    handler = logging.StreamHandler(sys.stderr)  # the proxy: what basicConfig would take now
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        cmd = engine.submit("echo hi", name="cmd")
        fn = engine.submit(lambda: logging.getLogger("mine").info("from the job"), name="fn")
        assert engine.wait(timeout=30)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        _capture.uninstall()
    assert cmd.output.tail() == "hi"
    assert fn.output.tail() == "mine INFO from the job"


@pytest.mark.timeout(90)
def test_a_log_that_cannot_be_written_stops_the_log_not_the_jobs(tmp_path: Path) -> None:
    # A full disk, here a file size limit (EFBIG past 100 kB): the log stops, the output goes
    # on in memory, and each job ends as its code says. The write error went up into the
    # engine, which wrote the end of the failed run into the log: the jobs never ended.
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE,"
        " (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "from jupyter_executor import Engine\n"
        "engine = Engine(folder='engine', history=False)\n"
        "command = 'i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; exit 3'\n"
        "chatty = engine.submit(['sh', '-c', command], name='chatty')\n"
        "def noisy():\n"
        "    for i in range(20000):\n"
        "        print('thread line', i)\n"
        "    raise ValueError('the end')\n"
        "thread = engine.submit(noisy, name='noisy', backend='thread')\n"
        "after = engine.submit(['sh', '-c', 'echo after'], name='after')\n"
        "for job in (chatty, thread, after):\n"
        "    engine.wait_job(job, 30)\n"
        "    print(job.name, job.status.value, repr(job.exception()), job.tail(1))\n"
        "print(chatty.runstate.output.log_error)\n"
        "engine.shutdown()\n"
    )
    done = run_python(script, tmp_path, 80)
    assert done.stdout.splitlines() == [
        "chatty failed CommandFailed(\"command 'sh -c i=0; while [ $i -lt 20000 ]; do echo line "
        "$i; i=$((i+1)); done; exit 3' exited with code 3\") line 19999",
        "noisy failed ValueError('the end') thread line 19999",
        "after done None after",
        "[Errno 27] File too large",
    ]
    logs = tmp_path / "engine" / "logs"
    assert (logs / "chatty.log").stat().st_size <= 100_000
    assert (logs / "chatty.log").read_text().startswith("line 0\nline 1\n")
