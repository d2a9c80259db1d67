"""Widgets inside jobs (issue 11), in JupyterLab and Notebook 7 with Debian's Chromium driven by
Playwright: a ``tqdm.auto`` bar in a ``%%job`` cell is drawn in the job's view as the live
widget it is (it was a frozen text copy, ``widget bar: 0%| | 0/30``), moves while the job runs
and ends at 100%, and feeds the view's progress bar; any ipywidget a job displays is drawn and
works; bundles only the front end's renderers know (vega-lite, and a plotly figure shown with
``fig.show()`` as users do: the plotly wheel ships its JupyterLab renderer) are drawn by them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _browser import (
    ARTIFACTS,
    in_notebook,
    kernel_execute,
    needs_browser,
    notebook_page,
    run_all_cells,
    wait_idle,
)

pytestmark = [*needs_browser(notebook7=True), pytest.mark.timeout(240)]
pytest.importorskip("tqdm")
pytest.importorskip("plotly")

CELLS = [
    "%load_ext jupyter_executor\nimport threading\ngate = threading.Event()",
    "%%job bar\nfrom tqdm.auto import tqdm\n"
    "for i in tqdm(range(40), desc='epochs', mininterval=0):\n"
    "    if i == 10:\n"
    "        gate.wait(120)\n"
    "'trained'",
    "%%job knobs\nimport ipywidgets as w\nfrom IPython.display import display\n"
    "clicks = w.IntText(value=0)\nb = w.Button(description='press me')\n"
    "b.on_click(lambda _: setattr(clicks, 'value', clicks.value + 1))\n"
    "display(w.HBox([b, clicks]))\n'shown'",
    # a bundle of a type only JupyterLab's renderers know (as plotly's and altair's are)
    "%%job chart\nfrom IPython.display import display\n"
    "spec = {'$schema': 'https://vega.github.io/schema/vega-lite/v5.json',\n"
    "        'data': {'values': [{'a': 'x', 'b': 3}, {'a': 'y', 'b': 5}]}, 'mark': 'bar',\n"
    "        'encoding': {'x': {'field': 'a', 'type': 'nominal'},\n"
    "                     'y': {'field': 'b', 'type': 'quantitative'}}}\n"
    "display({'application/vnd.vegalite.v5+json': spec, 'text/plain': 'a bar chart'}, raw=True)",
    # a plotly figure, shown as in any notebook: its bundle is drawn by plotly's own renderer
    "%%job plot\nimport plotly.graph_objects as go\n"
    "fig = go.Figure(go.Bar(x=['x', 'y'], y=[3, 5]))\nfig.show()",
]
BAR = '.je-jobview[data-name="bar"] .je-display[data-state="drawn"] .progress-bar'


def _width(page: Any) -> float:
    style = in_notebook(page, BAR).get_attribute("style") or ""
    return float(style.split("width:")[1].split("%")[0]) if "width:" in style else -1.0


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_a_tqdm_bar_and_a_widget_inside_jobs(tmp_path: Path, browser: Any, app: str) -> None:
    artifact = f"job-widgets-{app}"
    with notebook_page(browser, tmp_path, app, "widgets.ipynb", CELLS, artifact=artifact) as page:
        run_all_cells(page)
        # the bar is the widget, held at 10 of 40 by the job: a quarter, in the widget
        # and in the view's own progress bar
        in_notebook(page, BAR).wait_for(timeout=30_000)
        page.wait_for_function(
            "(sel) => { const el = window.jupyterapp.shell.currentWidget.node"
            ".querySelector(sel); return el && el.style.width === '25%'; }",
            arg=BAR,
            polling=100,
            timeout=30_000,
        )
        view = in_notebook(page, '.je-jobview[data-name="bar"]')
        assert "10/40" in view.locator(".je-display").inner_text()
        assert view.locator(".je-jv-progress").inner_text().strip().startswith("25")
        page.screenshot(path=str(ARTIFACTS / f"job-widgets-{app}-running.png"), full_page=True)
        kernel_execute(page, "gate.set()")
        in_notebook(page, '.je-jobview[data-name="bar"][data-status="done"]').wait_for()
        page.wait_for_function(
            "(sel) => window.jupyterapp.shell.currentWidget.node"
            ".querySelector(sel).style.width === '100%'",
            arg=BAR,
            polling=100,
            timeout=30_000,
        )
        assert "40/40" in view.locator(".je-display").inner_text()
        # a widget the job displayed is drawn, and talks to the kernel
        knobs = in_notebook(page, '.je-jobview[data-name="knobs"] .je-display')
        button = knobs.locator("button", has_text="press me")
        button.wait_for(timeout=30_000)
        button.click()
        button.click()
        page.wait_for_function(
            "() => [...window.jupyterapp.shell.currentWidget.node.querySelectorAll("
            "'.je-jobview[data-name=\"knobs\"] input')].some((i) => i.value === '2')",
            polling=100,
            timeout=30_000,
        )
        # the chart is drawn by JupyterLab's vega-lite renderer, inside the job view
        chart = in_notebook(page, '.je-jobview[data-name="chart"] .je-display .vega-embed')
        chart.wait_for(timeout=30_000)
        assert chart.locator("canvas, svg").count() > 0
        # and the plotly figure by plotly's renderer (jupyterlab-plotly), with its bars
        plot = in_notebook(page, '.je-jobview[data-name="plot"] .je-display .js-plotly-plot')
        plot.wait_for(timeout=30_000)
        # plotly draws its traces a moment after its container appears (seen once in CI)
        bars = plot.locator(".main-svg .trace.bars .point")
        bars.nth(1).wait_for(state="attached", timeout=30_000)
        assert bars.count() == 2
        in_notebook(page, '.je-jobview[data-name="plot"]').screenshot(
            path=str(ARTIFACTS / f"job-widgets-{app}-plotly.png")
        )
        page.screenshot(path=str(ARTIFACTS / f"job-widgets-{app}-done.png"), full_page=True)
        wait_idle(page)
