"""The dashboard and job view widgets, in process: synced state, diffs, actions, rate bound.

The widgets run for real against a real :class:`Engine`; only the transport is swapped: the
``comm`` package's factory (which ipywidgets calls to open a widget's comm) returns a comm that
records what it would send to the browser, and browser messages are fed in through the comm's
own ``handle_msg``/``comm_close`` entry points. A :class:`Mirror` applies the recorded messages the
way ``js/store.js`` does, so tests check what a browser would end up showing.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest
from _wait import wait_until as wait_for
from comm.base_comm import BaseComm

from jupyter_executor import Engine, Job, cancelled, progress
from jupyter_executor._publisher import table_row
from jupyter_executor.widget import HTML_ROWS, Dashboard, JobView, html_table

PUBLISHER_THREADS = ("jupyter-executor-dashboard", "jupyter-executor-jobview")


class RecordingComm(BaseComm):  # type: ignore[misc]
    """A comm that keeps what it would publish to the front end, with the time it did."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[float, str, dict[str, Any], list[bytes]]] = []
        self._sent_lock = threading.Lock()
        super().__init__(**kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        with self._sent_lock:
            self.sent.append((time.monotonic(), msg_type, data or {}, list(buffers or [])))

    def custom(self) -> list[tuple[float, dict[str, Any]]]:
        """Custom messages (what the publisher sent), with their times; packed snapshots are
        unpacked as js/store.js does."""
        with self._sent_lock:
            sent = list(self.sent)
        out = []
        for t, kind, d, buffers in sent:
            if kind == "comm_msg" and d.get("method") == "custom":
                content = d["content"]
                if content.get("packed"):
                    assert len(buffers) == 1, "a packed snapshot carries one buffer"
                    content = json.loads(bytes(buffers[0]))
                out.append((t, content))
        return out


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> list[RecordingComm]:
    created: list[RecordingComm] = []

    def factory(**kwargs: Any) -> RecordingComm:
        c = RecordingComm(**kwargs)
        created.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", factory)
    return created


@pytest.fixture
def widgets() -> Iterator[list[Any]]:
    """Widgets a test creates; closed afterwards whatever happens."""
    made: list[Any] = []
    try:
        yield made
    finally:
        for w in made:
            w.close()
        assert not _publisher_threads(), "a publisher thread outlived its widget"


def _publisher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in PUBLISHER_THREADS and t.is_alive()]


def dashboard(engine: Engine, widgets: list[Any], *, wait: bool = False) -> Dashboard:
    """A dashboard of ``engine`` (made once its jobs ended with ``wait``), closed after the test."""
    if wait:
        engine.wait(timeout=10)  # some jobs fail on purpose: what they show is checked after
    dash = Dashboard(engine)
    widgets.append(dash)
    return dash


def send_from_browser(widget: Any, content: Any) -> None:
    """Deliver a custom message as the kernel's comm manager does."""
    widget.comm.handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    )


class Mirror:
    """What js/store.js holds after applying the widget's initial state and messages."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.rows: dict[str, dict[str, Any]] = {}
        self.displays: list[Any] = []
        self.seq = -1
        self.applied = 0
        self.gaps = 0
        self._apply(json.loads(widget._init))

    def _apply(self, msg: dict[str, Any]) -> None:
        if msg["k"] == "snap":
            self.rows = {
                r["name"]: r for r in (dict(zip(msg["cols"], d, strict=True)) for d in msg["data"])
            }
            self.displays = list(msg.get("displays", []))
        elif msg["k"] == "patch":
            if msg["seq"] != self.seq + 1:
                self.gaps += 1
            for fields in msg.get("rows", []):
                self.rows.setdefault(fields["name"], {}).update(fields)
            for name in msg.get("removed", []):
                self.rows.pop(name, None)
            d = msg.get("displays")
            if d is not None:
                if "reset" in d:
                    self.displays = list(d["reset"])
                else:
                    self.displays = self.displays[d["drop"] :] + d["add"]
        else:
            return
        self.seq = msg["seq"]

    def update(self) -> Mirror:
        msgs = self.widget.comm.custom()
        for _, msg in msgs[self.applied :]:
            self._apply(msg)
        self.applied = len(msgs)
        return self

    def status(self, name: str) -> str | None:
        return self.update().rows.get(name, {}).get("status")


def hold(gate: threading.Event) -> None:
    """A thread job that runs until ``gate`` is set or it is cancelled (a C-level wait could not be
    interrupted by the engine's cancel)."""
    while not gate.is_set() and not cancelled():
        time.sleep(0.02)


def print_until(stop: threading.Event, label: str, lines: int, pause: float) -> None:
    """A job printing numbered lines flat out (a ``pause`` after each run of ``lines`` lines)
    until ``stop`` is set, and for at most 10 s whatever happens to the test."""
    n = 0
    deadline = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < deadline:
        n += 1
        print(f"{label} line {n}")
        if n % lines == 0:
            time.sleep(pause)


# -- synced state and diffs ------------------------------------------------------------------------


def test_initial_state_is_a_snapshot_of_the_engine(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    gate = threading.Event()
    engine.submit(lambda: 42, name="answer")
    engine.submit(hold, gate, name="blocker")
    engine.submit(lambda: None, name="after", requires=["blocker"])
    wait_for(lambda: engine["answer"].done() and engine["blocker"].status.value == "running")
    dash = dashboard(engine, widgets)
    init = json.loads(dash._init)
    assert init["k"] == "snap" and init["seq"] == 0
    rows = {r["name"]: r for r in (dict(zip(init["cols"], d, strict=True)) for d in init["data"])}
    assert list(rows) == ["answer", "blocker", "after"]
    assert rows["answer"]["status"] == "done" and rows["answer"]["result"] == "42"
    assert rows["blocker"]["status"] == "running"
    assert rows["blocker"]["duration"] is None  # ticks in the browser
    assert isinstance(rows["blocker"]["started"], float)
    assert rows["after"]["status"] == "pending" and rows["after"]["requires"] == ["blocker"]
    # table rows leave the heavy fields out until a row is opened
    assert "tail" not in init["cols"] and "traceback" not in init["cols"]
    json.dumps(init)  # JSON-safe
    gate.set()


def test_diffs_follow_submit_start_print_finish(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)
    go, printed, finish = threading.Event(), threading.Event(), threading.Event()

    def work() -> str:
        go.wait(10)
        print("first line")
        printed.set()
        finish.wait(10)
        return "finished"

    engine.submit(work, name="worker")
    wait_for(lambda: mirror.status("worker") == "running", what="running")
    go.set()
    printed.wait(10)
    wait_for(lambda: mirror.update().rows["worker"].get("last_line") == "first line", what="output")
    # the message carrying the line holds the changed fields only, not the whole row
    output_msgs = [
        r
        for _, m in dash.comm.custom()
        for r in m.get("rows", [])
        if r.get("last_line") == "first line"
    ]
    assert output_msgs and set(output_msgs[0]) <= {"name", "last_line", "output_version"}
    finish.set()
    wait_for(lambda: mirror.status("worker") == "done", what="done")
    row = mirror.rows["worker"]
    assert row["result"] == "'finished'"
    assert row["duration"] > 0 and row["finished"] >= row["started"]
    assert mirror.gaps == 0


def test_diffs_for_failure_cancel_and_removal(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)

    def boom() -> None:
        msg = "bad input"
        raise ValueError(msg)

    engine.submit(boom, name="boom")
    gate = threading.Event()
    engine.submit(hold, gate, name="sleeper")
    wait_for(lambda: mirror.status("boom") == "failed", what="failed")
    assert mirror.rows["boom"]["error"] == "ValueError: bad input"
    wait_for(lambda: mirror.status("sleeper") == "running", what="running")
    engine.cancel("sleeper")
    gate.set()
    wait_for(lambda: mirror.status("sleeper") == "cancelled", what="cancelled")
    engine.remove("boom")
    wait_for(lambda: "boom" not in mirror.update().rows, what="removed")
    assert mirror.gaps == 0


def test_progress_reaches_the_row(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)
    gate = threading.Event()

    def work() -> None:
        progress(3, 10, "three of ten")
        gate.wait(10)

    engine.submit(work, name="p")
    wait_for(lambda: mirror.update().rows.get("p", {}).get("progress") == 0.3, what="progress")
    assert mirror.rows["p"]["progress_text"] == "three of ten"
    gate.set()


def _crash() -> None:
    msg = "crashed"
    raise RuntimeError(msg)


def test_a_restarting_job_shows_its_restarts(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)
    # gives up after two quick restarts: failed, restarted twice
    gives_up = engine.submit(
        _crash, name="gives-up", restart="on-failure", restart_delay=0.05, max_restarts=2
    )
    # waits long before its restart: pending ("restarting (1)") while the test looks
    waiting = engine.submit(
        _crash, name="waiting", restart="on-failure", restart_delay=60, max_restarts=1
    )
    wait_for(
        lambda: mirror.update().rows.get("waiting", {}).get("restarts") == 1,
        what=lambda: f"a restart in {mirror.rows.get('waiting')}",
    )
    assert mirror.rows["waiting"]["status"] == "pending"
    wait_for(
        lambda: mirror.status("gives-up") == "failed" and mirror.rows["gives-up"]["restarts"] == 2,
        what=lambda: f"gave up: {mirror.rows.get('gives-up')}",
    )
    assert mirror.rows["gives-up"]["attempts"] == 3 == gives_up.attempts
    page = dash._repr_mimebundle_()[0]["text/html"]
    assert ">restarting (1)<" in page and "restarted 2\u00d7" in page
    view = JobView(waiting)
    widgets.append(view)
    assert "restarting (1)" in view._repr_mimebundle_()[0]["text/html"]
    engine.cancel(waiting)
    wait_for(lambda: mirror.status("waiting") == "cancelled", what="cancelled")
    assert mirror.rows["waiting"]["restarts"] == 1


def test_a_scheduled_job_shows_its_next_run(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)
    engine.submit(lambda: None, name="tick", every="0.3 s")

    def between_runs() -> bool:
        row = mirror.update().rows.get("tick", {})
        return row.get("status") == "pending" and (row.get("attempts") or 0) >= 2

    wait_for(between_runs, what=lambda: f"a second run: {mirror.rows.get('tick')}")
    row = mirror.rows["tick"]
    assert isinstance(row["next_run"], float)
    assert row["next_run"] > row["started"]
    assert row["next_run"] == round(row["next_run"], 3)  # a time field: rounded like the others
    # every run moves it on: the browser hears of the new time
    first = row["next_run"]
    wait_for(
        lambda: (mirror.update().rows["tick"]["next_run"] or 0) > first, what="the next next run"
    )
    engine.cancel("tick")
    wait_for(lambda: mirror.status("tick") == "cancelled", what="cancelled")
    page = html_table(
        [{"name": "tick", "status": "pending", "next_run": time.time() + 60}],
        total=1,
        counts={"pending": 1},
    )
    assert "next run " + time.strftime("%H:%M", time.localtime(time.time() + 60)) in page


@pytest.mark.timeout(60)
def test_a_webapp_row_carries_its_url(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)
    job = engine.submit_webapp(
        f"{sys.executable} -m http.server {{port}} --bind {{host}}", name="files"
    )
    view = JobView(job)
    widgets.append(view)
    view_mirror = Mirror(view)
    url = wait_for(
        lambda: mirror.update().rows.get("files", {}).get("url"),
        timeout=30,
        what=lambda: f"the url: {mirror.rows.get('files')}, {job.tail()}",
    )
    assert url.startswith("http://127.0.0.1:") and url == job.info().url
    assert mirror.rows["files"]["status"] == "running"
    wait_for(lambda: view_mirror.update().rows["files"].get("url") == url, what="url in the view")
    link = f'<a href="{url}" target="_blank" rel="noopener">{url}</a>'
    assert link in dash._repr_mimebundle_()[0]["text/html"]
    assert link in view._repr_mimebundle_()[0]["text/html"]
    engine.cancel(job)
    wait_for(lambda: job.done(), what="the server to stop")


def test_the_html_fallback_links_only_http_urls() -> None:
    counts = {"running": 1}
    for bad in ("javascript:alert(1)", "data:text/html,x", "http://", 'http://x/" onclick="y'):
        page = html_table([{"name": "a", "status": "running", "url": bad}], total=1, counts=counts)
        assert "<a " not in page and 'onclick="' not in page, bad
    page = html_table(
        [{"name": "a", "status": "running", "url": "https://example.org/?a=1&b=<2>"}],
        total=1,
        counts=counts,
    )
    assert '<a href="https://example.org/?a=1&amp;b=&lt;2&gt;" target="_blank"' in page
    # the publisher leaves out a URL too long to send rather than sending a clipped one
    info = {"name": "a", "status": "running", "url": "http://x/" + "a" * 3000, "next_run": 1.23456}
    assert table_row(info)["url"] is None and table_row(info)["next_run"] == 1.235


def test_opening_a_row_sends_its_tail_and_traceback(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    def noisy() -> None:
        print("\x1b[31mred line\x1b[0m")
        msg = "nope"
        raise RuntimeError(msg)

    engine.submit(noisy, name="noisy")
    dash = dashboard(engine, widgets, wait=True)
    mirror = Mirror(dash)
    assert "tail" not in mirror.rows["noisy"]
    send_from_browser(dash, {"k": "expand", "name": "noisy", "open": True, "id": "view-1"})
    wait_for(lambda: "traceback" in mirror.update().rows["noisy"], what="details")
    row = mirror.rows["noisy"]
    assert "RuntimeError" in row["traceback"] and "nope" in row["traceback"]
    assert "red line" in row["tail"]
    # closed again: later output changes no longer carry the tail
    send_from_browser(dash, {"k": "expand", "name": "noisy", "open": False, "id": "view-1"})
    time.sleep(0.3)
    before = len(dash.comm.custom())
    engine["noisy"].output.write("more\n")
    wait_for(lambda: len(dash.comm.custom()) > before, what="patch")
    assert all("tail" not in r for _, m in dash.comm.custom()[before:] for r in m.get("rows", []))


def test_a_sync_request_gets_a_full_snapshot(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    engine.submit(lambda: 1, name="one")
    dash = dashboard(engine, widgets, wait=True)
    send_from_browser(dash, {"k": "sync"})
    snaps = wait_for(
        lambda: [m for _, m in dash.comm.custom() if m["k"] == "snap"], what="snapshot"
    )
    assert snaps[0]["seq"] == 1 and [
        d[snaps[0]["cols"].index("name")] for d in snaps[0]["data"]
    ] == ["one"]


def test_every_view_that_opens_gets_the_current_state(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    # A reloaded page draws from `_init`, the state of when the widget was made (here: running);
    # the view's open message must bring the job's current state (done) with no other event.
    gate = threading.Event()
    job = engine.submit(hold, gate, name="slow", backend="thread")
    wait_for(lambda: job.status.value == "running", what="running")
    view = JobView(job)
    widgets.append(view)
    mirror = Mirror(view)
    stale_init = view._init  # what a page drew from before the job ended
    send_from_browser(view, {"k": "view", "open": True, "id": "first"})
    gate.set()
    engine.wait(timeout=10)
    wait_for(lambda: mirror.status("slow") == "done", what="done")
    # the page reloads: a new browser copy from `_init`, a new view opens
    reloaded = Mirror(view)
    reloaded._apply(json.loads(stale_init))
    reloaded.applied = len(view.comm.custom())
    assert reloaded.rows["slow"]["status"] == "running"
    send_from_browser(view, {"k": "view", "open": True, "id": "after-reload"})
    wait_for(lambda: reloaded.status("slow") == "done", timeout=5, what="fresh state")


def test_a_new_kernel_dashboard_shows_the_earlier_kernels_runs(
    tmp_path: Path, comms: Any, widgets: list[Any]
) -> None:
    # An earlier kernel's engine ran three jobs in the folder, then went away.
    with Engine(folder=tmp_path / "runs") as old:
        old.submit(lambda: print("hello from before") or 42, name="answer", backend="thread")
        old.submit(lambda: 1 / 0, name="broken", backend="thread")
        old.submit(lambda: 7, name="again", backend="thread")
        old.wait(timeout=10)
    with Engine(folder=tmp_path / "runs") as new:
        new.submit(lambda: 8, name="again", backend="thread")  # this kernel's run wins
        new.wait(timeout=10)
        dash = Dashboard(new)
        widgets.append(dash)
        mirror = Mirror(dash)
        rows = mirror.update().rows
        assert set(rows) == {"answer", "broken", "again"}
        assert rows["answer"]["status"] == "done" and rows["answer"]["result"] == "42"
        assert rows["answer"]["earlier"] == old.id
        assert rows["broken"]["status"] == "failed" and rows["broken"]["earlier"] == old.id
        assert rows["again"].get("earlier") is None and rows["again"]["result"] == "8"
        assert "and 2 jobs of earlier kernels" in dash._repr_mimebundle_()[0]["text/plain"]
        # the log button of an earlier run brings its log file
        send_from_browser(dash, {"k": "action", "action": "log", "name": "answer"})
        log = wait_for(lambda: [m for _, m in dash.comm.custom() if m["k"] == "log"], what="log")[0]
        assert log["name"] == "answer" and "hello from before" in log["text"]
        # other actions on it are refused: nothing of it runs here
        send_from_browser(dash, {"k": "action", "action": "rerun", "name": "answer"})
        assert "answer" not in new.jobs
        # a job of this kernel taking an earlier row's name loses the mark
        new.submit(lambda: 9, name="answer", backend="thread")
        new.wait(timeout=10)
        wait_for(lambda: mirror.update().rows["answer"].get("result") == "9", what="new run")
        assert mirror.rows["answer"].get("earlier") is None


# -- actions from the browser ------------------------------------------------------------------


def test_valid_actions_cancel_rerun_and_log(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)
    gate = threading.Event()
    engine.submit(hold, gate, name="long")
    wait_for(lambda: mirror.status("long") == "running")
    send_from_browser(dash, {"k": "action", "action": "cancel", "name": "long"})
    wait_for(lambda: engine["long"].status.value == "cancelled", what="cancelled in the engine")
    gate.set()
    assert engine["long"].cancel_reason == "cancelled from the dashboard"
    wait_for(lambda: mirror.status("long") == "cancelled")

    runs = []

    def count() -> int:
        runs.append(1)
        print(f"run {len(runs)}")
        return len(runs)

    engine.submit(count, name="count")
    engine.wait_job("count", timeout=10)
    send_from_browser(dash, {"k": "action", "action": "rerun", "name": "count"})
    wait_for(lambda: len(runs) == 2 and engine["count"].done(), what="rerun")
    assert engine["count"].result() == 2
    send_from_browser(dash, {"k": "action", "action": "log", "name": "count"})
    logs = wait_for(lambda: [m for _, m in dash.comm.custom() if m["k"] == "log"], what="log")
    assert logs[0]["name"] == "count" and "run 2" in logs[0]["text"]


@pytest.mark.parametrize(
    "content",
    [
        {"k": "action", "action": "cancel", "name": "no-such-job"},
        {"k": "action", "action": "exec", "name": "target"},
        {"k": "action", "action": "__import__('os').system('touch pwned')", "name": "target"},
        {"k": "action", "action": "cancel", "name": ["target"]},
        {"k": "action", "action": "rerun", "name": "target"},  # still running: not allowed
        {"k": "action", "action": "log", "name": "target"},  # not finished
        {"k": "expand", "name": "no-such-job", "open": True, "id": "v"},
        {"k": "expand", "name": "target", "open": "yes", "id": "v"},
        {"k": "view", "open": True, "id": 3},
        {"k": "eval", "code": "1/0"},
        ["not", "a", "dict"],
        "cancel target",
    ],
)
def test_invalid_messages_are_ignored_with_a_warning(
    engine: Engine,
    comms: Any,
    widgets: list[Any],
    content: Any,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    gate = threading.Event()
    engine.submit(hold, gate, name="target")
    wait_for(lambda: engine["target"].status.value == "running")
    dash = dashboard(engine, widgets)
    before = len(dash.comm.custom())
    with caplog.at_level(logging.WARNING, logger="jupyter_executor.widget"):
        send_from_browser(dash, content)
    assert any("ignored" in r.getMessage() for r in caplog.records), caplog.text
    assert engine["target"].status.value == "running"
    assert not (tmp_path / "pwned").exists()
    assert not [m for _, m in dash.comm.custom()[before:] if m["k"] == "log"]
    gate.set()


# -- bounds ------------------------------------------------------------------------------------


def _max_per_window(times: list[float], window: float = 1.0) -> int:
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.timeout(60)
def test_rate_and_size_stay_bounded_under_a_flood(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    """1,000 jobs change state while 40 threads print thousands of lines a second: <= 10 msgs/s,
    bounded bytes, and in the end the browser's copy equals the engine's state."""
    dash = dashboard(engine, widgets)
    mirror = Mirror(dash)
    stop = threading.Event()

    try:
        for i in range(40):
            # thousands of lines per second each
            engine.submit(print_until, stop, f"printer {i}", 10, 0.001, name=f"printer-{i}")
        for i in range(1000):
            engine.submit(lambda i=i: i * i, name=f"quick-{i}")
        t0 = time.monotonic()
        wait_for(lambda: all(engine[f"quick-{i}"].done() for i in range(1000)), timeout=40)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
    finally:
        stop.set()
    assert engine.wait(timeout=20)
    wait_for(
        lambda: (
            all(mirror.status(f"quick-{i}") == "done" for i in range(1000))
            and all(mirror.status(f"printer-{i}") == "done" for i in range(40))
        ),
        timeout=20,
        what="the browser's copy to catch up",
    )
    msgs = dash.comm.custom()
    times = [t for t, _ in msgs]
    elapsed = times[-1] - times[0]
    assert _max_per_window(times) <= 11, f"{_max_per_window(times)} messages in one second"
    # messages are at least `interval` apart (a little scheduling jitter allowed)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.09
    sizes = [len(json.dumps(m)) for _, m in msgs]
    assert max(sizes) < 20_000, max(sizes)
    assert dash.publisher.bytes / max(elapsed, 1.0) < 200_000
    assert mirror.gaps == 0
    final = {n: r["status"] for n, r in mirror.rows.items()}
    assert final == {n: j.status.value for n, j in engine.jobs.items()}
    assert mirror.rows["quick-999"]["result"] == str(999 * 999)


# -- life cycle --------------------------------------------------------------------------------


def test_close_stops_the_thread_and_unsubscribes(engine: Engine, comms: Any) -> None:
    subscribers = len(engine._subscribers)
    dash = Dashboard(engine)
    view = JobView(engine.submit(lambda: 1, name="x"))
    assert len(_publisher_threads()) == 2
    assert len(engine._subscribers) == subscribers + 2
    dash.close()
    view.close()
    assert _publisher_threads() == []
    assert len(engine._subscribers) == subscribers
    dash.close()  # idempotent


def test_the_front_end_closing_the_comm_stops_the_publisher(engine: Engine, comms: Any) -> None:
    subscribers = len(engine._subscribers)
    dash = Dashboard(engine)
    comm_id = dash.comm.comm_id
    comm.get_comm_manager().comm_close(None, None, {"content": {"comm_id": comm_id, "data": {}}})
    assert _publisher_threads() == []
    assert len(engine._subscribers) == subscribers
    assert dash.comm is None


def test_removing_the_last_view_pauses_and_a_new_view_resumes(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    dash = dashboard(engine, widgets)
    subscribers = len(engine._subscribers)
    send_from_browser(dash, {"k": "view", "open": True, "id": "a"})
    send_from_browser(dash, {"k": "view", "open": True, "id": "b"})
    send_from_browser(dash, {"k": "view", "open": False, "id": "a"})
    assert dash.publisher.running
    send_from_browser(dash, {"k": "view", "open": False, "id": "b"})  # output cleared
    assert not dash.publisher.running and _publisher_threads() == []
    assert len(engine._subscribers) == subscribers - 1
    engine.submit(lambda: 7, name="while-hidden")
    engine.wait(timeout=10)
    send_from_browser(dash, {"k": "view", "open": True, "id": "c"})  # displayed again
    assert dash.publisher.running
    snap = wait_for(
        lambda: [m for _, m in dash.comm.custom() if m["k"] == "snap"], what="snapshot"
    )[-1]
    assert "while-hidden" in [d[snap["cols"].index("name")] for d in snap["data"]]


def test_two_dashboards_are_independent(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    one, two = Dashboard(engine), Dashboard(engine)
    widgets.extend([one, two])
    one.close()
    engine.submit(lambda: 3, name="later")
    mirror = Mirror(two)
    wait_for(lambda: mirror.status("later") == "done")
    assert [t.name for t in _publisher_threads()] == ["jupyter-executor-dashboard"]


# -- the static fallback -----------------------------------------------------------------------


def test_html_fallback_shows_the_jobs_as_they_were(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    engine.submit(lambda: "<b>bold</b>", name="html<job>")

    def fails() -> None:
        msg = "broken"
        raise ValueError(msg)

    engine.submit(fails, name="fails")
    dash = dashboard(engine, widgets, wait=True)
    data, _ = dash._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    page = data["text/html"]
    assert "html&lt;job&gt;" in page and "<job>" not in page
    assert "&#x27;&lt;b&gt;bold&lt;/b&gt;&#x27;" in page  # the result repr, escaped
    assert "ValueError: broken" in page and ">failed<" in page
    assert data["text/plain"] == "Dashboard: 2 jobs (1 done, 1 failed)"


def test_html_fallback_is_bounded(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    for i in range(HTML_ROWS + 5):
        engine.submit(lambda: None, name=f"j{i}")
    engine.wait(timeout=30)
    dash = dashboard(engine, widgets)
    page = dash._repr_mimebundle_()[0]["text/html"]
    assert page.count("<tr>") == HTML_ROWS + 1  # + header
    assert "and 5 more jobs" in page


# -- the job view ------------------------------------------------------------------------------


def test_job_view_streams_tail_displays_and_result(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    go = threading.Event()

    def work() -> int:
        from jupyter_executor._capture import current_output

        print("step 1")
        out = current_output()
        assert out is not None
        out.display({"text/plain": "plot", "image/png": "iVBORw0KGgo=", "application/x-big": "…"})
        go.wait(10)
        print("step 2")
        return 99

    job = engine.submit(work, name="viewed")
    view = JobView(job)
    widgets.append(view)
    mirror = Mirror(view)
    wait_for(lambda: "step 1" in mirror.update().rows["viewed"].get("tail", ""), what="tail")
    wait_for(
        lambda: mirror.update().displays,
        what=lambda: f"display: {job.info()}, sent {view.comm.custom()}",
    )
    assert mirror.displays == [
        {"data": {"image/png": "iVBORw0KGgo=", "text/plain": "plot"}, "metadata": {}}
    ]
    go.set()
    wait_for(lambda: mirror.status("viewed") == "done")
    row = mirror.rows["viewed"]
    assert row["result"] == "99" and "step 2" in row["tail"]
    assert len(mirror.displays) == 1  # not sent twice
    html_page = view._repr_mimebundle_()[0]["text/html"]
    assert "viewed" in html_page and "step 2" in html_page and "99" in html_page


def test_job_view_follows_only_its_job_and_shows_the_traceback(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    def fails() -> None:
        msg = "kaput"
        raise KeyError(msg)

    job = engine.submit(fails, name="mine")
    view = JobView(job)
    widgets.append(view)
    engine.submit(lambda: 1, name="other")
    engine.wait(timeout=10)
    mirror = Mirror(view)
    assert job.status.value == "failed", job.status
    wait_for(
        lambda: mirror.status("mine") == "failed", what=f"failed in the view {view.comm.custom()}"
    )
    time.sleep(0.3)
    assert list(mirror.update().rows) == ["mine"]
    assert "kaput" in mirror.rows["mine"]["traceback"]
    # its buttons act on its own job only
    send_from_browser(view, {"k": "action", "action": "rerun", "name": "other"})
    send_from_browser(view, {"k": "action", "action": "rerun", "name": "mine"})
    wait_for(
        lambda: engine["mine"].attempts >= 2 or len(engine["mine"].previous) == 1, what="rerun"
    )
    assert len(engine["other"].previous) == 0


def test_job_view_needs_a_submitted_job() -> None:
    with pytest.raises(ValueError, match="never submitted"):
        JobView(Job(lambda: 1, name="loose"))


def test_a_job_view_opens_one_comm_and_keeps_its_class(
    engine: Engine, comms: list[RecordingComm], widgets: list[Any]
) -> None:
    """A ``%%job`` cell's view is one comm: no ``Layout`` model of its own, and no class made per
    view (anywidget's per-instance ``add_traits``): together most of a ``%%job`` cell's cost."""
    jobs = [engine.submit(pow, i, 2, name=f"v{i}") for i in range(4)]
    widgets.append(JobView(jobs[0]))  # the first view may make the shared models
    before = len(comms)
    views = [JobView(job) for job in jobs[1:]]
    widgets.extend(views)
    opened = [c for c in comms[before:] if c.sent and c.sent[0][1] == "comm_open"]
    assert len(comms) - before == len(views) == len(opened)
    assert {type(v) for v in views} == {JobView}
    assert len({v.layout.model_id for v in [*widgets, *views]}) == 1
    state = opened[0].sent[0][2]["state"]
    assert state["_esm"].startswith("// js/loader.js")
    assert state["_anywidget_id"] == "jupyter_executor.widget.JobView"


def test_nbconvert_shows_the_fallback_table_without_widget_state(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    """A notebook saved without widget state (JupyterLab's default) converts to the static table."""
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    engine.submit(lambda: 6 * 7, name="answer")
    dash = dashboard(engine, widgets, wait=True)
    data, metadata = dash._repr_mimebundle_()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("engine.widget()")
    cell.outputs = [
        nbformat.v4.new_output("execute_result", data=data, metadata=metadata, execution_count=1)
    ]
    nb.cells.append(cell)
    page, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert 'class="jupyter-executor-dashboard"' in page
    assert ">answer<" in page and "42" in page


def test_snapshot_requests_are_rate_limited(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    dash = dashboard(engine, widgets)
    t0 = time.monotonic()
    for _ in range(30):  # a front end asking over and over
        send_from_browser(dash, {"k": "sync"})
        time.sleep(0.05)
    time.sleep(1.2)
    elapsed = time.monotonic() - t0
    snaps = [t for t, m in dash.comm.custom() if m["k"] == "snap"]
    assert 1 <= len(snaps) <= elapsed + 1, (len(snaps), elapsed)
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(snaps))


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_real_kernel_traffic_with_1000_jobs_changing_state(tmp_path: Any) -> None:
    """The bound on the wire: a real kernel, 1,000 jobs cycling through their states, the raw
    iopub frames of the dashboard's comm counted per second (benchmarks/bench_dashboard.py)."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dashboard.py"
    out = tmp_path / "traffic.json"
    proc = subprocess.run(
        [sys.executable, str(bench), "--quick", "--no-browser", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    traffic = json.loads(out.read_text())["traffic"]
    assert traffic["engine_events_per_s"] > 1000, traffic  # the jobs really were busy
    assert traffic["max_msgs_in_1s"] <= 10, traffic
    assert traffic["max_kb_in_1s"] < 200, traffic
    assert traffic["msgs_per_s"] > 1, traffic  # and the dashboard kept up


@pytest.mark.timeout(60)
def test_many_job_views_share_one_rate(engine: Engine, comms: Any, widgets: list[Any]) -> None:
    """Thirty %%job views of jobs printing flat out: together at most ~20 messages a second."""
    from jupyter_executor._publisher import JOB_VIEWS_PACER

    stop = threading.Event()

    try:
        views = [
            JobView(engine.submit(print_until, stop, f"view {i}", 1, 0.002, name=f"chatty-{i}"))
            for i in range(30)
        ]
        widgets.extend(views)
        time.sleep(0.5)
        t0 = time.monotonic()
        time.sleep(2.0)
        t1 = time.monotonic()
    finally:
        stop.set()
    times = sorted(t for v in views for t, _ in v.comm.custom() if t0 <= t <= t1)
    rate = 1 / JOB_VIEWS_PACER._gap
    assert len(times) <= rate * (t1 - t0) + 2, len(times)
    assert len(times) >= 10  # and they do get updated
    for view in views:  # every view still converges to its job's final state
        wait_for(lambda view=view: Mirror(view).update().rows[view.job.name]["status"] == "done")


@pytest.mark.timeout(60)
def test_job_views_share_one_thread_that_ends_with_the_last(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    """Twenty views, one publisher thread (a thread each made every %%job cell start one); each
    view still follows its job; closing all but one keeps the thread, closing the last ends it."""
    gate = threading.Event()
    jobs = [engine.submit(hold, gate, name=f"shared-{i}", backend="thread") for i in range(20)]
    views = [JobView(job) for job in jobs]
    widgets.extend(views)
    assert len(_publisher_threads()) == 1
    gate.set()
    for view in views:
        wait_for(lambda view=view: Mirror(view).status(view.job.name) == "done")
    for view in views[:-1]:
        view.close()
    assert [t.name for t in _publisher_threads()] == ["jupyter-executor-jobview"]
    last = views[-1]
    assert last.publisher.running and not views[0].publisher.running
    last.job.rerun()
    wait_for(lambda: Mirror(last).update().rows[last.job.name].get("attempts") == 2)
    last.close()
    assert not _publisher_threads()


# -- odd text ------------------------------------------------------------------------------------
ODD = os.fsdecode(b"data-\xff.csv")  # a non-UTF-8 file name as Python decodes it: "data-\udcff.csv"
SAFE = "data-\\xff.csv"


def test_lone_surrogates_in_names_output_and_errors_reach_the_views(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    def odd() -> None:
        print(f"reading {ODD}")
        msg = f"cannot parse {ODD}"
        raise ValueError(msg)

    live = Dashboard(engine)  # follows the job from before it runs: patches
    widgets.append(live)
    live_mirror = Mirror(live)
    job = engine.submit(odd, name=f"odd-{ODD}")
    engine.wait(timeout=30)
    assert job.status.value == "failed"
    name = f"odd-{SAFE}"
    # Made after the failure: the initial snapshot (pack) raised UnicodeEncodeError.
    board, view = Dashboard(engine), JobView(job)
    widgets += [board, view]
    for mirror in (Mirror(board), Mirror(view), live_mirror):
        wait_for(lambda m=mirror: m.status(name) == "failed", what=lambda: f"{name} failed")
        assert SAFE in mirror.rows[name]["error"]
    assert f"reading {SAFE}" in Mirror(view).update().rows[name]["tail"]
    assert SAFE in board._repr_mimebundle_()[0]["text/html"]
    assert SAFE in view._repr_mimebundle_()[0]["text/html"]
    # The browser knows the safe name: its actions find the job.
    send_from_browser(board, {"k": "expand", "id": "v1", "name": name, "open": True})
    board_mirror = Mirror(board)
    wait_for(lambda: "tail" in board_mirror.update().rows[name], what="the opened row's tail")
    assert f"reading {SAFE}" in board_mirror.rows[name]["tail"]
    send_from_browser(board, {"k": "action", "action": "log", "name": name})
    logs = wait_for(lambda: [m for _, m in board.comm.custom() if m.get("k") == "log"], what="log")
    assert f"reading {SAFE}" in logs[0]["text"]


def test_a_huge_line_stays_bounded_in_the_tail_and_the_views(
    engine: Engine, comms: Any, widgets: list[Any]
) -> None:
    def huge() -> None:
        sys.stdout.write("x" * 10_000_000)  # no newline
        print(" end of the first line")
        sys.stdout.write("y" * 10_000_000 + "\n")  # a whole line in one write
        sys.stdout.write("z" * 10_000_000)

    job = engine.submit(huge, name="huge")
    engine.wait(timeout=60)
    assert job.status.value == "done"
    out = job.output
    assert len(out.tail(1000)) < 40_000  # three lines of 10 MB, each clipped
    view = JobView(job)
    widgets.append(view)
    assert len(view._init) < 100_000
    assert len(Mirror(view).rows["huge"]["tail"]) <= 8_000
    job.output.flush()
    assert job.log_path.stat().st_size >= 30_000_000  # the log keeps everything


@pytest.mark.timeout(10)
def test_status_label_names_a_scheduled_job_between_runs() -> None:
    """A scheduled job waiting for its next run is "scheduled" (the views show when beside it),
    a restarted one "restarting (n)" first; other statuses are themselves (js/format.js)."""
    from jupyter_executor.widget import status_label

    assert status_label({"status": "pending", "next_run": 1_800_000_000.5}) == "scheduled"
    assert status_label({"status": "pending", "next_run": None}) == "pending"
    assert status_label({"status": "pending", "next_run": 1.0, "restarts": 2}) == "restarting (2)"
    assert status_label({"status": "done", "next_run": 1.0}) == "done"
