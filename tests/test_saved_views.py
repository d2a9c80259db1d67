"""Saved notebooks tell the final truth (issue 11 #4): a notebook run by nbclient (what
``jupyter nbconvert --execute`` and papermill use) and ending with ``%jobs wait`` is saved with
each job view's text/plain and text/html fallback saying how the job ended (status, duration,
result or error line, the end of its output, an "as of" time), and with the widget state's
``_init`` holding the final state: the outputs were updated in place when the jobs ended.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import nbformat
import pytest
from _kernel import REPO, SETUP_CELLS, notebook_of

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(240)]

CELLS = [
    *SETUP_CELLS,
    "%%job slow\nimport time\nprint('working on it')\ntime.sleep(1.5)\n"
    "print('nearly there')\n6 * 7",
    "%%job broken\nimport time\ntime.sleep(1)\n1 / 0",
    "%jobs",
    "%jobs wait",
]


def _run(tmp_path: Path) -> dict:
    from nbclient import NotebookClient

    nb = notebook_of(CELLS)
    env_keep = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTEST_CURRENT_TEST")}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env_keep["PYTHONPATH"] or "") if p
    )
    os.environ.pop("PYTEST_CURRENT_TEST", None)  # docs/kernel-notes.md §5
    try:
        NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in env_keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    return dict(json.loads(path.read_text()))


def test_saved_views_carry_the_final_state(tmp_path: Path) -> None:
    saved = _run(tmp_path)
    # the file stores a multi-line text as a list of lines
    outputs = [
        [
            {k: "".join(v) if isinstance(v, list) else v for k, v in o["data"].items()}
            for o in cell.get("outputs", [])
            if "data" in o
        ]
        for cell in saved["cells"]
    ]
    slow, broken, dash = outputs[2][0], outputs[3][0], outputs[4][0]
    # each view was displayed while its job ran, then updated in place when it ended
    assert "application/vnd.jupyter.widget-view+json" in slow
    assert slow["text/plain"].startswith("Job 'slow': done in "), slow["text/plain"]
    assert "-> 42" in slow["text/plain"] and "as of " in slow["text/plain"]
    assert "nearly there" in slow["text/plain"]
    assert "done" in slow["text/html"] and "nearly there" in slow["text/html"]
    assert broken["text/plain"].startswith("Job 'broken': failed in "), broken["text/plain"]
    assert "ZeroDivisionError: division by zero" in broken["text/plain"]
    assert "ZeroDivisionError" in broken["text/html"]
    assert dash["text/plain"].startswith("Dashboard: 2 jobs (1 done, 1 failed)"), dash["text/plain"]
    # the saved widget state holds the final state too
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    finals = {}
    for model in state.values():
        for buf in model.get("buffers", []):
            if buf["path"] == ["_init"]:
                snap = json.loads(base64.b64decode(buf["data"]))
                for row in snap["data"]:
                    r = dict(zip(snap["cols"], row, strict=True))
                    finals.setdefault(r["name"], set()).add(r["status"])
    assert finals == {"slow": {"done"}, "broken": {"failed"}}, finals


def test_saved_widget_state_stores_the_front_end_once(tmp_path: Path) -> None:
    """Issue 11 #8: each view model's saved state is small (its ``_esm`` is a loader), and the
    front-end bundle is stored once, in one library model per kind."""
    saved = _run(tmp_path)
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = {k: m for k, m in state.items() if m["state"].get("_lib")}
    libraries = {k: m for k, m in state.items() if m["state"].get("_code")}
    assert len(views) == 3, sorted(m["state"].get("_anywidget_id") for m in state.values())
    sizes = {m["state"]["_anywidget_id"]: len(json.dumps(m)) for m in views.values()}
    assert all(size <= 5_000 for size in sizes.values()), sizes
    # every view names a library model that was saved too (a kernel-less reopen needs it)
    assert {m["state"]["_lib"] for m in views.values()} == set(libraries)
    assert sorted(m["state"]["_anywidget_id"] for m in libraries.values()) == [
        "jupyter_executor.widget._DashboardLibrary",
        "jupyter_executor.widget._JobViewLibrary",
    ]
    bundles = {m["state"]["_code"] for m in libraries.values()}
    static = REPO / "jupyter_executor" / "static"
    assert bundles == {(static / f"{n}.js").read_text() for n in ("dashboard", "jobview")}
    # the whole widget state: two bundles and their CSS once, not a bundle per view
    total = len(json.dumps(state))
    assert total < 150_000, total
