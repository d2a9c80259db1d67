"""The dask and process backends do per batch what they used to do per job (issue 14).

Speed itself is measured by ``benchmarks/bench_engine.py`` (timings are too noisy to assert on
a shared 2-core machine); these tests pin down the structure that makes it fast, counted where
it happens (the scheduler's messages, the worker processes), so that a change that brings back
one round trip per job fails here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_executor import Engine, Job

N = 200


def _double(x: int) -> int:
    print(f"doubling {x}")
    return 2 * x


@pytest.fixture
def local_cluster() -> Iterator[Any]:
    """An in-process cluster (scheduler and worker threads in this process)."""
    distributed: Any = pytest.importorskip("distributed")  # untyped: Any

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield cluster, client


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_dask_jobs_go_to_the_scheduler_in_batches(local_cluster: Any, tmp_path: Path) -> None:
    from distributed.diagnostics.plugin import SchedulerPlugin

    cluster, client = local_cluster
    scheduler = cluster.scheduler
    counts = {"graphs": 0}

    class CountGraphs(SchedulerPlugin):
        def update_graph(self, scheduler: Any, **kwargs: Any) -> None:
            counts["graphs"] += 1

    scheduler.add_plugin(CountGraphs(), name="count-graphs")
    engine = Engine(folder=tmp_path / "runs", dask=client, history=False)
    try:
        first = engine.submit(_double, -1, backend="dask", name="first")  # connects the client
        assert engine.wait_job(first, timeout=60), first.info().error
        counts.update(graphs=0)
        # Submitted together, admitted together: one batch (a few when admission splits it).
        jobs = [Job(_double, args=(i,), backend="dask", name=f"d{i}") for i in range(N)]
        engine.submit(*jobs)
        assert engine.wait(timeout=120)
    finally:
        engine.shutdown()
    assert [j.result() for j in jobs] == [2 * i for i in range(N)]
    assert jobs[7].tail() == "doubling 7"  # the output still comes back with each job
    # One graph message per batch of jobs admitted together, not one per job (it was N).
    assert counts["graphs"] <= N // 10, counts


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_dask_batch_keeps_each_jobs_options_and_errors(local_cluster: Any, tmp_path: Path) -> None:
    # Jobs of one batch with different priorities: each keeps its own (the batch is split by
    # options), and one failure fails only its job, with the task's own traceback.
    from distributed.diagnostics.plugin import SchedulerPlugin

    cluster, client = local_cluster
    priorities: dict[str, Any] = {}

    class Priorities(SchedulerPlugin):
        def update_graph(self, scheduler: Any, **kwargs: Any) -> None:
            for key, value in kwargs["annotations"].get("priority", {}).items():
                priorities[str(key)] = value

    cluster.scheduler.add_plugin(Priorities(), name="priorities")
    engine = Engine(folder=tmp_path / "runs", dask=client, history=False)
    try:
        jobs = [engine.submit(_double, i, backend="dask", name=f"p{i}") for i in range(5)]
        urgent = engine.submit(_double, 10, backend="dask", name="urgent", priority=5)
        text = engine.submit(_double, "x", backend="dask", name="text")
        fails = engine.submit(_divide, 1, 0, backend="dask", name="fails")
        assert not engine.wait(timeout=120)
    finally:
        engine.shutdown()
    assert [j.result() for j in jobs] == [0, 2, 4, 6, 8]
    assert urgent.result() == 20 and text.result() == "xx"
    assert isinstance(fails.exception(), ZeroDivisionError)
    assert "return a / b" in str(fails.traceback), fails.traceback
    assert [v for k, v in priorities.items() if k.startswith("urgent-")] == [5], priorities
    assert not [k for k in priorities if k.startswith("p")], priorities


def _divide(a: float, b: float) -> float:
    return a / b
