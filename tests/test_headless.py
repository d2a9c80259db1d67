"""Headless runs (``jupyter nbconvert --execute``, papermill): nothing lost silently.

A notebook whose last cell ends while a ``%%job`` still runs is shut down gracefully by its
runner, and a graceful kernel shutdown runs no ``atexit`` handler (docs/kernel-notes.md §7).
The engine listens for the kernel's own shutdown instead: the unfinished jobs are recorded in
the history at once as cancelled ("kernel shut down") and one line goes to the kernel's stderr,
which the runner's terminal shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from _kernel import REPO, SETUP_CELLS, notebook_of

from jupyter_executor import Engine

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(240)]

CELLS = [
    *SETUP_CELLS,
    "%%job quick\n6 * 7",
    "%jobs wait quick",
    "%%job long\nimport time\nprint('started')\ntime.sleep(120)\nprint('never printed')",
    "%%job after --requires long\n'never run'",
    "import time\nwhile engine['long'].status.value != 'running':\n    time.sleep(0.05)",
]


def test_nbconvert_run_ending_with_a_running_job_records_it_and_says_so(tmp_path: Path) -> None:
    nbformat.write(notebook_of(CELLS), tmp_path / "headless.ipynb")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(
        IPYTHONDIR=str(tmp_path / ".ipython"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / ".runtime"),
        JUPYTER_DATA_DIR=str(tmp_path / ".data"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "headless.ipynb", "--output", "executed.ipynb"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    # the runner did not wait for the 120 s job: the kernel was shut down with it running
    assert took < 110, took
    warning = [line for line in done.stderr.splitlines() if line.startswith("jupyter_executor:")]
    assert warning == [
        "jupyter_executor: the kernel shut down while 2 jobs had not finished (long, after): "
        "recorded as cancelled ('kernel shut down'); end a headless notebook with %jobs wait"
    ], done.stderr

    # What the history says, read by the next engine on the folder (which would have closed
    # runs left open by a dead kernel as "failed": these were closed by the kernel itself).
    with Engine(folder=tmp_path / "runs") as engine:
        runs = engine.history().set_index("name")
    assert runs.loc["quick", "status"] == "done"
    assert runs.loc["long", "status"] == "cancelled", done.stderr
    assert runs.loc["long", "cancel_reason"].startswith("kernel shut down"), runs.loc["long"]
    log = (tmp_path / "runs" / "logs" / "long.log").read_text()
    assert "started" in log and "never printed" not in log
