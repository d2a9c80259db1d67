"""Durable schedules (issue 12, "Raise the bar"): schedules and restart policies of commands
outlive the engine that armed them.

Real engines in real processes on a tmp folder: an engine that arms schedules is SIGKILLed
(what happens to a kernel), then a second engine on the folder (another process, this one, or
``jupyter-executor schedules run``) re-arms them, reports the runs missed meanwhile and does not
run them late. Periods are 1 s; every wait is on a condition, and counts are upper bounds that a
loaded machine can only undershoot.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _leaks import assert_nothing_left, child_processes, kill_and_reap
from _wait import wait_until

from jupyter_executor import Engine
from jupyter_executor._durable import RearmedWarning
from jupyter_executor.store import HistoryStore

pytestmark = pytest.mark.timeout(120)

CLI = [sys.executable, "-m", "jupyter_executor"]
ROOT = str(Path(__file__).resolve().parent.parent)

# An engine in its own process that arms what the test asks, says "armed", and then lives
# until it is killed (or, with "exit", shuts down cleanly).
ARMER = textwrap.dedent(
    """
    import sys, time
    from jupyter_executor import Engine
    folder, mode = sys.argv[1], sys.argv[2]
    engine = Engine(folder=folder)
    engine.submit(f"echo tick >> {folder}/ticks.txt", every="1 s", name="scrape")
    if mode in ("svc", "exit-cancel"):
        engine.submit(
            f"echo up >> {folder}/svc.txt; sleep 60", restart="on-failure", name="svc"
        )
    if mode == "exit-cancel":
        engine.cancel("scrape")
        engine.cancel("svc")
        engine.shutdown()
        print("armed", flush=True)
        sys.exit(0)
    engine.submit(lambda: None, every="1 s", name="callable")  # never durable
    print("armed", flush=True)
    time.sleep(600)
    """
)


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    out["PYTHONPATH"] = ROOT + os.pathsep + out.get("PYTHONPATH", "")
    return out


#: The ``procs`` fixture: starts a Python process (the CLI, or ``code=``) with these arguments.
Procs = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The engines' folder of a test (made by the first engine)."""
    return tmp_path / "runs"


@pytest.fixture
def procs() -> Iterator[Procs]:
    """Start Python processes; kill what is left, and check nothing of theirs survives."""
    before = {p.pid for p in child_processes()}
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, code: str | None = None) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", code, *args] if code is not None else [*CLI, *args]
        proc = subprocess.Popen(
            argv,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        kill_and_reap(started)
        assert_nothing_left(before, timeout=20)


def read_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    """Read ``proc``'s output until a line holding ``needle``; return all read so far."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"process ended before {needle!r}:\n{''.join(seen)}")
        seen.append(line)
        if needle in line:
            return "".join(seen)
    pytest.fail(f"no {needle!r} within {timeout} s:\n{''.join(seen)}")


def ticks(folder: Path, file: str = "ticks.txt") -> int:
    path = folder / file
    return path.read_text().count("\n") if path.exists() else 0


def arm_and_kill(procs: Procs, folder: Path, mode: str) -> None:
    """An engine arms the schedules, runs scrape at least once, and is SIGKILLed."""
    armer = procs(str(folder), mode, code=ARMER)
    read_line(armer, "armed")
    wait_until(lambda: ticks(folder) >= 1, 60, "a first run of scrape")
    if mode == "svc":
        wait_until(lambda: ticks(folder, "svc.txt") >= 1, 60, "svc to start")
    os.kill(armer.pid, signal.SIGKILL)
    armer.wait(timeout=30)


def history(folder: Path, name: str) -> list[dict[str, Any]]:
    return _read(folder, lambda store: store.history(name))


def schedules(folder: Path) -> list[dict[str, Any]]:
    return _read(folder, lambda store: store.schedules())


def _read(
    folder: Path, query: Callable[[HistoryStore], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """What ``query`` reads from the history in ``folder``, through a store closed after."""
    store = HistoryStore(folder, "test-reader")
    try:
        return query(store)
    finally:
        store.close()


def test_a_killed_engines_schedules_are_rearmed_and_missed_runs_reported_not_run(
    folder: Path, procs: Procs
) -> None:
    arm_and_kill(procs, folder, "svc")
    stored = schedules(folder)
    assert [row["name"] for row in stored] == ["scrape", "svc"]  # the callable is not stored
    # No engine for a while: runs of scrape come due and are missed.
    killed = time.time()
    wait_until(lambda: time.time() > killed + 2.5, 10, "missed runs")
    before = ticks(folder)
    created = time.monotonic()
    with pytest.warns(RearmedWarning) as caught:
        engine = Engine(folder=folder)
    try:
        line = str(caught[0].message)
        assert line.startswith("re-armed 2 schedules: scrape every 1 s (missed "), line
        assert "while no engine was alive" in line and line.endswith(", svc restart on-failure")
        assert set(engine.jobs) == {"scrape", "svc"}
        # The restart policy is back: the service runs again.
        wait_until(lambda: ticks(folder, "svc.txt") >= 2, 60, "svc restarted by the new engine")
        wait_until(lambda: ticks(folder) >= before + 2, 60, "two runs of the re-armed scrape")
    finally:
        engine.shutdown()
    lifetime = time.monotonic() - created
    # Missed runs are not run late: at most one run per second of the engine's life (+1).
    ran = ticks(folder) - before
    assert ran <= int(lifetime) + 1, (ran, lifetime)
    runs = history(folder, "scrape")
    notes = [r for r in runs if (r["cancel_reason"] or "").startswith("missed")]
    assert len(notes) == 1 and notes[0]["status"] == "cancelled", notes
    missed = int(notes[0]["cancel_reason"].split()[1])
    assert missed >= 2  # 2.5 s without an engine, one run a second
    assert notes[0]["cancel_reason"].endswith("; not run late")


def test_unschedule_removes_for_good_cancel_only_here(folder: Path, procs: Procs) -> None:
    # An engine that cancels its schedules and shuts down cleanly: they stay stored.
    done = procs(str(folder), "exit-cancel", code=ARMER)
    read_line(done, "armed")
    assert done.wait(timeout=60) == 0
    with pytest.warns(RearmedWarning, match="re-armed 2 schedules: scrape every 1 s"):
        engine = Engine(folder=folder)
    try:
        assert engine.unschedule("scrape") is True
        assert engine["scrape"].status.value == "cancelled"
        assert engine["scrape"].cancel_reason == "unscheduled"
        assert engine.unschedule("scrape") is False  # nothing left to remove
        assert engine.unschedule("never-was") is False
    finally:
        engine.shutdown()
    # The next engine re-arms only what was not unscheduled.
    with pytest.warns(RearmedWarning) as caught:
        again = Engine(folder=folder)
    try:
        assert [str(w.message) for w in caught] == ["re-armed 1 schedule: svc restart on-failure"]
        assert set(again.jobs) == {"svc"}
        assert again.unschedule("svc") is True
    finally:
        again.shutdown()
    assert schedules(folder) == []


def test_a_live_engine_keeps_its_schedules_and_a_resubmission_takes_over(
    folder: Path, procs: Procs
) -> None:
    armer = procs(str(folder), "plain", code=ARMER)
    read_line(armer, "armed")
    # Another notebook on the same folder while the first lives: nothing is armed twice.
    other = Engine(folder=folder)
    try:
        assert "scrape" not in other.jobs
    finally:
        other.shutdown()
    listing = subprocess.run(
        [*CLI, "schedules", "list", str(folder)], env=env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith(f"scrape\tevery 1 s\tarmed by pid {armer.pid}\techo tick")
    os.kill(armer.pid, signal.SIGKILL)
    armer.wait(timeout=30)
    with pytest.warns(RearmedWarning):
        engine = Engine(folder=folder)
    try:
        # The notebook is run again after the kernel restart: its cell submits scrape anew.
        wait_until(lambda: engine["scrape"].status.value == "pending", 30, "scrape to wait")
        job = engine.submit(f"echo again >> {folder}/again.txt", every="1 h", name="scrape")
        assert engine["scrape"] is job
        spec = schedules(folder)[0]["spec"]
        assert spec["every"] == 3600 and "again" in spec["command"]
    finally:
        engine.shutdown()


def test_cli_schedules_run_rearms_what_a_kernel_left_and_stops_on_sigterm(
    folder: Path, procs: Procs
) -> None:
    armer = procs(str(folder), "plain", code=ARMER)
    read_line(armer, "armed")
    runner = procs("schedules", "run", str(folder), "--rescan", "0.5")
    read_line(runner, "no schedule to re-arm")  # the kernel lives: it keeps its schedule
    os.kill(armer.pid, signal.SIGKILL)
    armer.wait(timeout=30)
    out = read_line(runner, "re-armed 1 schedule: scrape every 1 s")
    before = ticks(folder)
    out += read_line(runner, "scrape done")
    wait_until(lambda: ticks(folder) > before, 30, "a run by the terminal's engine")
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 0, out
    # Stopped cleanly: its schedule is free for the next engine, and still stored.
    rows = schedules(folder)
    assert [(r["name"], r["owner"]) for r in rows] == [("scrape", None)]
    listing = subprocess.run(
        [*CLI, "schedules", "list", "--json", "--folder", str(folder)], env=env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(listing.stdout)["spec"]["every"] == 1.0


def test_only_commands_are_durable(tmp_path: Path) -> None:
    with Engine(folder=tmp_path / "runs") as engine:
        engine.submit(lambda: None, every="1 h", name="fn")
        engine.submit(["echo", "x"], restart="always", detach=True, name="detached")
        engine.submit("echo once", name="plain")
        engine.submit("echo hourly", every="1 h", name="cmd")
        assert [r["name"] for r in engine._store.schedules()] == ["cmd"]


def test_cli_schedules_on_a_folder_without_history(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "schedules", "list", str(tmp_path)], env=env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert "no history in" in result.stderr
    bad = subprocess.run(
        [*CLI, "schedules", "run", str(tmp_path), "--rescan", "0"], env=env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--rescan takes a number of seconds > 0" in bad.stderr
