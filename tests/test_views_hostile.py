"""The views against hostile input: odd values a job carries must cost neither the view nor
another job's row, nor leave a thread behind.

The widgets run for real against a real :class:`Engine`, with the ``comm`` package's factory
swapped for a comm that records what it would send (as in test_widget.py); the terminal views
write to a strict UTF-8 stream, as terminal IPython's stdout is under a UTF-8 locale.
"""

from __future__ import annotations

import gc
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from _leaks import engine_threads
from _wait import wait_until
from comm.base_comm import BaseComm

from jupyter_executor import Engine
from jupyter_executor._capture import current_output
from jupyter_executor._display import show_dashboard, show_job
from jupyter_executor._terminal import TerminalEcho
from jupyter_executor._text import safe_text
from jupyter_executor.widget import Dashboard, JobView


class RecordingComm(BaseComm):  # type: ignore[misc]
    """A comm that keeps the custom messages it would send to the browser (unpacked)."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        self._sent_lock = threading.Lock()
        super().__init__(**kwargs)

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any
    ) -> None:
        if msg_type != "comm_msg" or (data or {}).get("method") != "custom":
            return
        content = data["content"]
        if content.get("packed"):
            content = json.loads(bytes(buffers[0]))  # as js/store.js: JSON.parse refuses NaN
        with self._sent_lock:
            self.sent.append(content)

    def rows(self) -> list[dict[str, Any]]:
        """Every row the browser was sent (patches' rows and snapshots' rows), in order."""
        with self._sent_lock:
            sent = list(self.sent)
        rows: list[dict[str, Any]] = []
        for msg in sent:
            if msg.get("k") == "snap":
                rows += [dict(zip(msg["cols"], values, strict=True)) for values in msg["data"]]
            rows += msg.get("rows", [])
        return rows


@pytest.fixture
def widgets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Widgets a test makes (with recording comms); closed afterwards whatever happens."""
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    made: list[Any] = []
    try:
        yield made
    finally:
        for widget in made:
            widget.close()


def engine_loop_threads() -> list[threading.Thread]:
    """The engine's threads, not the views' publishers (which live until the views close)."""
    views = ("jupyter-executor-dashboard", "jupyter-executor-jobview")
    return [t for t in engine_threads() if t.name not in views]


def send_from_browser(widget: Any, content: dict[str, Any]) -> None:
    widget.comm.handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    )


def shown(widget: Any, name: str, status: str) -> bool:
    return any(r.get("name") == name and r.get("status") == status for r in widget.comm.rows())


def strict_stdout() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def written(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


class _Events:
    def __init__(self) -> None:
        self.callbacks: dict[str, list[Any]] = {}

    def register(self, event: str, fn: Any) -> None:
        self.callbacks.setdefault(event, []).append(fn)

    def unregister(self, event: str, fn: Any) -> None:
        self.callbacks[event].remove(fn)


class TerminalShell:
    """What the terminal views read of IPython's shell: its events, and no kernel."""

    kernel = None

    def __init__(self) -> None:
        self.events = _Events()


# widgets ----------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_cancel_reason_that_is_not_text_costs_no_row(engine: Engine, widgets: list[Any]) -> None:
    # len() of the reason failed every message: the dashboard (all jobs) and the view froze.
    # The engine now refuses such a reason at the door; a row holding one anyway (a reason
    # set by other code) is shown as text.
    from jupyter_executor import InvalidOptionType
    from jupyter_executor._publisher import table_row

    stop = threading.Event()
    odd = engine.submit(stop.wait, name="odd")
    dash, view = Dashboard(engine), JobView(odd)
    widgets += [dash, view]
    with pytest.raises(InvalidOptionType, match="reason= takes text, not 12345"):
        engine.cancel(odd, reason=12345)  # type: ignore[arg-type]
    assert odd.status == "running"
    engine.cancel(odd, reason="enough")
    stop.set()
    other = engine.submit(lambda: 1, name="other")
    wait_until(lambda: shown(dash, "other", "done"), what="the other job's row")
    wait_until(lambda: shown(dash, "odd", "cancelled"), what="the dashboard's row")
    wait_until(lambda: shown(view, "odd", "cancelled"), what="the job view's row")
    assert other.future.result(timeout=10) == 1
    row = table_row({**odd.info().to_dict(), "cancel_reason": 12345})
    assert row["cancel_reason"] == "12345"


@pytest.mark.timeout(60)
def test_a_display_whose_metadata_json_cannot_hold_costs_no_view(
    engine: Engine, widgets: list[Any]
) -> None:
    class NoStr:
        def __str__(self) -> str:
            raise RuntimeError

    go = threading.Event()
    odd_metadata = [
        {"image/png": {(1, 2): "tuple key"}},
        {"image/png": {"width": NoStr()}},
        {"image/png": {"width": float("nan")}},  # the browser's JSON.parse refuses NaN
    ]

    def work() -> str:
        out = current_output()
        assert out is not None
        go.wait(10)
        for metadata in odd_metadata:
            out.display({"text/plain": "plot", "image/png": "iVBORw0KGgo="}, metadata)
        return "fine"

    job = engine.submit(work, name="plots")
    view = JobView(job)
    widgets.append(view)
    go.set()
    wait_until(lambda: shown(view, "plots", "done"), what="the job's end in its view")
    later = JobView(job)  # a view made after the displays: its initial state holds them
    widgets.append(later)
    send_from_browser(later, {"k": "sync"})
    wait_until(lambda: any("displays" in m for m in later.comm.sent), what="a snapshot")
    displays = [m["displays"] for m in later.comm.sent if "displays" in m][-1]
    assert [d["data"]["text/plain"] for d in displays] == ["plot"] * 3


@pytest.mark.timeout(60)
def test_job_view_buttons_act_on_a_name_with_a_lone_surrogate(
    engine: Engine, widgets: list[Any]
) -> None:
    # The browser only knows the name made safe ("data-\\xff"): the view ignored its cancel.
    stop = threading.Event()
    name = "data-\udcff"
    job = engine.submit(stop.wait, 30, name=name)
    view = JobView(job)
    widgets.append(view)
    send_from_browser(view, {"k": "action", "action": "cancel", "name": safe_text(name)})
    try:
        wait_until(lambda: job.status.value == "cancelled", what="the cancel")
    finally:
        stop.set()


@pytest.mark.timeout(60)
def test_a_view_kept_after_shutdown_starts_no_thread(engine: Engine, widgets: list[Any]) -> None:
    job = engine.submit(lambda: 1, name="once")
    assert job.future.result(timeout=10) == 1
    dash, view = Dashboard(engine), JobView(job)
    widgets += [dash, view]
    engine.shutdown()
    wait_until(lambda: not engine_loop_threads(), what="the engine's threads to end")
    for widget in (dash, view):
        send_from_browser(widget, {"k": "action", "action": "rerun", "name": "once"})
    assert job.status.value == "done" and job.attempts == 1
    assert not engine_loop_threads(), "a rerun from a view restarted a shut down engine"


# terminal views -------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_terminal_views_print_a_lone_surrogate_on_a_strict_stdout(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = strict_stdout()
    monkeypatch.setattr("sys.stdout", stdout)
    shell = TerminalShell()
    echo = TerminalEcho(shell, engine, stream=lambda: stdout)
    try:
        job = engine.submit(print, "bad \ud800 line", name="name-\ud800")
        show_job(shell, job)  # what %%job prints, after the submit
        assert job.future.result(timeout=10) is None
        engine.wait(timeout=10)
        echo.flush()
        show_dashboard(shell, engine)  # %jobs
    finally:
        echo.close()
    text = written(stdout)
    assert "[job name-\\ud800] bad \\ud800 line" in text
    assert "[job name-\\ud800] done" in text
    assert "name-\\ud800  done" in text


@pytest.mark.timeout(60)
def test_terminal_echo_prints_a_job_at_a_removed_jobs_address(engine: Engine) -> None:
    # The echo counted lines per id(job): a new job at a freed job's address inherited its
    # count, and its lines and its end were never printed.
    stream = io.StringIO()
    echo = TerminalEcho(TerminalShell(), engine, stream=lambda: stream)
    try:
        for i in range(20):
            job = engine.submit(print, f"run {i}", name="same", replace=True)
            assert job.future.result(timeout=10) is None
            engine.wait(timeout=10)
            echo.flush()
            engine.remove(job)
            del job
            gc.collect()
    finally:
        echo.close()
    text = stream.getvalue()
    assert [i for i in range(20) if f"[job same] run {i}\n" not in text] == []
    assert text.count("[job same] done") == 20


@pytest.mark.timeout(60)
def test_rerun_after_shutdown_is_refused_and_starts_no_thread(tmp_path: Any) -> None:
    # job.rerun() after engine.shutdown() started the engine's threads again, and nothing was
    # left to stop them (a second shutdown() returned at once).
    from jupyter_executor import SubmitError

    eng = Engine(folder=tmp_path / "runs")
    job = eng.submit(lambda: 1, name="a")
    assert eng.wait_job(job, timeout=30)
    eng.shutdown()
    wait_until(lambda: not engine_loop_threads(), what="the engine's threads to end")
    with pytest.raises(SubmitError, match="this engine is shut down"):
        job.rerun()
    assert not engine_loop_threads(), "a rerun restarted a shut down engine"


@pytest.mark.timeout(60)
def test_a_callable_whose_getattr_raises_gets_a_name(engine: Engine) -> None:
    # A careless proxy: submit() failed with its KeyError('__name__'), even with name= given.
    class Proxy:
        def __getattr__(self, attr: str) -> Any:
            raise KeyError(attr)

        def __call__(self) -> int:
            return 7

    job = engine.submit(Proxy())
    assert engine.wait_job(job, timeout=30) and job.result() == 7
    assert str(job.name).startswith("Proxy")


@pytest.mark.timeout(60)
def test_the_terminal_echo_outlives_a_stdout_that_fails_once(engine: Engine) -> None:
    # An error from the stream (a closed or broken stdout) ended the echo's thread silently:
    # no job's output was printed again in that terminal.
    class Flaky(io.StringIO):
        fail = True

        def write(self, text: str) -> int:
            if self.fail:
                self.fail = False
                raise OSError("stdout is gone for a moment")
            return super().write(text)

    stream = Flaky()
    echo = TerminalEcho(TerminalShell(), engine, stream=lambda: stream)
    try:
        first = engine.submit(print, "lost line", name="first")
        wait_until(lambda: not stream.fail, what="the echo's failed write")
        assert echo._thread.is_alive()
        engine.wait_job(first, timeout=30)
        later = engine.submit(print, "later line", name="later")
        engine.wait_job(later, timeout=30)
        wait_until(lambda: "[job later] later line" in stream.getvalue(), what="the later line")
    finally:
        echo.close()


@pytest.mark.timeout(60)
def test_the_terminal_table_keeps_one_line_per_job(engine: Engine) -> None:
    # A multi-line error was cut to 60 characters with its newlines: the %jobs table broke.
    from jupyter_executor._terminal import text_table

    def fail() -> None:
        raise ValueError("first line\nsecond line\nthird line")

    bad = engine.submit(fail, name="bad")
    ok = engine.submit(lambda: 1, name="ok")
    engine.wait(timeout=30)
    assert bad.status == "failed" and ok.status == "done"
    lines = text_table(engine).splitlines()
    assert len(lines) == 3, lines
    assert "first line second line" in lines[1]
