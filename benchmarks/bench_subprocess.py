"""The subprocess path against its floor (issue 14): short commands, side by side.

Run from the repository root::

    python benchmarks/bench_subprocess.py               # 5 rounds, 200 commands a burst
    python benchmarks/bench_subprocess.py --hog         # the same with a CPU hog on the last core
    python benchmarks/bench_subprocess.py --rounds 3 --n 100 --json results.json

Cases, each in a fresh process (``--worker CASE``) that warms up first, then times:

- ``pool``: N x ``subprocess.run(["true"])`` in a ``ThreadPoolExecutor(4)`` (the floor);
- ``engine``: N x ``["true"]`` on the subprocess backend limited to 4 at a time, submit to the
  last end, one ``engine.wait()`` (its history on, in a temporary folder, as in a notebook);
- ``one_run``: one ``subprocess.run(["true"])``, the median of 30;
- ``one_engine``: one ``["true"]`` job, submit to end, the median of 30.

The rounds interleave the cases (in a rotated order), and the ratios are taken within a round
(engine / pool, one_engine / one_run), so that a change of load between rounds moves both sides
of a ratio together; the report gives each ratio's median and range over the rounds. ``--hog``
keeps a busy-looping process pinned to the last core during the rounds (``_hog.py``, as the
other scripts), to see whether the ratios hold under load. Absolute times depend on the machine
and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _hog import cpu_hog  # (benchmarks/, this script's folder, is first on sys.path)

ROOT = Path(__file__).resolve().parent.parent
CASES = ("pool", "engine", "one_run", "one_engine")
ONE = 30  # single commands timed per case; the median is reported
CONCURRENCY = 4


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _pool(n: int) -> dict[str, Any]:
    def run(_: int) -> int:
        return subprocess.run(["true"], check=True).returncode

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(run, range(8)))  # warm-up
        cpu = _children_cpu()
        t = time.perf_counter()
        list(pool.map(run, range(n)))
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "child_cpu_ms": (_children_cpu() - cpu) / n * 1000}


def _engine(n: int) -> dict[str, Any]:
    from jupyter_executor import Engine, Job

    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(folder=folder, limits={"subprocess": CONCURRENCY})
        try:
            warm = [engine.submit(["true"], name=f"warm-{i}") for i in range(8)]
            for job in warm:
                engine.wait_job(job, 60)
            cpu = _children_cpu()
            t = time.perf_counter()
            jobs = engine.submit(*[Job(["true"], name=f"t-{i}") for i in range(n)])
            # One wait for the burst, as the pool's map: a wait_job per job also flushed the
            # history once per job (200 commits that measured the waiting, not the backend).
            engine.wait(timeout=120)
            seconds = time.perf_counter() - t
            failed = [j.name for j in jobs if j.status.value != "done"]
            if failed:
                msg = f"{len(failed)} jobs did not end done: {failed[:5]}"
                raise RuntimeError(msg)
        finally:
            engine.shutdown()
    return {"seconds": seconds, "child_cpu_ms": (_children_cpu() - cpu) / n * 1000}


def _one_run(_: int) -> dict[str, Any]:
    subprocess.run(["true"], check=True)
    times = []
    for _ in range(ONE):
        t = time.perf_counter()
        subprocess.run(["true"], check=True)
        times.append(time.perf_counter() - t)
    return {"seconds": statistics.median(times)}


def _one_engine(_: int) -> dict[str, Any]:
    from jupyter_executor import Engine

    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(folder=folder)
        try:
            engine.wait_job(engine.submit(["true"], name="warm"), 60)
            times = []
            for i in range(ONE):
                t = time.perf_counter()
                job = engine.submit(["true"], name=f"one-{i}")
                engine.wait_job(job, 60)
                times.append(time.perf_counter() - t)
                if job.status.value != "done":
                    msg = f"job {job.name} ended {job.status.value}"
                    raise RuntimeError(msg)
        finally:
            engine.shutdown()
    return {"seconds": statistics.median(times)}


WORKERS = {"pool": _pool, "engine": _engine, "one_run": _one_run, "one_engine": _one_engine}


def run_case(case: str, n: int) -> dict[str, Any]:
    """Run ``case`` in a fresh interpreter and return what it measured."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--worker", case, "--n", str(n)],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        msg = f"case {case} failed:\n{done.stderr[-2000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print a table of medians and within-round ratios."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--n", type=int, default=200, help="commands in a burst")
    p.add_argument("--hog", action="store_true", help="with a CPU hog on the last core")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.n)))
        return 0
    rounds: list[dict[str, dict[str, Any]]] = []
    # The hog of the other scripts: pinned to the last core (an unpinned one, as this script
    # had, moved between the cores and loaded both, unlike what the other rows measured).
    with cpu_hog() if args.hog else contextlib.nullcontext():
        for r in range(args.rounds):
            order = CASES[r % len(CASES) :] + CASES[: r % len(CASES)]
            rounds.append({case: run_case(case, args.n) for case in order})
    burst = [r["engine"]["seconds"] / r["pool"]["seconds"] for r in rounds]
    one = [r["one_engine"]["seconds"] / r["one_run"]["seconds"] for r in rounds]
    print(f"subprocess path, {args.rounds} rounds, load: {'CPU hog' if args.hog else 'none added'}")
    print(f"  {args.n} x true, concurrency {CONCURRENCY}:")
    print(f"    pool   {_spread([r['pool']['seconds'] for r in rounds])} s")
    print(f"    engine {_spread([r['engine']['seconds'] for r in rounds])} s")
    print(f"    ratio  {_spread(burst)} x (goal <= 3)")
    cpu_pool = _spread([r["pool"]["child_cpu_ms"] for r in rounds])
    cpu_engine = _spread([r["engine"]["child_cpu_ms"] for r in rounds])
    print(f"    children's CPU per command: pool {cpu_pool} ms, engine {cpu_engine} ms")
    print("  one true, submit to end:")
    print(f"    subprocess.run {_spread([r['one_run']['seconds'] * 1000 for r in rounds])} ms")
    print(f"    engine         {_spread([r['one_engine']['seconds'] * 1000 for r in rounds])} ms")
    print(f"    ratio          {_spread(one)} x (goal: engine <= 10 ms)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
