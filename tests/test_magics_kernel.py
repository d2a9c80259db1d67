"""The magics in a real ipykernel, driven through jupyter_client (docs/kernel-notes.md §5).

What is checked is what a front end receives on iopub: a job's output reaches the front end
only as comm messages of its JobView (and in the job's tail and log), never as ``stream`` or
``display_data`` messages, whichever cell is running.

One kernel per module for most tests (they use distinct job names); the tests that need a
pristine kernel (unloading) start their own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from _kernel import Execution, Kernel, running_kernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# -- helpers --------------------------------------------------------------------------------------


def view_id(ex: Execution) -> str:
    """The model id (= comm id) of the job view a ``%%job`` cell displayed."""
    for m in ex.messages:
        if m["msg_type"] == "display_data" and WIDGET_MIME in m["content"]["data"]:
            return str(m["content"]["data"][WIDGET_MIME]["model_id"])
    msg = f"no widget displayed by {ex.code!r}: {[m['msg_type'] for m in ex.messages]}"
    raise AssertionError(msg)


def comm_text(k: Kernel, comm_id: str) -> str:
    """Everything the kernel sent to one widget (opening state, messages, buffers), as JSON.

    The widget's front-end code (``_esm``, ``_css``) is left out: only data counts.
    """
    parts = []
    for m in k.messages():
        content = m["content"]
        if m["msg_type"] not in ("comm_open", "comm_msg") or content.get("comm_id") != comm_id:
            continue
        data = dict(content.get("data", {}))
        state = data.get("state")
        if isinstance(state, dict):
            data["state"] = {k: v for k, v in state.items() if k not in ("_esm", "_css")}
        parts.append(json.dumps(data))
        # Full snapshots travel as a binary JSON buffer beside the message.
        for buffer in m.get("buffers") or ():
            parts.append(bytes(buffer).decode("utf-8", errors="replace"))
    return "\n".join(parts)


def shown_only_in_its_view(kernel: Kernel, ex: Execution, name: str, needle: str) -> str:
    """While job ``name`` (the ``%%job`` cell ``ex``) ends, a foreground cell runs: ``needle``
    reaches the job's view, no cell's output, and the foreground cell gets its own output.
    Returns what the view received."""
    other = kernel.execute("print('foreground')")
    assert wait_job(kernel, name) == "done"
    view = view_id(ex)
    kernel.wait_for(lambda: needle in comm_text(kernel, view), what=f"{needle} in {name}'s view")
    assert needle not in outputs_text(kernel)
    assert other.stdout == "foreground\n"
    return comm_text(kernel, view)


#: msg_ids of the cells the tests run to inspect the kernel (their results show job data).
_inspections: set[str] = set()


def outputs_text(k: Kernel) -> str:
    """Every stream, display and result message the kernel sent (widget displays excluded).

    The cells the tests run to look at jobs (:func:`value`) are left out.
    """
    parts = []
    for m in k.messages():
        if m["parent_header"].get("msg_id") in _inspections:
            continue
        kind = m["msg_type"]
        if kind == "stream":
            parts.append(m["content"]["text"])
        elif kind in ("display_data", "execute_result", "update_display_data"):
            data = m["content"]["data"]
            if WIDGET_MIME not in data:
                parts.append(json.dumps(data))
    return "\n".join(parts)


def value(k: Kernel, expr: str) -> Any:
    """``expr`` evaluated in the kernel, read back with ``eval`` of its repr."""
    ex = k.execute(expr)
    _inspections.add(ex.msg_id)
    assert ex.result is not None, f"{expr!r} gave no result"
    return eval(ex.result)  # reprs of ints, strs, lists, bools


def wait_job(k: Kernel, name: str, timeout: float = 30) -> str:
    """Wait for a job in the kernel; return its final status."""
    k.execute(f"get_engine().wait_job({name!r}, {timeout})", timeout=timeout + 5)
    return str(value(k, f"get_engine()[{name!r}].status.value"))


# -- output routing -------------------------------------------------------------------------------


def test_job_output_appears_only_in_its_view_while_other_cells_run(kernel: Kernel) -> None:
    tick = kernel.execute(
        "%%job ticker\n"
        "import time, sys, warnings, logging\n"
        "for i in range(8):\n"
        "    print('tick', i)\n"
        "    print('tick-err', i, file=sys.stderr)\n"
        "    time.sleep(0.15)\n"
        "warnings.warn('tick-warning')\n"
        "logging.getLogger('jobs.test').warning('tick-logged')\n"
        "'ticker-finished'"
    )
    tock = kernel.execute(
        "%%job tocker\nimport time\nfor i in range(8):\n    print('tock', i)\n    time.sleep(0.1)"
    )
    b = kernel.execute("import time\nprint('B start')\ntime.sleep(0.5)\nprint('B end')")
    c = kernel.execute("print('C start')\ntime.sleep(0.5)\nprint('C end')\n7 * 6")
    assert wait_job(kernel, "ticker") == "done"
    assert wait_job(kernel, "tocker") == "done"
    # the foreground cells got exactly their own output
    assert b.stdout == "B start\nB end\n" and b.stderr == ""
    assert c.stdout == "C start\nC end\n" and c.result == "42"
    # each view got its own job's lines, and only those
    ticker, tocker = view_id(tick), view_id(tock)
    kernel.wait_for(lambda: "tick-logged" in comm_text(kernel, ticker), what="ticker's view")
    kernel.wait_for(lambda: "tock 7" in comm_text(kernel, tocker), what="tocker's view")
    ticker_text = comm_text(kernel, ticker)
    for expected in ("tick 7", "tick-err 7", "tick-warning", "ticker-finished"):
        assert expected in ticker_text
    assert "tock" not in ticker_text
    assert "tick" not in comm_text(kernel, tocker)
    # ... and no front-end output anywhere carries a job's line
    everything = outputs_text(kernel)
    assert "tick" not in everything and "tock" not in everything
    tail = value(kernel, "get_engine()['ticker'].tail(40)")
    assert "tick 0\ntick-err 0\ntick 1" in tail and "tick-logged" in tail


def test_display_of_a_dataframe_lands_in_the_job_view(kernel: Kernel) -> None:
    ex = kernel.execute(
        "%%job frame\n"
        "import pandas as pd\n"
        "from IPython.display import display\n"
        "frame = pd.DataFrame({'colQ': [1, 2], 'colR': ['x', 'y']})\n"
        "display(frame)\n"
        "len(frame)"
    )
    shown = shown_only_in_its_view(kernel, ex, "frame", "colQ")
    assert "dataframe" in shown  # pandas' HTML table went to the view
    assert value(kernel, "get_engine()['frame'].result()") == 2


def test_a_matplotlib_figure_displayed_in_a_job_lands_in_its_view(kernel: Kernel) -> None:
    kernel.execute("%matplotlib inline")  # what a notebook has: PNG formatters for figures
    # A Figure made directly, not through pyplot, and displayed by the job itself (pyplot
    # figures: test_pyplot_figures_of_a_job_stay_with_the_job).
    ex = kernel.execute(
        "%%job figure\n"
        "from matplotlib.figure import Figure\n"
        "from IPython.display import display\n"
        "fig = Figure()\n"
        "fig.add_subplot().plot([1, 3, 2])\n"
        "display(fig)"
    )
    shown_only_in_its_view(kernel, ex, "figure", "image/png")  # no cell received the picture


def test_pyplot_figures_of_a_job_stay_with_the_job(kernel: Kernel) -> None:
    # pyplot keeps one registry of figures per process, and the inline backend shows all of it
    # after every cell. A job's open pyplot figure must not be shown (or closed) by a foreground
    # cell, a foreground plt.plot must not draw into it, and when the job ends its figure is
    # shown in its view.
    kernel.execute(
        "%matplotlib inline\n"
        "import threading\n"
        "import matplotlib.pyplot as plt\n"
        "plotted, release = threading.Event(), threading.Event()"
    )
    ex = kernel.execute(
        "%%job plotter\n"
        "fig, ax = plt.subplots()\n"
        "ax.set_title('drawn by the job')\n"
        "plt.plot([1, 3, 2], label='job line')\n"
        "plotted.set()\n"
        "release.wait(30)\n"
        "plt.gcf() is fig, len(plt.gca().lines)"
    )
    view = view_id(ex)

    def pictures(cell: Execution) -> int:
        return sum("image/png" in m["content"].get("data", {}) for m in cell.messages)

    # While the job's figure is open: foreground cells that do not plot, and one that does.
    waited = kernel.execute("plotted.wait(30)")
    quiet = kernel.execute("print('foreground')")
    fg = kernel.execute("plt.plot([5, 5, 5])\nplt.gca().get_title()")
    assert pictures(ex) == pictures(waited) == pictures(quiet) == 0
    assert fg.result == "''"  # a figure of its own, not the job's titled one
    assert pictures(fg) == 1
    assert "image/png" not in comm_text(kernel, view)  # not shown before the job ends
    kernel.execute("release.set()")
    assert wait_job(kernel, "plotter") == "done"
    kernel.wait_for(lambda: "image/png" in comm_text(kernel, view), what="the figure in the view")
    assert value(kernel, "get_engine()['plotter'].result()") == (True, 1)  # its own figure only
    assert value(kernel, "plt.get_fignums()") == []  # shown and closed, like a cell's figures
    # The same for a cell with top-level await (an async job on the engine's loop).
    aex = kernel.execute(
        "%%job aplot\nimport asyncio\nplt.plot([2, 1])\nawait asyncio.sleep(0.2)\n"
        "len(plt.get_fignums())"
    )
    assert wait_job(kernel, "aplot") == "done"
    aview = view_id(aex)
    kernel.wait_for(lambda: "image/png" in comm_text(kernel, aview), what="the async job's figure")
    assert pictures(aex) == 0
    assert value(kernel, "get_engine()['aplot'].result()") == 1


def test_pyplot_imported_first_inside_a_job_stays_with_the_job(tmp_path: Path) -> None:
    # pyplot is not imported yet when the job starts: the registry is made per job on import.
    with running_kernel(tmp_path) as k:
        k.execute("%load_ext jupyter_executor\nfrom jupyter_executor import get_engine")
        assert value(k, "import sys; 'matplotlib.pyplot' in sys.modules") is False
        ex = k.execute(
            "%%job firstplot\n"
            "import time\n"
            "import matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 4])\n"
            "time.sleep(1)\n"  # the %%job cell and the next one end while the figure is open
            "len(plt.get_fignums())"
        )
        other = k.execute("print('foreground')")
        assert wait_job(k, "firstplot") == "done"
        view = view_id(ex)
        k.wait_for(lambda: "image/png" in comm_text(k, view), what="the figure in the view")
        for cell in (ex, other):
            assert not any("image/png" in m["content"].get("data", {}) for m in cell.messages)
        assert value(k, "get_engine()['firstplot'].result()") == 1


def test_last_expression_is_the_result_and_requires_passes_variables(kernel: Kernel) -> None:
    kernel.execute("%%job load\nimport time\ntime.sleep(0.3)\nrows = list(range(10))\nlen(rows)")
    kernel.execute("%%job train --requires load\nmodel = sum(rows)\nmodel * 2")
    assert wait_job(kernel, "train") == "done"
    assert value(kernel, "get_engine()['load'].result()") == 10
    assert value(kernel, "get_engine()['train'].result()") == 90
    assert value(kernel, "model") == 45  # the namespace is the notebook's


def test_a_blocking_cell_does_not_delay_a_chain_of_jobs(kernel: Kernel) -> None:
    kernel.execute("%%job s1\nimport time\ntime.sleep(0.5)")
    kernel.execute("%%job s2 --requires s1\nimport time\ntime.sleep(0.5)")
    kernel.execute("%%job s3 --requires s2\nimport time\ntime.sleep(0.5)")
    kernel.execute("import time\nt0 = time.time()\ntime.sleep(3)\nt1 = time.time()")
    assert value(kernel, "get_engine()['s3'].status.value") == "done"
    took = value(kernel, "get_engine()['s3'].finished - t0")
    assert took < 2.5, f"the chain took {took:.2f} s while a cell blocked for 3 s"


def test_process_cell_ships_inputs_and_returns_outputs(kernel: Kernel) -> None:
    kernel.execute(
        "import os\n"
        "params = [1, 2, 3]\n"
        "def simulate(p):\n"
        "    import os\n"
        "    return sum(p) * 2, os.getpid()\n"
    )
    ex = kernel.execute(
        "%%job sim --backend process\n"
        "result, worker_pid = simulate(params)\n"
        "print('simulated', result)\n"
        "result"
    )
    assert wait_job(kernel, "sim", 60) == "done"
    assert value(kernel, "result") == 12
    assert value(kernel, "worker_pid != os.getpid()") is True
    assert value(kernel, "get_engine()['sim'].result()") == 12
    view = view_id(ex)
    kernel.wait_for(lambda: "simulated 12" in comm_text(kernel, view), what="the worker's print")
    assert "simulated" not in outputs_text(kernel)


def test_process_job_traceback_shows_the_cells_lines(kernel: Kernel) -> None:
    # A function of an earlier cell, pickled by value: cloudpickle 3.1.3 would name its code
    # "<dynamic-code>" and the worker would know no line of the cell.
    kernel.execute("def check(n):\n    limit = 2\n    assert n < limit, f'{n} is too big'\n")
    kernel.execute("%%job checked --backend process\nprint('checking')\ncheck(5)")
    assert wait_job(kernel, "checked", 60) == "failed"
    tb = value(kernel, "get_engine()['checked'].traceback")
    assert "<dynamic-code>" not in tb, tb
    assert "    assert n < limit, f'{n} is too big'" in tb, tb  # the earlier cell's line
    assert "    check(5)" in tb, tb  # the job cell's own line


def test_unpicklable_input_gives_a_one_line_error_naming_it(kernel: Kernel) -> None:
    kernel.execute("import threading\nguard = threading.Lock()")
    ex = kernel.execute("%%job locked --backend process\nwith guard:\n    pass")
    after = kernel.execute("print('still fine')")
    assert wait_job(kernel, "locked", 60) == "failed"
    error = value(kernel, "get_engine()['locked'].info().error")
    assert "variable 'guard' cannot be pickled" in error and "\n" not in error
    # the failure stays in the job: no error in any cell
    assert ex.ok and after.ok and after.stdout == "still fine\n"
    assert all(m["msg_type"] != "error" for m in kernel.messages(after.msg_id))


def test_script_job_with_env_and_cwd(kernel: Kernel) -> None:
    scripts = kernel.cwd / "scripts"
    scripts.mkdir(exist_ok=True)
    (kernel.cwd / "data").mkdir(exist_ok=True)
    (scripts / "etl.py").write_text(
        "import os, sys\n"
        "print('day', sys.argv[1:])\n"
        "print('token', os.environ['TOKEN'])\n"
        "print('cwd', os.path.basename(os.getcwd()))\n"
    )
    ex = kernel.execute(
        "%job scripts/etl.py --day 2026-11-20 --name etl --env TOKEN=abc --cwd data/"
    )
    assert wait_job(kernel, "etl") == "done"
    assert value(kernel, "get_engine()['etl'].tail()").splitlines() == [
        "day ['--day', '2026-11-20']",
        "token abc",
        "cwd data",
    ]
    view = view_id(ex)
    kernel.wait_for(lambda: "token abc" in comm_text(kernel, view), what="the script's output")
    assert "token abc" not in outputs_text(kernel)


def _busy(ex: Execution) -> bool:
    return any(
        m["msg_type"] == "status" and m["content"]["execution_state"] == "busy" for m in ex.messages
    )


def test_interrupt_stops_the_foreground_cell_only(kernel: Kernel) -> None:
    (kernel.cwd / "beat.sh").write_text("for i in $(seq 1 300); do echo beat $i; sleep 0.1; done\n")
    kernel.execute("%job beat.sh --name beat")
    kernel.execute(
        "%%job spin\nimport time\nfor i in range(600):\n    print(i)\n    time.sleep(0.05)"
    )
    kernel.execute(
        "%%job crunch --backend process\nimport time\nfor i in range(600):\n"
        "    print(i)\n    time.sleep(0.05)"
    )
    kernel.wait_for(
        lambda: value(kernel, "get_engine()['crunch'].output.line_count") > 0,
        what="the process job to print",
    )
    fg = kernel.submit("import time\ntime.sleep(30)")
    kernel.wait_for(lambda: _busy(fg), what="the foreground cell to start")
    time.sleep(0.3)
    kernel.interrupt()
    fg.wait(15)
    assert fg.error is not None and fg.error["content"]["ename"] == "KeyboardInterrupt"
    counts = "[get_engine()[n].output.line_count for n in ('beat', 'spin', 'crunch')]"
    before = value(kernel, counts)
    time.sleep(0.5)
    statuses = "[get_engine()[n].status.value for n in ('beat', 'spin', 'crunch')]"
    assert value(kernel, statuses) == ["running"] * 3
    after = value(kernel, counts)
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    assert any("bash" in p.name() or "sleep" in p.name() for p in kernel.children())

    # ■ during `%jobs wait` stops the waiting, not the jobs
    wait = kernel.submit("%jobs wait spin")
    kernel.wait_for(lambda: _busy(wait), what="%jobs wait to start")
    time.sleep(0.3)
    kernel.interrupt()
    wait.wait(15)
    assert wait.ok, wait.reply
    assert "stopped waiting; the jobs keep running" in wait.stdout
    assert value(kernel, "get_engine()['spin'].status.value") == "running"

    kernel.execute("%jobs cancel beat spin crunch")
    for name in ("beat", "spin", "crunch"):
        assert wait_job(kernel, name) == "cancelled"


def test_a_failing_job_raises_in_no_cell(kernel: Kernel) -> None:
    ex = kernel.execute("%%job kaboom\nraise ValueError('kaboom here')")
    other = kernel.execute("print('unaffected')")
    assert wait_job(kernel, "kaboom") == "failed"
    later = kernel.execute("print('still unaffected')")
    assert ex.ok and other.ok and later.ok
    errors = [m["content"] for m in kernel.messages() if m["msg_type"] == "error"]
    assert not [e for e in errors if "kaboom" in e["evalue"] + "".join(e["traceback"])]
    view = view_id(ex)
    kernel.wait_for(lambda: "kaboom here" in comm_text(kernel, view), what="the traceback")
    assert "ValueError" in comm_text(kernel, view)
    assert "kaboom" not in outputs_text(kernel)


# -- usage errors ---------------------------------------------------------------------------------

USAGE_ERRORS = [
    ("%%job x --bogus\n1", "unrecognized arguments: --bogus"),
    ("%%job x --requires nowhere\n1", "requires 'nowhere'"),
    ("%%job x --requires x\n1", "x"),
    ("%%job x\n", "cell body is empty"),
    ("%%job x\n# only a comment\n", "the cell is empty"),
    ("%%job x --timeout soon\n1", "--timeout: takes a positive number of seconds"),
    ("%job missing/etl.py --name x", "no such script or command: missing/etl.py"),
    ("%jobs tail nobody", "no job named 'nobody'"),
]


def test_a_view_comes_after_what_the_cell_printed_before_it(kernel: Kernel) -> None:
    """A job's view is published without flushing stdout first when it holds nothing; what the
    cell printed before submitting still reaches the front end first, and every view carries the
    display id its final picture replaces."""
    ex = kernel.execute("print('printed first')\n%job --name ordered echo hi")
    kinds = [
        m["msg_type"] for m in ex.messages if m["msg_type"] in ("stream", "display_data")
    ]  # fmt: skip
    assert kinds[:2] == ["stream", "display_data"], kinds
    assert "printed first" in ex.stdout
    ex = kernel.execute("%%job ordered2\npass")
    (shown,) = [m for m in ex.messages if m["msg_type"] == "display_data"]
    assert WIDGET_MIME in shown["content"]["data"]
    assert shown["content"]["transient"]["display_id"].startswith("jupyter-executor-")
    for name in ("ordered", "ordered2"):
        kernel.execute(f"get_engine().wait_job({name!r}, 30)")


def test_usage_errors_are_one_line_and_start_nothing(kernel: Kernel) -> None:
    for code, expected in USAGE_ERRORS:
        ex = kernel.execute(code, allow_error=True)
        assert ex.reply is not None and ex.reply["content"]["ename"] == "UsageError", code
        assert ex.stderr == f"UsageError: {ex.reply['content']['evalue']}\n", code
        assert expected in ex.stderr, (code, ex.stderr)
    assert value(kernel, "'x' in get_engine()") is False


def test_dependency_cycle_and_running_name_are_usage_errors(kernel: Kernel) -> None:
    kernel.execute("%%job cy1\n1")
    assert wait_job(kernel, "cy1") == "done"
    kernel.execute("%%job cy2 --requires cy1\n2")
    assert wait_job(kernel, "cy2") == "done"
    ex = kernel.execute("%%job cy1 --requires cy2\n3", allow_error=True)
    assert ex.stderr == "UsageError: dependency cycle: cy1 -> cy2 -> cy1\n"
    kernel.execute("%%job busy\nimport time\nfor _ in range(200):\n    time.sleep(0.05)")
    ex = kernel.execute("%%job busy\n1", allow_error=True)
    assert "`%jobs cancel busy`" in ex.stderr and ex.stderr.count("\n") == 1
    kernel.execute("%jobs cancel busy")
    assert wait_job(kernel, "busy") == "cancelled"


# -- the kernel stays responsive ------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_kernel_answers_while_a_hundred_jobs_print(kernel: Kernel) -> None:
    kernel.execute(
        "import time\n"
        "from jupyter_executor import cancelled\n"
        "get_engine().set_limits(thread=128)\n"
        "def chatter(i):\n"
        "    while not cancelled():\n"
        "        print('chatter', i, time.time())\n"
        "        time.sleep(0.01)\n"
        "for i in range(95):\n"
        "    get_engine().submit(chatter, i, name=f'chatter{i}')\n"
    )
    # five of them as %%job cells, each with its live view
    for i in range(5):
        kernel.execute(
            f"%%job view{i}\nwhile not cancelled():\n    print('view', {i})\n    time.sleep(0.01)"
        )
    kernel.execute("%jobs")  # and the dashboard
    assert value(kernel, "get_engine().counts()['running']") == 100
    time.sleep(1)
    slowest = 0.0
    for _ in range(5):
        start = time.monotonic()
        ex = kernel.execute("1 + 1", timeout=10)
        slowest = max(slowest, time.monotonic() - start)
        assert ex.result == "2"
        # views' updates are parented to whichever cell runs; the cell's own messages are intact
        kinds = [m["msg_type"] for m in ex.messages if m["msg_type"] != "comm_msg"]
        assert kinds == ["status", "execute_input", "execute_result", "status"], kinds
        printed = kernel.execute("print('fg-line')")
        assert printed.stdout == "fg-line\n"
    assert slowest < 1.0, f"1 + 1 took {slowest:.2f} s"
    assert "chatter" not in outputs_text(kernel)
    kernel.execute(
        "for job in list(get_engine().jobs.values()):\n"
        "    if not job.done():\n"
        "        job.cancel()\n"
        "get_engine().wait(20)"
    )
    assert value(kernel, "get_engine().counts()['running']") == 0


# -- unloading ------------------------------------------------------------------------------------


def test_unload_leaves_no_thread_and_no_child_process(tmp_path: Path) -> None:
    with running_kernel(tmp_path) as k:
        k.execute("import threading\nimport matplotlib.pyplot as plt")
        before = set(value(k, "[t.name for t in threading.enumerate()]"))
        (k.cwd / "long.sh").write_text("sleep 60\n")
        k.execute("%load_ext jupyter_executor\nfrom jupyter_executor import get_engine")
        k.execute("%job long.sh --name long")
        k.execute("%%job proc --backend process\n1")
        k.execute("%%job loop --forever\nimport time\nwhile True:\n    time.sleep(0.05)")
        k.execute("%%job aio\nimport asyncio\nawait asyncio.sleep(60)")
        k.execute("%jobs")
        assert wait_job(k, "proc", 60) == "done"
        assert k.children(), "the jobs should have started processes"
        k.execute("%unload_ext jupyter_executor", timeout=60)
        after = set(value(k, "[t.name for t in threading.enumerate()]"))
        # pyzmq starts its own garbage-collector thread, once per process, the first time a
        # large message (a widget state update) is sent without a copy: not ours to stop
        zmq_gc = value(
            k, "getattr(__import__('zmq.utils.garbage').utils.garbage.gc.thread, 'name', '')"
        )
        assert after - {zmq_gc} <= before, f"threads left: {after - before}"
        assert k.children() == []
        # pyplot has its own figure registry back (the extension kept figures per job)
        assert value(k, "type(plt._pylab_helpers.Gcf.figs).__name__") == "OrderedDict"
        ex = k.execute("%jobs", allow_error=True)
        assert "UsageError: Line magic function `%jobs` not found" in ex.stderr
