"""The demo notebooks run from top to bottom, and binder/ installs this package.

Each notebook is executed the way the README's demo command does it
(``python notebooks/run_demo.py NOTEBOOK``): copied to a temporary directory and run by nbclient
in a fresh kernel. A failing cell fails the test. The executed notebook is then checked for what
a reader should see: a live view under every ``%%job`` cell, and no job output leaking into
other cells.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def run_demo(notebook: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    # nothing of the kernel's state goes to the home directory
    env.update(
        IPYTHONDIR=str(workdir / ".ipython"),
        JUPYTER_RUNTIME_DIR=str(workdir / ".runtime"),
        JUPYTER_DATA_DIR=str(workdir / ".data"),
    )
    script = REPO / "notebooks" / "run_demo.py"
    return subprocess.run(
        [sys.executable, str(script), str(notebook), "--keep", str(workdir / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "asynciojobs-style.ipynb"}


@pytest.mark.notebook
@pytest.mark.timeout(300)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_errors(notebook: Path, tmp_path: Path) -> None:
    done = run_demo(notebook, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{notebook.name}: every cell ran. The final %jobs list:" in done.stdout

    executed = nbformat.read(tmp_path / "run" / notebook.name, as_version=4)
    streams = []
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        outputs = cell.outputs
        assert all(o.output_type != "error" for o in outputs), cell.source
        if cell.source.startswith("%%job"):
            # the job's live view, and nothing else: what the job prints goes to the view
            assert [o.output_type for o in outputs] == ["display_data"], cell.source
            assert WIDGET_MIME in outputs[0].data
        streams += [o.text for o in outputs if o.output_type == "stream"]
    if notebook.name == "quickstart.ipynb":
        table = done.stdout.split("The final %jobs list:", 1)[1]
        for name in ("load", "train", "plot", "sim", "tick", "crawl", "etl", "fanout"):
            assert f" {name} " in table
        # the job's pyplot figure went to its view: no cell shows a picture
        pictures = [
            cell.source
            for cell in executed.cells
            for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})
        ]
        assert pictures == []
        assert " build " not in table  # removed by the notebook
        printed = "".join(streams)
        # printed by jobs: only `%jobs tail`/`%jobs log` may show it, never a job's own print
        assert "rows: 1000" not in printed and "simulating in process" not in printed
        assert "token is abc" in printed  # the %jobs log cell


def test_binder_requirements_install_this_package(tmp_path: Path) -> None:
    """repo2docker runs ``pip install -r binder/requirements.txt`` from the repository root."""
    lines = [
        line.split("#", 1)[0].strip()
        for line in (REPO / "binder" / "requirements.txt").read_text().splitlines()
    ]
    lines = [line for line in lines if line]
    local = [line for line in lines if line in (".", "-e .")]
    assert local, "binder/requirements.txt must install the repository itself"
    for line in lines:
        if line not in local:
            Requirement(line)  # a well-formed requirement
    # What pip would install, resolved offline: the repository, as jupyter_executor.
    report = tmp_path / "report.json"
    offline = ["--dry-run", "--quiet", "--no-deps", "--no-index", "--no-build-isolation"]
    requirements = ["-r", "binder/requirements.txt"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", *offline, "--report", str(report), *requirements],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    installs = json.loads(report.read_text())["install"]
    ours = [i for i in installs if i["metadata"]["name"].replace("-", "_") == "jupyter_executor"]
    assert ours, installs
    assert ours[0]["download_info"]["url"] == REPO.as_uri()
    dependencies = " ".join(ours[0]["metadata"].get("requires_dist", []))
    for needed in ("anywidget", "ipywidgets", "pandas", "cloudpickle"):
        assert needed in dependencies
