"""Dask clusters for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cluster_without_us(tmp_path: Path) -> dict[str, Any]:
    """The options of a one-worker LocalCluster whose worker cannot import jupyter_executor.

    As on a cluster whose workers run from another environment: what the backend ships must
    travel by value.
    """
    block = tmp_path / "no_jupyter_executor.py"
    block.write_text("import sys\nsys.modules['jupyter_executor'] = None  # not installed\n")
    return {"n_workers": 1, "threads_per_worker": 2, "processes": True, "preload": [str(block)]}
