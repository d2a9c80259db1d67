"""The views' publishers take the frozen snapshot of a change as well as the job itself."""

from __future__ import annotations

import sys
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


def test_one_change_takes_one_snapshot_for_the_history_and_every_publisher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10: the bus takes the snapshot of a change once; the history and each publisher
    # that takes snapshots get that same object (they used to take one each).
    taken: list[Any] = []
    real = snapshot_of

    def counting(job: Any, now: float | None = None) -> Any:
        snap = real(job, now)
        taken.append(snap)
        return snap

    # Every module that takes snapshots counts them (the function stays the real one).
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("jupyter_executor") and (
            getattr(module, "snapshot_of", None) is real
        ):
            monkeypatch.setattr(module, "snapshot_of", counting)
    with Engine(folder=tmp_path) as engine:
        stored: list[Any] = []
        store = engine._store
        assert store is not None
        keep = store.job_changed

        def recording(snap: Any) -> None:
            stored.append(snap)
            keep(snap)

        monkeypatch.setattr(store, "job_changed", recording)
        seen: dict[str, list[Any]] = {"a": [], "b": []}
        publishers = []
        for key in seen:
            publisher = Publisher(engine, _sent()[1])
            publisher.start(snapshot=False, thread=False)
            publishers.append(publisher)
            # What reaches each publisher: its own _on_event, wrapped by a recorder.
            monkeypatch.setattr(publisher, "_urgent", _Recording(seen[key]))
        try:
            job = engine.submit(sum, [1, 2], name="add")
            assert engine.wait(timeout=30)
            # The engine emits under its lock: by now every change has been handed out.
            ends = [s for s in stored if s.name == "add" and s.status == "done"]
            assert len(ends) == 1
            (end,) = ends
            assert [s for s in taken if s.status == "done"] == [end]  # one snapshot_of call
            for key in seen:
                assert any(s is end for s in seen[key]), key
            assert job.status.value == "done"
        finally:
            for publisher in publishers:
                publisher.stop()


class _Recording(dict[str, Any]):
    """A publisher's dirty map that also keeps every value it was given."""

    def __init__(self, log: list[Any]) -> None:
        super().__init__()
        self._log = log

    def __setitem__(self, key: str, value: Any) -> None:
        self._log.append(value)
        super().__setitem__(key, value)


def test_snapshots_of_two_engines_jobs_name_each_engines_log(tmp_path: Path) -> None:
    # snapshot_of remembers the last engine's log folder (a fast path): jobs of two engines
    # taken in turn must each get their own engine's folder, also once one engine is gone.
    from jupyter_executor import Job

    with (
        Engine(folder=tmp_path / "a", history=False) as a,
        Engine(folder=tmp_path / "b", history=False) as b,
    ):
        ja = a.submit(Job(len, args=("x",), name="same"))
        jb = b.submit(Job(len, args=("y",), name="same"))
        assert a.wait(timeout=60) and b.wait(timeout=60)
        for _ in range(2):
            assert snapshot_of(ja).log_path == str(a.log_path("same"))
            assert snapshot_of(jb).log_path == str(b.log_path("same"))
