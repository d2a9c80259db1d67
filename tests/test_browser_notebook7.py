"""The widgets in Jupyter Notebook 7, in headless Chromium driven by Playwright.

Notebook 7 is another front end built on JupyterLab's components (one notebook per page, its own
shell and app), so the job view and the dashboard are checked there too, lean: one server, one
page, one small notebook written here. What a user sees: the ``%%job`` cell's view shows what
the job prints while it runs, then "done" with the result; the ``%jobs`` dashboard has the job's
row, whose status changes from running to done with no interaction; and nothing the job printed
lands in another cell's output, including a cell run while the job prints. The job waits on an
event after its first lines, so "running" is seen for sure however slow the machine. A screenshot
goes to ``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _browser import (
    ARTIFACTS,
    add_and_run_cell,
    in_notebook,
    needs_browser,
    notebook_page,
    run_all_cells,
    wait_idle,
    wait_status,
)

pytestmark = needs_browser(notebook7=True)

MARK = "printed by the job"  # in every line the job prints, and nowhere else

CELLS = [
    "%load_ext jupyter_executor\nimport threading\n\nrelease = threading.Event()",
    "%%job greet\n"
    "import time\n"
    "for i in range(1, 4):\n"
    f"    print(f'line {{i}} {MARK}')\n"
    "    time.sleep(0.2)\n"
    "release.wait(120)  # the test lets the job finish once it has seen it running\n"
    "for i in range(4, 7):\n"
    f"    print(f'line {{i}} {MARK}')\n"
    "    time.sleep(0.2)\n"
    "f'answer={6 * 7}'",
    "%jobs",
]
SHUTDOWN = "release.set()\nfrom jupyter_executor import get_engine\nget_engine().shutdown()"

# Every output of every cell as the notebook model holds it (what would be saved to disk), but
# the widgets' own: a widget's output carries a static HTML copy of the widget (shown without a
# kernel), in which the job's last line rightly appears.
_OTHER_OUTPUTS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map((cell) =>
  cell.model.type !== 'code' ? [] : cell.model.outputs.toJSON()
    .filter((o) => !(o.data && o.data['application/vnd.jupyter.widget-view+json']))
    .map((o) => JSON.stringify(o)))"""


@pytest.mark.timeout(180)
def test_job_and_dashboard_in_notebook7(tmp_path: Path, browser: Any) -> None:
    with notebook_page(
        browser, tmp_path, "notebook", "job.ipynb", CELLS, artifact="notebook7", shutdown=SHUTDOWN
    ) as page:
        _job_flow(page)


def _job_flow(page: Any) -> None:
    # the page is Notebook 7's, not JupyterLab's
    assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
    run_all_cells(page)

    # the %%job cell's view shows the job running and what it printed so far
    view = in_notebook(page, '.je-jobview[data-name="greet"]')
    view.wait_for()
    in_notebook(page, '.je-jobview[data-name="greet"][data-status="running"]').wait_for()
    tail = view.locator(".je-jv-tail")
    page.wait_for_function(
        "el => el.textContent.includes('line 3')", arg=tail.element_handle(), polling=100
    )
    # the %jobs dashboard has its row, running
    dash = in_notebook(page, ".je-dash")
    dash.wait_for()
    wait_status(page, "greet", "running")

    # a cell run while the job goes on printing: the job's output must not land in it
    add_and_run_cell(page, "release.set()\nprint('released')")
    wait_idle(page)

    # the dashboard row turns done by itself, with the result; so does the job view
    wait_status(page, "greet", "done")
    row = in_notebook(page, '.je-row[data-name="greet"]')
    assert "answer=42" in row.locator(".je-c-result").inner_text()
    done = in_notebook(page, '.je-jobview[data-name="greet"][data-status="done"]')
    done.wait_for()
    assert "answer=42" in done.locator(".je-result").inner_text()
    assert f"line 6 {MARK}" in done.locator(".je-jv-tail").inner_text()

    # the job's lines are in its view only: no cell output holds them as text
    outputs = page.evaluate(_OTHER_OUTPUTS)
    assert len(outputs) == len(CELLS) + 1
    leaked = [(i, o) for i, cell in enumerate(outputs) for o in cell if MARK in o]
    assert not leaked, leaked
    assert any("released" in o for o in outputs[-1]), outputs[-1]
    # and in the page, the job's lines appear only inside the widgets
    in_page = page.evaluate(
        """(mark) => [...window.jupyterapp.shell.currentWidget.node
                        .querySelectorAll('.jp-OutputArea-output')]
               .filter((el) => !el.querySelector('.je-jobview, .je-dash'))
               .filter((el) => el.textContent.includes(mark)).length""",
        MARK,
    )
    assert in_page == 0

    page.screenshot(path=str(ARTIFACTS / "notebook7.png"), full_page=True)
