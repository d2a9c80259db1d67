"""Running a program of the user's: a Python script in a fresh interpreter of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_python(script: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``python -c`` in ``cwd``; check that it exits 0 and return it."""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done
