"""Nothing lost across kernels (issue 5), with real ipykernels driven through jupyter_client.

- the history of one kernel's jobs is read by the next kernel on the same folder, and a
  kernel killed with SIGKILL leaves a database that is intact;
- a detached job survives its kernel's shutdown and a SIGKILL of a kernel, is re-attached by
  the next kernel's engine (running, its tail growing) and its exit is recorded;
- SIGKILL of a kernel leaves none of its non-detached children alive: subprocess jobs (with a
  pipeline's grandchildren) and a process-backend worker with a child of its own.

Each kernel gets its own root (cwd, IPYTHONDIR, connection file); the engines share one
folder given to ``get_engine(folder=...)``. Processes are found by a unique marker in their
command line, and every process a test starts is killed in its ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from _kernel import Kernel, kill_processes, running_kernel
from _wait import wait_until

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(90)]

PY = sys.executable


# -- helpers --------------------------------------------------------------------------------------


def marked(marker: str) -> list[psutil.Process]:
    """Live processes (zombies excluded) whose command line contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if marker in " ".join(proc.info["cmdline"] or ()):
                found.append(proc)
    return found


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def describe(procs: list[psutil.Process]) -> list[str]:
    """Each process's command line, its parent and signal masks (why it did not stop)."""
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            keep = ("PPid", "Threads", "SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd")
            masks = " ".join(line.replace("\t", "") for line in status if line.startswith(keep))
            out.append(f"{proc.pid}: {' '.join(proc.cmdline())} [{masks}]")
    return out


def data(kernel: Kernel, expr: str, timeout: float = 30) -> Any:
    """The value of ``expr`` in the kernel, sent back as JSON on stdout."""
    ex = kernel.execute(f"import json as _j\nprint(_j.dumps({expr}, default=str))", timeout=timeout)
    return json.loads(ex.stdout)


def engine_in(kernel: Kernel, folder: Path) -> str:
    """Create the kernel's engine on ``folder`` (as a notebook's first cell would); its id."""
    kernel.execute(
        f"from jupyter_executor import get_engine\nengine = get_engine(folder={str(folder)!r})"
    )
    return str(data(kernel, "engine.id"))


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique marker for the processes of one test; whatever still carries it is killed."""
    mark = f"jx-test-{uuid.uuid4().hex[:12]}"
    try:
        yield mark
    finally:
        kill_processes(marked(mark))


# -- history --------------------------------------------------------------------------------------


def test_history_survives_a_kernel_restart_and_a_sigkill(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    with running_kernel(tmp_path / "k1") as k1:
        first = engine_in(k1, folder)
        k1.execute("%load_ext jupyter_executor")
        k1.execute(
            "engine.submit('echo from a script', name='script')\n"
            "engine.submit(sum, [1, 2, 3], name='total')\n"
            "engine.submit('exit 4', name='broken')"
        )
        k1.execute("%%job cell\nanswer = 6 * 7\nanswer")
        assert data(k1, "engine.wait(10)") is False  # "broken" failed
        k1.shutdown()

    with running_kernel(tmp_path / "k2") as k2:
        second = engine_in(k2, folder)
        assert second != first
        rows = data(
            k2,
            "engine.history()[['name', 'status', 'result', 'exit_code', 'engine_id', "
            "'description']].to_dict('records')",
        )
        by_name = {row["name"]: row for row in rows}
        assert set(by_name) == {"script", "total", "broken", "cell"}
        assert {row["engine_id"] for row in rows} == {first}
        assert by_name["total"]["result"] == "6"
        assert by_name["cell"]["result"] == "42"
        assert by_name["cell"]["description"].strip() == "answer = 6 * 7\nanswer"  # the source
        assert by_name["broken"]["status"] == "failed" and by_name["broken"]["exit_code"] == 4
        assert by_name["script"]["status"] == "done"
        assert data(k2, "list(engine.jobs)") == []  # history, not jobs: nothing runs again
        # Runs of this kernel too; history() writes them first, then the kernel is killed.
        k2.execute("engine.submit('echo second kernel', name='later')\nengine.wait(10)")
        assert len(data(k2, "engine.history().to_dict('records')")) == 5
        k2.kill()

    with sqlite3.connect(folder / "history.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = [row[0] for row in con.execute("SELECT name FROM runs ORDER BY id")]
    con.close()
    assert sorted(names) == ["broken", "cell", "later", "script", "total"]


def test_a_killed_kernels_open_runs_are_closed_by_the_next_one(tmp_path: Path) -> None:
    # A kernel killed while its jobs run or wait leaves their runs open on disk. The next engine
    # on the folder closes them (running -> failed, waiting -> cancelled), and leaves alone the
    # runs of a kernel that is still alive on the same folder.
    folder = tmp_path / "runs"
    with running_kernel(tmp_path / "live") as live:
        engine_in(live, folder)
        live.execute("import time\nengine.submit(time.sleep, 60, name='live')")
        with running_kernel(tmp_path / "k1") as k1:
            engine_in(k1, folder)
            k1.execute(
                "import asyncio, time\n"
                "engine.set_limits(thread=1)\n"
                "engine.submit(time.sleep, 60, name='spin')\n"
                "engine.submit(time.sleep, 1, name='queued')\n"  # waits for spin's slot
                "engine.submit(time.sleep, 1, name='after', requires='spin')\n"
                "engine.submit(asyncio.sleep, 60, name='aspin', backend='async')"
            )
            expected = {"spin": "running", "queued": "pending", "after": "pending"}
            expected["aspin"] = "running"

            def on_disk(kernel: Kernel) -> dict[str, str]:
                rows = data(kernel, "engine.history()[['name', 'status']].to_dict('records')")
                return {row["name"]: row["status"] for row in rows}

            # the queued job reaches the history while it waits, not only when it starts
            wait_until(lambda: on_disk(k1) == {**expected, "live": "running"}, timeout=20)
            k1.kill()

        with running_kernel(tmp_path / "k2") as k2:
            engine_in(k2, folder)
            rows = data(
                k2,
                "engine.history()[['name', 'status', 'error', 'cancel_reason', 'finished']]"
                ".to_dict('records')",
            )
        by_name = {row["name"]: row for row in rows}
        assert {n: r["status"] for n, r in by_name.items()} == {
            "spin": "failed",
            "aspin": "failed",
            "queued": "cancelled",
            "after": "cancelled",
            "live": "running",  # its kernel is alive: not touched
        }
        for name in ("spin", "aspin"):
            assert by_name[name]["error"] == "the kernel died while it ran"
        for name in ("queued", "after"):
            assert by_name[name]["cancel_reason"] == "the kernel died before it started"
            assert by_name[name]["finished"] is not None
        assert data(live, "engine['live'].status.value") == "running"
        live.execute("engine.cancel('live')")


# -- detached jobs --------------------------------------------------------------------------------


SLOW_SCRIPT = """\
import os, sys, time
marker, release, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(600):  # at most 2 minutes, should the test not release it
    print("line", i, flush=True)
    if os.path.exists(release):
        sys.exit(code)
    time.sleep(0.2)
sys.exit(99)
"""


def last_line_number(kernel: Kernel, name: str) -> int:
    line = data(kernel, f"engine[{name!r}].info().last_line")
    return int(line.split()[1]) if line.startswith("line ") else -1


@pytest.mark.timeout(120)
def test_detached_jobs_survive_shutdown_and_sigkill_and_are_reattached(
    tmp_path: Path, marker: str
) -> None:
    folder = tmp_path / "runs"
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRIPT)
    release = tmp_path / "release"

    def command(tag: str, code: int) -> list[str]:
        return [PY, str(script), f"{marker}-{tag}", str(release), str(code)]

    # Kernel 1 starts "d1", then shuts down cleanly.
    with running_kernel(tmp_path / "k1") as k1:
        first = engine_in(k1, folder)
        k1.execute(f"engine.submit({command('d1', 3)!r}, name='d1', detach=True)")
        wait_until(lambda: last_line_number(k1, "d1") >= 1, 15, "d1's first lines")
        d1 = marked(f"{marker}-d1")
        assert len(d1) == 2  # the supervisor and the script
        k1.shutdown(kill_children=False)  # the test's marker fixture owns the cleanup
    assert len(alive(d1)) == 2, "a detached job must survive its kernel's shutdown"

    # Kernel 2 takes "d1" back, starts "d2", and is killed.
    with running_kernel(tmp_path / "k2") as k2:
        second = engine_in(k2, folder)
        assert data(k2, "[engine['d1'].status.value, engine['d1'].detach]") == ["running", True]
        assert data(k2, "engine['d1'].pid") in {p.pid for p in d1}
        seen = wait_until(lambda: last_line_number(k2, "d1"), 15, "d1's log to be followed")
        wait_until(lambda: last_line_number(k2, "d1") > seen, 15, "d1's tail to grow")
        k2.execute(f"engine.submit({command('d2', 0)!r}, name='d2', detach=True)")
        wait_until(lambda: last_line_number(k2, "d2") >= 1, 15, "d2's first lines")
        d2 = marked(f"{marker}-d2")
        assert len(d2) == 2
        k2.execute("engine.history()")  # what the kernel knows is on disk before it dies
        k2.kill()
        k2.shutdown(kill_children=False)
    assert len(alive(d1)) == 2, "a detached job must survive a SIGKILL of a kernel watching it"
    assert len(alive(d2)) == 2, "a detached job must survive a SIGKILL of the kernel it started in"

    # Kernel 3 takes both back and records how they end.
    with running_kernel(tmp_path / "k3") as k3:
        engine_in(k3, folder)
        statuses = data(k3, "{n: engine[n].status.value for n in ('d1', 'd2')}")
        assert statuses == {"d1": "running", "d2": "running"}
        seen = wait_until(lambda: last_line_number(k3, "d2"), 15, "d2's log to be followed")
        wait_until(lambda: last_line_number(k3, "d2") > seen, 15, "d2's tail to grow")
        release.write_text("")
        done = data(k3, "[engine.wait_job('d1', 30), engine.wait_job('d2', 30)]", timeout=60)
        assert done == [False, True]  # d1 exits with code 3, d2 with 0
        assert "exited with code 3" in data(k3, "engine['d1'].info().error")
        rows = data(
            k3,
            "engine.history()[['name', 'status', 'exit_code', 'engine_id', 'detached', "
            "'finished']].to_dict('records')",
        )
    by_name = {row["name"]: row for row in rows}
    assert len(rows) == 2  # one run each, however many kernels watched it
    assert by_name["d1"]["status"] == "failed" and by_name["d1"]["exit_code"] == 3
    assert by_name["d2"]["status"] == "done" and by_name["d2"]["exit_code"] == 0
    assert by_name["d1"]["engine_id"] == first and by_name["d2"]["engine_id"] == second
    assert all(row["detached"] and row["finished"] for row in rows)
    wait_until(lambda: not alive(d1 + d2), 10, "the detached processes to exit")


# -- no orphans -----------------------------------------------------------------------------------


NAP = """\
def nap(marker):
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    print("napping", flush=True)
    time.sleep(60)
"""


def test_sigkill_of_the_kernel_leaves_no_child_alive(tmp_path: Path, marker: str) -> None:
    folder = tmp_path / "runs"
    sleeper = f"import time; time.sleep(60)  # {marker}"
    with running_kernel(tmp_path / "k") as k:
        engine_in(k, folder)
        k.execute(
            f"engine.submit(['sleep', '60'], name='sleep')\n"
            f"engine.submit({PY!r} + ' -c \"{sleeper}-pipe-a\" | ' + {PY!r} + "
            f"' -c \"import sys; sys.stdin.read()  # {marker}-pipe-b\"', name='pipe')\n"
            f"{NAP}\n"
            f"engine.submit(nap, {marker + '-worker-child'!r}, name='nap', backend='process')"
        )
        tags = ("pipe-a", "pipe-b", "worker-child")
        wait_until(
            lambda: all(marked(f"{marker}-{tag}") for tag in tags), 30, "every job's processes"
        )
        wait_until(lambda: "napping" in data(k, "engine['nap'].tail()"), 15, "the process job")
        worker = data(k, "engine['nap'].pid")
        descendants = k.children()
        commands = " ".join(" ".join(p.cmdline()) for p in descendants)
        # (process workers are forked by the backend's fork server, ``python -c ... _worker.py``)
        assert "sleep 60" in commands and "jupyter_executor/_worker.py" in commands
        assert worker in {p.pid for p in descendants}
        k.kill()
        # The supervisors (a pidfd on the kernel) and the worker (parent-death signal) notice
        # the kernel's death and take their process groups down with them: allow a few seconds.
        deadline = time.monotonic() + 10
        while (left := alive(descendants) + marked(marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"orphans of the killed kernel: {describe(left)}"
