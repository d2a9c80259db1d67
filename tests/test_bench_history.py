"""Smoke test of the history benchmark (benchmarks/bench_history.py --quick).

It checks that the quick mode runs every case in its own process and reports every ratio, not
how fast anything is: timings on a shared 2-core machine are too noisy to assert on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _bench import run_bench


@pytest.mark.timeout(400)
def test_quick_run_reports_every_case_and_ratio(tmp_path: Path) -> None:
    proc, data = run_bench("bench_history.py", tmp_path, "--quick")
    assert "MB per 10k runs" in proc.stdout
    assert "x plain sqlite3 -> pandas" in proc.stdout and "x history off" in proc.stdout
    cases = {row["case"] for row in data["raw"]}
    assert cases == {
        "read-ours", "read-sqlite", "read-filtered", "write-sqlite", "write-bare", "burst-on",
        "burst-off",
    }  # fmt: skip
    assert data["made"]["runs"] == 2_000
    reads = {row["case"]: row["rows"] for row in data["raw"] if "rows" in row}
    assert reads["read-ours"] == reads["read-sqlite"] == 2_000
    assert reads["read-filtered"] == 1  # one run of that name, found through the filter
    # The floor of a row per run writes every run of the history again, with and without
    # our indexes, and the budget the 1.3x goal leaves the history is reported.
    assert reads["write-sqlite"] == reads["write-bare"] == 2_000
    assert "us per run | floor" in proc.stdout and "leaves the history per job" in proc.stdout
    assert len(data["ratios"]["write"]) == len(data["ratios"]["budget"]) == 1
