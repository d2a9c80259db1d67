"""Each backend for real: worker processes, subprocesses, threads, a dask LocalCluster."""

from __future__ import annotations

import contextlib
import functools
import linecache
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from _dask import cluster_without_us
from _wait import wait_until

from jupyter_executor import CommandFailed, Engine, Job, SubmitError, WorkerCrashed, cancelled


def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


def test_process_runs_lambdas_and_closures_from_the_caller(engine: Engine) -> None:
    offset = 7
    job = engine.submit(lambda x: os.getpid() * 0 + x + offset, 3, backend="process", name="lam")
    sq = engine.submit(square, 5, backend="process", name="sq")
    assert engine.wait(timeout=30), (job.exception(), sq.exception())
    assert job.result() == 10 and sq.result() == 25
    assert sq.tail() == "squaring 5"
    assert sq.pid != os.getpid()


def test_the_fork_server_runs_its_file_from_the_bytecode_cache(tmp_path: Path) -> None:
    # Issue 14: the fork server compiled _worker.py from source at every start (2 ms of the
    # cold start); BOOT takes its code from the cache when it is up to date, and from the
    # source when it is not. Shown with a cached file whose bytecode says something else.
    import importlib.util
    import py_compile

    from jupyter_executor._worker import BOOT

    script = tmp_path / "boot.py"
    script.write_text("print('from the cached', __file__ == __import__('sys').argv[1])\n")
    cached = importlib.util.cache_from_source(str(script))
    py_compile.compile(str(script), cfile=cached)
    stat = script.stat()
    script.write_text("print('from the source', __file__ == __import__('sys').argv[1])\n")
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time: "valid"

    def boot() -> str:
        return subprocess.run(
            [sys.executable, "-c", BOOT, str(script)], capture_output=True, text=True, check=True
        ).stdout

    assert boot() == "from the cached True\n"
    script.write_text("print('changed since', __file__ == __import__('sys').argv[1])\n")
    assert boot() == "changed since True\n"


def test_process_crash_fails_only_that_job(engine: Engine) -> None:
    crash = engine.submit(os._exit, 3, backend="process", name="crash")
    segv = engine.submit(os.kill, 0, 0, backend="process", name="noop")  # signal 0: harmless
    engine.wait(timeout=30)
    assert crash.status == "failed" and isinstance(crash.exception(), WorkerCrashed)
    assert "exited with code 3" in str(crash.exception())
    assert segv.status == "done"
    after = engine.submit(square, 3, backend="process", name="after")
    assert engine.wait_job(after, timeout=30) and after.result() == 9


def test_process_segfault(engine: Engine) -> None:
    def segfault() -> None:
        import ctypes

        ctypes.string_at(0)

    job = engine.submit(segfault, backend="process", name="segv")
    engine.wait_job(job, timeout=30)
    assert "killed by signal SIGSEGV" in str(job.exception())


def _leave(how: str) -> None:
    if how == "sys.exit":
        sys.exit(0)
    if how == "SystemExit":
        raise SystemExit(3)
    raise KeyboardInterrupt


@pytest.mark.parametrize("how", ["sys.exit", "SystemExit", "KeyboardInterrupt"])
def test_a_job_that_ends_its_worker_is_not_charged_to_the_next_jobs(
    engine: Engine, how: str
) -> None:
    # The worker exits after it sends the job's error: it must not go back to the idle pool.
    engine.set_limits(process=1)  # the next jobs start the moment the first one ends
    first = engine.submit(_leave, how, backend="process", name="leaves")
    after = engine.submit(square, 4, backend="process", name="after")
    segv = engine.submit(_segfault, backend="process", name="segv")
    assert not engine.wait(timeout=60)
    error = first.exception()
    assert isinstance(error, (SystemExit, KeyboardInterrupt)), error
    assert after.status == "done", after.exception()
    assert after.result() == 16 and after.pid != first.pid
    assert "killed by signal SIGSEGV" in str(segv.exception())


def test_a_worker_killed_while_idle_is_not_charged_to_the_next_job(engine: Engine) -> None:
    first = engine.submit(os.getpid, backend="process", name="first")
    assert engine.wait_job(first, timeout=30)
    os.kill(first.result(), signal.SIGKILL)  # the idle worker dies (OOM killer, a stray kill)
    after = engine.submit(os.getpid, backend="process", name="after")
    assert engine.wait_job(after, timeout=30)
    assert after.status == "done", after.exception()
    assert after.result() != first.result()


def _segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def _change_state(path: str) -> int:
    os.chdir(path)
    os.environ["JE_LEAK"] = "leaked"
    return os.getpid()


def _state() -> tuple[int, str, str | None]:
    return os.getpid(), os.getcwd(), os.environ.get("JE_LEAK")


def test_a_process_job_does_not_see_what_the_previous_one_changed(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.set_limits(process=1)  # one worker, reused by each job
    first = engine.submit(_change_state, "/", backend="process", name="first")
    assert engine.wait_job(first, timeout=30)
    monkeypatch.chdir(tmp_path)  # the kernel's cwd when the next job starts is the job's
    second = engine.submit(_state, backend="process", name="second")
    assert engine.wait_job(second, timeout=30)
    assert second.result() == (first.result(), str(tmp_path), None)
    # cwd= and env= of the job apply to process jobs too
    (tmp_path / "sub").mkdir()
    third = engine.submit(
        _state, backend="process", name="third", cwd=tmp_path / "sub", env={"JE_LEAK": "given"}
    )
    assert engine.wait_job(third, timeout=30)
    assert third.result() == (first.result(), str(tmp_path / "sub"), "given")
    missing = engine.submit(_state, backend="process", name="missing", cwd=tmp_path / "nope")
    engine.wait_job(missing, timeout=30)
    assert "working directory" in str(missing.exception()) and "nope" in str(missing.exception())


def test_process_errors_carry_the_remote_traceback(engine: Engine) -> None:
    def fail() -> None:
        raise KeyError("missing")

    job = engine.submit(fail, backend="process", name="fail")
    engine.wait_job(job, timeout=30)
    assert isinstance(job.exception(), KeyError)
    assert "raise KeyError" in str(job.traceback)
    # cloudpickle 3.1.3 renames code pickled by value "<dynamic-code>": the name is kept
    assert f'File "{__file__}", line' in str(job.traceback)


# As IPython compiles a cell: under a file name that does not exist, its lines in linecache.
_CELL_SOURCE = "def from_a_cell(n):\n    total = n + 1\n    raise ValueError(f'bad {total}')\n"


def test_process_traceback_shows_the_lines_of_a_notebook_cell(engine: Engine) -> None:
    filename = f"/nonexistent/ipykernel_{os.getpid()}/{time.monotonic_ns()}.py"
    lines = _CELL_SOURCE.splitlines(True)
    linecache.cache[filename] = (len(_CELL_SOURCE), None, lines, filename)
    namespace: dict[str, object] = {"__name__": "__main__"}  # a kernel's cells run in __main__
    try:
        exec(compile(_CELL_SOURCE, filename, "exec"), namespace)
        job = engine.submit(namespace["from_a_cell"], 1, backend="process", name="cell")
        engine.wait_job(job, timeout=30)
    finally:
        linecache.cache.pop(filename, None)
    assert isinstance(job.exception(), ValueError)
    assert f'File "{filename}", line 3, in from_a_cell' in str(job.traceback)
    assert "    raise ValueError(f'bad {total}')" in str(job.traceback)


def test_unpicklable_argument_is_a_clear_error(engine: Engine) -> None:
    lock = threading.Lock()
    job = engine.submit(print, lock, backend="process", name="lock")
    engine.wait_job(job, timeout=30)
    assert "cannot be sent to a worker process" in str(job.exception())


def test_subprocess_env_cwd_output_and_exit_code(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    ok = engine.submit(
        [sys.executable, "-c", "import os; print(os.environ['TOKEN'], os.getcwd())"],
        env={"TOKEN": "abc"}, cwd=tmp_path / "data", name="ok",
    )  # fmt: skip
    bad = engine.submit("echo out; echo err >&2; exit 2", name="bad")
    missing = engine.submit(["definitely-not-a-program-xyz"], name="missing")
    engine.wait(timeout=30)
    assert ok.result() == 0 and ok.tail() == f"abc {tmp_path / 'data'}"
    assert isinstance(bad.exception(), CommandFailed) and bad.exception().returncode == 2  # type: ignore[union-attr]
    assert "exited with code 2" in str(bad.exception()) and bad.tail() == "out\nerr"
    assert isinstance(missing.exception(), FileNotFoundError)
    log = bad.log_path
    assert log is not None
    # what the command wrote, then how the run ended: one line, no frames of the engine
    assert log.read_text() == (
        "out\nerr\njupyter_executor.errors.CommandFailed: command 'echo out; echo err >&2; "
        "exit 2' exited with code 2\n"
    )


def test_subprocess_killed_by_signal(engine: Engine) -> None:
    job = engine.submit("kill -9 $$", name="killed")
    engine.wait_job(job, timeout=30)
    assert "killed by signal SIGKILL" in str(job.exception())


# Stands in for a kernel: its own session, so that the test signals only this group, never the
# group of pytest and of whatever runs pytest (a CI runner dies of a stray SIGINT).
_SIGINT_CALLER = """
import signal, sys
from jupyter_executor import Engine

signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel turns it into KeyboardInterrupt
with Engine(history=False) as engine:
    job = engine.submit("sleep 1; echo survived", name="bg")
    while job.pid is None and not job.done():
        engine.wait_job(job, timeout=0.05)
    print(job.pid, flush=True)
    engine.wait_job(job, timeout=20)
    print(job.status, job.tail(), flush=True)
"""


@pytest.mark.timeout(60)
def test_subprocess_survives_a_sigint_to_the_callers_group() -> None:
    # A kernel interrupt signals the kernel's whole process group; jobs live in their own.
    caller = subprocess.Popen(
        [sys.executable, "-c", _SIGINT_CALLER],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert caller.stdout is not None
        pid = int(caller.stdout.readline())
        assert os.getpgid(pid) != caller.pid  # the job leads a group of its own
        os.killpg(caller.pid, signal.SIGINT)
        out, _ = caller.communicate(timeout=30)
    finally:
        caller.kill()
        caller.wait()
    assert out.strip() == "done survived"


@pytest.mark.parametrize("backend", ["async", "thread", "process", "subprocess"])
def test_cancel_really_stops_each_backend(engine: Engine, tmp_path: Path, backend: str) -> None:
    marker = tmp_path / "written"
    if backend == "subprocess":
        job = engine.submit(f"sleep 2 && touch {marker}", name="c")
    elif backend == "async":
        import asyncio

        async def slow() -> None:
            await asyncio.sleep(2)
            marker.write_text("x")

        job = engine.submit(slow, name="c")
    else:
        job = engine.submit(_write_later, str(marker), name="c", backend=backend)
    time.sleep(0.5)
    assert job.status == "running"
    job.cancel()
    assert not engine.wait_job(job, timeout=10)
    assert job.status == "cancelled" and job.cancel_reason == "cancelled by user"
    time.sleep(2.5)
    assert not marker.exists()


def _start_grandchild(pid_file: str, how: str) -> None:
    if how == "ignores SIGTERM":
        child = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 60"])
    else:  # a grandchild in its own session is out of reach of its group's signals
        child = subprocess.Popen(["sleep", "60"], start_new_session=how == "own session")
    Path(pid_file).write_text(str(child.pid))
    time.sleep(60)


def _gone(proc: psutil.Process) -> bool:
    # Here an orphan that died may stay a zombie (PID 1 of a container need not reap it).
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["in its group", "own session", "ignores SIGTERM"])
def test_cancel_stops_the_children_of_a_process_job(
    engine: Engine, tmp_path: Path, how: str
) -> None:
    # "ignores SIGTERM": cancelled twice (as a timeout and a user's cancel can), the second
    # cancel used to cut the termination short after its SIGTERM, before the SIGKILL; that
    # depends on timing, so a few rounds.
    for round_ in range(4 if how == "ignores SIGTERM" else 1):
        _cancel_a_grandparent(engine, tmp_path / f"pid{round_}", how)


def _cancel_a_grandparent(engine: Engine, pid_file: Path, how: str) -> None:
    job = engine.submit(_start_grandchild, str(pid_file), how, backend="process")
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the grandchild")
    grandchild = psutil.Process(int(pid_file.read_text()))
    worker = psutil.Process(job.pid)
    engine.cancel(job)
    if how == "ignores SIGTERM":
        wait_until(lambda: _gone(worker), 15, "the worker to end")
        engine.cancel(job)  # while its termination waits to notice the worker's end
    assert not engine.wait_job(job, timeout=20)
    wait_until(lambda: _gone(worker), 15, "the worker to end")
    try:
        wait_until(lambda: _gone(grandchild), 15, f"the grandchild ({how}) to end")
    finally:
        with contextlib.suppress(psutil.Error):
            grandchild.kill()


def _write_later(path: str) -> None:
    for _ in range(40):
        time.sleep(0.05)
    Path(path).write_text("x")


def test_thread_cancel_is_cooperative_first(engine: Engine) -> None:
    def polite() -> str:
        while not cancelled():
            time.sleep(0.01)
        print("stopping")
        return "stopped"

    job = engine.submit(polite, name="polite")
    time.sleep(0.2)
    job.cancel()
    engine.wait_job(job, timeout=5)
    assert job.status == "cancelled" and job.tail() == "stopping"
    assert not cancelled()  # outside a job


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_a_thread_blocked_on_a_lock_is_abandoned(engine: Engine, how: str) -> None:
    # No injected exception reaches a thread waiting on a lock: after the grace periods the
    # job is settled anyway, its slot is given back, and the thread's late end changes nothing.
    engine.set_limits(thread=1)
    lock = threading.Lock()
    lock.acquire()
    back = threading.Event()

    def stuck() -> str:
        print("waiting")
        try:
            lock.acquire()  # held by the test: blocks in C
        finally:
            back.set()
        print("late")
        return "late result"

    job = engine.submit(stuck, name="stuck", timeout=1 if how == "timeout" else None)
    try:
        wait_until(lambda: job.tail() == "waiting", what="the job to start")
        if how == "cancel":
            engine.cancel(job)
        assert not engine.wait(timeout=20)  # returns: nothing waits for the thread any more
        assert job.status == "cancelled"
        assert job.cancel_reason is not None and "abandoned: the thread" in job.cancel_reason
        assert ("timed out after 1 s" in job.cancel_reason) == (how == "timeout")
        assert not back.is_set()  # it is still blocked
        other = engine.submit(square, 6, name="other")  # the one thread slot is free again
        assert engine.wait_job(other, timeout=20) and other.result() == 36
    finally:
        lock.release()
    wait_until(back.is_set, what="the abandoned thread to return")
    settled = [str(e) for e in engine.log if e.job == "stuck"]
    later = engine.submit(square, 7, name="later")  # the returned thread may run it
    assert engine.wait_job(later, timeout=20) and later.result() == 49
    time.sleep(0.3)  # let a (wrong) late finish of the abandoned attempt reach the loop
    assert job.status == "cancelled"
    assert [str(e) for e in engine.log if e.job == "stuck"] == settled
    assert engine.counts()["running"] == 0


def _spin(n: int) -> int:
    total = 0
    for i in range(n):  # pure Python: an injected exception stops it between bytecodes
        total += i
    return total


def _started(job: Job) -> bool:
    return job.status != "pending"


@pytest.mark.timeout(120)
def test_cancels_racing_the_ends_of_thread_jobs_never_reach_another_job(engine: Engine) -> None:
    # Issue 14: an attempt that no cancel reached ends without the thread backend's inject
    # lock (ThreadBackend._disarm). A cancel that races its end (its exception injected at
    # once) must stop it or leave it done, and never land in the next job that thread runs
    # (one thread: the bystander after each victim runs on the victim's thread).
    engine.cancel_grace = 0.0
    engine.set_limits(thread=1)
    rng = random.Random(14)
    ends: list[str] = []
    for _ in range(200):
        victim = engine.submit(_spin, rng.randrange(20_000, 300_000))
        bystander = engine.submit(_spin, 10)
        wait_until(functools.partial(_started, victim), 30, "the victim to start", 0.0005)
        time.sleep(rng.random() * 0.01)  # anywhere from its start to after its end
        engine.cancel(victim)
        assert engine.wait_job(bystander, timeout=30), bystander.traceback
        assert bystander.result() == 45
        ends.append(str(victim.status))
    assert set(ends) <= {"done", "cancelled"} and "cancelled" in ends
    assert engine.counts()["running"] == 0


@pytest.mark.timeout(60)
def test_plain_thread_jobs_end_and_start_without_the_loop_thread(engine: Engine) -> None:
    # Issue 14: a plain thread job (no timeout, retry or lifecycle) is settled by its own
    # thread, which then runs the next job queued for the slot; the engine's loop thread is
    # not needed, so a loop blocked by a job does not hold them back. Its history row, its
    # subscribers' events and its future are all there.
    engine.set_limits(thread=1)
    events: list[tuple[str, str]] = []
    engine.subscribe(lambda event, job: events.append((event, str(job.name))))
    gate, loop_blocked, unblock = threading.Event(), threading.Event(), threading.Event()
    first = engine.submit(gate.wait, 30, name="first", backend="thread")
    queued = [engine.submit(square, i, name=f"q{i}", backend="thread") for i in range(3)]
    wait_until(lambda: first.status == "running" and engine.counts()["pending"] == 3)

    async def block_the_loop() -> None:
        loop_blocked.set()
        unblock.wait(30)  # blocks the engine's loop thread on purpose

    blocker = engine.submit(block_the_loop, name="blocker")
    try:
        assert loop_blocked.wait(20)
        gate.set()
        for job in queued:
            assert job.future.result(timeout=20) == int(str(job.name)[1:]) ** 2
        assert first.status == "done"
        # Submitted now, a plain thread job starts from the submitting thread; one with a
        # timeout (its timer is the loop's) ends on the loop.
        late = engine.submit(square, 9, name="late", backend="thread")
        assert late.future.result(timeout=20) == 81
        timed = engine.submit(square, 4, name="timed", backend="thread", timeout=60)
        wait_until(lambda: timed.tail() == "squaring 4", what="the timed job to run")
        assert not timed.done()
    finally:
        unblock.set()
    assert engine.wait(timeout=20) and blocker.status == "done" and timed.result() == 16
    # In submission order still, one slot: those submitted one by one and in one batch.
    ran: list[int] = []
    gate.clear()
    engine.submit(gate.wait, 30, name="gate2", backend="thread")
    for i in range(5):
        engine.submit(ran.append, i, name=f"one{i}", backend="thread")
    engine.submit(*(Job(ran.append, args=(i,), backend="thread") for i in range(5, 300)))
    gate.set()
    assert engine.wait(timeout=30) and ran == list(range(300))
    for job in [first, *queued]:
        assert ("status", str(job.name)) in events
    rows = engine.history(name="q2")
    assert list(rows["status"]) == ["done"]


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_dask_local_cluster(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from _leaks import assert_nothing_left, child_processes

    # The worker cannot import jupyter_executor (as on a cluster whose workers run from another
    # environment): what the backend ships must travel by value.
    cluster = cluster_without_us(tmp_path)
    started = tmp_path / "started"

    # Local functions: pickled by value, as functions defined in a notebook are.
    def square(x: int) -> int:
        print(f"squaring {x}")
        return x * x

    def probe() -> str:
        try:
            import jupyter_executor  # noqa: F401
        except ImportError:
            return "not importable"
        return "importable"

    def fail() -> float:
        print("before the error")
        return 1 / 0

    def slow(marker: str) -> str:
        import pathlib
        import time

        pathlib.Path(marker).write_text("started")
        time.sleep(4)
        return "finished anyway"

    before = {p.pid for p in child_processes()}
    engine = Engine(folder=tmp_path, dask=cluster)
    try:
        where = engine.submit(probe, backend="dask", name="probe")
        a = engine.submit(square, 4, backend="dask", name="a")
        b = engine.submit(lambda v: v + 1, a, backend="dask", name="b")
        bad = engine.submit(fail, backend="dask", name="bad")
        engine.wait(timeout=120)
        assert where.result() == "not importable", where.info().error
        assert (a.result(), b.result()) == (16, 17)
        assert a.tail() == "squaring 4"
        assert isinstance(bad.exception(), ZeroDivisionError)
        assert bad.tail() == "before the error"  # a failed job keeps what it printed
        # Cancelling a task that runs on a worker cannot stop it: the reason says so.
        long = engine.submit(slow, str(started), backend="dask", name="long")
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), long.info().error
        engine.cancel(long, "enough")
        assert not engine.wait_job(long, timeout=30)
        assert long.status == "cancelled"
        assert long.cancel_reason == "enough; cancel requested; dask cannot stop a running task"
    finally:
        engine.shutdown()
    assert_nothing_left(before, timeout=30)


def _raise() -> None:
    print(1 / 0)


@pytest.mark.dask
@pytest.mark.timeout(240)
def test_dask_output_arrives_while_the_task_runs(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from _leaks import assert_nothing_left, child_processes

    # Workers without jupyter_executor: the live output needs nothing of it on the worker.
    cluster = cluster_without_us(tmp_path)

    # Local functions: pickled by value (the worker cannot import this test module).
    def talk(marker: str, fail: bool) -> str:
        # Prints one line, waits until the test has seen it (so it must arrive while the task
        # runs), then prints more and ends.
        import pathlib
        import time

        print("first", flush=True)
        deadline = time.monotonic() + 90
        while not pathlib.Path(marker).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        for i in range(2, 6):
            print(f"line {i}")
        if fail:
            msg = "after five lines"
            raise ValueError(msg)
        return "talked"

    def flood(n: int) -> int:
        for i in range(n):
            print(f"line {i}")
        return n

    before = {p.pid for p in child_processes()}
    engine = Engine(folder=tmp_path / "engine", dask=cluster)
    said = "\n".join(["first", *(f"line {i}" for i in range(2, 6))])
    wait = 'while [ ! -e "$M" ]; do sleep 0.02; done'
    try:
        cases = {
            "fn": (functools.partial(talk, fail=False), "talked"),
            "fn-fails": (functools.partial(talk, fail=True), ValueError),
            "cmd": (f"echo first; {wait}; for i in 2 3 4 5; do echo line $i; done", 0),
            "cmd-fails": (f"echo first; {wait}; for i in 2 3 4 5; do echo line $i; done; exit 4",
                          CommandFailed),
        }  # fmt: skip
        for name, (target, expected) in cases.items():
            marker = tmp_path / f"{name}.go"
            if isinstance(target, str):
                job = engine.submit(target, backend="dask", name=name, env={"M": str(marker)})
            else:
                job = engine.submit(target, str(marker), backend="dask", name=name)
            # The first line is in the job's output while the task still waits for us.
            wait_until(
                lambda job=job: job.tail() == "first" or job.finished,
                90,
                f"{name}'s first line",
            )
            assert job.tail() == "first", (job.status, job.info().error)
            assert job.status == "running"
            marker.write_text("go")
            engine.wait_job(job, 60)
            if isinstance(expected, type):
                assert isinstance(job.exception(), expected), job.info().error
            else:
                assert job.result() == expected, job.info().error
            # Complete at the end, each line once, also when the task failed.
            assert job.tail() == said, name
            log = job.log_path
            assert log is not None
            text = log.read_text()
            if isinstance(expected, type):  # a failed run's log ends with how it ended
                assert text.startswith(said + "\n"), name
                assert text.rstrip("\n").endswith(str(job.exception())), name
            else:
                assert text == said + "\n", name
        # A flood stays bounded on its way: a live batch carries the last 64,000 characters
        # printed since the previous one, the rest is skipped with a note (never refilled).
        # Every line written comes once, in order, in runs between notes; the last lines are
        # all there.
        many = engine.submit(flood, 150_000, backend="dask", name="flood")
        assert engine.wait_job(many, 90) and many.result() == 150_000
        assert many.tail(3) == "line 149997\nline 149998\nline 149999"
        assert many.log_path is not None
        runs: list[list[int]] = [[]]
        for line in many.log_path.read_text().splitlines():
            if line.startswith("line "):
                runs[-1].append(int(line[5:]))
            else:  # a skip starts at a line's start: no piece of a line after a note
                assert re.fullmatch(r"\[[\d,]+ characters not shown\]", line), line
                runs.append([])
        numbers = [n for run in runs for n in run]
        assert numbers == sorted(set(numbers))
        assert all(run == list(range(run[0], run[0] + len(run))) for run in runs if run)
        assert runs[-1][-1] == 149_999 and len(runs[-1]) > 1000
    finally:
        engine.shutdown()
    assert_nothing_left(before, timeout=30)


def _cloudpickle_loaded() -> bool:
    return "cloudpickle" in sys.modules


@pytest.mark.timeout(90)
def test_prestart_starts_the_fork_server_with_cloudpickle_before_any_job(engine: Engine) -> None:
    # A first job waits for a fork of a warm server, not for a Python to start and import
    # cloudpickle (a cold start was 10x a fork pool's).
    engine.prestart("process").result(timeout=60)

    def servers() -> list[psutil.Process]:
        # (a process's command line reads empty for a moment as it execs: wait for it)
        return [p for p in psutil.Process().children() if "zygote" in p.cmdline()]

    found = wait_until(lambda: servers(), 10, "the fork server's command line")
    assert len(found) == 1 and "preload" in found[0].cmdline(), [p.cmdline() for p in found]
    # Forked from a server that preloaded it: without the prestart, the first worker is
    # forked before the server imports cloudpickle (it does once idle).
    job = engine.submit(_cloudpickle_loaded, backend="process")
    engine.wait_job(job, 60)
    assert job.result() is True
    assert psutil.Process(job.pid).parent().pid == found[0].pid  # type: ignore[union-attr]
    engine.prestart("process", "thread").result(timeout=60)  # again: nothing more to start
    assert [p.pid for p in servers()] == [found[0].pid]


@pytest.mark.timeout(60)
def test_prestart_names_an_unknown_backend_and_refuses_a_shut_down_engine(tmp_path: Path) -> None:
    engine = Engine(history=False)
    with pytest.raises(ValueError, match="unknown backend 'proces'; use one of"):
        engine.prestart("proces")
    engine.shutdown()
    with pytest.raises(SubmitError, match="this engine is shut down"):
        engine.prestart("process")
