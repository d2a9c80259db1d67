"""The views' publishers take the frozen snapshot of a change as well as the job itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_executor import Engine
from jupyter_executor._publisher import JobPublisher, Publisher
from jupyter_executor._snapshot import snapshot_of

pytestmark = pytest.mark.timeout(60)


def _sent() -> tuple[list[dict[str, Any]], Any]:
    out: list[dict[str, Any]] = []

    def send(msg: dict[str, Any], buffers: list[bytes] | None) -> None:
        out.append(msg)

    return out, send


def test_the_dashboard_publisher_takes_a_snapshot_event(tmp_path: Path) -> None:
    with Engine(folder=tmp_path, history=False) as engine:
        job = engine.submit(sum, [1, 2], name="add")
        assert engine.wait(timeout=30)
        _, send = _sent()
        publisher = Publisher(engine, send)
        publisher.start(snapshot=False, thread=False)
        try:
            first, _ = publisher._next_message()
            assert first is not None and first["k"] == "snap"
            publisher._on_event("status", snapshot_of(job))
            msg, _ = publisher._next_message()
            assert msg is None  # the browser has that row as it is: nothing to send
            job2 = engine.submit(sum, [2, 2], name="add2")
            assert engine.wait(timeout=30)
            publisher._on_event("status", snapshot_of(job2))
            msg, _ = publisher._next_message()
            assert msg is not None
            (row,) = msg["rows"]
            assert (row["name"], row["status"], row["result"]) == ("add2", "done", "4")
        finally:
            publisher.stop()


def test_a_job_view_follows_its_job_by_snapshot_and_ignores_others(tmp_path: Path) -> None:
    with Engine(folder=tmp_path, history=False) as engine:
        mine = engine.submit(sum, [1, 2], name="mine")
        other = engine.submit(sum, [5], name="other")
        assert engine.wait(timeout=30)
        _, send = _sent()
        view = JobPublisher(engine, mine, send)
        view.start(snapshot=True, thread=False)
        try:
            assert view._follows(snapshot_of(mine))
            assert not view._follows(snapshot_of(other))
            view._on_event("status", snapshot_of(other))
            assert not view._urgent and not view._lazy
            view._on_event("status", snapshot_of(mine))
            assert list(view._urgent) == ["mine"]
        finally:
            view.stop()
