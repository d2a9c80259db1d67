"""Running a benchmark script of ``benchmarks/`` from a smoke test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_bench(
    script: str, tmp_path: Path, *args: str, timeout: float = 380
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run ``benchmarks/SCRIPT ARGS --json FILE`` in ``tmp_path`` (the peers must not litter
    the repository); check that it exits 0 and return the process and what it wrote as JSON."""
    raw = tmp_path / f"{Path(script).stem}.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--json", str(raw)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(raw.read_text())
