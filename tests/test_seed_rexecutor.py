"""R executor's README (seeds/000), example by example, translated to our API.

The R script ``jobs/test.R`` becomes a Python script that prints the executor id it was given,
its SYMBOL and the time, then sleeps (a long-running task, stopped by pid).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from _wait import wait_until

from jupyter_executor import DuplicateJobName, Engine, Job
from jupyter_executor.engine import COLUMNS

pytestmark = pytest.mark.timeout(90)

SCRIPT = """\
import os, sys, time
print(os.environ["JUPYTER_EXECUTOR_ID"])
print(os.environ["SYMBOL"])
print(time.strftime("%Y-%m-%d %H:%M:%S"), flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "fail":
    sys.exit(3)
time.sleep(float(os.environ.get("NAP", "60")))
"""


@pytest.fixture
def script(tmp_path: Path) -> list[str]:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "test.py").write_text(SCRIPT)
    return [sys.executable, str(jobs / "test.py")]


@pytest.fixture
def xg15(tmp_path: Path) -> Engine:
    # executor$new(folder = "test", exec_id = "xg15")
    eng = Engine(folder=tmp_path / "test", id="xg15")
    eng.cancel_grace = 0.5
    yield eng
    eng.shutdown()


def test_random_or_given_id(tmp_path: Path) -> None:
    with (
        Engine(folder=tmp_path / "a") as random_id,
        Engine(folder=tmp_path / "b", id="xg15") as given,
    ):
        assert re.fullmatch(r"[0-9a-f]{8}", random_id.id)
        assert given.id == "xg15"


def test_add_then_start_and_duplicates_in_a_loop_are_skipped(
    xg15: Engine, script: list[str], tmp_path: Path
) -> None:
    # exec_model$add_task(name = "LOL", script = "jobs/test.R", wd = getwd(), env = c(...))
    lol = xg15.add(script, name="LOL", cwd=tmp_path, env={"SYMBOL": "LOL"})
    assert lol.status.value == "created"
    assert xg15["LOL"] is lol
    # c("LMFAO", "LOL") %>% purrr::walk(~ add_task(...)): a warning, LOL skipped
    with pytest.warns(UserWarning, match="Skipping LOL"):
        added = [
            xg15.add(script, name=n, cwd=tmp_path, env={"SYMBOL": n}, on_duplicate="skip")
            for n in ("LMFAO", "LOL")
        ]
    assert added[1] is lol and added[0].name == "LMFAO"
    with pytest.raises(DuplicateJobName, match="LOL"):
        xg15.add(script, name="LOL")
    # exec_model$start_task(name = "LOL")
    assert xg15.start("LOL") is lol
    wait_until(lambda: "LOL" in lol.tail(), what="LOL's output")
    assert lol.tail().splitlines()[:2] == ["xg15", "LOL"]
    # the id reaches each script: two executors never mix up the same script
    assert xg15["LMFAO"].status.value == "created"


def test_start_all_says_what_it_scheduled_started_or_left_running(
    xg15: Engine, script: list[str], tmp_path: Path
) -> None:
    xg15.add(script, name="LOL", cwd=tmp_path, env={"SYMBOL": "LOL"}, restart="always")
    xg15.add(script, name="LOL_Schedule", cwd=tmp_path, env={"SYMBOL": "s"}, every="2 min",
             start=datetime.now() + timedelta(minutes=2))  # fmt: skip
    day = datetime.now().replace(microsecond=0) + timedelta(hours=3)
    xg15.add(script, name="LOL_Schedule_day", env={"SYMBOL": "d"}, every="day", start=day)
    xg15.add(script, name="LMFAO", cwd=tmp_path, env={"SYMBOL": "LMFAO"}, restart="always")
    xg15.start("LOL")
    summary = xg15.start_all()
    assert summary == {
        "started": ["LMFAO"],
        "scheduled": ["LOL_Schedule", "LOL_Schedule_day"],
        "already running": ["LOL"],
    }
    # list_running_task(next_run = T): the next run of each scheduled task
    wait_until(lambda: xg15["LOL_Schedule_day"].next_run is not None, what="the next run")
    frame = xg15.list(next_run=True).set_index("name")
    assert frame.loc["LOL_Schedule_day", "next_run"] == day
    assert frame.loc["LOL_Schedule_day", "schedule"].startswith("every 1 day")
    assert pd.isna(frame.loc["LOL", "schedule"])
    # exec_model$stop_task(name = "LOL"); exec_model$stop_all()
    wait_until(lambda: xg15["LOL"].pid is not None, what="LOL's pid")
    pid = xg15["LOL"].pid
    assert xg15.stop("LOL")
    xg15.wait_job("LOL", 30)
    assert xg15["LOL"].status.value == "cancelled"
    wait_until(lambda: not _alive(pid), what="LOL's process to be killed")
    stopped = xg15.stop_all()
    assert sorted(stopped) == ["LMFAO", "LOL_Schedule", "LOL_Schedule_day"]
    for name in stopped:
        xg15.wait_job(name, 30)
    assert xg15.counts()["cancelled"] == 4


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is dead


def test_the_engine_log_has_dates_and_pids(
    xg15: Engine, script: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jupyter_executor")
    xg15.add(script, name="LOL", cwd=tmp_path, env={"SYMBOL": "LOL", "NAP": "0"})
    job = xg15.start("LOL")
    assert job is not None
    xg15.wait_job(job, 30)
    lines = [str(e) for e in xg15.log if e.job == "LOL"]
    today = time.strftime("%Y-%m-%d")
    assert all(line.startswith(today) for line in lines), lines
    assert any(f"(pid {job.pid})" in line for line in lines), lines
    # the logging lines: "started LOL jobs/test.R (pid 92809)"
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("started LOL")]
    assert started == [f"started LOL {job.describe()} (pid {job.pid})"]
    assert "test.py" in started[0]
    assert any(r.getMessage() == "done LOL" for r in caplog.records)


def test_the_tasks_table(xg15: Engine, script: list[str], tmp_path: Path) -> None:
    # exec_model$tasks: id, name, script, wd, stamp, status, pid, env, loop, period, start
    xg15.add(
        script, name="LOL", cwd=tmp_path, env={"SYMBOL": "LOL", "TOKEN": "secret-value", "NAP": "0"}
    )
    xg15.start("LOL")
    xg15.add(script, name="waiting", env={"SYMBOL": "w"})
    xg15.wait_job("LOL", 30)
    frame = xg15.list()
    assert tuple(frame.columns) == COLUMNS
    row = frame.set_index("name").loc["LOL"]
    assert row["engine_id"] == "xg15"
    assert "test.py" in row["command"]
    assert row["cwd"] == str(tmp_path)
    assert row["env"] == ["NAP", "SYMBOL", "TOKEN"]  # names only: values may be secrets
    assert "secret-value" not in frame.to_string()
    assert row["pid"] == xg15["LOL"].pid and row["pid"] > 0
    assert row["status"] == "done"
    assert frame.set_index("name").loc["waiting", "status"] == "created"


def test_read_out_and_archived_output_of_a_restarted_task(
    xg15: Engine, script: list[str], tmp_path: Path
) -> None:
    # LOL.txt, and LOL_<stamp>.txt for a previous run; read_out(name = "LOL", n_tail = 50)
    job = xg15.submit([*script, "fail"], name="LOL", env={"SYMBOL": "LOL"}, restart="on-failure",
                      restart_delay=0.05, max_restarts=1)  # fmt: skip
    xg15.wait_job(job, 30)
    assert job.status.value == "failed" and job.restarts == 1
    logs = job.logs()
    assert len(logs) == 2 and logs[-1] == xg15.log_path("LOL")
    assert job.tail(50).splitlines()[:2] == ["xg15", "LOL"]


def test_keep_restarting(xg15: Engine, script: list[str], tmp_path: Path) -> None:
    marker = tmp_path / "ran-once"
    # fails the first time, succeeds when restarted by the watchdog
    code = (
        f"import pathlib,sys; p=pathlib.Path({str(marker)!r}); f=p.exists(); p.touch(); "
        "sys.exit(0 if f else 1)"
    )
    job = xg15.submit([sys.executable, "-c", code], name="flaky")
    xg15.wait_job(job, 30)
    assert job.status.value == "failed"
    assert xg15.keep_restarting(delay=0.05) == 1
    wait_until(lambda: job.status.value == "done", what="the restarted job")


def test_a_job_object_can_be_added_too(xg15: Engine) -> None:
    job = xg15.add(Job(sum, args=([1, 2],), name="total"))
    assert xg15.list().set_index("name").loc["total", "status"] == "created"
    assert xg15.start(job) is job
    assert xg15.wait() and job.result() == 3
    assert xg15.start("total") is job  # finished: run again
    xg15.wait_job(job, 30)
    assert job.attempts == 2 and len(job.previous) == 1
