"""Process identity (pid + start time) and process-group stops: real processes, real signals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from jupyter_executor import _procs


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_runs(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _runs(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _read_pids(path: Path, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    pytest.fail(f"the processes did not write their pids to {path} within {timeout} s")


@pytest.mark.timeout(30)
def test_a_pid_and_its_start_time_name_one_process() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = _procs.start_time(child.pid)
        assert started is not None
        assert _procs.same_process(child.pid, started)
        assert _procs.find(child.pid, started) is not None
        # Another start time: a recycled pid, never taken for the recorded process.
        assert not _procs.same_process(child.pid, started - 5)
        assert _procs.same_process(child.pid, started - 0.5, tolerance=1)
        child.kill()
        time.sleep(0.2)  # not reaped yet: a zombie does not run
        assert not _procs.same_process(child.pid, started)
    finally:
        child.kill()
        child.wait()
    assert not _procs.same_process(child.pid, started)
    assert _procs.start_time(child.pid) is None


@pytest.mark.parametrize("pid, started", [(None, 1.0), (0, 1.0), (1, None), ("x", 1.0), (1, "x")])
def test_no_record_names_no_process(pid: object, started: object) -> None:
    assert _procs.find(pid, started) is None
    assert not _procs.same_process(pid, started)


def _stop_group_of(
    popen: subprocess.Popen[bytes], pids: Path, count: int, grace: float
) -> list[int]:
    """Once ``count`` processes wrote their pid to ``pids``, stop ``popen``'s group (found by
    pid and start time, as the engine finds its processes) and reap ``popen``; return the pids."""
    members = _read_pids(pids, count)
    proc = _procs.find(popen.pid, _procs.start_time(popen.pid))
    assert proc is not None
    _procs.stop_group(proc, grace=grace)
    popen.wait(10)
    return members


@pytest.mark.timeout(60)
def test_stop_group_ends_the_group_its_stubborn_members_and_those_that_left_it(
    tmp_path: Path,
) -> None:
    # A leader, a member that ignores SIGTERM, and a descendant in a session of its own.
    pids = tmp_path / "pids"
    script = (
        f"trap '' TERM; echo $$ >> {pids}; "
        f"(trap '' TERM; echo $(sh -c 'echo $PPID') >> {pids}; sleep 60) & "
        f"setsid sh -c 'echo $$ >> {pids}; sleep 60' & "
        "wait"
    )
    leader = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    try:
        members = _stop_group_of(leader, pids, 3, grace=0.5)
        assert _gone(members), [p for p in members if _runs(p)]
    finally:
        for pid in _read_pids(pids, 0):
            if _runs(pid):
                os.kill(pid, 9)
        leader.kill()
        leader.wait()


@pytest.mark.timeout(60)
def test_stop_group_of_a_process_in_our_group_signals_only_it_and_its_descendants(
    tmp_path: Path,
) -> None:
    # It does not lead a group: the group is ours (pytest's), which must not be signalled.
    pids = tmp_path / "pids"
    child = subprocess.Popen(
        ["sh", "-c", f"echo $$ >> {pids}; sh -c 'echo $$ >> {pids}; sleep 60' & wait"]
    )
    try:
        members = _stop_group_of(child, pids, 2, grace=5)
        assert _gone(members)
    finally:
        child.kill()
        child.wait()


@pytest.mark.timeout(30)
def test_importing_procs_imports_no_psutil() -> None:
    code = "import sys, jupyter_executor._procs; print('psutil' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    assert done.stdout.strip() == "False"
