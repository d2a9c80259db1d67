"""The functions the process-backend cases run: a small module of the user's.

A worker of a fork server imports the module of a function pickled by reference (a fork of the
benchmark's process has it already): ``bench_engine`` itself costs 60-90 ms of imports
(asyncio, argparse, ...), which would bill the harness to the backend's cold start.
"""

from __future__ import annotations


def tiny(x: int) -> int:
    """A tiny job: importable by name, so both sides pickle it by reference."""
    return x
