"""The subprocess jobs' supervisor (``_supervise.py``) on its own: real processes, real signals.

A supervisor must never outlive its kernel nor a cancel, whatever instant the signals come at:
the kernel's death signals it once per kernel thread that exits, and a cancel may coincide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from _leaks import marked
from _script import run_python

from jupyter_executor import Engine, Job
from jupyter_executor.backends.subprocess import SUPERVISOR


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_gone(marker: str, timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _kill_marked(marker: str) -> None:
    procs = marked(marker)
    for proc in procs:
        proc.kill()
    psutil.wait_procs(procs, timeout=5)


@pytest.mark.timeout(90)
def test_bursts_of_sigterm_at_any_instant_never_leave_a_supervisor_running() -> None:
    # Several SIGTERMs microseconds apart, at random instants of a supervisor's start and run
    # (a dying kernel sends one per thread that exits; a cancel may come at the same time).
    # A supervisor whose handler was re-entered while it held a lock waited on it forever
    # (one in 10 to 100 here); it must stop its command and end within its grace, every time.
    rng = random.Random()
    marker = f"burst-{uuid.uuid4().hex}"
    stuck: list[int] = []
    started = 0
    budget = time.monotonic() + 15
    try:
        while time.monotonic() < budget and not stuck:
            batch = []
            for _ in range(8):
                proc = subprocess.Popen(
                    [sys.executable, "-S", SUPERVISOR, "--grace", "0.3", "--parent",
                     str(os.getpid()), "--", "sh", "-c", "sleep 60", marker],
                    start_new_session=True,
                )  # fmt: skip
                started += 1
                time.sleep(rng.uniform(0, 0.25))  # from its first instructions to its wait
                for _ in range(rng.randint(2, 6)):
                    os.kill(proc.pid, signal.SIGTERM)
                    spin = time.perf_counter() + rng.uniform(0, 0.0001)
                    while time.perf_counter() < spin:  # sub-millisecond gaps: no sleep is so short
                        pass
                batch.append(proc)
            for proc in batch:
                try:
                    proc.wait(10)  # its grace is 0.3 s: 10 s holds on a loaded machine
                except subprocess.TimeoutExpired:
                    stuck.append(proc.pid)
        assert not stuck, f"{len(stuck)} of {started} supervisors did not end: {stuck}"
        assert not _wait_gone(marker, 10), "a command outlived its supervisor"
    finally:
        for pid in stuck:
            os.killpg(pid, signal.SIGKILL)
        _kill_marked(marker)


# A stand-in for a kernel: threads besides the one that starts the supervisors (the engine's
# loop thread), which it starts one after another until it is killed.
_PARENT = """
import asyncio, os, sys, threading, time
for _ in range(8):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
async def main():
    while True:
        await asyncio.create_subprocess_exec(
            sys.executable, "-S", {supervisor!r}, "--grace", "0.5", "--parent", str(os.getpid()),
            "--", "sh", "-c", "sleep 60", {marker!r}, start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(0.01)
loop = threading.Thread(target=asyncio.run, args=(main(),))
loop.start()
loop.join()
"""


@pytest.mark.timeout(90)
def test_a_kernel_killed_at_any_instant_leaves_no_supervisor_nor_command(tmp_path: Path) -> None:
    # SIGKILL at random instants, so that some supervisors are starting (before or after they
    # look at their parent), some are starting their command and some are waiting for it.
    rng = random.Random()
    marker = f"kernel-{uuid.uuid4().hex}"
    code = _PARENT.format(supervisor=SUPERVISOR, marker=marker)
    try:
        for _ in range(6):
            parent = subprocess.Popen([sys.executable, "-c", code])
            time.sleep(rng.uniform(0.2, 0.6))
            parent.kill()
            parent.wait(10)
        left = _wait_gone(marker, 15)  # grace 0.5 s: 15 s holds on a loaded machine
        assert not left, [" ".join(p.cmdline()) for p in left]
    finally:
        _kill_marked(marker)


@pytest.mark.timeout(30)
def test_a_supervisor_whose_kernel_died_before_it_started_runs_nothing(tmp_path: Path) -> None:
    # Re-parented before it looked (to init or to a subreaper, which it cannot tell from a
    # kernel): the kernel's pid it was given is not its parent's, so it stops at once.
    witness = tmp_path / "ran"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    done = subprocess.run(
        [sys.executable, "-S", SUPERVISOR, "--parent", str(dead.pid), "--",
         sys.executable, "-c", f"open({str(witness)!r}, 'w').close()"],
        timeout=20, start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 128 + signal.SIGTERM
    assert not witness.exists()


@pytest.mark.timeout(30)
def test_a_supervisor_mirrors_its_command_and_restores_what_python_changed(
    tmp_path: Path,
) -> None:
    def run(*command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-S", SUPERVISOR, "--parent", str(os.getpid()), "--", *command],
            capture_output=True, timeout=20, start_new_session=True,
        )  # fmt: skip

    done = run("sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")
    assert run("sh", "-c", "kill -TERM $$").returncode == -signal.SIGTERM
    assert run("sh", "-c", "kill -KILL $$").returncode == -signal.SIGKILL
    missing = run("no-such-program-here")
    assert missing.returncode == 127
    assert missing.stderr == b"cannot run 'no-such-program-here': No such file or directory\n"
    # Python ignores SIGPIPE; the command must not (`yes` ends by it when `head` is done).
    assert run("sh", "-c", "yes | head -c 100000 | wc -c").stdout.strip() == b"100000"
    # No signal blocked or ignored in the command beyond what it would inherit without us (a
    # handler of ours for SIGTERM or SIGINT, Python's ignored SIGPIPE, go through exec).
    # (Except glibc's two internal signals, which its posix_spawn leaves ignored.)
    show = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]
    plain = subprocess.run(show, capture_output=True, timeout=20, check=True)
    internal = (1 << 31) | (1 << 32)

    def masks(out: bytes) -> list[int]:
        return [int(line.split()[1], 16) & ~internal for line in out.decode().splitlines()]

    assert masks(run(*show).stdout) == masks(plain.stdout)


@pytest.mark.timeout(30)
def test_a_detached_supervisor_writes_the_exit_file_and_its_claim(tmp_path: Path) -> None:
    exit_file, claim_file = tmp_path / "job.exit.json", tmp_path / "job.claim.json"
    done = subprocess.run(
        [sys.executable, "-S", SUPERVISOR, "--detached", "--exit-file", str(exit_file),
         "--claim-file", str(claim_file), "--", "sh", "-c", "exit 4"],
        timeout=20, start_new_session=True,
    )  # fmt: skip
    import json

    assert done.returncode == 4
    ended = json.loads(exit_file.read_text())
    assert ended["returncode"] == 4 and isinstance(ended["finished"], float)
    pid = json.loads(claim_file.read_text())["pid"]
    assert isinstance(pid, int) and pid > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.claim.json", "job.exit.json"]


# -- the zygote: one small process per engine that forks the attached commands' supervisors ----

needs_pidfd = pytest.mark.skipif(
    not hasattr(os, "pidfd_open"), reason="the zygote needs a pidfd to watch the kernel"
)


def _served_by_the_zygote(engine: Engine, command: list[str], says: str) -> None:
    """Run ``command`` (a long one), check that the zygote started it once it has printed
    ``says``, and cancel it."""
    job = engine.submit(command, name=f"served-{uuid.uuid4().hex[:8]}")
    _wait_for(lambda: job.pid is not None and _runs(job.pid) and job.tail() == says, 20)
    assert job.pid is not None
    zygote = psutil.Process(job.pid).parent()
    assert zygote is not None and "--zygote" in zygote.cmdline()
    engine.cancel(job)
    engine.wait_job(job, 20)


@needs_pidfd
@pytest.mark.timeout(60)
def test_attached_commands_are_started_and_supervised_by_one_zygote(engine: Engine) -> None:
    jobs = [engine.submit(f"echo out {i}; echo err >&2; exit {i}", name=f"z{i}") for i in range(3)]
    slow = engine.submit(["sh", "-c", "sleep 30"], name="slow")
    _wait_for(lambda: slow.pid is not None and _runs(slow.pid), 20)
    assert slow.pid is not None
    command = psutil.Process(slow.pid)
    # No supervisor process per command (a forked one cost 2-3 ms of CPU each): the job's pid
    # is its command's, started by the zygote, which supervises them all.
    assert command.cmdline() == ["sh", "-c", "sleep 30"]
    zygote = command.parent()
    assert zygote is not None and zygote.ppid() == os.getpid()
    assert "--zygote" in zygote.cmdline()
    assert os.getsid(slow.pid) == slow.pid  # a session (and group) of its own
    for job in jobs:
        engine.wait_job(job, 20)
    assert jobs[0].result() == 0
    assert [j.exception().returncode for j in jobs[1:]] == [1, 2]  # type: ignore[union-attr]
    assert [j.tail() for j in jobs] == [f"out {i}\nerr" for i in range(3)]
    engine.cancel(slow)
    engine.wait_job(slow, 20)
    assert slow.status.value == "cancelled"
    assert not _runs(slow.pid)


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_killed_zygote_stops_and_fails_its_jobs_and_the_next_jobs_run(
    engine: Engine,
) -> None:
    # The zygote supervises the commands it started: once it is gone, nothing would stop them
    # with the kernel, so the engine stops them (SIGTERM, SIGKILL after the grace) at once.
    engine.cancel_grace = 0.5
    job = engine.submit(["sh", "-c", "echo started; sleep 60; echo finished"], name="orphaned")
    _wait_for(lambda: job.pid is not None and _runs(job.pid) and job.tail() == "started", 20)
    assert job.pid is not None
    zygote = psutil.Process(job.pid).parent()
    assert zygote is not None and "--zygote" in zygote.cmdline()
    zygote.kill()
    engine.wait_job(job, 20)  # long before the command's 60 s
    assert job.status.value == "failed"
    assert "was stopped" in str(job.exception())
    assert "exit status is unknown" in str(job.exception())
    assert job.tail() == "started"
    assert not _runs(job.pid)
    after = engine.submit("echo still here", name="after")
    engine.wait_job(after, 20)
    assert after.result() == 0 and after.tail() == "still here"


@needs_pidfd
@pytest.mark.timeout(60)
def test_odd_text_and_an_environment_too_big_for_the_zygote(engine: Engine) -> None:
    # Arguments and values that are not UTF-8 (surrogate escapes) reach the command as bytes.
    odd = engine.submit(
        ["sh", "-c", 'printf "%s|%s" "$1" "$ODD"', "sh", "caf\udce9"],
        env={"ODD": "x\udcff"}, name="odd",
    )  # fmt: skip
    # Too big for one message to the zygote (not for exec): a supervisor process of its own.
    big = engine.submit(
        ["sh", "-c", 'printf "%s" "${#BIG2}"'],
        env={f"BIG{i}": "y" * 100_000 for i in range(3)}, name="big",
    )  # fmt: skip
    for job in (odd, big):
        engine.wait_job(job, 30)
    assert odd.result() == 0 and odd.tail() == "caf\ufffd|x\ufffd"
    assert big.result() == 0 and big.tail() == "100000"
    # ... and the zygote still serves the next command.
    _served_by_the_zygote(engine, ["sh", "-c", "sleep 30"], "")


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_command_the_zygote_cannot_start_fails_as_under_a_supervisor(
    engine: Engine, tmp_path: Path
) -> None:
    # Found (it exists) but not executable: exec fails in posix_spawn, in the zygote.
    (tmp_path / "not-executable").write_text("echo never\n")
    job = engine.submit(["./not-executable"], cwd=tmp_path, name="noexec")
    engine.wait_job(job, 30)
    assert job.status.value == "failed"
    assert job.exception().returncode == 127  # type: ignore[union-attr]
    assert job.tail() == "cannot run './not-executable': Permission denied"
    after = engine.submit(["sh", "-c", "pwd"], cwd=tmp_path, name="after")
    engine.wait_job(after, 30)
    assert after.result() == 0 and after.tail() == str(tmp_path)


_STUBBORN_PARENT = """
import time
from jupyter_executor import Engine, Job
engine = Engine(history=False)
engine.cancel_grace = 0.5
engine.submit(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done", {marker!r}],
              name="stubborn")
time.sleep(600)
"""


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_command_ignoring_sigterm_is_killed_after_the_grace_when_its_kernel_dies() -> None:
    marker = f"stubborn-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("PYTEST_CURRENT_TEST", None)
    parent = subprocess.Popen(
        [sys.executable, "-c", _STUBBORN_PARENT.format(marker=marker)], env=env
    )
    try:
        _wait_for(lambda: len(marked(marker)) == 1, 30)
        time.sleep(0.3)  # its trap is set
        parent.kill()
        parent.wait(10)
        # the zygote's SIGTERM is ignored; its SIGKILL comes after the 0.5 s grace
        assert not _wait_gone(marker, 15), "a command outlived its kernel"
    finally:
        parent.kill()
        _kill_marked(marker)


# A stand-in for a kernel running an engine: threads, attached commands started one after
# another, until it is killed.
_ENGINE_PARENT = """
import threading, time
from jupyter_executor import Engine, Job
for _ in range(8):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
engine = Engine(history=False)
engine.cancel_grace = 0.5
i = 0
while True:
    engine.submit(["sh", "-c", "sleep 60", {marker!r}], name=f"c{{i}}")
    i += 1
    time.sleep(0.01)
"""


@pytest.mark.timeout(120)
def test_an_engine_killed_at_any_instant_leaves_no_zygote_supervisor_or_command() -> None:
    rng = random.Random()
    marker = f"engine-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("PYTEST_CURRENT_TEST", None)
    descendants: list[psutil.Process] = []
    try:
        for _ in range(4):
            parent = subprocess.Popen(
                [sys.executable, "-c", _ENGINE_PARENT.format(marker=marker)], env=env
            )
            _wait_for(lambda: len(marked(marker)) > 2, 30)
            time.sleep(rng.uniform(0, 0.3))
            with contextlib.suppress(psutil.Error):
                descendants += psutil.Process(parent.pid).children(recursive=True)
            parent.kill()
            parent.wait(10)
        deadline = time.monotonic() + 15  # grace 0.5 s: 15 s holds on a loaded machine
        while time.monotonic() < deadline and (
            _alive([p.pid for p in descendants]) or marked(marker)
        ):
            time.sleep(0.1)
        left = _alive([p.pid for p in descendants]) + [p.pid for p in marked(marker)]
        assert not left, [" ".join(psutil.Process(pid).cmdline()) for pid in set(left)]
    finally:
        _kill_marked(marker)
        for proc in descendants:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _runs(pid: int) -> bool:
    return bool(_alive([pid]))


def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {timeout} s")
        time.sleep(0.02)


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_program_found_once_and_removed_since_cannot_run(engine: Engine, tmp_path: Path) -> None:
    # Programs found on a PATH are remembered (looking one up stats every folder of the PATH,
    # a tenth of a short command's cost in the engine): one removed since fails to start.
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "hello-je"
    program.write_text("#!/bin/sh\necho hello\n")
    program.chmod(0o755)
    env = {"PATH": f"{folder}:{os.environ['PATH']}"}
    first = engine.submit(["hello-je"], env=env, name="first")
    engine.wait_job(first, 30)
    assert first.result() == 0 and first.tail() == "hello"
    program.unlink()
    second = engine.submit(["hello-je"], env=env, name="second")
    engine.wait_job(second, 30)
    assert second.exception().returncode == 127  # type: ignore[union-attr]
    assert second.tail() == "cannot run 'hello-je': No such file or directory"
    # never found: the one-line error of the submit, as before
    third = engine.submit(["no-such-program-je"], env=env, name="third")
    engine.wait_job(third, 30)
    assert "program 'no-such-program-je' of job 'third' not found" in str(third.exception())


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_command_started_by_the_zygote_holds_only_its_three_streams(engine: Engine) -> None:
    # Any other descriptor (a copy of its pipes, the zygote's socket) would outlive the
    # command in what it leaves behind, and keep the job from ending.
    probe = (
        "import os\n"
        "for fd in range(1024):\n"
        "    try: os.fstat(fd)\n"
        "    except OSError: continue\n"
        "    print(fd)"
    )
    job = engine.submit([sys.executable, "-I", "-S", "-c", probe], name="fds")
    engine.wait_job(job, 30)
    assert job.result() == 0
    assert job.tail().split() == ["0", "1", "2"]


@needs_pidfd
@pytest.mark.timeout(60)
def test_the_zygote_gives_each_command_the_kernels_environment_as_it_is_then(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel's environment travels to the zygote with the first command and again only
    # when it changed: a variable set, changed or removed since must reach the next command.
    show = ["sh", "-c", 'printf "%s|%s|%s" "${JE_KERNEL-unset}" "${JE_JOB-unset}" "$JE_BOTH"']

    def run(name: str, **env: str) -> str:
        job = engine.submit(show, name=name, env={"JE_BOTH": "job", **env})
        engine.wait_job(job, 30)
        assert job.result() == 0, job.exception()
        return job.tail()

    monkeypatch.setenv("JE_BOTH", "kernel")
    monkeypatch.delenv("JE_KERNEL", raising=False)
    assert run("first") == "unset|unset|job"
    monkeypatch.setenv("JE_KERNEL", "one")
    assert run("set", JE_JOB="x") == "one|x|job"
    monkeypatch.setenv("JE_KERNEL", "two")
    assert run("changed") == "two|unset|job"
    # Too big for one message: that command gets a supervisor of its own (with the whole
    # environment), and the zygote, still holding the one before, is sent it again after.
    for i in range(3):
        monkeypatch.setenv(f"JE_BIG{i}", "z" * 100_000)
    assert run("big") == "two|unset|job"
    for i in range(3):
        monkeypatch.delenv(f"JE_BIG{i}")
    monkeypatch.delenv("JE_KERNEL")
    _served_by_the_zygote(engine, ["sh", "-c", 'echo "${JE_KERNEL-unset}"; sleep 30'], "unset")


@needs_pidfd
@pytest.mark.timeout(60)
def test_the_output_of_zygote_commands_arrives_whole_whatever_the_pipes_do(
    engine: Engine,
) -> None:
    # A megabyte on stdout; a character split between two writes; stdout closed early while
    # stderr goes on: each pipe is copied to its end, and the job ends once both have.
    big = engine.submit(
        [sys.executable, "-I", "-S", "-c", "import sys; sys.stdout.write('a' * 1_000_000)"],
        name="big",
    )
    split = engine.submit(
        ["sh", "-c", r"printf 'caf\303'; sleep 0.2; printf '\251 bad\377'"], name="split"
    )
    closed = engine.submit(
        ["sh", "-c", "echo out; exec >&-; sleep 0.3; echo err >&2"], name="closed"
    )
    for job in (big, split, closed):
        engine.wait_job(job, 30)
        assert job.result() == 0, job.exception()
    log = big.log_path
    assert log is not None and log.read_text().count("a") == 1_000_000
    assert split.tail() == "café bad\ufffd"
    assert closed.tail() == "out\nerr"


@needs_pidfd
@pytest.mark.timeout(120)
def test_a_burst_of_commands_larger_than_the_zygotes_socket_all_run(engine: Engine) -> None:
    # 400 commands at once, no limit: their requests fill the socket faster than the zygote
    # starts them. Those that do not fit wait for room; refused with EAGAIN, they were taken
    # for a zygote gone (300 of the 400 failed, and the running ones were stopped).
    engine.wait_job(engine.submit(["true"], name="warm"), 30)  # (the zygote, the history)
    fds = psutil.Process().num_fds()
    jobs = engine.submit(*[Job(["sh", "-c", "sleep 1"], name=f"burst-{i}") for i in range(400)])
    assert engine.wait(timeout=90)
    failed = [(j.name, str(j.exception())) for j in jobs if j.status.value != "done"]
    assert not failed, failed[:3]
    # Cancelled at once, most of them before their request left: none runs on, no pipe is
    # left open.
    marker = uuid.uuid4().hex
    doomed = engine.submit(
        *[Job(["sh", "-c", "sleep 30; :", marker], name=f"doomed-{i}") for i in range(400)]
    )
    for job in doomed:
        engine.cancel(job)
    engine.wait(timeout=90)  # (False: they did not succeed)
    assert {j.status.value for j in doomed} == {"cancelled"}
    assert not _wait_gone(marker, 20)
    _wait_for(lambda: psutil.Process().num_fds() <= fds, 20)
    # ... all by the one zygote, which serves the next command as well
    _served_by_the_zygote(engine, ["sh", "-c", "sleep 30"], "")


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_script_that_never_shuts_its_engine_down_exits_cleanly(tmp_path: Path) -> None:
    # The engine is shut down at interpreter exit (atexit), when no thread can start any more:
    # the zygote was waited for in one, which failed with a traceback and left it unreaped.
    script = (
        "import psutil\n"
        "from jupyter_executor import Engine\n"
        "engine = Engine(folder='engine')\n"
        "job = engine.submit(['sh', '-c', 'echo ran'], name='one')\n"
        "engine.wait_job(job, 30)\n"
        "(zygote,) = [p for p in psutil.Process().children() if '--zygote' in p.cmdline()]\n"
        "print(job.tail(), zygote.pid)\n"
    )
    done = run_python(script, tmp_path, 50)
    assert done.stderr == ""
    said, pid = done.stdout.split()
    assert said == "ran"
    assert not _alive([int(pid)])


@needs_pidfd
@pytest.mark.timeout(120)
def test_requests_wait_for_a_stopped_zygote_and_a_cancelled_one_takes_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The zygote stopped (SIGSTOP): requests fill its socket, the rest wait in order. A
    # command cancelled before its request left is dropped alone: the kernel's environment,
    # sent once before it (it had changed), still reaches the commands posted after it.
    from jupyter_executor.backends.subprocess import _Forked, _Zygote

    async def output(proc: _Forked | None) -> tuple[str, int]:
        assert proc is not None
        out: list[str] = []
        await proc.drain(lambda text, _name: out.append(text))
        return "".join(out), await proc.wait()

    async def main() -> None:
        zygote = _Zygote()
        show = ["sh", "-c", 'echo "${JE_FRESH-unset}"']
        assert await output(await zygote.spawn(show, {}, str(tmp_path), 1.0)) == ("unset\n", 0)
        assert zygote._proc is not None
        stopped = zygote._proc.pid
        os.kill(stopped, signal.SIGSTOP)
        try:
            before = [asyncio.create_task(zygote.spawn(show, {}, None, 1.0)) for _ in range(300)]
            await asyncio.sleep(0.3)
            assert len(zygote._outbox) > 10  # the socket is full
            monkeypatch.setenv("JE_FRESH", "new")
            cancelled = asyncio.create_task(zygote.spawn(show, {}, None, 1.0))
            await asyncio.sleep(0)
            posted = len(zygote._outbox)
            after = [asyncio.create_task(zygote.spawn(show, {}, None, 1.0)) for _ in range(50)]
            await asyncio.sleep(0.1)
            cancelled.cancel()
            await asyncio.sleep(0.1)
            assert len(zygote._outbox) == posted - 1 + 50  # its request alone was dropped
        finally:
            os.kill(stopped, signal.SIGCONT)
        assert [await output(await t) for t in before] == [("unset\n", 0)] * 300
        assert [await output(await t) for t in after] == [("new\n", 0)] * 50
        assert cancelled.cancelled()
        await zygote.close()

    asyncio.run(main())


@pytest.mark.timeout(120)
def test_a_burst_of_commands_past_the_descriptor_limit_waits_instead_of_failing(
    tmp_path: Path,
) -> None:
    # Under `ulimit -n 256`, 300 commands at once, no limit: each holds four descriptors of
    # the kernel's while it runs. Past the limit they failed with "Too many open files", and
    # so did the kernel's own files meanwhile; now they wait for others to end.
    script = (
        "import collections, resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE,"
        " (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from jupyter_executor import Engine, Job\n"
        "engine = Engine(folder='engine')\n"
        "jobs = engine.submit(*[Job(['sh', '-c', 'echo $0; sleep 0.3', str(i)], name=f'c{i}')"
        " for i in range(300)])\n"
        "engine.wait(timeout=90)\n"
        "print(dict(collections.Counter(j.status.value for j in jobs)))\n"
        "print([str(j.exception()) for j in jobs if j.status.value != 'done'][:3])\n"
        "print(all(j.tail() == str(i) for i, j in enumerate(jobs)))\n"
        "with open('after.txt', 'w') as f:\n"
        "    f.write('the kernel can still open a file')\n"
        "engine.shutdown()\n"
    )
    done = run_python(script, tmp_path, 110)
    assert done.stdout.splitlines() == ["{'done': 300}", "[]", "True"], done.stdout


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_command_that_cannot_be_passed_to_a_process_fails_alone(tmp_path: Path) -> None:
    # A NUL byte, a lone surrogate that does not encode, a variable named with "=": posix_spawn
    # raises ValueError or UnicodeEncodeError, which the zygote did not catch. It died, and
    # every command it was running was stopped with it. (The engine refuses most such values
    # at submit now: this is the zygote's own guard.)
    from jupyter_executor.backends.subprocess import _CannotRun, _Zygote

    async def main() -> None:
        zygote = _Zygote()
        victim = await zygote.spawn(["sleep", "30"], {}, str(tmp_path), 1.0)
        assert victim is not None and zygote._proc is not None
        server = zygote._proc.pid
        bad = [
            (["echo", "a\x00b"], {}),
            (["echo", "\ud800"], {}),
            (["true"], {"X": "\ud800"}),
            (["true"], {"A=B": "1"}),
        ]
        for argv, env in bad:
            with pytest.raises(_CannotRun, match="Invalid argument"):
                await zygote.spawn(argv, env, str(tmp_path), 1.0)
        assert zygote._proc is not None and zygote._proc.pid == server
        assert _runs(victim.pid)
        fine = await zygote.spawn(["true"], {}, str(tmp_path), 1.0)
        assert fine is not None and await fine.wait() == 0
        os.kill(victim.pid, signal.SIGKILL)
        assert await victim.wait() == -signal.SIGKILL
        await zygote.close()

    asyncio.run(main())


def _pidfds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
    return count


@needs_pidfd
@pytest.mark.timeout(60)
def test_a_killed_zygote_leaves_no_pidfd_open(tmp_path: Path) -> None:
    # The pidfd of each command it ran served to wait for the command to be gone, and was
    # never closed: one descriptor leaked per command, engine after engine.
    before = _pidfds()
    engine = Engine(folder=tmp_path / "runs")
    engine.cancel_grace = 0.5
    jobs = [engine.submit(["sleep", "30"], name=f"s{i}") for i in range(5)]
    _wait_for(lambda: all(j.pid is not None and _runs(j.pid) for j in jobs), 20)
    pid = jobs[0].pid
    assert pid is not None
    zygote = psutil.Process(pid).parent()
    assert zygote is not None and "--zygote" in zygote.cmdline()
    zygote.kill()
    engine.wait(timeout=30)
    assert {j.status.value for j in jobs} == {"failed"}
    engine.shutdown()
    assert _pidfds() == before
