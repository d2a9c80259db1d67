"""Smoke test of ``benchmarks/bench_dashboard.py``'s kernel-side case ``views`` (issue 11): a few
``%%job`` views printing in a real kernel, and a ``%jobs`` table.

It checks that the case runs and measures what it says (every view and the table seen on iopub,
lines printed, messages counted), not how fast anything is: figures on a shared 2-core machine
are read from a full run (benchmarks/README.md). The browser cases (render, lab, reload) are
exercised by the browser tests' own timings and are not smoke-tested here: they need minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _bench import run_bench


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_the_views_traffic_case_runs_in_a_real_kernel(tmp_path: Path) -> None:
    proc, results = run_bench(
        "bench_dashboard.py", tmp_path, *("--only", "views", "--views", "5", "--quick"), timeout=170
    )
    views = results["views"]
    assert set(results) == {"views"}
    assert views["views"] == 5
    assert views["lines_per_s"] > 0
    # every view changed in the window, so each one sent at least one message
    assert views["views_updated_in_window"] == 5
    assert views["views_msgs_per_s"] > 0
    assert views["dashboard_msgs_per_s"] > 0
    assert "`%%job` views printing" in proc.stdout
