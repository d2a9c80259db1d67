"""What the magics show under a cell: a job's live view, the dashboard, or their text.

In a kernel a ``%%job`` cell displays the job's live view (``widget.JobView``) and ``%jobs`` the
dashboard; both are created in the cell (on the main thread) and then updated from the engine's
events by the widgets themselves (docs/kernel-notes.md §3). Each is displayed with a display id,
so that its saved fallback can be replaced in place when the job ends (``update_display_data``).
In terminal IPython, and where ``anywidget`` is missing, they are text (:mod:`._terminal`).

The views shown are remembered per shell, so that unloading the extension closes them (and
stops their threads), and ``%jobs wait`` can store their final state (:func:`save_views`).
"""

from __future__ import annotations

import contextlib
import html
import re
import sys
import threading
import weakref
from typing import Any

from ._terminal import describe, text_table
from ._text import safe_text

__all__ = [
    "JobSnapshot",
    "close_views",
    "follow_progress_widget",
    "is_kernel",
    "job_displayed",
    "job_view",
    "save_views",
    "show_dashboard",
    "show_job",
]

# id(shell) -> the views shown in it (weak: a view whose outputs were cleared may go).
_views: dict[int, weakref.WeakSet[Any]] = {}


def is_kernel(shell: Any) -> bool:
    """True in a Jupyter kernel (widgets can be shown), False in terminal IPython."""
    return getattr(shell, "kernel", None) is not None


def show_job(shell: Any, job: Any) -> None:
    """Show ``job`` under the running cell: its live view in a kernel, a line in a terminal."""
    if not is_kernel(shell):
        # safe_text: a name with a lone surrogate would fail a strict stdout after the submit
        print(safe_text(f"[job {job.name}] {job.status.value} ({job.backend}): {job.describe()}"))
        return
    view = job_view(job)
    track(shell, view)
    bundle = view._repr_mimebundle_()
    if bundle is None:  # pragma: no cover - a widget always has a bundle
        return
    data, metadata = bundle
    # The display id lets the view replace its saved fallback when the job ends.
    display_id = getattr(view, "display_id", None)
    _publish(shell, data, metadata, {"display_id": display_id} if display_id else None)


def _publish(
    shell: Any, data: dict[str, Any], metadata: dict[str, Any], transient: Any = None
) -> None:
    """Publish a bundle under the running cell, as ``display()`` does but cheaper.

    Not through ``display()``: every formatter of the shell would be asked for a representation
    the bundle already holds. And without ipykernel's flush of stdout and stderr before it when
    they hold nothing: each flush waits for the kernel's IO thread (two round trips, 1-2 ms of a
    ``%%job`` cell on a loaded machine) to send nothing (docs/kernel-notes.md §7). Output
    printed before, in the cell, is still flushed first.
    """
    from IPython.core.display_functions import publish_display_data

    pub = shell.display_pub
    flush = getattr(pub, "_flush_streams", None)
    if flush is None or "_flush_streams" in vars(pub) or not _streams_idle():
        publish_display_data(data, metadata, transient=transient)  # type: ignore[no-untyped-call]
        return
    here = threading.get_ident()

    def flush_elsewhere() -> None:
        # another thread displaying meanwhile flushes as usual
        if threading.get_ident() != here:
            flush()

    pub._flush_streams = flush_elsewhere  # shadows the method, on this instance only
    try:
        publish_display_data(data, metadata, transient=transient)  # type: ignore[no-untyped-call]
    finally:
        with contextlib.suppress(AttributeError):
            del pub._flush_streams


def _streams_idle() -> bool:
    """True when ipykernel's stdout and stderr hold no text waiting to be sent (their flags, read
    through the engine's stream proxies; False when unsure)."""
    return all(
        getattr(stream, "_flush_pending", None) is False
        and getattr(stream, "_subprocess_flush_pending", None) is False
        for stream in (sys.stdout, sys.stderr)
    )


def job_view(job: Any) -> Any:
    """The live view of one job (``widget.JobView``), or a static snapshot without it."""
    try:
        from .widget import JobView
    except ImportError:
        return JobSnapshot(job)
    return JobView(job)


class JobSnapshot:
    """A job's state as text/HTML, for front ends without widgets."""

    def __init__(self, job: Any) -> None:
        self.job = job

    def __repr__(self) -> str:
        return describe(self.job, lines=20)

    def _repr_mimebundle_(self, **_: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        text = describe(self.job, lines=20)
        return {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}, {}


def show_dashboard(shell: Any, engine: Any) -> Any:
    """``%jobs``: the live dashboard in a kernel, a text table in a terminal."""
    if not is_kernel(shell):
        print(text_table(engine))
        return None
    try:
        from .widget import Dashboard
    except ImportError:
        return engine.list()
    from IPython.display import display

    dash = Dashboard(engine)
    display(track(shell, dash), display_id=dash.display_id)  # type: ignore[no-untyped-call]
    return None


def track(shell: Any, widget: Any) -> Any:
    """Remember a view shown in ``shell`` so that :func:`close_views` closes it."""
    if hasattr(widget, "close"):
        _views.setdefault(id(shell), weakref.WeakSet()).add(widget)
    return widget


def close_views(shell: Any) -> None:
    """Close every view shown in ``shell`` (the extension is unloaded)."""
    for widget in list(_views.pop(id(shell), ())):
        with contextlib.suppress(Exception):
            widget.close()


def save_views() -> None:
    """Store the final state of every view of a finished job in its outputs, now.

    The views' publishers do it too, a moment after a job ends; a headless run (nbclient,
    papermill) stops reading when its last cell, often ``%jobs wait``, ends: without this the
    update would come too late to be saved.
    """
    for views in list(_views.values()):
        for widget in list(views):
            hook = getattr(widget, "_maybe_save_final", None)
            if hook is not None:
                hook()


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_TAG = re.compile(r"<[^>]*>")
#: What the job view draws itself (js/mime.js); a bundle with any other type (plotly, vega-lite,
#: markdown, LaTeX...) is handed to the front end's own renderers through an Output widget.
_DRAWN_BY_THE_VIEW = frozenset(
    ("text/html", "image/svg+xml", "image/png", "image/jpeg", "text/plain", WIDGET_MIME)
)


def job_displayed(out: Any, data: Any, metadata: Any) -> None:
    """Keep what a job displayed in its output ``out`` (the display routing calls this).

    A bundle whose richest type only the front end's renderers know (a plotly figure, a
    vega-lite chart) is kept as an ``ipywidgets.Output`` holding it, with its text: the job view
    draws widgets live, and JupyterLab draws the Output's content as a cell's. A progress bar
    widget feeds the job's progress column (:func:`follow_progress_widget`).
    """
    data = _in_output_widget(data, metadata)
    out.display(data, metadata)
    follow_progress_widget(data)


def _in_output_widget(data: Any, metadata: Any) -> Any:
    if not isinstance(data, dict) or set(data) <= _DRAWN_BY_THE_VIEW:
        return data
    from IPython import get_ipython

    if not is_kernel(get_ipython()):
        return data  # a terminal: no widget would show, the text is what a user sees
    try:
        import ipywidgets
    except ImportError:
        return data
    box = ipywidgets.Output()
    box.outputs = (
        {"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})},
    )
    text = data.get("text/plain")
    plain = text if isinstance(text, str) else f"<{', '.join(sorted(data))}>"
    return {**box._repr_mimebundle_(), "text/plain": plain}


def follow_progress_widget(data: Any) -> None:
    """Let a progress bar widget that a job displays feed the job's progress column.

    ``tqdm.auto`` / ``tqdm.notebook`` in a kernel draw their bar as an ipywidgets ``HBox`` of a
    label, an ``IntProgress``/``FloatProgress`` and a counts label (docs/kernel-notes.md §7);
    a bare ``IntProgress``/``FloatProgress`` counts too. Called from the display routing, in the
    job's context, with the bundle the job displayed; anything else is left alone. The bar's
    changes come from whichever thread moves it: the job is bound here, not read from there.
    """
    ref = data.get(WIDGET_MIME) if isinstance(data, dict) else None
    ipywidgets = sys.modules.get("ipywidgets")
    if not isinstance(ref, dict) or ipywidgets is None:
        return
    from ._context import running_job
    from ._runtime import progress

    job = running_job.get()
    try:
        widget = ipywidgets.widget_serialization["from_json"](
            f"IPY_MODEL_{ref.get('model_id')}", None
        )
    except Exception:  # an id ipywidgets does not know: not a widget of this kernel
        return
    bar, label = _progress_parts(ipywidgets, widget)
    if bar is None or job is None:
        return

    def moved(_change: Any = None) -> None:
        total = float(bar.max) - float(bar.min)
        text = html.unescape(_TAG.sub("", str(label.value))).strip() if label is not None else ""
        token = running_job.set(job)
        try:
            progress(float(bar.value) - float(bar.min), total if total > 0 else None, text)
        finally:
            running_job.reset(token)

    bar.observe(moved, names=["value", "max", "min"])
    if label is not None:  # tqdm sets the counts after the bar: its text comes a moment later
        label.observe(moved, names=["value"])
    moved()


def _progress_parts(ipywidgets: Any, widget: Any) -> tuple[Any, Any]:
    """The progress widget of ``widget`` and the label after it (tqdm's counts), or Nones."""
    kinds = (ipywidgets.IntProgress, ipywidgets.FloatProgress)
    if isinstance(widget, kinds):
        return widget, None
    if not isinstance(widget, ipywidgets.Box):
        return None, None
    children = list(widget.children)
    for i, child in enumerate(children):
        if isinstance(child, kinds):
            after = children[i + 1] if i + 1 < len(children) else None
            return child, after if isinstance(after, ipywidgets.HTML) else None
    return None, None
