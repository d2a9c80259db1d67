"""Benchmark of the magics in a real kernel (issue 14): what a ``%%job`` cell costs beyond a plain
cell, and what ``%jobs list`` costs with 1,000 finished jobs.

Run from the repository root::

    python benchmarks/bench_magics.py               # 200 cells of each kind, 5 x %jobs list
    python benchmarks/bench_magics.py --cells 50 --jobs 200 --json out.json

A real ipykernel is started through ``jupyter_client`` (the test harness, ``tests/_kernel.py``)
with the repository first on its ``PYTHONPATH`` and ``%load_ext jupyter_executor`` loaded. Two
clocks are read for each cell:

- **kernel**: the time the kernel spends in the cell, from IPython's ``pre_run_cell`` to its
  ``post_run_cell`` event (hooks registered for the benchmark). This is what a ``%%job`` cell adds
  to the kernel's main thread, where it delays the next cell, and is the figure the goals are
  about.
- **round trip**: from sending ``execute_request`` to the kernel's ``idle`` status for it, as seen
  by the client (adds messaging; noisier).

Three kinds of cell alternate, so all see the same load: ``%%job`` cells (body ``pass``: the job
runs on a thread), cells submitting the same kind of job through ``get_engine().submit`` (the
job itself: scheduling, events, history, with no view), and plain ``pass`` cells. The per-cell
cost is the median over cells; what ``%%job`` costs beyond the job itself is the difference of
the medians of the first two kinds. The jobs finish long before the next cell. ``%jobs
list`` is timed with N finished jobs in the engine (submitted from a cell through the engine's
public API, then waited for), including the repr of the DataFrame the front end gets; the first
call of a kernel is shown apart: it imports pandas.

Timings on a shared machine are noisy: the figures are medians, and the header prints the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The kernel harness lives with the tests (tests/_kernel.py); the benchmark reuses it.
sys.path.insert(0, str(REPO / "tests"))

_HOOKS = """
import time as _bench_time
_bench_marks = []
def _bench_pre(*_):
    _bench_marks.append([_bench_time.perf_counter(), None])
def _bench_post(*_):
    _bench_marks[-1][1] = _bench_time.perf_counter()
get_ipython().events.register("pre_run_cell", _bench_pre)
get_ipython().events.register("post_run_cell", _bench_post)
"""


def _run(kernel: Any, code: str, timeout: float = 120) -> float:
    """Run one cell; return its round trip (send to idle) in seconds."""
    t0 = time.perf_counter()
    ex = kernel.execute(code, timeout=timeout)
    took = time.perf_counter() - t0
    if not ex.ok:
        msg = f"cell failed: {code!r}: {ex.error}"
        raise RuntimeError(msg)
    return took


def _kernel_times(kernel: Any, count: int) -> list[float]:
    """The kernel-side durations of the last ``count`` cells before this one."""
    raw = kernel.eval(f"[b - a for a, b in _bench_marks[-{count + 1}:-1]]")
    return [float(x) for x in json.loads(raw.replace("'", '"'))]


def bench_cells(kernel: Any, cells: int) -> dict[str, Any]:
    """``%%job`` cells vs plain cells, alternating."""
    for i in range(20):  # warm up: imports, the library models, the first views
        _run(kernel, f"%%job warm{i}\npass")
        _run(kernel, "pass")
    _run(kernel, "get_engine().wait(timeout=60)")
    kinds = {
        "job": "%%job cell{i}\npass",
        # the job itself: the same kind of job (a thread running a no-op), submitted through the
        # engine's API, no view
        "api": "get_engine().submit(pow, {i}, 2, name='api{i}', backend='thread');",
        "plain": "pass",
    }
    kernel_s: dict[str, list[float]] = {k: [] for k in kinds}
    trip_s: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(cells):
        for kind, code in kinds.items():
            trip_s[kind].append(_run(kernel, code.format(i=i)))
            kernel_s[kind].extend(_kernel_times(kernel, 1))
    _run(kernel, "get_engine().wait(timeout=60)")
    med = statistics.median
    result: dict[str, Any] = {"cells": cells}
    for kind in kinds:
        result[f"{kind}_kernel_ms"] = med(kernel_s[kind]) * 1e3
        result[f"{kind}_round_trip_ms"] = med(trip_s[kind]) * 1e3
    for clock in ("kernel", "round_trip"):
        result[f"overhead_{clock}_ms"] = result[f"job_{clock}_ms"] - result[f"api_{clock}_ms"]
        result[f"over_plain_{clock}_ms"] = result[f"job_{clock}_ms"] - result[f"plain_{clock}_ms"]
    return result


def bench_list(kernel: Any, jobs: int, repeat: int) -> dict[str, Any]:
    """``%jobs list`` with ``jobs`` finished jobs in the engine."""
    _run(kernel, "%jobs clear")
    _run(
        kernel,
        f"_e = get_engine()\nfor _i in range({jobs}):\n    _e.submit(pow, _i, 2, name=f'l{{_i}}')\n"
        "_e.wait(timeout=300)",
        timeout=600,
    )
    cold = kernel.eval("'pandas' in __import__('sys').modules") == "False"
    rt: list[float] = []
    for _ in range(repeat + 1):
        rt.append(_run(kernel, "%jobs list"))
    kernel_s = _kernel_times(kernel, repeat + 1)
    count = int(kernel.eval("len(get_engine().jobs)"))
    return {
        "jobs": count,
        # the first call of a kernel imports pandas (engine.list() returns a DataFrame)
        "first_imports_pandas": cold,
        "first_kernel_ms": kernel_s[0] * 1e3,
        "first_round_trip_ms": rt[0] * 1e3,
        "kernel_ms": statistics.median(kernel_s[1:]) * 1e3,
        "round_trip_ms": statistics.median(rt[1:]) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    from _kernel import running_kernel

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=200, help="cells of each kind (default 200)")
    p.add_argument("--jobs", type=int, default=1000, help="finished jobs for %%jobs list")
    p.add_argument("--repeat", type=int, default=5, help="%%jobs list runs (default 5)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    load = os.getloadavg()
    print(f"# bench_magics: {time.strftime('%Y-%m-%d %H:%M:%S')}, load {load[0]:.1f}, "
          f"{os.cpu_count()} cpus, repository {REPO}", file=sys.stderr)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, running_kernel(Path(tmp)) as kernel:
        _run(kernel, "%load_ext jupyter_executor")
        _run(kernel, "from jupyter_executor import get_engine")
        _run(kernel, _HOOKS)
        cells = bench_cells(kernel, args.cells)
        listed = bench_list(kernel, args.jobs, args.repeat)
    results = {"load": load[0], "cells": cells, "list": listed}
    print("| measure | kernel (pre→post run cell) | round trip (client) |")
    print("|---|---|---|")
    print(f"| `%%job` cell, median of {cells['cells']} | {cells['job_kernel_ms']:.2f} ms | "
          f"{cells['job_round_trip_ms']:.2f} ms |")  # fmt: skip
    print(f"| the same job through `get_engine().submit` | {cells['api_kernel_ms']:.2f} ms | "
          f"{cells['api_round_trip_ms']:.2f} ms |")  # fmt: skip
    print(f"| plain cell (`pass`) | {cells['plain_kernel_ms']:.2f} ms | "
          f"{cells['plain_round_trip_ms']:.2f} ms |")  # fmt: skip
    print(f"| **`%%job` beyond the job itself** (goal ≤ 3 ms) | "
          f"**{cells['overhead_kernel_ms']:.2f} ms** | "
          f"{cells['overhead_round_trip_ms']:.2f} ms |")  # fmt: skip
    print(f"| `%%job` beyond a plain cell | {cells['over_plain_kernel_ms']:.2f} ms | "
          f"{cells['over_plain_round_trip_ms']:.2f} ms |")  # fmt: skip
    print(f"| **`%jobs list`**, {listed['jobs']} jobs, median of {args.repeat} "
          f"(goal ≤ 100 ms) | **{listed['kernel_ms']:.1f} ms** | "
          f"{listed['round_trip_ms']:.1f} ms |")  # fmt: skip
    first = "first call, imports pandas" if listed["first_imports_pandas"] else "first call"
    print(f"| `%jobs list`, {first} | {listed['first_kernel_ms']:.1f} ms | "
          f"{listed['first_round_trip_ms']:.1f} ms |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
