"""What the history costs: reading it back, and keeping it during a burst of jobs (issue 14).

Run from the repository root::

    python benchmarks/bench_history.py              # 100k runs read, 1e5-job bursts, 3 rounds
    python benchmarks/bench_history.py --quick      # small sizes, 1 round (a smoke test)
    python benchmarks/bench_history.py --rounds 5 --json results.json
    python benchmarks/bench_history.py --burst-only --hog   # the bursts, then again under a hog

Every case runs in a fresh subprocess (``--worker``), so that no case inherits another's heap,
threads or page cache warmth; the cases of a round run one after the other in a rotated order,
and each ratio is taken within a round (the same machine load for both sides) before the
medians over the rounds are reported. Cases:

read
    ``engine.history()`` (a DataFrame of every run) on a folder holding N runs, against the
    floor: a plain ``sqlite3`` ``SELECT *`` of the same table into ``pandas.DataFrame``.
read-filtered
    ``engine.history(name=..., limit=100)``: the filters run in SQL (a fraction of ``read``).
write
    The floor of a row per run: plain ``sqlite3`` writes the rows of ``read``'s N runs again
    (read from its database beforehand, not timed) into a new database, in one transaction
    (``executemany``): into a table made by the same SQL as ours, with its indexes
    (``write-sqlite``), and into a bare table of the same columns without any index
    (``write-bare``). No engine, no fold, one thread: what SQLite alone costs per run.
burst
    N thread no-op jobs submitted at once and waited for (``engine.wait()``, which also waits
    for the history to be on disk), with ``history=True`` against ``history=False``.

The database for ``read`` is made once per size by a real engine running N async no-ops, and
its size is reported per 10,000 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _hog import cpu_hog  # (benchmarks/, this script's folder, is first on sys.path)

FULL = {"read": 100_000, "burst": 100_000}
QUICK = {"read": 2_000, "burst": 2_000}
CASES = (
    "read-ours", "read-sqlite", "read-filtered", "write-sqlite", "write-bare", "burst-on",
    "burst-off",
)  # fmt: skip


def _noop() -> None:
    return None


async def _anoop() -> None:
    return None


def make_db(folder: Path, n: int) -> dict[str, Any]:
    """Fill ``folder`` with ``n`` runs of async no-op jobs; its size in bytes per 10k runs."""
    from jupyter_executor import Engine, Job

    with Engine(folder=folder) as engine:
        for start in range(0, n, 10_000):
            jobs = [Job(_anoop(), name=f"job{i}") for i in range(start, min(n, start + 10_000))]
            engine.submit(*jobs)
            if not engine.wait(timeout=600):
                msg = "the jobs that fill the history did not finish"
                raise RuntimeError(msg)
    db = folder / "history.db"
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (count,) = con.execute("SELECT COUNT(*) FROM runs").fetchone()
    finally:
        con.close()
    size = sum(p.stat().st_size for p in folder.glob("history.db*"))
    return {"runs": count, "bytes_per_10k": size * 10_000 / max(1, count)}


def worker(case: str, n: int, folder: Path) -> dict[str, Any]:
    """Run one case in this (fresh) process; its timings."""
    import pandas as pd

    from jupyter_executor import Engine, Job

    out: dict[str, Any] = {"case": case, "n": n}
    if case == "read-sqlite":
        t0 = time.perf_counter()
        con = sqlite3.connect(folder / "history.db")
        cur = con.execute("SELECT * FROM runs")
        columns = [d[0] for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=columns)
        con.close()
        out["seconds"] = time.perf_counter() - t0
        out["rows"] = len(frame)
    elif case in ("write-sqlite", "write-bare"):
        out["seconds"], out["rows"] = _write_floor(folder, case == "write-bare")
    elif case in ("read-ours", "read-filtered"):
        engine = Engine(folder=folder)
        try:
            t0 = time.perf_counter()
            if case == "read-ours":
                frame = engine.history()
            else:
                try:
                    frame = engine.history(f"job{n // 2}", limit=100)
                except TypeError:  # a version without the filters: the name alone
                    frame = engine.history(f"job{n // 2}")
            out["seconds"] = time.perf_counter() - t0
            out["rows"] = len(frame)
        finally:
            engine.shutdown()
    elif case in ("burst-on", "burst-off"):
        engine = Engine(folder=folder / "burst", history=case == "burst-on")
        try:
            warm = [Job(_noop, backend="thread") for _ in range(200)]
            engine.submit(*warm)
            engine.wait(timeout=60)
            t0 = time.perf_counter()
            c0 = time.process_time()
            jobs = [Job(_noop, backend="thread") for _ in range(n)]
            engine.submit(*jobs)
            ok = engine.wait(timeout=1200)
            out["seconds"] = time.perf_counter() - t0
            out["cpu"] = time.process_time() - c0
            if not ok or not all(j.status == "done" for j in jobs):
                msg = "a burst job did not finish"
                raise RuntimeError(msg)
        finally:
            engine.shutdown()
    else:
        msg = f"unknown case {case!r}"
        raise ValueError(msg)
    return out


def _write_floor(folder: Path, bare: bool) -> tuple[float, int]:
    """Seconds plain sqlite3 takes to write again the runs of ``folder``'s history (see
    ``write`` in the module's docstring), and how many rows."""
    src = sqlite3.connect(folder / "history.db")
    try:
        (table,) = src.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()
        indexes = [
            sql
            for (sql,) in src.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' "
                "AND sql IS NOT NULL"
            )
        ]
        columns = [row[1] for row in src.execute("PRAGMA table_info(runs)")][1:]  # not id
        rows = src.execute(f"SELECT {', '.join(columns)} FROM runs").fetchall()
    finally:
        src.close()
    with tempfile.TemporaryDirectory(prefix="write-floor-") as tmp:
        con = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        try:
            # As the engine's store sets it (store/_schema.py connect).
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            if bare:
                con.execute(f"CREATE TABLE runs (id INTEGER PRIMARY KEY, {', '.join(columns)})")
            else:
                con.execute(table)
                for sql in indexes:
                    con.execute(sql)
            insert = (
                f"INSERT INTO runs ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            t0 = time.perf_counter()
            con.execute("BEGIN IMMEDIATE")
            con.executemany(insert, rows)
            con.execute("COMMIT")
            seconds = time.perf_counter() - t0
        finally:
            con.close()
    return seconds, len(rows)


def _run_case(case: str, n: int, folder: Path) -> dict[str, Any]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", case, str(n), str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        msg = f"case {case} failed:\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _rounds(
    cases: tuple[str, ...], sizes: dict[str, int], rounds: int, tmp: Path, folder: Path
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Run ``rounds`` rounds of ``cases`` (rotated order); the raw results and the ratios.

    Each ratio is taken within a round (the same machine load for both sides): wall time,
    and the burst's process CPU time (all threads), which moves less with the load.
    """
    raw: list[dict[str, Any]] = []
    ratios: dict[str, list[float]] = {
        "read": [], "burst": [], "burst_cpu": [], "filtered": [], "write": [], "write_bare": [],
        "budget": [],
    }  # fmt: skip
    for r in range(rounds):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        got: dict[str, dict[str, Any]] = {}
        for case in order:
            n = sizes["burst"] if case.startswith("burst") else sizes["read"]
            got[case] = _run_case(case, n, tmp / case if case.startswith("b") else folder)
            raw.append({"round": r, **got[case]})
        if "read-ours" in got:
            ratios["read"].append(got["read-ours"]["seconds"] / got["read-sqlite"]["seconds"])
            ratios["filtered"].append(got["read-filtered"]["seconds"])
        if "write-sqlite" in got:
            for key, case in (("write", "write-sqlite"), ("write_bare", "write-bare")):
                ratios[key].append(1e6 * got[case]["seconds"] / got[case]["rows"])
        if "burst-on" in got:
            on, off = got["burst-on"], got["burst-off"]
            ratios["burst"].append(on["seconds"] / off["seconds"])
            ratios["burst_cpu"].append(on["cpu"] / off["cpu"])
            # What the 1.3x goal leaves the history per job: 0.3 of a job without it.
            ratios["budget"].append(1e6 * 0.3 * off["seconds"] / off["n"])
    return raw, ratios


def _table(
    raw: list[dict[str, Any]], ratios: dict[str, list[float]], sizes: dict[str, int]
) -> list[str]:
    med = statistics.median
    secs = {c: med(x["seconds"] for x in raw if x["case"] == c) for c in {x["case"] for x in raw}}
    lines = ["| case | median s | ratio (within a round, median) | goal |", "|---|---|---|---|"]
    if ratios["read"]:
        lines += [
            f"| engine.history(), {sizes['read']:,} runs | {secs['read-ours']:.3f} | "
            f"{med(ratios['read']):.2f}x plain sqlite3 -> pandas ({secs['read-sqlite']:.3f} s) "
            "| <= 3x |",
            f"| engine.history(name, limit=100) | {med(ratios['filtered']):.4f} | | |",
        ]
    if ratios["write"]:
        lines += [
            f"| plain sqlite3 writes {sizes['read']:,} runs again, our table and indexes "
            f"| {secs['write-sqlite']:.3f} | {med(ratios['write']):.2f} us per run | floor |",
            f"| the same into a bare table (no index) | {secs['write-bare']:.3f} | "
            f"{med(ratios['write_bare']):.2f} us per run | floor |",
        ]
    if ratios["burst"]:
        each = ", ".join(f"{x:.2f}" for x in ratios["burst"])
        each_cpu = ", ".join(f"{x:.2f}" for x in ratios["burst_cpu"])
        lines += [
            f"| {sizes['burst']:,} thread no-ops, history on | {secs['burst-on']:.3f} | "
            f"{med(ratios['burst']):.2f}x history off ({secs['burst-off']:.3f} s); "
            f"rounds {each} | <= 1.3x |",
            f"| the same, process CPU time | | {med(ratios['burst_cpu']):.2f}x; "
            f"rounds {each_cpu} | |",
            f"| what 1.3x leaves the history per job (0.3 x history off) | | "
            f"{med(ratios['budget']):.2f} us | |",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the table of ratios (medians over rounds)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    parser.add_argument("--burst-only", action="store_true", help="only the burst cases")
    parser.add_argument(
        "--hog", action="store_true", help="then a second pass with a CPU hog on the last core"
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("CASE", "N", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        case, n, folder = args.worker
        print(json.dumps(worker(case, int(n), Path(folder))))
        return 0
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 3)
    cases = tuple(c for c in CASES if c.startswith("burst")) if args.burst_only else CASES
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        folder = Path(tmp) / "read"
        made = make_db(folder, sizes["read"]) if not args.burst_only else None
        load = os.getloadavg()
        raw, ratios = _rounds(cases, sizes, rounds, Path(tmp), folder)
        lines = [f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"]
        if made is not None:
            mb = made["bytes_per_10k"] / 1e6
            lines.append(f"history of {made['runs']:,} runs: {mb:.2f} MB per 10k runs")
        lines += _table(raw, ratios, sizes)
        out: dict[str, Any] = {"made": made, "raw": raw, "ratios": ratios}
        if args.hog:
            with cpu_hog() as hog:
                hog_raw, hog_ratios = _rounds(cases, sizes, rounds, Path(tmp), folder)
            lines += [
                "",
                f"Second pass, a CPU hog spinning on core {hog['core']}"
                + ("" if hog["alive"] else " (it died before the pass ended)"),
                *_table(hog_raw, hog_ratios, sizes),
            ]
            out["hog"] = {"raw": hog_raw, "ratios": hog_ratios}
        print("\n".join(lines))
        if args.json is not None:
            args.json.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
