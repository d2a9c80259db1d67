"""The magics in-process, with IPython's own shell (no kernel: the terminal code paths).

The real-kernel behaviour (output routing on iopub, widgets, interrupts) is in
``test_magics_kernel.py``; here: parsing, UsageErrors, namespaces, scripts, ``%jobs``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from _dask import cluster_without_us
from _usage import usage_error
from _wait import wait_until
from IPython.core.interactiveshell import InteractiveShell

from jupyter_executor import get_engine
from jupyter_executor._terminal import TerminalEcho, text_table
from jupyter_executor.testing import MockClock


def cell(ip: InteractiveShell, line: str, body: str) -> None:
    ip.run_cell_magic("job", line, body)


def wait(name: str, timeout: float = 20) -> Any:
    engine = get_engine()
    engine.wait_job(name, timeout)
    return engine[name]


# -- help -----------------------------------------------------------------------------------------


def test_help_is_the_docstring_with_every_option(ip: InteractiveShell) -> None:
    cell_help = ip.magics_manager.magics["cell"]["job"].__doc__
    line_help = ip.magics_manager.magics["line"]["job"].__doc__
    # two helps: %%job? is about cells, %job? about scripts and commands
    assert "usage: %%job [NAME] [options]" in cell_help
    assert "usage: %job SCRIPT [ARGS ...] [options]" in line_help
    assert " %job " not in cell_help.split("usage:")[1]
    common = (
        "--requires", "--retries", "--timeout", "--forever", "--every", "--cron", "--start",
        "--restart", "--restart-delay", "--max-restarts", "--inputs", "--outputs", "--force",
        "--detach",
    )  # fmt: skip
    for option in common:
        assert option in cell_help
        assert option in line_help
    options = cell_help.split("usage:")[1]
    assert "--backend" in options
    for script_only in ("--env", "--cwd"):
        assert script_only not in options
        assert script_only in line_help
    assert "--backend" not in line_help.split("usage:")[1]
    assert "%%job train --requires load" in cell_help  # the examples
    assert "%%job poller --restart always" in cell_help
    assert "%%job train --detach" in cell_help
    assert '%job scrape.py --every "2 min"' in line_help
    jobs_help = ip.magics_manager.magics["line"]["jobs"].__doc__
    for command in (
        "list", "wait", "cancel", "rerun", "tail", "log", "history", "remove", "clear",
        "unschedule", "fetch", "notify",
    ):  # fmt: skip
        assert f"%jobs {command}" in jobs_help
    assert "%jobs log NAME [--run N]" in jobs_help
    assert "--run 1 is the oldest log kept" in jobs_help
    assert "interrupting the kernel stops the waiting" in jobs_help
    for text in (cell_help, line_help, jobs_help):
        # plain text in a terminal: no reStructuredText markup, no symbols for keys
        assert "``" not in text and "::" not in text and "\u25a0" not in text


def test_options_of_the_other_form_get_their_own_message(ip: InteractiveShell) -> None:
    assert "drop --backend" in usage_error(ip.run_line_magic, "job", "x.py --backend thread")


def test_load_ext_refuses_windows_in_one_line(
    ipshell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "name", "nt")
    message = usage_error(ipshell.run_line_magic, "load_ext", "jupyter_executor")
    assert "runs on POSIX systems (Linux, macOS)" in message
    assert "job" not in ipshell.magics_manager.magics["cell"]  # nothing was registered


def test_engine_defaults_come_from_the_config(
    ip: InteractiveShell, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ip.run_line_magic("config", f"JobMagics.folder = {str(tmp_path / 'runs')!r}")
    ip.run_line_magic("config", "JobMagics.max_jobs = 3")
    ip.run_line_magic("config", "JobMagics.backend = 'process'")
    try:
        # options apply when the engine is created: in terminal IPython that is at load time
        ip.run_line_magic("reload_ext", "jupyter_executor")
        cell(ip, "configured", "6 * 7")
        engine = get_engine()
        assert engine.folder == (tmp_path / "runs").resolve()
        assert engine.max_jobs == 3
        assert engine.default_backend == "process"
        job = wait("configured", 60)
        assert job.backend == "process"  # the cell went to the configured backend
        assert job.result() == 42
        with caplog.at_level(logging.ERROR):
            ip.run_line_magic("config", "JobMagics.max_jobs = 0")  # %config logs the error
        assert "JobMagics.max_jobs=0: must be >= 1" in caplog.text
        magics = ip.magics_manager.registry["JobMagics"]
        assert magics.max_jobs == 3  # refused: the value stays
    finally:
        for line in ("JobMagics.folder = None", "JobMagics.max_jobs = None",
                     "JobMagics.backend = None"):  # fmt: skip
            ip.run_line_magic("config", line)


# -- cells ----------------------------------------------------------------------------------------


def test_cell_runs_in_the_namespace_and_its_last_expression_is_the_result(
    ip: InteractiveShell,
) -> None:
    ip.user_ns["x"] = 20
    cell(ip, "load", "y = x + 1\nprint('computing')\ny * 2")
    job = wait("load")
    assert job.result() == 42
    assert ip.user_ns["y"] == 21
    assert job.tail() == "computing"
    assert job.info().kind == "cell"
    assert job.info().description == "y = x + 1"


def test_cell_returns_at_once(ip: InteractiveShell) -> None:
    start = time.monotonic()
    cell(ip, "slow", "import time\ntime.sleep(1)\n'late'")
    assert time.monotonic() - start < 0.5
    assert wait("slow").result() == "late"


def test_requires_chain_passes_variables(ip: InteractiveShell) -> None:
    cell(ip, "a", "import time\ntime.sleep(0.2)\nrows = [1, 2, 3]")
    cell(ip, "b --requires a", "total = sum(rows)")
    cell(ip, "c --requires a,b --retries 1", "total * 2")
    assert wait("c").result() == 12
    assert get_engine()["c"].requirements == ("a", "b")


def test_name_is_generated_when_missing(ip: InteractiveShell) -> None:
    cell(ip, "", "1")
    cell(ip, "--timeout 5", "2")
    names = list(get_engine().jobs)
    assert names == ["cell", "cell-2"]
    assert wait("cell-2").result() == 2


def test_rerunning_a_finished_cell_is_a_new_attempt(ip: InteractiveShell) -> None:
    cell(ip, "again", "'first'")
    assert wait("again").result() == "first"
    cell(ip, "again", "'second'")
    job = wait("again")
    assert job.result() == "second"
    assert [p.result for p in job.previous] == ["'first'"]


def test_rerunning_a_running_cell_says_how_to_cancel(ip: InteractiveShell) -> None:
    cell(ip, "busy", "import time\nfor _ in range(100):\n    time.sleep(0.05)")
    message = usage_error(cell, ip, "busy", "1")
    assert "%jobs cancel busy" in message
    ip.run_line_magic("jobs", "cancel busy")
    assert wait("busy").status.value == "cancelled"


def test_a_failing_cell_fails_its_job_only(ip: InteractiveShell) -> None:
    cell(ip, "boom", "raise ValueError('bad input')")
    job = wait("boom")
    assert job.status.value == "failed"
    assert job.info().error == "ValueError: bad input"
    assert "bad input" in str(job.traceback)


def test_top_level_await_runs_on_the_async_backend(ip: InteractiveShell) -> None:
    cell(ip, "crawl", "import asyncio\nawait asyncio.sleep(0.05)\npages = 3\npages")
    job = wait("crawl")
    assert job.backend == "async"
    assert job.result() == 3
    assert ip.user_ns["pages"] == 3


def test_ipython_syntax_in_a_cell(ip: InteractiveShell) -> None:
    cell(ip, "shell", "out = !echo from-shell\nout[0]")
    assert wait("shell").result() == "from-shell"


def test_display_in_a_job_goes_to_the_job(ip: InteractiveShell, capsys: Any) -> None:
    cell(ip, "show", "from IPython.display import display\ndisplay({'a': 1})\n'shown'")
    job = wait("show")
    assert job.result() == "shown"
    [(data, _meta)] = job.output.displays
    assert data["text/plain"] == "{'a': 1}"
    assert "{'a': 1}" not in capsys.readouterr().out


def test_print_in_a_job_does_not_reach_the_foreground(ip: InteractiveShell, capsys: Any) -> None:
    cell(ip, "quiet", "print('only in the job')")
    wait("quiet")
    ip.run_cell("print('foreground')")
    out = capsys.readouterr().out
    assert "foreground\n" in out
    # in a terminal the job's lines are echoed with its name, never bare
    assert "\nonly in the job" not in out and not out.startswith("only in the job")


def test_process_backend_ships_inputs_and_writes_outputs_back(ip: InteractiveShell) -> None:
    ip.user_ns.update(params=[1, 2, 3], scale=10)
    cell(
        ip,
        "sim --backend process",
        "import os\nworker = os.getpid()\nresult = sum(params) * scale\n"
        "print('sum', result)\nresult",
    )
    job = wait("sim", 60)
    assert job.result() == 60, job.traceback
    assert ip.user_ns["result"] == 60
    assert ip.user_ns["worker"] != os.getpid()
    assert job.tail() == "sum 60"


def test_process_backend_reads_inputs_when_it_starts(ip: InteractiveShell) -> None:
    cell(ip, "make", "import time\ntime.sleep(0.3)\ndata = list(range(5))")
    cell(ip, "use --requires make --backend process", "len(data)")
    assert wait("use", 60).result() == 5


def test_unpicklable_input_names_the_variable(ip: InteractiveShell) -> None:
    ip.user_ns["lock"] = threading.Lock()
    cell(ip, "locked --backend process", "with lock:\n    pass")
    job = wait("locked", 60)
    assert job.status.value == "failed"
    error = job.info().error
    assert "variable 'lock' cannot be pickled" in error
    assert "\n" not in error


# -- usage errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "body", "expected"),
    [
        ("x --bogus", "1", "unrecognized arguments: --bogus"),
        ("x --timeout abc", "1", "--timeout: takes a positive number of seconds"),
        ("x --timeout -3", "1", "--timeout: takes a positive number of seconds"),
        ("x --timeout 0", "1", "--timeout: takes a positive number of seconds"),
        ("x --retries many", "1", "--retries: takes a whole number"),
        ("x --backend gpu", "1", "invalid choice: 'gpu'"),
        ("x --requires nope", "1", "requires 'nope'"),
        ("x --requires x", "1", "x"),
        ("x", "", "the cell body is empty"),  # IPython's own check
        ("x", "# nothing\n", "the cell is empty"),
        ("x", "y = (", "not valid Python"),
        ("x y", "1", "one job name"),
        ("x --name z", "1", "two names for one job"),
        ("x --env A=1", "1", "--env and --cwd are for scripts"),
    ],
)
def test_cell_usage_errors(ip: InteractiveShell, line: str, body: str, expected: str) -> None:
    assert expected in usage_error(cell, ip, line, body)
    assert "x" not in get_engine().jobs


def test_dependency_cycle_is_a_usage_error(ip: InteractiveShell) -> None:
    cell(ip, "b", "1")
    wait("b")
    cell(ip, "a --requires b", "1")
    wait("a")
    assert "dependency cycle: b -> a -> b" in usage_error(cell, ip, "b --requires a", "2")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", "give a script or a quoted command"),
        ("missing.py", "no such script or command: missing.py"),
        ("no-such-program-xyz", "no such script or command"),
        ("data.txt", "data.txt is not executable"),
        ("sub", "sub is a directory"),
        ("ok.py --cwd nowhere", "--cwd: no such directory: nowhere"),
        ("ok.py --backend process", "always run in a subprocess"),
        ("ok.py --timeout", "--timeout needs a value"),
        ("ok.py --env NOEQUALS", "--env: takes KEY=VALUE"),
        # the long-running options; a period is read as the other duration flags are, when the
        # line is parsed
        ("ok.py --every soon", "--every: takes a positive duration (30 s, 2 min, 1h30m"),
        ('ok.py --every "0 s"', "--every: takes a positive duration (30 s, 2 min, 1h30m"),
        ('ok.py --cron "99 * * * *"', "bad cron expression '99 * * * *'"),
        ('ok.py --cron "* * * * *" --every "1 min"', "give every= or cron=, not both"),
        ('ok.py --start "2001-01-01 00:00"', "start='2001-01-01 00:00' is in the past"),
        ("ok.py --start someday", "cannot use start='someday': give a date-time"),
        ("ok.py --restart sometimes", "invalid choice: 'sometimes'"),
        ("ok.py --restart always --restart-delay -1", "--restart-delay: takes a positive"),
        ("ok.py --restart always --max-restarts x", "--max-restarts: takes a whole number"),
        ("ok.py --max-restarts 3", "--restart-delay and --max-restarts go with --restart"),
        ("ok.py --restart-delay 5", "--restart-delay and --max-restarts go with --restart"),
        ("ok.py --inputs", "--inputs needs a value"),
        ("ok.py --outputs -- out.txt", "--outputs needs a value"),
    ],
)
def test_script_usage_errors(
    ip: InteractiveShell, tmp_path: Path, line: str, expected: str
) -> None:
    (tmp_path / "data.txt").write_text("not a program\n")
    (tmp_path / "ok.py").write_text("print('ok')\n")
    (tmp_path / "sub").mkdir()
    assert expected in usage_error(ip.run_line_magic, "job", line)
    assert not get_engine().jobs  # nothing was submitted


@pytest.mark.skipif(shutil.which("Rscript") is not None, reason="R is installed here")
def test_r_script_without_r_is_a_clear_error(ip: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "model.R").write_text("print(1)\n")
    assert "Rscript is not installed" in usage_error(ip.run_line_magic, "job", "model.R")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--detach", "%%job --detach needs a job name (%%job NAME --detach)"),
        ("x --detach --backend thread", "--detach runs the cell in a process of its own: drop"),
        ('x --detach --every "1 h"', "--detach runs a cell once, in a process of its own: drop"),
        ('x --every "every now and then"', "--every: takes a positive duration"),
        ("x --cron @sometimes", "bad cron expression '@sometimes'"),
        ("x --restart on-failure --max-restarts -2", "--max-restarts: takes a whole number"),
    ],
)
def test_long_running_cell_options_usage_errors(
    ip: InteractiveShell, line: str, expected: str
) -> None:
    assert expected in usage_error(cell, ip, line, "1")
    assert "x" not in get_engine().jobs


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("bogus", "invalid choice: 'bogus'"),
        ("tail x --run 2", "--run goes with %jobs log NAME, not with %jobs tail"),
        ("log x --run 0", "--run: takes a run number: 1 is the oldest log kept, -1 the latest"),
        ("log x --run last", "--run: takes a run number"),
        ("history a b", "%jobs history takes at most one job name, not 2"),
        ("log nobody", "no job named 'nobody' (jobs: none) and no log of it in"),
        ("cancel", "%jobs cancel needs a job name"),
        ("tail a b", "%jobs tail takes one job name"),
        ("list a", "%jobs list takes no job name"),
        ("tail nobody", "no job named 'nobody'"),
        ("tail -n x nobody", "-n: takes a whole number"),
    ],
)
def test_jobs_usage_errors(ip: InteractiveShell, line: str, expected: str) -> None:
    assert expected in usage_error(ip.run_line_magic, "jobs", line)


# -- scripts --------------------------------------------------------------------------------------


def test_python_script_with_args_env_and_cwd(ip: InteractiveShell, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (tmp_path / "data").mkdir()
    (scripts / "etl.py").write_text(
        "import os, sys\n"
        "print('args', sys.argv[1:])\n"
        "print('token', os.environ['TOKEN'], os.environ['MSG'])\n"
        "print('cwd', os.path.basename(os.getcwd()))\n"
        "print('python', sys.executable)\n"
    )
    ip.run_line_magic(
        "job",
        "scripts/etl.py --day 2026-11-20 --name etl --env TOKEN=abc --env 'MSG=a b' "
        "--cwd data/ -- --name kept",
    )
    job = wait("etl")
    assert job.status.value == "done", job.tail()
    assert job.tail(10).splitlines() == [
        "args ['--day', '2026-11-20', '--name', 'kept']",
        "token abc a b",
        "cwd data",
        f"python {sys.executable}",
    ]


def test_env_takes_every_pair_that_follows(ip: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "show.py").write_text(
        "import os, sys\n"
        "print('args', sys.argv[1:])\n"
        "print('env', *(os.environ.get(k) for k in ('A', 'B', 'C', 'D')))\n"
    )
    # B=2 is a second pair, not the script's argument; `in.csv` ends the pairs; X=9 after --
    # is the script's
    ip.run_line_magic("job", "show.py --env A=1 B=2 in.csv --env=C=3 D=4 --name pairs -- X=9")
    job = wait("pairs")
    assert job.status.value == "done", job.tail()
    assert job.tail(10).splitlines() == ["args ['in.csv', 'X=9']", "env 1 2 3 4"]


def test_shell_script_executable_and_quoted_command(ip: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "build.sh").write_text("echo built $1\n")
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho tool $1\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    ip.run_line_magic("job", "build.sh fast --name sh")
    ip.run_line_magic("job", "./tool 7 --name exe")
    ip.run_line_magic("job", '"echo one && echo two" --name cmd')
    assert wait("sh").tail() == "built fast"
    assert wait("exe").tail() == "tool 7"
    assert wait("cmd").tail() == "one\ntwo"


def test_script_failure_and_requires(ip: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "fail.sh").write_text("echo failing; exit 3\n")
    ip.run_line_magic("job", "fail.sh --name f")
    ip.run_line_magic("job", '"echo never" --name after --requires f')
    assert wait("f").status.value == "failed"
    after = wait("after")
    assert after.status.value == "cancelled"
    assert "dependency 'f' failed" in str(after.cancel_reason)


# -- %jobs ----------------------------------------------------------------------------------------


def test_jobs_list_wait_tail_log_remove_clear(ip: InteractiveShell, capsys: Any) -> None:
    cell(ip, "one", "for i in range(30):\n    print('line', i)\n'ok'")
    cell(ip, "two", "import time\ntime.sleep(0.3)")
    ip.run_line_magic("jobs", "wait")
    frame = ip.run_line_magic("jobs", "list")
    assert list(frame["name"]) == ["one", "two"]
    assert list(frame["status"]) == ["done", "done"]
    capsys.readouterr()
    ip.run_line_magic("jobs", "tail one -n 2")
    assert capsys.readouterr().out == "line 28\nline 29\n"
    ip.run_line_magic("jobs", "log one")
    log = capsys.readouterr().out
    assert log.startswith("line 0\n") and log.endswith("line 29\n")
    ip.run_line_magic("jobs", "remove one")
    assert list(get_engine().jobs) == ["two"]
    ip.run_line_magic("jobs", "clear")
    assert "removed 1 finished job" in capsys.readouterr().out
    assert list(get_engine().jobs) == []


def test_jobs_wait_for_names_with_timeout(ip: InteractiveShell, capsys: Any) -> None:
    cell(ip, "long", "import time\nfor _ in range(200):\n    time.sleep(0.05)")
    cell(ip, "short", "1")
    ip.run_line_magic("jobs", "wait short")
    assert get_engine()["short"].done()
    start = time.monotonic()
    ip.run_line_magic("jobs", "wait long --timeout 0.3")
    assert time.monotonic() - start < 2
    assert "still running after 0.3 s: long" in capsys.readouterr().out
    ip.run_line_magic("jobs", "cancel long")
    assert wait("long").status.value == "cancelled"


def test_jobs_rerun(ip: InteractiveShell) -> None:
    ip.user_ns["n"] = 1
    cell(ip, "count", "n += 1\nn")
    assert wait("count").result() == 2
    ip.run_line_magic("jobs", "rerun count")
    job = wait("count")
    assert job.result() == 3
    assert len(job.previous) == 1


def test_jobs_dashboard_in_a_terminal_is_a_table(ip: InteractiveShell, capsys: Any) -> None:
    cell(ip, "t", "print('hello')\n41 + 1")
    wait("t")
    capsys.readouterr()
    ip.run_line_magic("jobs", "")
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "BACKEND", "TIME", "LAST"]
    assert "-> 42" in out
    assert text_table(get_engine()).startswith("NAME")


def test_a_job_can_submit_jobs(ip: InteractiveShell) -> None:
    cell(
        ip,
        "parent",
        "from jupyter_executor import get_engine\n"
        "child = get_engine().submit(sum, [1, 2, 3], name='child')\n"
        "get_engine().wait_job('child', 10)\n"
        "child.result()",
    )
    assert wait("parent").result() == 6
    assert wait("child").result() == 6


# -- long-running jobs (issue 5) ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_script_every_runs_periodically_and_cancel_stops_it(
    ip: InteractiveShell, tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "scrape.py").write_text("print('scraped')\n")
    # The magics use the process's engine: swap the one load_ext made for one in the same
    # folder on a mock clock, so the schedule moves when the test advances it (real
    # processes, no wall-clock window).
    made = get_engine()
    made.shutdown()
    clock = MockClock()
    get_engine(folder=made.folder, clock=clock)
    ip.run_line_magic("job", 'scrape.py --every "0.3 s"')
    job = get_engine()["scrape"]
    assert job.backend == "subprocess"
    for run in range(1, 5):  # at 0, 0.3, 0.6 and 0.9 s of the clock
        clock.advance_to_next()
        wait_until(lambda n=run: job.attempts == n and job.status.value == "pending", 20, "a run")
    runs = job.attempts
    assert 3 <= runs <= 5, runs
    frame = ip.run_line_magic("jobs", "list")
    assert {"next_run", "restarts", "url"} <= set(frame.columns)
    assert frame.set_index("name").loc["scrape", "next_run"] is not None
    ip.run_line_magic("jobs", "cancel scrape")
    runs = job.attempts
    clock.advance(0.7)  # two more periods: nothing may start
    assert job.attempts == runs and not clock.pending()  # no future runs
    assert job.status.value == "cancelled"
    history = ip.run_line_magic("jobs", "history scrape")
    # Every run, then the cancel: of the run going on, or of the next one while it waited.
    statuses = list(history["status"])
    assert statuses == ["done"] * (len(statuses) - 1) + ["cancelled"]
    assert len(statuses) in (runs, runs + 1)
    assert set(history["name"]) == {"scrape"}
    capsys.readouterr()
    ip.run_line_magic("jobs", "log scrape --run 1")
    assert capsys.readouterr().out == "scraped\n"


def test_jobs_unschedule_removes_a_stored_schedule_for_good(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    (tmp_path / "scrape.py").write_text("print('scraped')\n")
    ip.run_line_magic("job", 'scrape.py --every "1 h"')
    engine = get_engine()
    assert [r["name"] for r in engine._store.schedules()] == ["scrape"]
    ip.run_line_magic("jobs", "cancel scrape")  # this kernel only: it stays stored
    assert [r["name"] for r in engine._store.schedules()] == ["scrape"]
    ip.run_line_magic("jobs", "unschedule scrape")
    assert engine._store.schedules() == []
    message = usage_error(ip.run_line_magic, "jobs", "unschedule scrape")
    assert message == f"no schedule named 'scrape' is stored in {engine.folder}"
    assert usage_error(ip.run_line_magic, "jobs", "unschedule") == (
        "%jobs unschedule needs a job name: %jobs unschedule NAME"
    )


def test_script_cron_and_one_shot_start_show_their_next_run(
    ip: InteractiveShell, tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "daily.py").write_text("print('daily')\n")
    ip.run_line_magic("job", 'daily.py --cron "0 6 * * *" --name daily')
    ip.run_line_magic("job", 'daily.py --start "2099-01-02 03:04" --name once')
    engine = get_engine()
    deadline = time.monotonic() + 5
    while not (engine["daily"].next_run and engine["once"].next_run):
        assert time.monotonic() < deadline, "no next run time"
        time.sleep(0.02)
    assert time.strftime("%H:%M", time.localtime(engine["daily"].next_run)) == "06:00"
    once = engine["once"].next_run
    assert time.strftime("%Y-%m-%d %H:%M", time.localtime(once)) == "2099-01-02 03:04"
    capsys.readouterr()
    ip.run_line_magic("jobs", "")  # the terminal's table says when they run
    table = capsys.readouterr().out
    assert "next run at 2099-01-02 03:04:00" in table
    assert " 06:00:00" in table
    ip.run_line_magic("jobs", "cancel daily once")
    assert engine["once"].status.value == "cancelled"
    assert engine["once"].attempts == 0


@pytest.mark.timeout(30)
def test_cell_restart_always_with_delay_and_max_restarts(ip: InteractiveShell) -> None:
    ip.user_ns["polls"] = 0
    cell(ip, "poller --restart always --restart-delay 0.05 --max-restarts 2", "polls += 1\npolls")
    job = wait("poller")
    assert job.status.value == "done"
    assert job.result() == 3  # the first run and two restarts, in the notebook's namespace
    assert job.restarts == 2
    assert ip.user_ns["polls"] == 3


@pytest.mark.timeout(30)
def test_cell_restart_on_failure_stops_with_its_last_error(ip: InteractiveShell) -> None:
    ip.user_ns["tries"] = 0
    cell(
        ip,
        "flaky --restart on-failure --restart-delay 0 --max-restarts 1",
        "tries += 1\nraise RuntimeError(f'try {tries}')",
    )
    job = wait("flaky")
    assert job.status.value == "failed"
    assert job.info().error == "RuntimeError: try 2"
    assert [p.error for p in job.previous] == ["RuntimeError: try 1"]
    assert job.restarts == 1


@pytest.mark.timeout(30)
def test_script_detach_runs_detached_and_cancel_stops_it(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    (tmp_path / "srv.py").write_text(
        "import time\nprint('serving', flush=True)\nwhile True:\n    time.sleep(0.05)\n"
    )
    ip.run_line_magic("job", "srv.py --detach")
    engine = get_engine()
    job = engine["srv"]
    assert job.detach
    deadline = time.monotonic() + 10
    while "serving" not in job.tail():  # the log file, followed into the tail
        assert time.monotonic() < deadline, "no output from the detached script"
        time.sleep(0.05)
    pid = job.pid
    assert pid is not None and psutil.pid_exists(pid)
    run = engine.history("srv").iloc[-1]
    assert bool(run["detached"]) and run["pid"] == pid  # known before the kernel could die
    ip.run_line_magic("jobs", "cancel srv")  # the engine's shutdown would leave it running
    assert wait("srv").status.value == "cancelled"
    with contextlib.suppress(psutil.NoSuchProcess):  # else gone and reaped already
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.timeout(30)
def test_inputs_outputs_skip_up_to_date_jobs_and_force_runs_them(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    (tmp_path / "data.csv").write_text("1\n2\n")
    (tmp_path / "params.json").write_text("{}\n")
    (tmp_path / "fit.py").write_text(
        "import sys\nopen('model.pkl', 'w').write('model')\nprint('fit', sys.argv[1:])\n"
    )
    # several values after --inputs; the script's own argument goes before our options
    line = "fit.py 7 --inputs data.csv params.json --outputs model.pkl"
    ip.run_line_magic("job", line)
    job = wait("fit")
    assert job.result() == 0 and job.tail() == "fit ['7']"
    ip.run_line_magic("job", line)
    job = wait("fit")
    assert job.status.value == "done" and job.result() == "up to date"
    assert job.tail() == ""  # it did not run
    ip.run_line_magic("job", line + " --force")
    assert wait("fit").tail() == "fit ['7']"

    cell(ip, "report --inputs model.pkl --outputs report.txt", "open('report.txt', 'w')\n'ok'")
    assert wait("report").result() == "ok"
    cell(ip, "report --inputs model.pkl --outputs report.txt", "'ran again'")
    assert wait("report").result() == "up to date"
    cell(ip, "forgetful --outputs nothing.txt", "1")
    assert wait("forgetful").info().error == (
        "MissingOutputs: job 'forgetful' succeeded but did not produce its declared outputs: "
        "nothing.txt"
    )


@pytest.mark.timeout(30)
def _logged(capsys: Any) -> str:
    """What was printed, less the terminal echo's lines: its thread may print a job's end
    ("[job count] done in ...") a moment after the job was waited for."""
    out = capsys.readouterr().out
    return "".join(line for line in out.splitlines(True) if not line.startswith("[job "))


def test_jobs_log_run_picks_a_run_and_works_for_jobs_no_longer_listed(
    ip: InteractiveShell, capsys: Any
) -> None:
    ip.user_ns["n"] = 0
    cell(ip, "count", "n += 1\nprint('run', n)")
    wait("count")
    for _ in range(2):
        ip.run_line_magic("jobs", "rerun count")
        wait("count")
    assert len(get_engine()["count"].logs()) == 3
    capsys.readouterr()
    for run, expected in (("1", 1), ("2", 2), ("3", 3), ("-1", 3), ("-3", 1)):
        ip.run_line_magic("jobs", f"log count --run {run}")
        assert _logged(capsys) == f"run {expected}\n"
    ip.run_line_magic("jobs", "log count")  # the latest
    assert _logged(capsys) == "run 3\n"
    message = usage_error(ip.run_line_magic, "jobs", "log count --run 4")
    assert "--run 4: job 'count' has 3 logs kept (--run 1 to 3, oldest first" in message
    assert "-3 from the latest" in message
    history = ip.run_line_magic("jobs", "history")
    assert list(history["name"]) == ["count"] * 3
    assert list(history["status"]) == ["done"] * 3
    # An earlier kernel's job: no longer in the engine, its logs and history still on disk.
    ip.run_line_magic("jobs", "remove count")
    ip.run_line_magic("jobs", "log count --run 2")
    assert _logged(capsys) == "run 2\n"
    assert len(ip.run_line_magic("jobs", "history count")) == 3


# -- terminal echo and unloading ------------------------------------------------------------------


def test_terminal_echo_prints_new_lines_once_with_the_job_name(ip: InteractiveShell) -> None:
    sink = io.StringIO()
    echo = TerminalEcho(ip, get_engine(), stream=lambda: sink)
    try:
        cell(ip, "echoed", "print('a')\nprint('b', end='')\n5")
        wait("echoed")
        deadline = time.monotonic() + 5
        while "done" not in sink.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = sink.getvalue().splitlines()
        assert lines[:2] == ["[job echoed] a", "[job echoed] b"]
        assert lines[2].startswith("[job echoed] done in ") and lines[2].endswith("-> 5")
        assert len(lines) == 3
    finally:
        echo.close()


def test_unload_leaves_no_thread_and_no_child_process(ip: InteractiveShell, tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # other tests' business
    (tmp_path / "sleepy.sh").write_text("sleep 30\n")
    ip.run_line_magic("job", "sleepy.sh --name sleepy")
    cell(ip, "p --backend process", "1")
    cell(ip, "loop --forever", "import time\nwhile True:\n    time.sleep(0.05)")
    wait("p", 60)
    get_engine().wait_job("sleepy", 0.5)
    ours = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert len(ours) >= 2, "the script and the worker process should be running"
    ip.run_line_magic("unload_ext", "jupyter_executor")
    assert "job" not in ip.magics_manager.magics["cell"]
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("jupyter-executor")]
    assert leftover == []
    alive = [p for p in ours if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [p.cmdline() for p in alive]
    ip.run_line_magic("load_ext", "jupyter_executor")  # the fixture unloads it again


@pytest.mark.dask
@pytest.mark.timeout(120)
def test_dask_backend_ships_inputs_and_writes_outputs_back(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    # The worker cannot import jupyter_executor (a cluster whose workers run from another
    # environment): what runs the cell there must travel by value.
    options = cluster_without_us(tmp_path)
    get_engine().shutdown()  # (loading the extension made one) the magics use the next one,
    get_engine(dask=options)  # which the fixture shuts down
    ip.user_ns["values"] = [1, 2, 3]
    probe = (
        "try:\n    import jupyter_executor\nexcept ImportError:\n    where = 'not importable'\n"
        "else:\n    where = 'importable'\nwhere"
    )
    cell(ip, "probe --backend dask", probe)
    cell(ip, "on-dask --backend dask", "total = sum(values)\nprint('on dask', total)\ntotal * 10")
    cell(
        ip,
        "awaits --backend dask --requires on-dask",
        "import asyncio\nawait asyncio.sleep(0)\ntotal + 1",
    )
    assert wait("probe", 90).result() == "not importable", get_engine()["probe"].traceback
    job = wait("on-dask", 90)
    assert job.result() == 60, job.traceback
    assert ip.user_ns["total"] == 6
    assert job.tail() == "on dask 6"
    assert wait("awaits", 60).result() == 7, get_engine()["awaits"].traceback


# -- flows ----------------------------------------------------------------------------------------


def test_jobs_flow_lists_and_submits_a_flow_file(ip: InteractiveShell, tmp_path: Path) -> None:
    flows = tmp_path / "flows.py"
    flows.write_text(
        "from jupyter_executor import flow\n\n"
        "@flow\n"
        "async def build(engine):\n"
        "    a = engine.submit('echo one', name='one')\n"
        "    b = engine.submit('echo two', name='two', requires=a)\n"
        "    await engine.gather(a, b)\n"
        "    return b.tail()\n"
    )
    assert ip.run_line_magic("jobs", f"flow {flows}") == ["build"]
    job = ip.run_line_magic("jobs", f"flow {flows} build")
    assert job.name == "flow:build"
    assert wait("flow:build").result() == "two"
    assert get_engine()["one"].status == "done"  # the flow's jobs joined the engine
    assert "its flows: build" in usage_error(ip.run_line_magic, "jobs", f"flow {flows} nope")
    assert "no flow file" in usage_error(ip.run_line_magic, "jobs", "flow missing.py build")
    assert "takes a file" in usage_error(ip.run_line_magic, "jobs", "flow")


def test_current_engine_is_the_open_default_engine_and_never_makes_one(tmp_path: Path) -> None:
    """What the magics ask before making the kernel's engine with their configured options."""
    from jupyter_executor import engine as engine_module

    previous = engine_module.current_engine()
    if previous is not None:
        previous.shutdown()
    assert engine_module.current_engine() is None
    assert engine_module.current_engine() is None  # asking made none
    made = engine_module.get_engine(folder=tmp_path / "runs")
    try:
        assert engine_module.current_engine() is made
    finally:
        made.shutdown()
    assert engine_module.current_engine() is None  # a closed engine is no current engine
