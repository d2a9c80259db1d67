"""Smoke test of the side-by-side benchmark runner (benchmarks/bench_engine.py).

It checks that ``--quick`` finishes and that every engine produced numbers, not how fast anything
is: timings on a shared 2-core CI machine are too noisy to assert on, and the ratios that matter
are read from a full run (see benchmarks/README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _bench import run_bench

# One label per engine, as printed in the first column of the tables.
LABELS = [
    "jupyter_executor (async `Job`s)",
    "jupyter_executor (async `Job`s, `Engine(history=False)`)",
    "jupyter_executor (`submit(async_fn)`)",
    'jupyter_executor (`backend="thread"`)',
    'jupyter_executor (`backend="thread"`, `Engine(history=False)`)',
    "plain asyncio (`gather` / tasks)",
    "`ThreadPoolExecutor` (callbacks for deps)",
    "asynciojobs 0.21",
    "executor-engine 0.3 `LocalJob`",
    "executor-engine 0.3 `ThreadJob`",
    "dask.delayed, threaded scheduler",
    "distributed `LocalCluster(processes=False)`",
]


@pytest.mark.dask  # the runner starts a distributed LocalCluster in one of its workers
@pytest.mark.timeout(400)
def test_quick_run_prints_a_table_with_all_engines(tmp_path: Path) -> None:
    proc, results = run_bench("bench_engine.py", tmp_path, "--quick")
    out = proc.stdout
    for title in (
        "## Per-job cost",
        "## Dependency chain",
        "## Fan-out",
        "## Memory",
        "## Targets",
    ):
        assert title in out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    for label in LABELS:
        assert any(row.startswith(f"| {label} |") for row in rows), label

    # every case ran to completion in its worker (an engine erroring would print "error" cells)
    errors = [
        (r["engine"], r["scenario"], run["error"])
        for r in results
        for run in r["runs"]
        if "error" in run
    ]
    assert not errors, errors
    assert {r["engine"] for r in results} >= {
        "jupyter_executor",
        "asyncio.gather",
        "ThreadPoolExecutor",
        "asynciojobs",
        "executor-engine LocalJob",
        "executor-engine ThreadJob",
        "dask threaded",
        "distributed LocalCluster",
    }
    # each target line got a measured value, met or not
    targets = out.split("## Targets", 1)[1]
    assert "| n/a |" not in targets


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_the_magics_benchmark_runs_in_a_real_kernel(tmp_path: Path) -> None:
    """``benchmarks/bench_magics.py`` on small sizes: every line of its table has a figure (timings
    are not asserted: the machine is shared)."""
    proc, results = run_bench(
        "bench_magics.py",
        tmp_path,
        *("--cells", "5", "--jobs", "20", "--repeat", "1"),
        timeout=170,
    )
    assert "`%%job` beyond the job itself" in proc.stdout
    assert results["list"]["jobs"] == 20
    assert results["cells"]["cells"] == 5
    assert all(
        v > 0 for k, v in results["cells"].items() if k.endswith("kernel_ms") and "over" not in k
    )
