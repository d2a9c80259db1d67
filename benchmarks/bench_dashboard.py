"""Benchmark of the live dashboard (issue 4): render time in headless Chromium, and the traffic
from the kernel to the browser while 1,000 jobs change state.

Run from the repository root::

    python benchmarks/bench_dashboard.py            # everything (about 2 min on 2 cores)
    python benchmarks/bench_dashboard.py --quick    # fewer rounds, shorter traffic window
    python benchmarks/bench_dashboard.py --no-lab --json out.json

Three measurements:

1. **Render, bundle alone**: the shipped ``static/dashboard.js`` in a blank Chromium page with an
   in-page model, given the initial snapshot of a real engine with 1,000 / 10,000 finished jobs.
   ``drawn`` is the time ``render()`` takes to put the first rows in the DOM, ``painted`` adds two
   animation frames. The kernel side (building the snapshot) is timed too.
2. **Render, JupyterLab**: a cell ``Dashboard(engine)`` is run in JupyterLab 4; the time from
   running the cell to the rows being in the page (kernel snapshot, comm transfer, module load,
   render) is measured in the page.
3. **Traffic**: a real kernel (``jupyter_client``) runs a dashboard over 1,000 async jobs that
   print, report progress and finish at random, and are rerun as soon as they finish, so every
   job keeps changing state. A ZeroMQ subscriber on the kernel's iopub socket counts the raw bytes
   and the messages of the dashboard's comm, per second, over a window of steady state. The
   engine's own event rate is reported next to it: the coalescing ratio.

Needs Debian ``chromium`` and Playwright for Python for 1 and 2 (``--no-browser`` skips them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The browser harness lives with the tests (tests/_browser.py); benchmarks reuse it.
sys.path.insert(0, str(REPO / "tests"))


# -- 1. render, bundle alone ----------------------------------------------------------------------
def _snapshot_of_engine(n: int, folder: Path) -> tuple[dict[str, Any], float]:
    from jupyter_executor import Engine
    from jupyter_executor._jobinfo import info_dict
    from jupyter_executor._publisher import encode_snapshot, table_row

    engine = Engine(folder=folder)
    try:
        for i in range(n):
            engine.submit(pow, i, 2, name=f"job-{i}")
        engine.wait(timeout=300)
        t0 = time.perf_counter()
        rows = [table_row(info_dict(job, tail=False)) for job in engine]  # as the publisher does
        snap = encode_snapshot(rows, seq=0)
        build_ms = (time.perf_counter() - t0) * 1000
    finally:
        engine.shutdown()
    return snap, build_ms


def bench_render(sizes: list[int], rounds: int, tmp: Path) -> list[dict[str, Any]]:
    from _browser import chromium, widget_page

    results = []
    with chromium(tmp) as browser:
        for n in sizes:
            snap, build_ms = _snapshot_of_engine(n, tmp / f"engine-{n}")
            drawn, painted = [], []
            for _ in range(rounds):
                page, t = widget_page(browser, "dashboard", snap)
                rows = page.locator(".je-row").count()
                page.close()
                drawn.append(t["drawn"])
                painted.append(t["painted"])
            results.append(
                {
                    "jobs": n,
                    "snapshot_bytes": len(json.dumps(snap)),
                    "kernel_snapshot_ms": round(build_ms, 1),
                    "drawn_ms": round(statistics.median(drawn), 1),
                    "painted_ms": round(statistics.median(painted), 1),
                    "rows_in_dom": rows,
                }
            )
    return results


# -- 2. render, JupyterLab ------------------------------------------------------------------------
def bench_lab(sizes: list[int], tmp: Path) -> list[dict[str, Any]]:
    import nbformat
    from _browser import add_and_run_cell, chromium, jupyter_lab, open_notebook, wait_idle

    root = tmp / "lab-root"
    root.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    nbformat.write(nb, root / "bench.ipynb")
    results = []
    with jupyter_lab(tmp, root) as lab, chromium(tmp) as browser:
        page = open_notebook(browser, lab, "bench.ipynb")
        panel = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
        for n in sizes:
            add_and_run_cell(
                page,
                "from jupyter_executor import Engine\n"
                "from jupyter_executor.widget import Dashboard\n"
                f"eng{n} = Engine(folder='.engine-{n}')\n"
                f"for i in range({n}):\n"
                f"    eng{n}.submit(pow, i, 2, name=f'job-{{i}}')\n"
                f"assert eng{n}.wait(timeout=300)",
            )
            wait_idle(page, timeout=300)
            t0 = add_and_run_cell(page, f"Dashboard(eng{n})")
            ms = page.evaluate(
                """([id, t0, n]) => new Promise((resolve) => {
                  const check = () => {
                    const el = [...document.querySelectorAll(`#${id} .je-dash`)]
                      .find((e) => e.dataset.rows === String(n));
                    if (el && el.querySelector(".je-row")) {
                      const render = Number(el.dataset.firstDrawMs);
                      resolve({ total: performance.now() - t0, render });
                    } else requestAnimationFrame(check);
                  };
                  check();
                })""",
                [panel, t0, n],
            )
            wait_idle(page)
            results.append(
                {"jobs": n, "cell_to_rows_ms": round(ms["total"], 1), "render_ms": ms["render"]}
            )
            add_and_run_cell(page, f"eng{n}.shutdown()")
            wait_idle(page)
        page.close()
    return results


# -- 3. traffic -----------------------------------------------------------------------------------
KERNEL_SETUP = textwrap.dedent(
    """
    import asyncio, random, threading, time
    from jupyter_executor import Engine, progress
    from jupyter_executor.widget import Dashboard

    eng = Engine(folder=".bench-traffic")
    events = [0]
    eng.subscribe(lambda event, job: events.__setitem__(0, events[0] + 1))

    async def work(i):
        steps = random.randint(3, 12)
        for s in range(steps):
            await asyncio.sleep(random.uniform(0.05, 0.2))
            print(f"job {i} step {s} of {steps}")
            progress(s + 1, steps, f"step {s + 1}")
        if random.random() < 0.1:
            raise ValueError(f"job {i} failed at random")
        return i

    for i in range(1000):
        eng.submit(work, i, name=f"job-{i}")

    stop = threading.Event()
    def rerun_finished():
        # keep all 1,000 jobs cycling pending -> running -> done/failed -> pending ...
        while not stop.is_set():
            for job in list(eng):
                if job.done():
                    try:
                        job.rerun()
                    except Exception:
                        pass
            time.sleep(0.05)
    threading.Thread(target=rerun_finished, daemon=True).start()

    dash = Dashboard(eng)
    display(dash)
    print("COMM", dash.model_id)
    """
)


def bench_traffic(seconds: float, warmup: float, tmp: Path) -> dict[str, Any]:
    import zmq
    from jupyter_client import KernelManager

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["IPYTHONDIR"] = str(tmp / "ipython")
    km = KernelManager(kernel_name="python3")
    km.connection_file = str(tmp / "kernel.json")
    km.start_kernel(env=env, cwd=str(tmp))
    kc = km.client()
    kc.start_channels()
    counts: list[tuple[float, int, str]] = []  # (time, raw bytes, comm id) of every comm_msg
    opens: dict[str, int] = {}
    stop = threading.Event()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 200)
    sub.connect(f"{km.transport}://{km.ip}:{km.iopub_port}")

    def reader() -> None:
        session = km.session
        while not stop.is_set():
            try:
                frames = sub.recv_multipart(copy=True)
            except zmq.Again:
                continue
            size = sum(len(f) for f in frames)
            _, parts = session.feed_identities(frames)
            msg = session.deserialize(parts, content=True)
            kind = msg["header"]["msg_type"]
            if kind == "comm_msg":
                counts.append((time.monotonic(), size, msg["content"].get("comm_id", "")))
            elif kind == "comm_open":
                opens[msg["content"]["comm_id"]] = size

    thread = threading.Thread(target=reader, daemon=True)
    try:
        kc.wait_for_ready(timeout=60)
        thread.start()
        time.sleep(0.5)
        reply = kc.execute_interactive(KERNEL_SETUP, timeout=120, output_hook=_collect(out := []))
        assert reply["content"]["status"] == "ok", reply["content"]
        comm_id = next(
            line.split()[1] for line in "".join(out).splitlines() if line.startswith("COMM")
        )

        def engine_events() -> int:
            lines: list[str] = []
            kc.execute_interactive("print(events[0])", timeout=30, output_hook=_collect(lines))
            return int("".join(lines).strip())

        time.sleep(warmup)
        e0, t0 = engine_events(), time.monotonic()
        time.sleep(seconds)
        e1, t1 = engine_events(), time.monotonic()
        window = [(t, b) for t, b, c in counts if c == comm_id and t0 <= t <= t1]
        per_second: dict[int, list[int]] = {}
        for t, b in window:
            per_second.setdefault(int(t - t0), []).append(b)
        full = [per_second.get(s, []) for s in range(int(seconds))]
        kc.execute_interactive("stop.set(); dash.close(); eng.shutdown()", timeout=60)
        return {
            "jobs": 1000,
            "seconds": round(t1 - t0, 2),
            "engine_events_per_s": round((e1 - e0) / (t1 - t0)),
            "msgs_per_s": round(len(window) / (t1 - t0), 2),
            "max_msgs_in_1s": max((len(s) for s in full), default=0),
            "kb_per_s": round(sum(b for _, b in window) / (t1 - t0) / 1000, 1),
            "max_kb_in_1s": round(max((sum(s) for s in full), default=0) / 1000, 1),
            "mean_msg_kb": round(statistics.mean(b for _, b in window) / 1000, 2) if window else 0,
            "initial_state_kb": round(opens.get(comm_id, 0) / 1000, 1),
        }
    finally:
        stop.set()
        thread.join(5)
        sub.close(linger=0)
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def _collect(sink: list[str]) -> Any:
    def hook(msg: dict[str, Any]) -> None:
        if msg["header"]["msg_type"] == "stream":
            sink.append(msg["content"]["text"])

    return hook


# -- report ---------------------------------------------------------------------------------------
def report(results: dict[str, Any]) -> str:
    lines = ["# Dashboard benchmark", ""]
    if results.get("render"):
        lines += [
            "## Render in headless Chromium (bundle alone, in-page model)",
            "",
            "| jobs | snapshot | kernel builds it | render() | + 2 frames | rows in DOM |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["render"]:
            lines.append(
                f"| {r['jobs']:,} | {r['snapshot_bytes'] / 1e6:.2f} MB "
                f"| {r['kernel_snapshot_ms']} ms "
                f"| {r['drawn_ms']} ms | {r['painted_ms']} ms | {r['rows_in_dom']} |"
            )
        lines.append("")
    if results.get("lab"):
        lines += [
            "## Render in JupyterLab 4 (run the cell -> rows in the page)",
            "",
            "| jobs | cell to rows | of which render() |",
            "|---:|---:|---:|",
        ]
        for r in results["lab"]:
            lines.append(f"| {r['jobs']:,} | {r['cell_to_rows_ms']} ms | {r['render_ms']} ms |")
        lines.append("")
    t = results.get("traffic")
    if t:
        lines += [
            "## Kernel -> browser traffic, 1,000 jobs changing state continuously",
            "",
            "| engine events/s | messages/s (max in 1 s) | KB/s (max in 1 s) "
            "| mean message | initial state |",
            "|---:|---:|---:|---:|---:|",
            f"| {t['engine_events_per_s']:,} | {t['msgs_per_s']} ({t['max_msgs_in_1s']}) "
            f"| {t['kb_per_s']} ({t['max_kb_in_1s']}) | {t['mean_msg_kb']} KB "
            f"| {t['initial_state_kb']} KB |",
            "",
            f"Window: {t['seconds']} s of steady state; "
            "bytes are raw iopub frames of the dashboard's comm.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="1 round, 5 s traffic window, no JupyterLab"
    )
    p.add_argument("--no-browser", action="store_true", help="traffic only")
    p.add_argument("--no-lab", action="store_true", help="skip the JupyterLab measurement")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    args = p.parse_args(argv)
    rounds = 1 if args.quick else 5
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_browser:
            results["render"] = bench_render([1_000, 10_000], rounds, tmp / "render")
            if not (args.quick or args.no_lab):
                results["lab"] = bench_lab([1_000, 10_000], tmp / "lab")
        (tmp / "traffic").mkdir()
        results["traffic"] = bench_traffic(5.0 if args.quick else 15.0, 3.0, tmp / "traffic")
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
