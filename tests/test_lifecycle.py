"""Long-running jobs (issue 5, "nothing lost"), in plain Python with real files and processes.

Schedules (``every=``, ``cron=``, ``start=``), restart policies, make-like ``inputs=`` /
``outputs=``, log archives, ``converge()``, ``submit_webapp()``, detached jobs taken back by a
second engine, bad input, and the history shared by two engines on one folder. The kernel side
(history and detached jobs across kernel restarts, no orphans after SIGKILL) is in
``test_lifecycle_kernel.py``.

Periods are short (0.2-0.5 s) so that the whole file runs in a few seconds; the counts allow
for a loaded 2-core machine but would catch a job started twice or a schedule that stops.
"""

from __future__ import annotations

import itertools
import sqlite3
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from _clocked import Clocked
from _leaks import assert_nothing_left, child_processes
from _wait import wait_until

from jupyter_executor import Engine, Job
from jupyter_executor.errors import StoreError
from jupyter_executor.store import SCHEMA_VERSION


def events(engine: Engine, name: str, kind: str | None = None) -> list[str]:
    return [str(e) for e in engine.log if e.job == name and (kind is None or e.event == kind)]


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Make extra engines (own options or a shared folder); all shut down and checked after."""
    before = {p.pid for p in child_processes()}
    made: list[Engine] = []

    def make(folder: Path | None = None, **options: Any) -> Engine:
        eng = Engine(folder=folder or tmp_path / "runs", **options)
        eng.cancel_grace = 0.5
        made.append(eng)
        return eng

    try:
        yield make
    finally:
        for eng in made:
            eng.shutdown()
        assert_nothing_left(before)


# -- schedules ------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_periodic_job_runs_on_time_and_cancel_stops_future_runs(clocked: Clocked) -> None:
    engine, clock = clocked
    starts: list[float] = []
    job = engine.submit(lambda: starts.append(clock.time()), name="tick", every="0.3 s")
    for run in range(1, 8):  # runs at 0, 0.3, ... 1.8 s of the clock
        clock.advance_to_next()
        wait_until(lambda n=run: len(starts) == n and job.status.value == "pending", 10, "a run")
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == [pytest.approx(0.3, abs=1e-5)] * 6  # on schedule, no drift, no burst
    assert job.status.value == "pending"
    assert job.next_run == pytest.approx(clock.time() + 0.3, abs=1e-5)
    row = engine.list(next_run=True).iloc[0]
    assert row["next_run"] is not None and row["restarts"] == 0
    assert engine.wait(timeout=0.1), "a periodic job is not waited for"

    assert engine.cancel("tick")
    runs = len(starts)
    clock.advance(0.7)  # two more periods: nothing may start
    assert len(starts) == runs and not clock.pending()
    assert job.status.value == "cancelled"
    assert job.next_run is None
    history = engine.history("tick")
    assert list(history["status"]) == ["done"] * runs + ["cancelled"]  # each run kept


@pytest.mark.timeout(30)
def test_periodic_job_never_overlaps_itself(clocked: Clocked) -> None:
    engine, clock = clocked
    running = 0
    most = 0
    starts: list[float] = []
    lock = threading.Lock()
    release = threading.Event()

    def slow() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            starts.append(clock.time())
        release.wait(10)  # longer than the period: until the test lets it end
        with lock:
            running -= 1

    job = engine.submit(slow, name="slow", every="0.2 s")
    clock.advance_to_next()
    wait_until(lambda: len(starts) == 1, 10, "the first run")
    clock.advance(0.4)  # two ticks while it runs: skipped, not started twice
    assert len(starts) == 1
    release.set()
    wait_until(lambda: job.status.value == "pending", 10, "the run to end")
    clock.advance(0.2)  # the next tick after the run ended
    wait_until(lambda: len(starts) == 2, 10, "the second run")
    engine.cancel("slow")
    engine.wait_job("slow", 5)
    assert most == 1
    assert starts[1] - starts[0] == pytest.approx(0.6, abs=1e-5)
    skipped = events(engine, "slow", "skipped")
    assert len(skipped) == 2 and "not started twice" in skipped[0]


@pytest.mark.timeout(30)
def test_cron_schedule_runs_on_whole_seconds(clocked: Clocked) -> None:
    engine, clock = clocked
    starts: list[float] = []
    # 6 fields: the last one is seconds (croniter), so this runs at every whole second.
    job = engine.submit(lambda: starts.append(clock.time()), name="cron", cron="* * * * * *")
    for run in (1, 2):
        clock.advance_to_next()
        wait_until(lambda n=run: len(starts) == n and job.status.value == "pending", 10, "a run")
    engine.cancel(job)
    assert all(t % 1 < 0.5 for t in starts), starts
    assert round(starts[1] - starts[0]) == 1


def test_one_shot_start_and_cron_next_run_are_shown(engine: Engine) -> None:
    later = datetime.now().astimezone() + timedelta(hours=1)
    once = engine.submit("echo once", name="once", start=later)
    daily = engine.submit("echo daily", name="daily", cron="0 6 * * *")
    wait_until(lambda: once.next_run and daily.next_run, 5, "next run times")
    assert once.next_run == pytest.approx(later.timestamp())
    assert datetime.fromtimestamp(daily.next_run).strftime("%H:%M:%S") == "06:00:00"
    frame = engine.list(next_run=True).set_index("name")
    assert frame.loc["once", "next_run"] == datetime.fromtimestamp(later.timestamp())
    assert once.status.value == "pending" and once.attempts == 0
    engine.cancel(once)
    engine.cancel(daily)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"every": "soon"}, "cannot use every='soon': give a positive duration, e.g. '30 s'"),
        ({"every": "0 s"}, "cannot use every='0 s'"),
        ({"every": -5}, "cannot use every=-5"),
        ({"cron": "not a cron"}, "bad cron expression 'not a cron'"),
        ({"cron": "61 * * * *"}, "bad cron expression '61 * * * *'"),
        ({"every": "1 min", "cron": "* * * * *"}, "give every= or cron=, not both"),
        ({"start": "tomorrowish"}, "cannot use start='tomorrowish': give a date-time"),
        ({"start": "2001-01-01 00:00"}, "start='2001-01-01 00:00' is in the past"),
        ({"restart": "sometimes"}, "restart='sometimes' is not a restart policy: use one of"),
        ({"restart": "always", "max_restarts": -1}, "max_restarts=-1 is not a whole number"),
        ({"restart": "always", "restart_delay": -1}, "restart_delay=-1 must be a duration >= 0"),
        (
            {"detach": True, "target": print, "every": "1 h"},
            "detach=True for a function takes name, requires, timeout, env and cwd, not ['every']",
        ),
    ],
)
def test_bad_schedule_and_policy_are_one_line_errors(
    engine: Engine, options: dict[str, Any], expected: str
) -> None:
    target = options.pop("target", "echo x")
    with pytest.raises(ValueError) as info:
        engine.submit(target, name="bad", **options)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert "bad" not in engine.jobs  # nothing of it was submitted


def test_a_past_start_with_a_period_runs_from_the_next_time_on(engine: Engine) -> None:
    start = datetime.now().astimezone() - timedelta(seconds=10.1)
    job = engine.submit("echo x", name="late", every="1 min", start=start)
    wait_until(lambda: job.next_run, 5, "the next run time")
    # start + k * period: the first time after now, not now (a missed run is not caught up)
    assert job.next_run == pytest.approx(start.timestamp() + 60, abs=0.01)
    engine.cancel(job)


# -- restart policies -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_on_failure_restarts_with_backoff_then_gives_up_with_its_last_error(
    clocked: Clocked,
) -> None:
    engine, clock = clocked
    starts: list[float] = []

    def flaky() -> None:
        starts.append(clock.time())
        raise ValueError(f"boom {len(starts)}")

    job = engine.submit(
        flaky, name="flaky", restart="on-failure", restart_delay=0.1, max_restarts=3
    )
    for _ in range(3):
        clock.advance_to_next()
    assert not engine.wait(timeout=10)  # waited for (not "always"), and it failed
    assert job.status.value == "failed"
    assert job.restarts == 3 and job.attempts == 4
    assert job.info().error == "ValueError: boom 4"  # the last error, not the first
    assert [p.error for p in job.previous] == [f"ValueError: boom {i}" for i in (1, 2, 3)]
    assert [p.status for p in job.previous] == ["failed"] * 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == [pytest.approx(d, abs=1e-6) for d in (0.1, 0.2, 0.4)]  # doubling
    assert not clock.pending()  # given up: no restart armed
    rearmed = events(engine, "flaky", "rearmed")
    assert "restarting (1) in 0.1 s after ValueError: boom 1" in rearmed[0]
    assert "restarting (3) in 0.4 s" in rearmed[2]
    assert "after 3 restarts" in events(engine, "flaky", "gave up")[0]
    history = engine.history("flaky")
    assert list(history["status"]) == ["failed"] * 4
    assert list(history["error"]) == [f"ValueError: boom {i}" for i in (1, 2, 3, 4)]


@pytest.mark.timeout(30)
def test_on_failure_stops_restarting_once_it_succeeds(clocked: Clocked) -> None:
    engine, clock = clocked
    calls: list[int] = []

    def third_time_lucky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return len(calls)

    job = engine.submit(third_time_lucky, name="lucky", restart="on-failure", restart_delay=0.05)
    clock.advance_to_next()
    clock.advance_to_next()
    assert engine.wait(timeout=10)
    assert job.result() == 3 and job.restarts == 2
    assert not clock.pending()  # a success is not restarted under on-failure
    clock.advance(1.0)
    assert len(calls) == 3


@pytest.mark.timeout(30)
def test_keep_restarting_covers_failed_jobs_and_jobs_submitted_later(engine: Engine) -> None:
    calls: dict[str, int] = {}

    def fails_twice(name: str) -> int:
        calls[name] = calls.get(name, 0) + 1
        if calls[name] < 3:
            raise RuntimeError(f"{name} not yet")
        return calls[name]

    early = engine.submit(fails_twice, "early", name="early")
    assert not engine.wait(timeout=10) and early.status.value == "failed"
    assert engine.keep_restarting(delay=0.05, max_restarts=5) == 1  # rerun at once
    later = engine.submit(fails_twice, "later", name="later")  # "from now on"
    own = engine.submit(fails_twice, "own", name="own", restart="on-failure", max_restarts=0)
    assert not engine.wait(timeout=10)  # `own` keeps its own policy: no restart, failed
    assert early.result() == 3 and later.result() == 3
    assert later.restarts == 2 and own.status.value == "failed" and calls["own"] == 1


@pytest.mark.timeout(30)
def test_always_restarts_a_job_that_ends_until_cancelled(clocked: Clocked) -> None:
    engine, clock = clocked
    calls: list[float] = []
    job = engine.submit(
        lambda: calls.append(clock.time()), name="poller", restart="always", restart_delay=0.1
    )
    for _ in range(3):
        clock.advance_to_next()
    wait_until(lambda: job.restarts >= 3 and len(calls) == 4, 5, "three restarts")
    assert engine.wait(timeout=0.1), "a job restarted always is not waited for"
    assert "restarting (1) in 0.1 s after it ended" in events(engine, "poller", "rearmed")[0]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps == [pytest.approx(0.1, abs=1e-6)] * 3  # no backoff growth: it never failed
    engine.cancel(job)
    engine.wait_job(job, 5)
    count = len(calls)
    clock.advance(0.3)
    assert len(calls) == count
    assert job.status.value == "cancelled"


# -- make-like flows ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_make_like_up_to_date_rerun_on_touch_missing_outputs_and_force(
    engine: Engine, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("1,2\n")
    models = tmp_path / "models"
    models.mkdir()
    runs: list[int] = []

    def fit() -> str:
        runs.append(1)
        (models / "model.pkl").write_text("model")
        return "fitted"

    def submit(**options: Any) -> Job:
        job = engine.submit(
            fit,
            name="fit",
            inputs=[str(data)],
            outputs=[str(models / "*.pkl")],  # a glob
            replace=True,
            **options,
        )
        engine.wait_job(job, 10)
        return job

    assert submit().result() == "fitted"
    assert len(runs) == 1
    job = submit()
    assert job.status.value == "done" and job.result() == "up to date"
    assert len(runs) == 1  # not run
    assert events(engine, "fit", "up to date")

    # Touch the input: newer than the output, even for file times that move in coarse ticks.
    time.sleep(0.05)
    data.write_text("1,2\n3,4\n")
    assert submit().result() == "fitted"
    assert len(runs) == 2
    assert submit().result() == "up to date"  # the new output is newer again
    assert submit(force=True).result() == "fitted"
    assert len(runs) == 3


def test_missing_outputs_and_inputs_fail_naming_them(engine: Engine, tmp_path: Path) -> None:
    lazy = engine.submit(
        "echo nothing written", name="lazy", cwd=tmp_path, outputs=["a.out", "b*.out"]
    )
    dependent = engine.submit("echo never", name="after", requires=[lazy])
    orphan = engine.submit("echo never", name="orphan", cwd=tmp_path, inputs=["nope.csv"])
    engine.wait(timeout=10)
    assert lazy.status.value == "failed"
    assert lazy.info().error == (
        "MissingOutputs: job 'lazy' succeeded but did not produce its declared outputs: "
        "a.out, b*.out"
    )
    assert dependent.status.value == "cancelled"
    # A job whose inputs are missing fails at once (it used to stay pending for ever).
    assert orphan.status.value == "failed"
    assert orphan.info().error == (
        "FileNotFoundError: job 'orphan' cannot start: its inputs do not exist: nope.csv"
    )
    assert orphan.tail() == ""  # it never ran
    assert list(engine.history("orphan")["status"]) == ["failed"]


@pytest.mark.timeout(30)
def test_before_and_after_hooks_wrap_each_run(engine: Engine) -> None:
    order: list[str] = []
    job = engine.submit(
        lambda: order.append("main"),
        name="hooked",
        before=lambda j: order.append(f"before {j.name}"),
        after=lambda j: order.append(f"after {j.name}"),
    )
    engine.wait_job(job, 5)
    engine.rerun(job)
    engine.wait_job(job, 5)
    assert order == ["before hooked", "main", "after hooked"] * 2


# -- logs -----------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_each_rerun_archives_the_previous_log_and_keep_logs_bounds_them(
    engines: Callable[..., Engine],
) -> None:
    engine = engines(keep_logs=2)
    count = [0]

    def report() -> None:
        count[0] += 1
        print(f"run {count[0]}")

    job = engine.submit(report, name="report")
    engine.wait_job(job, 5)
    assert [p.name for p in job.logs()] == ["report.log"]
    for _ in range(4):
        engine.rerun(job)
        engine.wait_job(job, 5)
    logs = job.logs()
    # The current log and the last 2 archives (keep_logs=2); older ones were deleted.
    assert len(logs) == 3
    assert logs[-1] == job.log_path
    assert [p.read_text() for p in logs] == ["run 3\n", "run 4\n", "run 5\n"]
    archived = logs[:-1]
    assert all(p.name.startswith("report.") and p.name != "report.log" for p in archived)
    assert sorted(archived) == archived  # names sort in time order
    assert len(list(job.log_path.parent.glob("report.*"))) == 3


# -- converge -------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_converge_runs_rounds_until_the_plan_is_empty(engine: Engine, tmp_path: Path) -> None:
    # A work list that grows as it is processed: each round makes the next round's work.
    todo = tmp_path / "todo"
    todo.mkdir()
    (todo / "1").write_text("")
    made: list[str] = []
    plans: list[list[str]] = []

    def process(path: Path) -> None:
        n = int(path.name)
        made.append(path.name)
        path.unlink()
        if n < 3:
            (todo / str(n + 1)).write_text("")

    def plan() -> list[Job]:
        names = sorted(p.name for p in todo.iterdir())
        plans.append(names)
        return [Job(process, args=(todo / name,), name=f"item-{name}") for name in names]

    assert engine.converge(plan)
    assert made == ["1", "2", "3"]
    assert plans == [["1"], ["2"], ["3"], []]  # three rounds, then the plan is empty
    assert [e.detail for e in engine.log if e.event == "converged"] == ["after 3 rounds"]


@pytest.mark.timeout(30)
def test_converge_tolerates_errors_then_gives_up(engine: Engine) -> None:
    rounds: list[int] = []

    def plan() -> list[Job]:
        rounds.append(1)

        def fail() -> None:
            raise RuntimeError("still broken")

        return [Job(fail, name="fix")]  # the same name each round: replaced

    assert not engine.converge(plan, errors_to_tolerate=2)
    assert len(rounds) == 3  # the third failure is one too many
    assert len(engine["fix"].previous) == 2


@pytest.mark.timeout(30)
def test_converge_timeout_cancels_the_round(engine: Engine) -> None:
    start = time.monotonic()
    ok = engine.converge(lambda: [Job("sleep 30", name="stuck")], timeout=0.5)
    assert not ok
    assert time.monotonic() - start < 3
    job = engine["stuck"]
    engine.wait_job(job, 5)
    assert job.status.value == "cancelled"
    assert "converge() timed out after 0.5 s" in str(job.cancel_reason)


# -- web apps -------------------------------------------------------------------------------------


def _serve(engine: Engine, folder: Path, name: str, args: str, page: str) -> tuple[Job, str]:
    """``python -m http.server ARGS`` as the web app ``name`` serving ``folder``, whose
    index.html says ``page``; return the job and its URL once its port answers."""
    (folder / "index.html").write_text(page)
    job = engine.submit_webapp(f"{sys.executable} -m http.server {args}", name=name, cwd=folder)
    return job, wait_until(lambda: job.url, 15, "the web app's port to answer")


@pytest.mark.timeout(30)
def test_webapp_answers_http_on_loopback_and_shows_its_url(engine: Engine, tmp_path: Path) -> None:
    job, url = _serve(engine, tmp_path, "web", "{port} --bind {host}", "hello from the job")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")
    with urllib.request.urlopen(url + "index.html", timeout=5) as response:
        assert response.status == 200
        assert response.read() == b"hello from the job"
    assert engine.list(next_run=True).set_index("name").loc["web", "url"] == url
    assert events(engine, "web", "listening")
    engine.cancel(job)
    engine.wait_job(job, 5)
    assert job.status.value == "cancelled"
    with pytest.raises(OSError):  # the server is gone
        urllib.request.urlopen(url, timeout=2)


@pytest.mark.timeout(30)
def test_webapp_template_takes_executor_engines_ip_too(engine: Engine, tmp_path: Path) -> None:
    job, url = _serve(engine, tmp_path, "seed-web", "-b {ip} {port}", "served")
    with urllib.request.urlopen(url + "index.html", timeout=5) as response:
        assert response.read() == b"served"
    with pytest.raises(ValueError, match=r"bad command template .*it may use \{port\}, \{host\}"):
        engine.submit_webapp("serve --addr {addr}", name="bad-web")
    assert "bad-web" not in engine
    engine.cancel(job)
    engine.wait_job(job, 5)


# -- detached jobs (plain Python; the kernel tests restart real kernels) ---------------------------


@pytest.mark.timeout(30)
def test_detached_job_outlives_its_engine_and_a_new_engine_takes_it_back(
    engines: Callable[..., Engine], tmp_path: Path
) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "import sys, time\n"
        "for i in range(8):\n"
        "    print('line', i, flush=True)\n"
        "    time.sleep(0.2)\n"
        "sys.exit(3)\n"
    )
    first = engines()
    job = first.submit([sys.executable, str(script)], name="srv", detach=True)
    wait_until(lambda: "line 1" in job.tail(), 10, "the detached job's output")
    pid = job.pid
    assert pid is not None
    first.shutdown()  # the engine stops; the detached job must not
    assert psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE

    second = engines()  # same folder: takes the job back
    again = second["srv"]
    assert again.status.value == "running" and again.pid == pid
    assert events(second, "srv", "reattached")
    second.wait_job(again, 10)
    assert again.status.value == "failed"
    assert "exited with code 3" in str(again.info().error)
    assert "line 7" in again.tail()  # its log was followed after the take-over
    runs = second.history("srv")
    assert len(runs) == 1  # one run, started by one engine, finished under the other
    run = runs.iloc[0]
    assert run["status"] == "failed" and run["exit_code"] == 3
    assert run["engine_id"] == first.id and bool(run["detached"])


# -- bad folders and databases --------------------------------------------------------------------


def test_a_folder_that_cannot_be_written_is_a_one_line_error(tmp_path: Path) -> None:
    # Tests run as root, for whom permission bits do not stop writes: a path under a regular
    # file cannot be a folder for anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError) as info:
        Engine(folder=blocker / "runs")
    message = str(info.value)
    assert "\n" not in message
    assert "cannot write the history" in message and "is not a folder" in message


def test_a_database_of_a_newer_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    db = folder / "history.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO meta VALUES ('schema_version', '99')")
        con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO runs (name) VALUES ('from the future')")
    con.close()
    content = db.read_bytes()
    with pytest.raises(StoreError) as info:
        Engine(folder=folder)
    message = str(info.value)
    assert "\n" not in message
    assert f"written by a newer jupyter_executor (schema 99 > {SCHEMA_VERSION})" in message
    assert db.read_bytes() == content
    assert sorted(p.name for p in folder.iterdir()) == ["history.db"]  # no logs, no WAL


# -- the history ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_history_is_shared_by_two_engines_on_one_folder_and_outlives_them(
    engines: Callable[..., Engine], tmp_path: Path
) -> None:
    folder = tmp_path / "shared"
    a = engines(folder)
    b = engines(folder)
    assert a.id != b.id
    a.submit(sum, [1, 2], name="add")
    b.submit(max, [1, 2], name="biggest")
    b.submit("exit 2", name="broken")
    assert a.wait(10)
    assert not b.wait(10)
    # Each engine writes its own runs a few ms later, in batches; history() first writes what
    # its engine has pending, so after both were asked, each sees everything.
    a.history()
    b.history()
    for engine in (a, b):
        frame = engine.history()
        by_name = frame.set_index("name")
        assert set(by_name.index) == {"add", "biggest", "broken"}
        assert by_name.loc["add", "engine_id"] == a.id
        assert by_name.loc["biggest", "engine_id"] == b.id
        assert by_name.loc["add", "result"] == "3"
        assert by_name.loc["broken", "exit_code"] == 2
        assert by_name.loc["broken", "status"] == "failed"
    assert list(b.history("add")["name"]) == ["add"]
    a.shutdown()
    b.shutdown()
    c = engines(folder)  # a later session on the same folder
    assert set(c.history()["name"]) == {"add", "biggest", "broken"}
    assert len(c.jobs) == 0  # history, not jobs: nothing is re-run


# -- a process that died with jobs open ----------------------------------------------------------

_DIES_WITH_JOBS_OPEN = """
import os, signal, sys, time
from jupyter_executor import Engine
engine = Engine(folder=sys.argv[1])
engine.submit(time.sleep, 60, name="busy")
engine.submit(len, "x", name="next", requires="busy")
engine.history()  # written to disk
print("ready", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.timeout(60)
def test_runs_of_a_process_that_died_unreaped_are_closed(tmp_path: Path) -> None:
    # The engine's process is killed and left a zombie (its parent has not reaped it yet, as a
    # busy Jupyter server may not have): it is dead, so the next engine closes its open runs.
    import subprocess

    folder = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-c", _DIES_WITH_JOBS_OPEN, str(folder)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, timeout=10)
        with Engine(folder=folder) as engine:
            runs = {r["name"]: r for r in engine.history().to_dict("records")}
        assert (runs["busy"]["status"], runs["busy"]["error"]) == (
            "failed",
            "the kernel died while it ran",
        )
        assert (runs["next"]["status"], runs["next"]["cancel_reason"]) == (
            "cancelled",
            "the kernel died before it started",
        )
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
