"""Benchmark of the live dashboard (issue 4) and of the job views (issue 11): render time in
headless Chromium, the time from a page reload to a correct table, and the traffic from the
kernel to the browser while 1,000 jobs change state or 100 job views print.

Run from the repository root::

    python benchmarks/bench_dashboard.py            # everything (about 3 min on 2 cores)
    python benchmarks/bench_dashboard.py --quick    # fewer rounds, shorter windows, no JupyterLab
    python benchmarks/bench_dashboard.py --no-lab --json out.json
    python benchmarks/bench_dashboard.py --only reload,views

Five measurements (``--only`` names them):

1. ``render``, the bundle alone: the shipped ``static/dashboard.js`` in a blank Chromium page with
   an in-page model, given the initial snapshot of a real engine with 1,000 / 10,000 finished
   jobs. ``drawn`` is the time ``render()`` takes to put the first rows in the DOM, ``painted``
   adds two animation frames. The kernel side (building the snapshot) is timed too.
2. ``lab``, render in JupyterLab: a cell ``Dashboard(engine)`` is run in JupyterLab 4; the time
   from running the cell to the rows being in the page (kernel snapshot, comm transfer, module
   load, render) is measured in the page.
3. ``reload``, JupyterLab: a notebook shows ``%jobs`` and then runs 1,000 / 10,000 jobs (one in
   seven fails), is saved, and the page is reloaded (kernel alive, 3 times). The page records,
   from the navigation's start, when the notebook's cells are in the page (JupyterLab's own load,
   the floor), when the table is drawn and when it is correct: every job listed and the status
   counts of its header equal to ``engine.list()``'s (issue 11: goal < 1 s at 10,000).
4. ``traffic``: a real kernel (``jupyter_client``) runs a dashboard over 1,000 async jobs that
   print, report progress and finish at random, and are rerun as soon as they finish, so every
   job keeps changing state. A ZeroMQ subscriber on the kernel's iopub socket counts the raw
   bytes and the messages of the dashboard's comm, per second, over a window of steady state.
   The engine's own event rate is reported next to it: the coalescing ratio.
5. ``views``: 100 ``%%job`` cells in a real kernel, each job printing 10 lines a second, and a
   ``%jobs`` table: the comm messages of the job views and of the table per second (issue 11:
   goal within the budget of 20 messages/s for all job views, ``_publisher.JOB_VIEWS_PACER``,
   plus 10 for the table).

Needs Debian ``chromium`` and Playwright for Python for 1-3 (``--no-browser`` skips them).
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


# -- 2b. reload, JupyterLab ----------------------------------------------------------------------
# Times recorded by the page itself at each animation frame (no round trip to Playwright in the
# measurement); ``performance.now()`` counts from the navigation's start, i.e. from the reload.
# ``cells``: the notebook's cells are in the page (JupyterLab's own loading, the floor);
# ``kernel``: the page's connection to the (running) kernel is up, widgets can be restored;
# ``dash``: the dashboard's view is drawn (maybe from stale state); ``correct``: the table lists
# every job (``data-rows``) and its status chips hold the engine's counts per status.
_WATCH_RELOAD = """(() => {
  const want = %s;
  const total = Object.values(want).reduce((a, b) => a + b, 0);
  const t = window.__jeReload = { cells: null, kernel: null, dash: null, correct: null };
  const check = () => {
    if (t.cells === null && document.querySelector(".jp-Notebook .jp-Cell"))
      t.cells = performance.now();
    const app = window.jupyterapp;
    const kernel = app && app.shell.currentWidget && app.shell.currentWidget.sessionContext
      && app.shell.currentWidget.sessionContext.session
      && app.shell.currentWidget.sessionContext.session.kernel;
    if (t.kernel === null && kernel && kernel.connectionStatus === "connected")
      t.kernel = performance.now();
    const el = document.querySelector(".je-dash");
    if (el && t.dash === null) t.dash = performance.now();
    if (el && el.dataset.rows === String(total)) {
      const shown = {};
      for (const chip of el.querySelectorAll(".je-counts .je-chip"))
        shown[chip.dataset.status] = Number(chip.querySelector("b").textContent);
      const ok = Object.keys(want).every((s) => shown[s] === want[s])
        && Object.entries(shown).every(([s, c]) => c === (want[s] || 0));
      if (ok) { t.correct = performance.now(); return; }
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();"""

_COUNTS = (
    "import json\nfrom jupyter_executor import get_engine\n"
    "print(json.dumps(get_engine().list().status.value_counts().to_dict()))"
)


def bench_reload(sizes: list[int], rounds: int, tmp: Path) -> list[dict[str, Any]]:
    """Reload the page of a notebook whose ``%jobs`` table was drawn before its jobs ran: the
    table's state in the page's widget manager is stale (empty) and must be brought up to date."""
    from _browser import (
        chromium,
        jupyter_lab,
        kernel_execute,
        open_notebook,
        run_all_cells,
        wait_idle,
        write_notebook,
    )

    root = tmp / "lab-root"
    for n in sizes:
        (root / f"n{n}").mkdir(parents=True)
        write_notebook(
            root / f"n{n}" / "reload.ipynb",
            [
                "%load_ext jupyter_executor\nfrom jupyter_executor import get_engine",
                "%jobs",
                # one job in seven fails, so the table has two statuses to get right
                "eng = get_engine()\n"
                f"for i in range({n}):\n"
                "    eng.submit(divmod, 1, i % 7, name=f'job-{i}')\n"
                "assert eng.wait(timeout=300)",
            ],
        )
    results = []
    with jupyter_lab(tmp, root) as lab, chromium(tmp) as browser:
        for n in sizes:
            page = open_notebook(browser, lab, f"n{n}/reload.ipynb")
            run_all_cells(page, timeout=600)
            want = json.loads(kernel_execute(page, _COUNTS).strip().splitlines()[-1])
            assert sum(want.values()) == n, want
            page.add_init_script(_WATCH_RELOAD % json.dumps(want))
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function(
                "() => !window.jupyterapp.shell.currentWidget.context.model.dirty"
            )
            times: dict[str, list[float]] = {"cells": [], "kernel": [], "dash": [], "correct": []}
            for _ in range(rounds):
                page.reload()
                page.wait_for_function(
                    "() => window.__jeReload && window.__jeReload.correct !== null",
                    polling=200,
                    timeout=120_000,
                )
                got = page.evaluate("() => window.__jeReload")
                for key, values in times.items():
                    values.append(got[key])
                wait_idle(page)
            kernel_execute(page, "get_engine().shutdown()")
            page.close()
            median = {k: statistics.median(v) for k, v in times.items()}
            results.append(
                {
                    "jobs": n,
                    "statuses": want,
                    "rounds": rounds,
                    "reload_to_cells_ms": round(median["cells"], 1),
                    "reload_to_kernel_ms": round(median["kernel"], 1),
                    "reload_to_view_ms": round(median["dash"], 1),
                    "reload_to_correct_ms": round(median["correct"], 1),
                    "view_to_correct_ms": round(
                        statistics.median(
                            c - d for c, d in zip(times["correct"], times["dash"], strict=True)
                        ),
                        1,
                    ),
                    "reload_to_correct_all_ms": [round(c) for c in times["correct"]],
                }
            )
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
    with _CommTap(tmp) as tap:
        kc, counts = tap.kc, tap.msgs
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
            "initial_state_kb": round(tap.opens.get(comm_id, (0, {}))[0] / 1000, 1),
        }


# -- 4. traffic of many job views --------------------------------------------------------------
VIEWS_SETUP = textwrap.dedent(
    """
    %load_ext jupyter_executor
    import threading, time
    from jupyter_executor import get_engine
    # every job runs at once (the thread backend runs 32 at a time by default)
    get_engine(limits={"thread": None})
    stop = threading.Event()
    lines = [0]
    """
)
# Each view's job prints a line every 0.1 s until told to stop: 100 of them print 1,000 lines/s.
VIEW_CELL = textwrap.dedent(
    """
    %%job view-{i}
    k = 0
    while not stop.is_set():
        k += 1
        print(f"view {i} line {{k}}")
        lines[0] += 1
        stop.wait(0.1)
    k
    """
).lstrip()


def bench_views_traffic(n_views: int, seconds: float, warmup: float, tmp: Path) -> dict[str, Any]:
    """``n_views`` ``%%job`` cells (each with its view) and a ``%jobs`` dashboard in a real
    kernel, every job printing 10 lines/s; count the comm messages of the views and of the
    dashboard per second on the kernel's iopub socket."""
    with _CommTap(tmp) as tap:
        return _views_traffic(tap, n_views, seconds, warmup)


def _views_traffic(tap: _CommTap, n_views: int, seconds: float, warmup: float) -> dict[str, Any]:
    kc, msgs = tap.kc, tap.msgs

    def run(code: str) -> str:
        out: list[str] = []
        reply = kc.execute_interactive(code, timeout=120, output_hook=_collect(out))
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)

    run(VIEWS_SETUP)
    run("%jobs")
    for i in range(n_views):
        run(VIEW_CELL.format(i=i))
    time.sleep(warmup)
    l0, t0 = int(run("print(lines[0])").split()[-1]), time.monotonic()
    time.sleep(seconds)
    l1, t1 = int(run("print(lines[0])").split()[-1]), time.monotonic()
    run("stop.set()\nassert get_engine().wait(timeout=60)")
    kinds = {c: _anywidget_id(content) for c, (_, content) in tap.opens.items()}
    views = {c for c, k in kinds.items() if k.endswith(".JobView")}
    dashes = {c for c, k in kinds.items() if k.endswith(".Dashboard")}
    assert len(views) == n_views and len(dashes) == 1, (len(views), len(dashes))

    def rate(comms: set[str]) -> tuple[float, int, float]:
        window = [(t, b) for t, b, c in msgs if c in comms and t0 <= t <= t1]
        per_second = [0] * int(seconds)
        for t, _ in window:
            if int(t - t0) < len(per_second):
                per_second[int(t - t0)] += 1
        kb = sum(b for _, b in window) / (t1 - t0) / 1000
        return round(len(window) / (t1 - t0), 2), max(per_second, default=0), round(kb, 1)

    v_rate, v_max, v_kb = rate(views)
    d_rate, d_max, d_kb = rate(dashes)
    both = [
        sum(1 for t, _, c in msgs if (c in views or c in dashes) and t0 + s <= t < t0 + s + 1)
        for s in range(int(seconds))
    ]
    views_updated = len({c for t, _, c in msgs if c in views and t0 <= t <= t1})
    run("get_engine().shutdown()")
    return {
        "views": n_views,
        "seconds": round(t1 - t0, 2),
        "lines_per_s": round((l1 - l0) / (t1 - t0)),
        "views_msgs_per_s": v_rate,
        "views_max_in_1s": v_max,
        "views_kb_per_s": v_kb,
        "views_updated_in_window": views_updated,
        "dashboard_msgs_per_s": d_rate,
        "dashboard_max_in_1s": d_max,
        "dashboard_kb_per_s": d_kb,
        "total_max_in_1s": max(both, default=0),
    }


def _anywidget_id(content: dict[str, Any]) -> str:
    return str(content.get("data", {}).get("state", {}).get("_anywidget_id", ""))


class _CommTap:
    """A real kernel for a traffic case, and a thread that records the comm messages it sends.

    ``msgs``: (time, raw bytes, comm id) of every ``comm_msg`` on the kernel's iopub socket;
    ``opens``: comm id -> (raw bytes, content) of every ``comm_open``. The kernel and the
    thread stop when the ``with`` block ends.
    """

    def __init__(self, tmp: Path) -> None:
        import zmq
        from jupyter_client.manager import KernelManager

        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["IPYTHONDIR"] = str(tmp / "ipython")
        self.km = KernelManager(kernel_name="python3")
        self.km.connection_file = str(tmp / "kernel.json")
        self.km.start_kernel(env=env, cwd=str(tmp))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.msgs: list[tuple[float, int, str]] = []
        self.opens: dict[str, tuple[int, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._sub: Any = zmq.Context.instance().socket(zmq.SUB)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.setsockopt(zmq.RCVTIMEO, 200)
        self._sub.connect(f"{self.km.transport}://{self.km.ip}:{self.km.iopub_port}")
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> _CommTap:
        try:
            self.kc.wait_for_ready(timeout=60)
            self._thread.start()
        except BaseException:
            self.__exit__()
            raise
        time.sleep(0.5)  # the subscription reaches the kernel before the first cell
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sub.close(linger=0)
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)

    def _read(self) -> None:
        import zmq

        session = self.km.session
        while not self._stop.is_set():
            try:
                frames = self._sub.recv_multipart(copy=True)
            except zmq.Again:
                continue
            size = sum(len(f) for f in frames)
            _, parts = session.feed_identities(frames)
            msg = session.deserialize(parts, content=True)
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "comm_msg":
                self.msgs.append((time.monotonic(), size, content.get("comm_id", "")))
            elif kind == "comm_open":
                self.opens[content["comm_id"]] = (size, content)


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
    if results.get("reload"):
        lines += [
            "## Reload in JupyterLab 4 -> a correct `%jobs` table "
            "(table drawn before its jobs ran)",
            "",
            "| jobs | statuses | reload -> notebook cells (JupyterLab) | -> kernel connected "
            "| -> table drawn "
            "| -> table correct | drawn -> correct | goal < 1 s (reload -> correct) |",
            "|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in results["reload"]:
            statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(r["statuses"].items()))
            met = "met" if r["reload_to_correct_ms"] < 1000 else "not met"
            lines.append(
                f"| {r['jobs']:,} | {statuses} | {r['reload_to_cells_ms']} ms "
                f"| {r['reload_to_kernel_ms']} ms "
                f"| {r['reload_to_view_ms']} ms | {r['reload_to_correct_ms']} ms "
                f"| {r['view_to_correct_ms']} ms | {met} |"
            )
        lines.append("")
    v = results.get("views")
    if v:
        ok = v["views_max_in_1s"] <= 20 and v["dashboard_max_in_1s"] <= 10
        lines += [
            f"## {v['views']} `%%job` views printing ({v['lines_per_s']:,} lines/s) "
            "and a `%jobs` table",
            "",
            "| | messages/s | max in 1 s | KB/s | budget |",
            "|---|---:|---:|---:|---:|",
            f"| job views | {v['views_msgs_per_s']} | {v['views_max_in_1s']} "
            f"| {v['views_kb_per_s']} | 20 |",
            f"| dashboard | {v['dashboard_msgs_per_s']} | {v['dashboard_max_in_1s']} "
            f"| {v['dashboard_kb_per_s']} | 10 |",
            f"| both | | {v['total_max_in_1s']} | | 30 |",
            "",
            f"Window: {v['seconds']} s; {v['views_updated_in_window']} of {v['views']} views "
            f"updated in it; budget {'met' if ok else 'not met'}.",
            "",
        ]
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


CASES = ("render", "lab", "reload", "traffic", "views")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="1 round, 5 s traffic window, no JupyterLab"
    )
    p.add_argument("--no-browser", action="store_true", help="traffic only")
    p.add_argument("--no-lab", action="store_true", help="skip the JupyterLab measurement")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    p.add_argument(
        "--only",
        metavar="CASES",
        help=f"comma-separated cases to run, of {','.join(CASES)} (default: all that apply)",
    )
    p.add_argument("--views", type=int, default=100, help="job views in the views case")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(CASES)
    if only - set(CASES):
        p.error(f"--only: unknown case(s) {','.join(sorted(only - set(CASES)))}")
    if args.no_browser:
        only -= {"render", "lab", "reload"}
    if args.quick or args.no_lab:
        only -= {"lab", "reload"}
    rounds = 1 if args.quick else 5
    window = 5.0 if args.quick else 15.0
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp_name:
        tmp = Path(tmp_name)
        if "render" in only:
            results["render"] = bench_render([1_000, 10_000], rounds, tmp / "render")
        if "lab" in only:
            results["lab"] = bench_lab([1_000, 10_000], tmp / "lab")
        if "reload" in only:
            results["reload"] = bench_reload([1_000, 10_000], 3, tmp / "reload")
        if "traffic" in only:
            (tmp / "traffic").mkdir()
            results["traffic"] = bench_traffic(window, 3.0, tmp / "traffic")
        if "views" in only:
            (tmp / "views").mkdir()
            results["views"] = bench_views_traffic(args.views, window, 3.0, tmp / "views")
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
