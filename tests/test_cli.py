"""The ``jupyter-executor`` command, run for real in a subprocess (``python -m jupyter_executor``).

Each test works in its own folder: the example flows are copied there, so their outputs and the
engine's folder (history, logs) never touch the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _wait import wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLI = [sys.executable, "-m", "jupyter_executor"]


def env() -> dict[str, str]:
    # A kernel started under pytest must not see PYTEST_CURRENT_TEST (docs/kernel-notes.md §5).
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def cli(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )


def history(cwd: Path, name: str | None = None) -> list[dict[str, Any]]:
    result = cli(cwd, "list", *([name] if name else []), "--json", "--folder", "runs")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A copy of examples/ to run flows in."""
    folder = tmp_path / "work"
    shutil.copytree(
        EXAMPLES,
        folder,
        ignore=shutil.ignore_patterns("__pycache__", "test_*.txt", "final.txt", "report.txt"),
    )
    return folder


class Running:
    """A CLI process in the background, its output collected by a reader thread."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._chunks: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._chunks.append(line)

    @property
    def output(self) -> str:
        return "".join(self._chunks)

    def wait_for(self, *needles: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not all(n in self.output for n in needles):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(f"never saw {needles}; output:\n{self.output}")
            time.sleep(0.05)

    def finish(self, timeout: float) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.output

    def kill(self) -> None:
        """Kill the CLI and everything under it, if still alive (test cleanup)."""
        if self.proc.poll() is None:
            root = psutil.Process(self.proc.pid)
            tree = [root, *root.children(recursive=True)]
            for p in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            psutil.wait_procs(tree, timeout=10)
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def background() -> Iterator[Callable[..., Running]]:
    """Start CLI processes in the background; whatever is left is killed afterwards."""
    running: list[Running] = []

    def start(cwd: Path, *args: str) -> Running:
        run = Running(cwd, *args)
        running.append(run)
        return run

    try:
        yield start
    finally:
        for run in running:
            run.kill()


# -- run: success, resume, list, logs ------------------------------------------------------------


@pytest.mark.timeout(120)
def test_run_a_flow_then_resume_skips_exactly_what_is_up_to_date(work: Path) -> None:
    first = cli(work, "run", "flows.py", "sleepit", "--folder", "runs")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (work / "final.txt").read_text() == "21\n"
    for name in ("solve-1", "solve-2", "final"):
        assert f"done      {name}  (" in first.stdout  # plain lines: stdout is not a terminal
    assert "sleepit: done in" in first.stdout

    def skipped(result: subprocess.CompletedProcess[str]) -> set[str]:
        return {
            line.split()[2]
            for line in result.stdout.splitlines()
            if line.endswith("up to date") and " done " in line
        }

    again = cli(work, "run", "flows.py", "sleepit", "--folder", "runs", "--resume")
    assert again.returncode == 0, again.stderr
    assert skipped(again) == {"solve-1", "solve-2", "final"}

    # touching without changing the content: identity is the content hash, still up to date
    os.utime(work / "data_2.txt")
    touched = cli(work, "run", "flows.py", "sleepit", "--folder", "runs", "--resume")
    assert skipped(touched) == {"solve-1", "solve-2", "final"}, touched.stdout

    # a changed input: that job and the job depending on it run again, the other one does not
    (work / "data_1.txt").write_text("1 2 3 7\n")
    changed = cli(work, "run", "flows.py", "sleepit", "--folder", "runs", "--resume")
    assert changed.returncode == 0, changed.stderr
    assert skipped(changed) == {"solve-2"}, changed.stdout
    assert (work / "final.txt").read_text() == "28\n"

    runs = history(work)
    assert [(r["name"], r["run"]) for r in runs if r["name"] == "solve-1"] == [
        ("solve-1", n) for n in (1, 2, 3, 4)
    ]
    really_ran = [r["run"] for r in runs if r["name"] == "solve-1" and r["started"]]
    assert really_ran == [1, 4]
    table = cli(work, "list", "--folder", "runs")
    assert table.stdout.splitlines()[0].split() == [
        "name", "run", "status", "started", "duration", "exit", "engine", "note",
    ]  # fmt: skip
    assert "up to date" in table.stdout

    latest = cli(work, "logs", "solve-1", "--folder", "runs")
    assert latest.returncode == 0 and "solved 1: 13" in latest.stdout
    first_log = cli(work, "logs", "solve-1", "--run", "1", "--folder", "runs")
    assert "solved 1: 6" in first_log.stdout and "13" not in first_log.stdout
    skipped_log = cli(work, "logs", "solve-1", "--run", "2", "--folder", "runs")
    assert skipped_log.returncode == 1 and "did not run (up to date" in skipped_log.stderr
    tail = cli(work, "logs", "solve-1", "--tail", "1", "--folder", "runs")
    assert tail.stdout == "solved 1: 13\n"
    bad = cli(work, "logs", "solve-1", "--run", "9", "--folder", "runs")
    assert bad.returncode == 2 and "has 4 run(s)" in bad.stderr


def test_force_runs_everything_again(work: Path) -> None:
    assert cli(work, "run", "flows.py", "sleepit", "--folder", "runs").returncode == 0
    forced = cli(work, "run", "flows.py", "sleepit", "--folder", "runs", "--resume", "--force")
    assert forced.returncode == 0
    assert "up to date" not in forced.stdout
    assert forced.stdout.count("running") == 3


def test_engine_options_reach_the_flow(work: Path) -> None:
    (work / "check.py").write_text(
        textwrap.dedent(
            """
            import os
            from jupyter_executor import flow, get_engine

            @flow
            def check(engine):
                assert get_engine() is engine   # the flow's get_engine() is the CLI's engine
                job = engine.submit(os.getpid, name="pid")
                engine.wait_job(job)
                print("backend", job.backend, "max_jobs", engine.max_jobs,
                      "elsewhere", job.result() != os.getpid(), "folder", engine.folder.name)
            """
        )
    )
    result = cli(
        work, "run", "check.py", "--backend", "process", "--max-jobs", "3", "--folder", "here"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # one flow in the file: the name may be left out
    assert "backend process max_jobs 3 elsewhere True folder here" in result.stdout


# -- failures and usage errors -------------------------------------------------------------------

FAILING = """
import sys
from jupyter_executor import flow

@flow
async def fails(engine):
    '''A job that fails, and one that succeeds.'''
    code = "import sys; print('computing'); sys.exit('boom: bad value 42')"
    bad = engine.submit([sys.executable, "-c", code], name="bad")
    good = engine.submit([sys.executable, "-c", "print('fine')"], name="good")
    await engine.gather(good, bad)

@flow
def crashes(engine):
    '''The flow itself raises.'''
    raise RuntimeError("the flow is broken")
"""


def test_failed_job_exits_1_and_prints_its_log_tail(work: Path) -> None:
    (work / "failing.py").write_text(FAILING)
    result = cli(work, "run", "failing.py", "fails", "--folder", "runs")
    assert result.returncode == 1
    assert "--- bad failed: CommandFailed" in result.stderr
    assert "exited with code 1" in result.stderr
    assert "computing\nboom: bad value 42\n" in result.stderr  # the tail, stdout and stderr
    assert "--- log: " in result.stderr and "bad.log" in result.stderr
    assert "fails: FAILED" in result.stdout and "1 failed" in result.stdout
    assert "done      good" in result.stdout  # the other job was not stopped by the failure

    crash = cli(work, "run", "failing.py", "crashes", "--folder", "runs")
    assert crash.returncode == 1
    assert "--- flow crashes raised ---" in crash.stderr
    assert "RuntimeError: the flow is broken" in crash.stderr


def test_unknown_flow_lists_the_flows_and_exits_2(work: Path) -> None:
    (work / "failing.py").write_text(FAILING)
    result = cli(work, "run", "failing.py", "nope")
    assert result.returncode == 2
    assert "no flow 'nope' in failing.py" in result.stderr
    assert "fails" in result.stderr and "crashes" in result.stderr
    ambiguous = cli(work, "run", "failing.py")
    assert ambiguous.returncode == 2 and "flows: fails, crashes" in ambiguous.stderr
    missing = cli(work, "run", "nowhere.py", "x")
    assert missing.returncode == 2 and "no such file: nowhere.py" in missing.stderr
    assert not (work / ".jupyter_executor").exists()  # nothing ran, nothing written


def test_flows_command(work: Path) -> None:
    result = cli(work, "flows", "flows.py")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "flows:"
    assert lines[1].split()[:2] == ["sleepit", "async"]
    assert "Solve two problems in parallel" in lines[1]
    assert lines[2].split()[:2] == ["squares", "sync"]
    (work / "broken.py").write_text("import no_such_module\n")
    broken = cli(work, "flows", "broken.py")
    assert broken.returncode == 1 and "ModuleNotFoundError" in broken.stderr


# -- Ctrl-C and cancel ---------------------------------------------------------------------------

SLOW = """
import sys
from jupyter_executor import flow

SLEEP = [sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(60)"]

@flow
async def slow(engine):
    jobs = [engine.submit(SLEEP, name=f"sleep-{i}") for i in range(2)]
    worker = engine.submit(sum, [1, 2], name="worker", backend="process")
    await engine.gather(worker, *jobs)
"""


def _sleepers(pid: int) -> list[psutil.Process]:
    """The processes under ``pid`` once two of them run ``time.sleep(60)``, else []."""
    tree = psutil.Process(pid).children(recursive=True)
    running = 0
    for proc in tree:
        with contextlib.suppress(psutil.Error):  # gone meanwhile: not one of them
            running += "time.sleep(60)" in " ".join(proc.cmdline())
    return tree if running >= 2 else []


@pytest.mark.timeout(60)
def test_sigint_cancels_the_jobs_and_exits_130(
    work: Path, background: Callable[..., Running]
) -> None:
    run = run_slow(work, background)
    run.wait_for("done      worker")
    # every process the flow started: the two commands and the process backend's worker (a
    # command is said to run once it is started; its exec may come a moment later)
    tree = wait_until(lambda: _sleepers(run.proc.pid), 10, "both commands' processes")
    assert sum("time.sleep(60)" in " ".join(p.cmdline()) for p in tree) >= 2
    began = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    code, out = run.finish(timeout=30)
    assert code == 130, out
    assert time.monotonic() - began < 15
    assert "interrupted: cancelling the jobs" in out
    assert "cancelled sleep-0" in out and "cancelled sleep-1" in out
    assert "slow: interrupted after" in out
    _gone, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive, [p.cmdline() for p in alive]


def run_slow(work: Path, background: Callable[..., Running]) -> Running:
    """``run slow.py slow`` in the background, once both its commands run."""
    (work / "slow.py").write_text(SLOW)
    run = background(work, "run", "slow.py", "slow", "--folder", "runs")
    run.wait_for("running   sleep-0", "running   sleep-1")
    return run


def wait_recorded(work: Path, *names: str) -> None:
    """Until the history shows a running run with a pid for each name."""
    wait_until(
        lambda: all(
            any(r["status"] == "running" and r["pid"] for r in history(work, name))
            for name in names
        ),
        20,
        f"{names} recorded as running with a pid",
        interval=0.2,
    )


@pytest.mark.timeout(60)
def test_cancel_from_another_terminal_stops_an_attached_run(
    work: Path, background: Callable[..., Running]
) -> None:
    run = run_slow(work, background)
    wait_recorded(work, "sleep-0")
    result = cli(work, "cancel", "sleep-0", "--folder", "runs", "--grace", "2")
    assert result.returncode == 0 and "sleep-0: stopped pid" in result.stdout, result.stderr
    # its engine sees it die; the flow awaited it, so it fails and waits for what still runs
    run.wait_for("failed    sleep-0", "waiting for 1 running job(s) (sleep-1)")
    assert "killed by signal SIGTERM" in run.output
    run.proc.send_signal(signal.SIGINT)  # then Ctrl-C stops the rest
    code, out = run.finish(timeout=30)
    assert code == 130, out
    assert "cancelled sleep-1" in out


DETACHED = """
import sys
from jupyter_executor import flow

@flow
async def detached(engine):
    sleep = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)", MARK]
    jobs = [engine.submit(sleep, name=f"bg-{i}", detach=True) for i in range(2)]
    await engine.gather(*jobs)
"""


@pytest.fixture
def marked(tmp_path: Path) -> Iterator[str]:
    """A word put on the command lines of a test's processes; any still alive at the end (a
    detached job outlives its engine on purpose) is killed."""
    mark = f"mark-{tmp_path.name}"
    try:
        yield mark
    finally:
        left = [p for p in psutil.process_iter(["cmdline"]) if mark in (p.info["cmdline"] or [])]
        for proc in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(left, timeout=10)


@pytest.mark.timeout(60)
def test_cancel_stops_a_detached_run_recorded_in_the_folder(
    work: Path, background: Callable[..., Running], marked: str
) -> None:
    (work / "detached.py").write_text(DETACHED.replace("MARK", repr(marked)))
    run = background(work, "run", "detached.py", "--folder", "runs")
    run.wait_for("running   bg-0", "running   bg-1")
    wait_recorded(work, "bg-0", "bg-1")
    result = cli(work, "cancel", "bg-0", "--folder", "runs", "--grace", "2")
    assert result.returncode == 0, result.stderr
    assert "bg-0: stopped pid" in result.stdout
    # the flow awaited bg-0, which was stopped: the flow fails, and waits for what still runs
    run.wait_for("failed    bg-0", "waiting for 1 running job(s) (bg-1)")
    assert "killed by signal SIGTERM" in run.output  # its engine saw it and recorded it

    # Now the engine dies (a kernel killed): the detached bg-1 runs on, with nobody to record
    # its end, until `cancel` stops it and records it.
    run.proc.kill()
    assert run.finish(timeout=10)[0] == -signal.SIGKILL
    assert [r["status"] for r in history(work, "bg-1")] == ["running"]
    orphan = cli(work, "cancel", "bg-1", "--folder", "runs", "--grace", "2")
    assert orphan.returncode == 0 and "bg-1: stopped pid" in orphan.stdout
    left = [p for p in psutil.process_iter(["cmdline"]) if marked in (p.info["cmdline"] or [])]
    assert not left, "cancel left processes behind"
    runs = {r["name"]: r for r in history(work)}
    assert runs["bg-0"]["status"] == "failed"  # recorded by its engine, first
    assert runs["bg-1"]["status"] == "cancelled"  # recorded by cancel
    assert "cancelled by jupyter-executor cancel" in (runs["bg-1"]["error"] or "")
    nothing = cli(work, "cancel", "bg-0", "--folder", "runs")
    assert nothing.returncode == 1 and "no running run of 'bg-0'" in nothing.stderr


# -- the live view -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_live_view_on_a_terminal(work: Path) -> None:
    pytest.importorskip("rich")
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*CLI, "run", "flows.py", "sleepit", "--folder", "runs"],
            cwd=work,
            env={**env(), "TERM": "xterm", "COLUMNS": "100"},
            stdin=follower,
            stdout=follower,
            stderr=follower,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in screen  # drawn with terminal escapes, not plain lines
    assert "▶ running" in screen and "✔ done" in screen
    assert "solved 1: 6" in screen  # the last line a job printed, on its row
    assert "sleepit: done in" in screen


# -- notebooks -----------------------------------------------------------------------------------


def notebook(path: Path, *sources: str) -> Path:
    import nbformat
    import nbformat.v4 as v4

    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [v4.new_markdown_cell("# a flow in a notebook")]
    nb.cells += [v4.new_code_cell(textwrap.dedent(s).strip()) for s in sources]
    nbformat.write(nb, path)
    return path


@pytest.mark.kernel
@pytest.mark.timeout(90)
def test_run_a_notebook_headless(work: Path) -> None:
    # examples/analysis.ipynb: `%%job report --requires total` comes before `%%job total`
    result = cli(work, "run", "analysis.ipynb", "--folder", "runs", timeout=80)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (work / "report.txt").read_text() == "total: 6\n"  # ran in the notebook's folder
    out = result.stdout
    assert "1 plain cell(s), then 2 %%job cell(s)" in out
    assert out.index("submitted total") < out.index("submitted report")
    assert "done      total" in out and "done      report" in out
    assert "analysis.ipynb: done in" in out
    assert {r["name"] for r in history(work)} == {"total", "report"}  # --folder reached it

    notebook(
        work / "broken.ipynb",
        "%load_ext jupyter_executor",
        "%%job fails\nprint('about to fail')\nraise ValueError('bad notebook job')",
    )
    failed = cli(work, "run", "broken.ipynb", timeout=80)
    assert failed.returncode == 1
    assert "--- fails failed: ValueError: bad notebook job ---" in failed.stderr
    assert "about to fail" in failed.stderr
    assert "broken.ipynb: FAILED" in failed.stdout


PATH = os.environ.get("PATH", "").split(os.pathsep)


def test_the_installed_command(work: Path) -> None:
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert "jupyter-executor" in scripts, "no console script: pip install -e . again"
    assert scripts["jupyter-executor"] == "jupyter_executor.cli:main"
    # the environment's scripts folder, also when its python runs the tests unactivated
    scripts_dir = os.path.dirname(sys.executable)
    command = shutil.which("jupyter-executor", path=os.pathsep.join([scripts_dir, *PATH]))
    assert command is not None, f"jupyter-executor is not in {scripts_dir} nor on PATH"
    result = subprocess.run(
        [command, "flows", "flows.py"], cwd=work, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "sleepit" in result.stdout


def test_logs_finds_the_log_of_any_job_name(tmp_path: Path) -> None:
    # Plain names keep their old file name (logs of older versions are found); other names
    # get their own file, which the command finds from the name alone.
    code = textwrap.dedent(
        """
        import sys
        from jupyter_executor import Engine
        with Engine(folder="runs") as engine:
            for name in sys.argv[1:]:
                engine.submit(print, f"I am {name}", name=name)
            assert engine.wait(timeout=30)
        """
    )
    names = ["etl-2026.v2", "a b", "a_b", "a/b"]
    done = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=tmp_path, env=env(), timeout=60, check=False
    )
    assert done.returncode == 0
    assert (tmp_path / "runs" / "logs" / "etl-2026.v2.log").exists()
    for name in names:
        result = cli(tmp_path, "logs", name, "--folder", "runs")
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"I am {name}\n"
