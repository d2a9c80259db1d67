"""The live dashboard and the per-cell job view: anywidgets fed by engine events.

:class:`Dashboard` shows every job of an engine in a table that updates itself; :class:`JobView`
shows one job (what ``%%job`` displays). Both share their front end (``js/``, bundled into
``static/``) and their transport: the widget's initial state holds a snapshot of the rows, then a
:class:`~jupyter_executor._publisher.Publisher` sends coalesced diffs as custom messages, at most
~10 per second whatever the jobs do, from a thread of the dashboard's own or the one thread all
job views share. The browser ticks durations itself.

Messages from the browser are checked here and can only do three things to a job the engine
knows: ``cancel``, ``rerun`` or ``log`` (send its log back). Anything else is ignored with a
logged warning; no message can run code.

Closing the widget (``widget.close()``, or the front end closing its comm) stops its publisher
and unsubscribes from the engine; so does removing its last view (clearing the output), after
which displaying the widget again starts a fresh publisher.

Examples
--------
>>> from jupyter_executor import Engine
>>> from jupyter_executor.widget import Dashboard
>>> engine = Engine()
>>> job = engine.submit(sum, [1, 2, 3], name="total")
>>> engine.wait(timeout=10)
True
>>> dash = Dashboard(engine)
>>> "total" in dash._repr_mimebundle_()[0]["text/html"]
True
>>> dash.close()
>>> engine.shutdown()
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import anywidget
import ipywidgets
import traitlets

from ._publisher import DashboardPublisher, JobPublisher, Publisher, json_safe, pack, table_row
from ._snapshot import snapshot_of
from ._status import Status
from ._text import safe_text
from .errors import JupyterExecutorError

if TYPE_CHECKING:
    from .engine import Engine
    from .job import Job

__all__ = ["Dashboard", "JobView"]

logger = logging.getLogger(__name__)

_STATIC = Path(__file__).parent / "static"
# The ~1.4 KB loader every view's ``_esm`` holds (see _Library).
_LOADER = (_STATIC / "loader.js").read_text(encoding="utf-8")
#: Actions a front end may ask for, and the statuses they apply to.
ACTIONS = {
    "cancel": frozenset({Status.CREATED, Status.PENDING, Status.RUNNING}),
    "rerun": frozenset({Status.DONE, Status.FAILED, Status.CANCELLED}),
    "log": frozenset({Status.DONE, Status.FAILED, Status.CANCELLED}),
}
#: Most log characters sent for "show log" (the end of the log is kept).
LOG_CHARS = 256_000
#: Rows of the static HTML fallback.
HTML_ROWS = 200
#: Lines of a job's output in its text/plain fallback.
TEXT_TAIL_LINES = 10
_FINISHED = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})
# Escape sequences of terminal output (the same set js/ansi.js removes): CSI, OSC, charset, 2-byte.
_ANSI = re.compile(
    r"\x1b(?:\[[0-9;:?]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+][0-9A-Za-z]|[@-Z\\-_])"
)
_STATUS_COLOURS = {
    "running": "#1a73e8",
    "done": "#1e8e3e",
    "failed": "#d93025",
    "cancelled": "#b06000",
}
#: The badge of a pending job that its restart policy restarted ("restarting (n)").
_RESTARTING_COLOUR = "#e37400"


class _Library(anywidget.AnyWidget):
    """A hidden model holding one front-end bundle (``_code``) and its CSS, once per kernel.

    A widget's ``_esm`` is stored in the saved widget state of every model; a 30-50 KB bundle per
    job view made a saved notebook ~50 times bigger. So each view's ``_esm`` is the ~2 KB
    ``static/loader.js``, which finds this model by id (the view's ``_lib``), imports ``_code``
    once per page and passes anywidget's ``initialize``/``render`` through. anywidget loads this
    model's ``_css`` as soon as the model exists in the page (also when restored from a saved
    notebook), and its ``_anywidget_id`` (the class name) keys that stylesheet, hence one
    subclass per bundle.
    """

    _esm = "export default {};\n"
    _code = traitlets.Unicode("").tag(sync=True)
    _bundle = ""


class _DashboardLibrary(_Library):
    _css = _STATIC / "dashboard.css"
    _bundle = "dashboard"


class _JobViewLibrary(_Library):
    _css = _STATIC / "jobview.css"
    _bundle = "jobview"


_libraries: dict[type[_Library], _Library] = {}
_libraries_lock = threading.Lock()


def _library(kind: type[_Library]) -> _Library:
    """This kernel's library model of ``kind``, made on first use (again if it was closed)."""
    with _libraries_lock:
        lib = _libraries.get(kind)
        if lib is None or lib.comm is None:
            code = (_STATIC / f"{kind._bundle}.js").read_text(encoding="utf-8")
            lib = _libraries[kind] = kind(_code=code)
        return lib


_layout: ipywidgets.Layout | None = None


def _shared_layout() -> ipywidgets.Layout:
    """One ``Layout`` model for every view: a DOM widget makes one by default, which is a second
    comm (open message, state) per ``%%job`` cell for a layout nobody sets."""
    global _layout  # one per kernel, made again if something closed it
    with _libraries_lock:
        if _layout is None or _layout.comm is None:
            _layout = ipywidgets.Layout()
        return _layout


class _LiveWidget(anywidget.AnyWidget):
    """What both widgets share: the publisher's life cycle, view counting, message checking.

    ``AnyWidget.__init__`` adds ``_esm`` and ``_anywidget_id`` as traits of each new widget
    (``add_traits`` makes a new class per instance: about 1 ms, most of a ``%%job`` cell's cost
    in a kernel); they are declared once here, and ``__init__`` starts at ``DOMWidget``.
    """

    _esm = traitlets.Unicode(_LOADER).tag(sync=True)
    # anywidget keys a widget's stylesheet by it; the libraries hold the CSS.
    _anywidget_id = traitlets.Unicode("jupyter_executor.widget._LiveWidget").tag(sync=True)
    #: The library model whose bundle draws this widget.
    _library_kind: type[_Library] = _Library

    # A per-widget id the front end keys its model-level store by, and the initial snapshot
    # (packed: one buffer of JSON, see _publisher.pack).
    _uid = traitlets.Unicode("").tag(sync=True)
    _init = traitlets.Bytes(b"").tag(sync=True)
    # The model id of the library model holding the front-end code (js/loader.js).
    _lib = traitlets.Unicode("").tag(sync=True)

    def __init__(self, engine: Engine, publisher: Publisher, **kwargs: Any) -> None:
        self._engine = engine
        self._publisher = publisher
        self._views: set[str] = set()
        self._life = threading.Lock()
        self._final_lock = threading.Lock()
        self._saved_key: Any = None
        self._closed = False
        init = publisher.start(snapshot=True, thread=False)
        try:
            lib = _library(self._library_kind)
            kwargs.setdefault("layout", _shared_layout())
            # Not AnyWidget.__init__: see the class docstring.
            ipywidgets.DOMWidget.__init__(
                self, _uid=uuid.uuid4().hex, _init=pack(init or {}), _lib=lib.model_id, **kwargs
            )
        except BaseException:
            publisher.stop()
            raise
        self.on_msg(self._on_frontend_msg)
        # Only now: the comm carrying the snapshot is open, so no update can overtake it.
        publisher.start_thread()

    @property
    def publisher(self) -> Publisher:
        """The publisher feeding this widget (its ``messages`` and ``bytes`` count traffic)."""
        return self._publisher

    # life cycle ---------------------------------------------------------------------------------
    @traitlets.observe("comm")
    def _watch_comm_close(self, change: dict[str, Any]) -> None:
        comm = change["new"]
        if comm is not None:
            # The front end closing the comm (e.g. the widget manager disposing the model) ends
            # the widget like close() does.
            comm.on_close(lambda _msg: self.close())

    def close(self) -> None:
        """Stop the publisher, unsubscribe from the engine and close the comm. Idempotent."""
        # getattr: ipywidgets calls close() from __del__, even for a half-constructed widget.
        publisher = getattr(self, "_publisher", None)
        if publisher is not None:
            with self._life:
                self._closed = True
                publisher.stop()
        super().close()

    @property
    def display_id(self) -> str:
        """The id the widget's output is displayed with (``display(w, display_id=...)``), so
        that its saved fallback can be updated in place (``update_display``)."""
        return f"jupyter-executor-{self._uid}"

    def _send_update(self, msg: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        # Called from the publisher thread; a closed widget has no comm and drops the message.
        self.send(msg, buffers)
        if msg.get("k") == "snap" or any("status" in r for r in msg.get("rows", ())):
            self._maybe_save_final()

    def _maybe_save_final(self) -> None:
        """When what is shown is final, store it in the widget state and the outputs (once per
        final state; called by the publisher thread and by ``%jobs wait``)."""
        with self._final_lock:
            key = self._final_key()
            if key is not None and key != self._saved_key:
                self._saved_key = key
                self._save_final()

    def _final_key(self) -> Any:
        """Hook: a key of the final state shown, or None while it is not final."""
        return None

    def _save_final(self) -> None:
        # Runs in the publisher thread, the only one that builds messages: a snapshot taken here
        # cannot interleave with a patch. The saved widget state then holds the final state
        # (`_init`), and every output displayed with this widget's display_id gets its final
        # text/plain and text/html (what GitHub, nbviewer and a kernel-less reopen show).
        try:
            self._init = pack(self._publisher.peek_snapshot())
            _update_display(self)
        except Exception:
            logger.warning("jupyter_executor: could not update the saved view", exc_info=True)

    # messages from the browser ------------------------------------------------------------------
    def _on_frontend_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            logger.warning("jupyter_executor: ignored a widget message that is not a dict")
            return
        kind = content.get("k")
        if kind == "sync":
            self._publisher.request_sync()
        elif kind == "view":
            self._on_view(content.get("id"), content.get("open"))
        elif kind == "expand":
            name, view, open_ = content.get("name"), content.get("id"), content.get("open")
            if not (isinstance(name, str) and isinstance(view, str) and isinstance(open_, bool)):
                logger.warning("jupyter_executor: ignored a malformed expand message")
                return
            job = self._find(name)
            if job is None:
                logger.warning("jupyter_executor: ignored expand of unknown job %r", name)
                return
            self._publisher.set_detail(view, str(job.name), open_)
        elif kind == "action":
            self._on_action(content.get("action"), content.get("name"))
        else:
            logger.warning("jupyter_executor: ignored widget message of unknown kind %r", kind)

    def _on_view(self, view: Any, open_: Any) -> None:
        if not isinstance(view, str) or not isinstance(open_, bool):
            logger.warning("jupyter_executor: ignored a malformed view message")
            return
        with self._life:
            if self._closed:
                return
            if open_:
                self._views.add(view)
                if not self._publisher.running:
                    # Displayed again after its views were all removed: start over with a
                    # snapshot (the browser's copy missed what happened meanwhile).
                    self._publisher.start(snapshot=False)
                else:
                    # Every drawn view (a reload, a reopened notebook, a second view) starts
                    # from the `_init` state of when the widget was made: send the current one.
                    self._publisher.request_sync()
            else:
                self._views.discard(view)
                self._publisher.drop_view(view)
                if not self._views:
                    # Its output was cleared: nobody looks, stop the thread and unsubscribe.
                    self._publisher.stop()

    def _find(self, name: str) -> Job | None:
        job = self._engine.jobs.get(name)
        if job is None and "\\" in name:
            # The browser knows a name with lone surrogates only as made safe (see _text).
            job = next((j for j in self._engine if safe_text(str(j.name)) == name), None)
        return job

    def _earlier_run(self, name: str) -> dict[str, Any] | None:
        """The history row of an earlier kernel's run shown under ``name``, or None."""
        earlier = getattr(self._publisher, "earlier", None)
        return earlier.get(name) if isinstance(earlier, dict) else None

    def _on_action(self, action: Any, name: Any) -> None:
        if not isinstance(action, str) or action not in ACTIONS:
            logger.warning("jupyter_executor: ignored unknown widget action %r", action)
            return
        if not isinstance(name, str):
            logger.warning("jupyter_executor: ignored %s action without a job name", action)
            return
        job = self._find(name)
        if job is None:
            earlier = self._earlier_run(name)
            if action == "log" and earlier is not None:
                # A run of an earlier kernel: its log file, as the history recorded it.
                log = earlier.get("log_path")
                self.send(json_safe(_read_log(name, Path(log) if log else None, "")))
                return
            logger.warning("jupyter_executor: ignored %s of unknown job %r", action, name)
            return
        if job.status not in ACTIONS[action]:
            logger.warning(
                "jupyter_executor: ignored %s of job %r, which is %s",
                action,
                name,
                job.status.value,
            )
            return
        try:
            if action == "cancel":
                job.cancel(reason="cancelled from the dashboard")
            elif action == "rerun":
                job.rerun()
            else:
                self.send(json_safe(_log_message(job)))
        except JupyterExecutorError as exc:
            logger.warning("jupyter_executor: %s of job %r failed: %s", action, name, exc)


class Dashboard(_LiveWidget):
    """A live table of every job of an engine.

    One row per job (name, status badge, backend, requirements, start time, a duration that ticks
    while it runs, attempts, progress bar, result, last line of output) with a header of counts
    per status, a filter box, sortable columns and a dependency graph. A row expands to show its
    output tail and traceback; buttons cancel, rerun, or show the log of a job.

    Parameters
    ----------
    engine
        The engine to show; :func:`~jupyter_executor.get_engine` by default.
    interval
        Minimum seconds between two updates sent to the browser (0.1: at most 10 per second).
    max_bytes
        Approximate bytes of rows per update: with ``interval`` this bounds the traffic
        (about 120 KB/s by default), however many jobs change.

    Notes
    -----
    Without a live kernel (nbconvert, GitHub, a reopened notebook) the output shows a static
    HTML table of the jobs as they were when the dashboard was displayed.

    Examples
    --------
    >>> from jupyter_executor import Engine
    >>> from jupyter_executor.widget import Dashboard
    >>> engine = Engine()
    >>> dash = Dashboard(engine)   # in a notebook: the last expression of a cell displays it
    >>> dash.publisher.running
    True
    >>> dash.close()
    >>> dash.publisher.running
    False
    >>> engine.shutdown()
    """

    _library_kind = _DashboardLibrary
    _anywidget_id = traitlets.Unicode("jupyter_executor.widget.Dashboard").tag(sync=True)

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        interval: float = 0.1,
        max_bytes: int = 12_000,
        **kwargs: Any,
    ) -> None:
        if engine is None:
            from .engine import get_engine

            engine = get_engine()
        publisher = DashboardPublisher(
            engine, self._send_update, interval=interval, max_bytes=max_bytes
        )
        super().__init__(engine, publisher, **kwargs)

    def _final_key(self) -> Any:
        jobs = list(self._engine)
        if any(j.status not in _FINISHED for j in jobs):
            return None
        return tuple((str(j.name), j.status.value, j.attempts) for j in jobs)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        jobs = list(self._engine)
        rows = [table_row(snapshot_of(j).info_dict()) for j in jobs[:HTML_ROWS]]
        counts = _counts(j.status.value for j in jobs)
        current = {str(j.name) for j in jobs}
        earlier = sum(n not in current for n in getattr(self._publisher, "earlier", ()))
        more = f" and {earlier} jobs of earlier kernels" if earlier else ""
        data = {
            **data,
            "text/plain": f"Dashboard: {len(jobs)} jobs ({_counts_text(counts)}){more}",
            "text/html": safe_text(html_table(rows, total=len(jobs), counts=counts)),
        }
        return data, metadata


class JobView(_LiveWidget):
    """The live view of one job, as ``%%job`` displays it.

    Shows the job's name, status, elapsed time (ticking in the browser), progress, the tail of its
    output, what it displayed, then its result or traceback; a button cancels it while it runs.

    Parameters
    ----------
    job
        A submitted job.
    interval
        Minimum seconds between two updates sent to the browser.

    Examples
    --------
    >>> from jupyter_executor import Engine
    >>> from jupyter_executor.widget import JobView
    >>> with Engine() as engine:
    ...     job = engine.submit(print, "hello", name="greet")
    ...     view = JobView(job)
    ...     job.future.result(timeout=10) is None
    True
    >>> "greet" in view._repr_mimebundle_()[0]["text/html"]
    True
    >>> view.close()
    """

    _library_kind = _JobViewLibrary
    _anywidget_id = traitlets.Unicode("jupyter_executor.widget.JobView").tag(sync=True)

    def __init__(self, job: Job, *, interval: float = 0.2, **kwargs: Any) -> None:
        engine = job.engine
        if engine is None:
            msg = f"job {job.name!r} was never submitted; submit it before showing it"
            raise ValueError(msg)
        self._job = job
        engine = cast("Engine", engine)  # job.engine is a JobHost: the only one is an Engine
        publisher = JobPublisher(engine, job, self._send_update, interval=interval)
        super().__init__(engine, publisher, **kwargs)

    @property
    def job(self) -> Job:
        """The job shown."""
        return self._job

    def _find(self, name: str) -> Job | None:
        # This view acts on its own job only; the browser knows a name with lone surrogates
        # only as made safe (see _text).
        own = str(self._job.name)
        return self._job if name in (own, safe_text(own)) else None

    def _final_key(self) -> Any:
        job = self._job
        return (job.status.value, job.attempts) if job.status in _FINISHED else None

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        info = self._job.info().to_dict()
        text = safe_text(job_text(info))
        data = {**data, "text/plain": text, "text/html": safe_text(html_job(info))}
        return data, metadata


def job_text(info: dict[str, Any]) -> str:
    """The plain-text picture of one job (``JobInfo.to_dict()``): status, duration, result or
    error line, the end of its output, and the time it was taken."""
    head = f"Job {info['name']!r}: {status_label(info)}"
    duration = _fmt_duration(info)
    if duration:
        head += f" in {duration}" if info.get("status") != "running" else f" for {duration}"
    if info.get("status") == "failed" and info.get("error"):
        head += f": {info['error']}"
    elif info.get("status") == "done" and info.get("result") is not None:
        head += f" -> {info['result']}"
    elif info.get("status") == "cancelled" and info.get("cancel_reason"):
        head += f" ({info['cancel_reason']})"
    lines = [f"{head}  (as of {time.strftime('%Y-%m-%d %H:%M:%S')})"]
    tail = strip_ansi(info.get("tail") or "").rstrip("\n").splitlines()[-TEXT_TAIL_LINES:]
    lines += [f"  | {line}" for line in tail]
    return "\n".join(lines)


def _update_display(widget: _LiveWidget) -> None:
    """Send ``update_display_data`` for every output showing ``widget``.

    Sent with the parent of the kernel's current (or last) execute request, not from IPython's
    ``update_display``: this runs in the publisher thread, whose parent header (a context
    variable in ipykernel 7) is empty, and front ends (nbclient, JupyterLab) drop iopub messages
    of a parent they do not track.
    """
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return
    bundle = widget._repr_mimebundle_()
    if bundle is None:
        return
    data, metadata = bundle
    content = {"data": data, "metadata": metadata, "transient": {"display_id": widget.display_id}}
    kernel.session.send(
        kernel.iopub_socket,
        "update_display_data",
        json_safe(content),
        parent=kernel.get_parent("shell"),
        ident=b"display_data",
    )


# messages -------------------------------------------------------------------------------------
def _log_message(job: Job) -> dict[str, Any]:
    """The reply to "show log": the end of the job's log file, or its in-memory tail."""
    out = job.runstate.output
    if out is not None:
        out.flush()  # the log is flushed about once a second; "show log" wants all of it
    path = job.log_path
    tail = job.tail(10_000) if path is None or not path.exists() else ""
    return _read_log(str(job.name), path, tail)


def _read_log(name: str, path: Path | None, fallback: str) -> dict[str, Any]:
    """The "log" message: the end of the log file at ``path``, or ``fallback``."""
    text = None
    truncated = False
    if path is not None and path.exists():
        with path.open("rb") as f:
            size = f.seek(0, 2)
            start = max(0, size - LOG_CHARS)
            f.seek(start)
            text = f.read().decode("utf-8", errors="replace")
            truncated = start > 0
    if text is None:
        text = fallback or "(no log file)"
    if len(text) > LOG_CHARS:
        text, truncated = text[-LOG_CHARS:], True
    return {"k": "log", "name": name, "text": text, "truncated": truncated}


# the static fallback --------------------------------------------------------------------------
def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours of tracebacks and job output)."""
    return _ANSI.sub("", text)


def _counts(statuses: Any) -> dict[str, int]:
    counts = {s.value: 0 for s in Status}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return counts


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no jobs"


def _fmt_time(epoch: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch else ""


def _fmt_duration(row: dict[str, Any]) -> str:
    d = row.get("duration")
    if row.get("status") == "running" and row.get("started"):
        d = time.time() - row["started"]
    if d is None:
        return ""
    return f"{d:.2f} s" if d < 60 else f"{int(d // 60)}m {int(d % 60):02d}s"


def _restarts(row: dict[str, Any]) -> int:
    n = row.get("restarts")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0


def status_label(row: dict[str, Any]) -> str:
    """The badge text: the status, ``"restarting (n)"`` for a pending job that its restart
    policy restarted, or ``"scheduled"`` for a scheduled job waiting for its next run
    (``js/format.js`` ``statusLabel``)."""
    status = str(row.get("status") or "")
    if status != "pending":
        return status
    n = _restarts(row)
    if n:
        return f"restarting ({n})"
    next_run = row.get("next_run")
    return "scheduled" if isinstance(next_run, (int, float)) else status


def _restart_note(row: dict[str, Any]) -> str:
    n = _restarts(row)
    finished = row.get("status") in ("done", "failed", "cancelled")
    return f"restarted {n}\u00d7" if n and finished else ""


def _next_run_text(row: dict[str, Any]) -> str:
    # js/format.js nextRunText: the clock time, with the date when it is not today.
    next_run = row.get("next_run")
    if row.get("status") != "pending" or not isinstance(next_run, int | float):
        return ""
    when = time.localtime(next_run)
    same_day = time.strftime("%Y%m%d", when) == time.strftime("%Y%m%d")
    return "next run " + time.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M", when)


def safe_url(url: Any) -> str | None:
    """``url`` if it is an absolute http(s) URL (a link may be made of it), else None."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # What the browser would do to a control character or a space is not worth guessing.
    if any(c.isspace() or ord(c) < 32 for c in url):
        return None
    return url


def _link(url: Any) -> str:
    href = safe_url(url)
    if href is None:
        return ""
    esc = html.escape(href, quote=True)
    return f'<a href="{esc}" target="_blank" rel="noopener">{esc}</a>'


def _badge(status: str, label: str | None = None) -> str:
    colour = _STATUS_COLOURS.get(status, "#80868b")
    if label and label != status:
        colour = _RESTARTING_COLOUR
    return (
        f'<span style="background:{colour};color:#fff;border-radius:8px;padding:0 6px;'
        f'font-size:11px">{html.escape(label or status)}</span>'
    )


def _status_cell(row: dict[str, Any]) -> str:
    cell = _badge(row.get("status", ""), status_label(row))
    note = _restart_note(row)
    return f"{cell} <small>{note}</small>" if note else cell


#: The columns of the static table (the live table's are ``SORT_KEYS`` in js/table.js).
_STATIC_HEADERS = ["name", "status", "backend", "requires", "started", "duration", "tries"]
_STATIC_HEADERS += ["result", "last output"]


def html_table(rows: list[dict[str, Any]], *, total: int, counts: dict[str, int]) -> str:
    """A static HTML table of job rows: the dashboard as it was, for front ends without widgets."""
    esc = html.escape
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in _STATIC_HEADERS)
    body = []
    for row in rows:
        result = row.get("error") if row.get("status") == "failed" else row.get("result")
        name = esc(row["name"]) + (" ∞" if row.get("forever") else "")
        progress = row.get("progress")
        if isinstance(progress, float):
            name += f" <small>({progress:.0%})</small>"
        cells = [
            name,
            _status_cell(row),
            esc(row.get("backend") or ""),
            esc(", ".join(row.get("requires") or [])),
            _next_run_text(row) or _fmt_time(row.get("started")),
            _fmt_duration(row),
            str(row.get("attempts") or ""),
            " ".join(filter(None, (_link(row.get("url")), f"<code>{esc(result or '')}</code>"))),
            f"<code>{esc(strip_ansi(row.get('last_line') or ''))}</code>",
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = total - len(rows)
    foot = f"<p><i>… and {more} more jobs</i></p>" if more > 0 else ""
    summary = esc(_counts_text(counts))
    return (
        f'<div class="jupyter-executor-dashboard"><p><b>jobs</b>: {total} ({summary}) '
        f"<small>as of {time.strftime('%Y-%m-%d %H:%M:%S')}</small></p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{foot}</div>"
    )


def html_job(info: dict[str, Any]) -> str:
    """A static HTML view of one job (``JobInfo.to_dict()``), for front ends without widgets."""
    esc = html.escape
    link = _link(info.get("url"))
    parts = [
        f"<div class='jupyter-executor-job'><p>{_status_cell(info)} <b>{esc(info['name'])}</b> "
        f"<small>{esc(info.get('backend') or '')} · {esc(info.get('description') or '')} · "
        f"{_next_run_text(info) or _fmt_duration(info)}</small>{' ' + link if link else ''}</p>"
    ]
    if info.get("tail"):
        parts.append(f"<pre>{esc(strip_ansi(info['tail']))}</pre>")
    if info.get("status") == "failed" and info.get("traceback"):
        parts.append(f"<pre style='color:#d93025'>{esc(strip_ansi(info['traceback']))}</pre>")
    elif info.get("status") == "done" and info.get("result") is not None:
        parts.append(f"<pre>→ {esc(info['result'])}</pre>")
    parts.append(f"<p><small>as of {time.strftime('%Y-%m-%d %H:%M:%S')}</small></p></div>")
    return "".join(parts)
