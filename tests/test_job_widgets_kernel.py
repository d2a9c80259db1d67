"""Rich output and widgets inside jobs (issue 11), in a real ipykernel: a ``tqdm.auto`` bar in a
``%%job`` cell is tqdm's widget bar (the kernel is detected), displayed into the job's view
(not the running cell), and it feeds the job's progress column while it moves and at its end.
A bundle only the front end renders (vega-lite, plotly) goes in an ipywidgets Output. The browser
side (the bar drawn and moving in the job view, the chart drawn) is in
``test_browser_job_widgets.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _kernel import Kernel, running_kernel

pytest.importorskip("tqdm")
pytest.importorskip("ipywidgets")

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]

PROGRESS = (
    "import json\n"
    "_i = get_engine()[{name!r}].info()\n"
    "print(json.dumps([_i.status, _i.progress, _i.progress_text]))"
)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with running_kernel(tmp_path_factory.mktemp("kernel")) as k:
        k.execute(
            "%load_ext jupyter_executor\nimport threading\n"
            "from jupyter_executor import get_engine\ngate = threading.Event()"
        )
        yield k
        k.execute("get_engine().shutdown()")


def _progress(kernel: Kernel, name: str) -> list[Any]:
    out = kernel.execute(PROGRESS.format(name=name)).stdout.strip().splitlines()[-1]
    return list(json.loads(out))


def test_a_tqdm_widget_bar_feeds_the_progress_column(kernel: Kernel) -> None:
    ex = kernel.execute(
        "%%job bar\nfrom tqdm.auto import tqdm\n"
        "for i in tqdm(range(40), desc='epochs', mininterval=0):\n"
        "    if i == 10:\n"
        "        gate.wait(60)\n"
        "'trained'"
    )
    # (mininterval=0: tqdm redraws at every step, not at most every 0.1 s)
    # the bar is a widget the job displayed: the cell shows the job's view, nothing else
    mimes = [set(m["content"]["data"]) for m in ex.outputs]
    assert len(mimes) == 1, mimes
    kernel.wait_for(
        lambda: _progress(kernel, "bar")[1] == 0.25, timeout=30, what="the bar at 10 of 40"
    )
    status, fraction, text = _progress(kernel, "bar")
    assert status == "running"
    assert "10/40" in text, text
    kernel.execute("gate.set()")
    kernel.wait_for(lambda: _progress(kernel, "bar")[0] == "done", timeout=30, what="the end")
    status, fraction, text = _progress(kernel, "bar")
    assert fraction == 1.0 and "40/40" in text, (fraction, text)
    displays = kernel.eval(
        "[sorted(d) for d, _ in get_engine()['bar'].runstate.output.displays]"
    )  # what the job view draws: the bar's widget
    assert "application/vnd.jupyter.widget-view+json" in displays, displays


def test_a_bare_progress_widget_counts_and_other_widgets_are_left_alone(kernel: Kernel) -> None:
    kernel.execute(
        "%%job plain\nimport ipywidgets as w\nfrom IPython.display import display\n"
        "display(w.Button(description='not a bar'))\n"
        "p = w.FloatProgress(min=10, max=20)\ndisplay(p)\np.value = 15\n'ok'"
    )
    kernel.wait_for(lambda: _progress(kernel, "plain")[0] == "done", timeout=30, what="the end")
    _, fraction, text = _progress(kernel, "plain")
    assert (fraction, text) == (0.5, ""), (fraction, text)


@pytest.mark.timeout(10)
def test_the_job_view_gets_the_widget_reference_with_its_text() -> None:
    """A widget's bundle reaches the job view as its model id (js/mime.js draws the live model)
    beside the text that stands in where it cannot be drawn; other rich types stay dropped."""
    from jupyter_executor._publisher import _display

    widget = "application/vnd.jupyter.widget-view+json"
    ref = {"model_id": "abc123", "version_major": 2, "version_minor": 0}
    sent = _display(({widget: ref, "text/plain": "HBox(...)"}, {}))
    assert sent == {
        "data": {"text/plain": "HBox(...)", widget: {"model_id": "abc123"}},
        "metadata": {},
    }
    broken = _display(({widget: {"model_id": 7}, "application/x-other": {}}, {}))
    assert widget not in broken["data"]


def test_a_bundle_only_the_front_end_renders_goes_in_an_output_widget(kernel: Kernel) -> None:
    """A vega-lite (or plotly) bundle a job displays reaches its view as an ipywidgets Output
    holding the whole bundle (JupyterLab's renderers draw it there), with its text."""
    kernel.execute(
        "%%job chart\nfrom IPython.display import display\n"
        "display({'application/vnd.vegalite.v5+json': {'mark': 'bar'}, 'text/plain': 'a chart'},"
        " raw=True)\n"
        "display({'text/html': '<b>plain html</b>', 'text/plain': 'html'}, raw=True)"
    )
    kernel.wait_for(lambda: _progress(kernel, "chart")[0] == "done", timeout=30, what="the end")
    out = kernel.execute(
        "import ipywidgets, json\n"
        "_d = [d for d, _ in get_engine()['chart'].runstate.output.displays]\n"
        "_ref = _d[0]['application/vnd.jupyter.widget-view+json']['model_id']\n"
        "_w = ipywidgets.widget_serialization['from_json']('IPY_MODEL_' + _ref, None)\n"
        "print(json.dumps([sorted(_d[0]), _d[0]['text/plain'], type(_w).__name__,"
        " [o['data'] for o in _w.outputs], sorted(_d[1])]))"
    ).stdout
    kinds, text, widget, held, second = json.loads(out.strip().splitlines()[-1])
    assert kinds == ["application/vnd.jupyter.widget-view+json", "text/plain"], kinds
    assert (text, widget) == ("a chart", "Output")
    assert held == [{"application/vnd.vegalite.v5+json": {"mark": "bar"}, "text/plain": "a chart"}]
    assert second == ["text/html", "text/plain"]  # HTML the view draws itself stays as it is


@pytest.mark.timeout(10)
def test_a_text_tqdm_bar_feeds_the_views_progress_column() -> None:
    """A job that reports no progress but draws tqdm's text bar (``from tqdm import tqdm``, a
    script's bar) shows it in the views' progress column; progress the job reports wins."""
    import io

    from tqdm import tqdm

    from jupyter_executor._publisher import table_row

    drawn = io.StringIO()
    for i in tqdm(range(40), desc="epochs", file=drawn, mininterval=0):
        if i == 10:
            break
    last = drawn.getvalue().split("\r")[-1].strip()
    row = table_row({"name": "t", "status": "running", "progress": None, "last_line": last})
    assert row["progress"] == 0.25
    assert row["progress_text"].startswith("10/40 ["), row["progress_text"]
    told = {"name": "t", "progress": 0.5, "progress_text": "mine", "last_line": last}
    assert (table_row(told)["progress"], table_row(told)["progress_text"]) == (0.5, "mine")
    for line in ("100%|done| but no counts", "plain output", "", None):
        assert table_row({"name": "t", "progress": None, "last_line": line})["progress"] is None


@pytest.mark.timeout(10)
def test_outside_a_kernel_a_rich_bundle_stays_as_it_is() -> None:
    """In terminal IPython (or no IPython) no widget would show: the bundle is kept as given."""
    from jupyter_executor._display import _in_output_widget

    bundle = {"text/markdown": "**hi**", "text/plain": "hi"}
    assert _in_output_widget(bundle, {}) is bundle
