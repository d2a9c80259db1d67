"""Buttons while the kernel is busy (issue 11): a foreground cell sleeps, the user presses
"cancel" on a running job in the ``%jobs`` table, in headless Chromium driven by Playwright.

- JupyterLab (>= 4.4, ipykernel >= 7) sends widget messages over a kernel subshell
  (``commsOverSubshells``): the job is cancelled while the cell still sleeps, nothing queued.
- Notebook 7.6 does too; the kernel-notes (§7) measured it without. Where comms do not use a
  subshell (the setting off, here; older front ends) the kernel reads the message only when
  the cell ends: the table says "queued until the kernel is idle" meanwhile instead of seeming
  to do nothing, and the job is cancelled once the cell ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import _browser as ui
import pytest

pytestmark = ui.needs_browser(notebook7=True)

CELLS = [
    "%load_ext jupyter_executor\nimport threading\nforever = threading.Event()",
    "%%job long\nforever.wait(600)",
    "%jobs",
]
SLEEP_S = 20
KERNEL = """() => {
  const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  return { status: k.status, subshells: Boolean(k.supportsSubshells),
           comms: String(k.commsOverSubshells) };
}"""

# The sleeping cell (the last one) still runs.
SLEEPING = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  return cells[cells.length - 1].model.executionState === 'running';
}"""


@pytest.mark.parametrize(
    ("app", "comms"), [("lab", None), ("notebook", None), ("notebook", "disabled")]
)
@pytest.mark.timeout(300)
def test_cancel_while_a_cell_sleeps(
    tmp_path: Path, browser: Any, app: str, comms: str | None
) -> None:
    artifact = f"busy-{app}-{comms}"
    with ui.notebook_page(browser, tmp_path, app, "busy.ipynb", CELLS, artifact=artifact) as page:
        if comms is not None:
            # the front end's setting (Settings > Kernels), as a user or a front end
            # without subshells has it
            page.evaluate(
                "(v) => { window.jupyterapp.serviceManager.kernels.commsOverSubshells = v; }",
                comms,
            )
        ui.run_all_cells(page)
        ui.wait_status(page, "long", "running")
        ui.add_and_run_cell(page, f"import time\ntime.sleep({SLEEP_S})")
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session"
            ".kernel.status === 'busy'",
            polling=50,
        )
        kernel = page.evaluate(KERNEL)
        print(app, json.dumps(kernel))
        subshells = kernel["subshells"] and kernel["comms"] not in ("disabled", "undefined")
        t0 = time.monotonic()
        ui.in_notebook(page, '.je-row[data-name="long"] button[data-action="cancel"]').click()
        note = ui.in_notebook(page, ".je-dash .je-queued")
        if subshells:
            ui.wait_status(page, "long", "cancelled", timeout=SLEEP_S * 0.75)
            took = time.monotonic() - t0
            # (not the kernel's status: a subshell's busy/idle messages change it too)
            sleeping = page.evaluate(SLEEPING)
            print(f"{app}: cancelled {took:.2f} s after the click, the cell sleeping: {sleeping}")
            assert sleeping, "the cell ended first: the test proves nothing"
            assert note.is_hidden()
        else:
            note.wait_for(timeout=5_000)
            assert note.inner_text() == "queued until the kernel is idle"
            page.screenshot(path=str(ui.ARTIFACTS / f"{artifact}-queued.png"), full_page=True)
            ui.wait_status(page, "long", "cancelled", timeout=SLEEP_S * 4)
            note.wait_for(state="hidden", timeout=10_000)
        page.screenshot(path=str(ui.ARTIFACTS / f"{artifact}-cancelled.png"), full_page=True)
        ui.wait_idle(page)
