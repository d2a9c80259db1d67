"""Python cells that outlive the kernel (issue 12): ``%%job NAME --detach`` with real kernels.

A cell that works for a while (a loop that computes and sleeps until the test releases it) is
submitted with --detach; its kernel is SIGKILLed mid-run; a new kernel on the same folder
re-attaches it (running), sees it end (done), and ``%jobs fetch`` brings back the values it
computed, with a one-line error for a value that cannot be unpickled in the new kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _kernel import running_kernel
from _wait import wait_until
from test_lifecycle_kernel import alive, data, engine_in, marked, marker  # noqa: F401 - fixture

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(150)]

CELL = """\
import os, time
from helper_only_here import Box
total = 0
for i in range(1000):
    total += square(i)
    print("step", i, flush=True)
    if i >= 3 and os.path.exists(release):
        break
    time.sleep(0.1)
box = Box(total)
words = [w.upper() for w in tag.split("-")]
total * 2
"""


def test_a_detached_cell_survives_a_sigkill_and_its_variables_are_fetched(
    tmp_path: Path,
    marker: str,  # noqa: F811 - the fixture
) -> None:
    folder = tmp_path / "runs"
    release = tmp_path / "release"
    with running_kernel(tmp_path / "k1") as k1:
        # A module only the first kernel's folder has: a value of its class cannot be loaded
        # by a kernel started elsewhere.
        (k1.cwd / "helper_only_here.py").write_text(
            "class Box:\n    def __init__(self, v):\n        self.v = v\n"
        )
        engine_in(k1, folder)
        k1.execute("%load_ext jupyter_executor")
        k1.execute(
            f"release = {str(release)!r}\ntag = {marker!r}\ndef square(x):\n    return x * x\n"
        )
        k1.execute(f"%%job train --detach\n{CELL}")
        wait_until(
            lambda: "step 2" in data(k1, "engine['train'].tail(5)"), 60, "the cell's first steps"
        )
        procs = [
            p for p in marked("jupyter_executor._detached") if str(folder) in " ".join(p.cmdline())
        ]
        assert procs, "the detached cell runs in a process of its own"
        k1.kill()
        k1.shutdown(kill_children=False)
    assert alive(procs), "a detached cell must survive a SIGKILL of its kernel"

    with running_kernel(tmp_path / "k2") as k2:
        engine_in(k2, folder)
        k2.execute("%load_ext jupyter_executor")
        assert data(k2, "[engine['train'].status.value, engine['train'].detach]") == [
            "running",
            True,
        ]
        early = k2.execute("%jobs fetch train", allow_error=True)
        assert "UsageError: job 'train' is running: its outputs come when it is done" in (
            early.stderr
        )
        seen = data(k2, "engine['train'].tail(3)")
        wait_until(lambda: data(k2, "engine['train'].tail(3)") != seen, 30, "the log to grow")
        release.write_text("")
        assert data(k2, "engine.wait_job('train', 60)", timeout=90) is True
        fetched = k2.execute("%jobs fetch train", allow_error=True)
        # One line naming the value that cannot be loaded here, after loading the others.
        error = fetched.stderr
        assert error == (
            "UsageError: loaded i, os, time, total, words; 'Box', 'box' of job 'train' cannot "
            "be loaded here: ModuleNotFoundError: No module named 'helper_only_here'\n"
        )
        last, total, words = data(k2, "[i, total, words]")
        assert last >= 3 and total == sum(k * k for k in range(last + 1))
        assert words == [w.upper() for w in marker.split("-")]
        # engine[NAME].outputs says the same, as the project's exception.
        raised = k2.execute(
            "try:\n    engine['train'].outputs\nexcept Exception as exc:\n"
            "    print(type(exc).__name__, exc)"
        ).stdout
        assert raised.startswith("OutputsError 'Box' of job 'train' cannot be loaded here"), raised
        rows = data(k2, "engine.history('train')[['status', 'detached']].to_dict('records')")
        assert rows == [{"status": "done", "detached": True}]
    for path in (folder / "logs").glob("train.*pkl"):
        assert os.stat(path).st_mode & 0o777 == 0o600, path
