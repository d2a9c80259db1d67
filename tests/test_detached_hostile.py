"""Hostile input to detached jobs, their re-attach by the next engine, and durable schedules.

Each test is a bug found by feeding odd input: a corrupt exit or claim file, a name taken by a
job whose process has not read its input yet, a command that ignores SIGTERM, a schedule whose
next time is past year 9999, a rerun of a re-attached job. None may take an engine down, stall
its other jobs, run the wrong thing, or leave a run or a process unknown to the history.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _leaks import marked
from _wait import wait_until

from jupyter_executor import Engine
from jupyter_executor._durable import RearmedWarning
from jupyter_executor.errors import DuplicateJobName, InvalidOption

NO_EXIT = "the detached process ended while no kernel watched it, and left no exit status"


@pytest.fixture
def marker() -> Iterator[str]:
    """A word on the command line of a test's processes: none outlives the test."""
    word = f"je-hostile-{uuid.uuid4().hex}"
    try:
        yield word
    finally:
        for proc in marked(word):
            proc.kill()


def reopen(folder: Path, **columns: object) -> None:
    """Make the runs of ``folder`` open again, as a kernel that died before their end left them."""
    sets = ", ".join(f"{name} = ?" for name in columns)
    with sqlite3.connect(folder / "history.db") as con:
        con.execute(
            f"UPDATE runs SET status = 'running', finished = NULL{', ' if sets else ''}{sets}",
            tuple(columns.values()),
        )
        con.execute("UPDATE engines SET pid = 999999999")  # an engine process that is gone
    con.close()


def ended_detached(folder: Path, marker: str) -> None:
    """A detached run of ``det`` in ``folder`` that ended (its process is gone)."""
    engine = Engine(folder=folder)
    try:
        job = engine.submit(["sh", "-c", "true", marker], name="det", detach=True)
        assert engine.wait_job(job, 30)
    finally:
        engine.shutdown()


@pytest.mark.timeout(90)
def test_a_corrupt_exit_file_does_not_take_the_next_engine_down(
    tmp_path: Path, marker: str
) -> None:
    # The exit file of a run that ended while no kernel watched it was read as
    # int(json["returncode"]): a file of another shape raised TypeError (or OverflowError)
    # out of Engine(), and no engine could open the folder any more.
    folder = tmp_path / "runs"
    ended_detached(folder, marker)
    exit_file = folder / "logs" / "det.exit.json"
    for text in ("[1]", '"x"', '{"returncode": null}', '{"returncode": 1e400}',
                 '{"returncode": 99999999999999999999}', "[" * 100_000):  # fmt: skip
        reopen(folder)
        exit_file.write_text(text)
        engine = Engine(folder=folder)
        try:
            run = engine.history("det").iloc[-1]
            assert (run["status"], run["error"]) == ("failed", NO_EXIT), text[:40]
        finally:
            engine.shutdown()


@pytest.mark.timeout(60)
def test_a_claim_file_with_no_real_pid_does_not_take_the_next_engine_down(
    tmp_path: Path, marker: str
) -> None:
    # A run recorded before its process started (no pid) is looked up in its claim file; a
    # negative pid there raised psutil's ValueError out of Engine(), deep nesting a
    # RecursionError.
    folder = tmp_path / "runs"
    ended_detached(folder, marker)
    claim_file = folder / "logs" / "det.claim.json"
    (folder / "logs" / "det.exit.json").unlink()
    for text in ('{"pid": -5}', "[" * 100_000):
        reopen(folder, pid=None)
        claim_file.write_text(text)
        engine = Engine(folder=folder)
        try:
            assert "det" not in engine
            assert engine.history("det").iloc[-1]["status"] in ("failed", "cancelled"), text
        finally:
            engine.shutdown()


def first() -> str:
    return "first"


def second() -> str:
    return "second"


@pytest.mark.timeout(90)
def test_a_refused_detached_function_leaves_the_files_of_the_job_named_so_alone(
    tmp_path: Path,
) -> None:
    # The function and its arguments were written over the input file of the job that had
    # the name before submit() refused the name: that job's process, still starting, ran the
    # refused function. And a finished job's outputs were deleted by a refused submission.
    engine = Engine(folder=tmp_path / "runs")
    try:
        job = engine.submit(first, detach=True, name="x")
        with pytest.raises(DuplicateJobName, match=r"job 'x' is (pending|running)"):
            engine.submit(second, detach=True, name="x")
        assert engine.wait_job(job, 60)
        assert job.outputs == {"result": "first"}
        with pytest.raises(DuplicateJobName, match="already exists"):
            engine.submit(second, detach=True, name="x")
        assert job.outputs == {"result": "first"}
    finally:
        engine.shutdown()


@pytest.mark.timeout(90)
def test_cancelling_a_reattached_command_that_ignores_sigterm_does_not_stall_the_engine(
    tmp_path: Path, marker: str
) -> None:
    # The group of a cancelled re-attached job was stopped on the engine's loop, which then
    # waited the whole grace for a command ignoring SIGTERM: no other job could start or end.
    folder = tmp_path / "runs"
    termed = tmp_path / "termed"
    script = f"trap 'echo t >> {termed}' TERM; while :; do sleep 60 & wait; done"
    first_engine = Engine(folder=folder)
    first_engine.cancel_grace = 30.0  # its supervisor's: the re-attaching engine's is shorter
    try:
        first_engine.submit(["sh", "-c", script, marker], name="det", detach=True)
        wait_until(lambda: len(marked(marker)) == 2, 30, "the detached command")
    finally:
        first_engine.shutdown()  # the detached job runs on
    engine = Engine(folder=folder)
    engine.cancel_grace = 6.0
    try:
        assert engine["det"].status.value == "running"
        assert engine.cancel("det")
        wait_until(termed.exists, 20, "the SIGTERM of the cancel")
        start = time.monotonic()
        quick = engine.submit(lambda: 1, name="quick")
        assert engine.wait_job(quick, 30)
        assert time.monotonic() - start < 3.0, "the engine's loop was held by the cancel"
        assert not engine.wait_job("det", 30)
        assert engine["det"].status.value == "cancelled"
        wait_until(lambda: not marked(marker), 20, "the cancelled command's end")
        assert engine.history("det").iloc[-1]["status"] == "cancelled"
    finally:
        engine.shutdown()


@pytest.mark.timeout(60)
def test_a_schedule_whose_missed_runs_cannot_be_counted_is_rearmed_all_the_same(
    tmp_path: Path,
) -> None:
    # Counting the runs missed meanwhile raised out of Engine(): a corrupt creation time, or a
    # period whose next time is past year 9999 (which submit accepted then, and a folder may
    # still hold), made every later engine on the folder fail. So did one stored spec that is
    # not JSON, for every other schedule of the folder.
    folder = tmp_path / "runs"
    engine = Engine(folder=folder)
    try:
        with pytest.raises(InvalidOption, match="at most 100 years"):
            engine.submit("true", every=3e11, name="rare")
        for name in ("rare", "hourly", "broken"):
            engine.submit("true", every="1 h", name=name)
    finally:
        engine.shutdown()
    with sqlite3.connect(folder / "history.db") as con:  # what an older version, or damage, left
        con.execute("UPDATE schedules SET created = 'yesterday' WHERE name = 'hourly'")
        con.execute(
            "UPDATE schedules SET spec = json_set(spec, '$.every', 3e11) WHERE name = 'rare'"
        )
        con.execute("UPDATE schedules SET spec = '{not json' WHERE name = 'broken'")
    con.close()
    with pytest.warns(RearmedWarning, match="re-armed 1 schedule"):
        second_engine = Engine(folder=folder)
    try:
        assert "hourly" in second_engine.jobs
        assert "broken" not in second_engine.jobs
    finally:
        second_engine.shutdown()


def doubled(x: int, marker: str) -> int:
    time.sleep(1.5)
    return 2 * x


@pytest.mark.timeout(120)
def test_a_reattached_job_reruns_its_own_command_and_the_rerun_is_recorded(
    tmp_path: Path, marker: str
) -> None:
    # A re-attached job was made of its run's description: a rerun ran the description as a
    # shell command ('slow(...)' for a function), and, the job still marked re-attached, the
    # rerun was never recorded, not even its write-ahead (a detached process unknown to all).
    folder = tmp_path / "runs"
    ran = tmp_path / "ran.txt"
    first_engine = Engine(folder=folder)
    try:
        first_engine.submit(
            ["sh", "-c", f"echo run >> {ran}; sleep 1.5", marker], name="cmd", detach=True
        )
        first_engine.submit(doubled, 21, marker, detach=True, name="py")
        wait_until(
            lambda: first_engine["cmd"].pid and first_engine["py"].pid, 30, "the detached jobs"
        )
    finally:
        first_engine.shutdown()
    engine = Engine(folder=folder)
    try:
        assert engine["cmd"].status.value == "running"
        for name in ("cmd", "py"):
            assert engine.wait_job(name, 30), name
            engine.rerun(name)
            assert engine.wait_job(name, 30), name
        assert ran.read_text() == "run\nrun\n"
        assert engine["py"].outputs == {"result": 42}
        for name in ("cmd", "py"):
            runs = engine.history(name)
            assert list(runs["status"]) == ["done", "done"], name
            assert runs["engine_id"].iloc[-1] == engine.id
    finally:
        engine.shutdown()


@pytest.mark.timeout(90)
def test_a_finished_detached_function_is_replaced_by_name(tmp_path: Path) -> None:
    # submit(fn, detach=True, replace=True) dropped replace=: a finished detached function
    # could not be submitted again under its name.
    engine = Engine(folder=tmp_path / "runs")
    try:
        job = engine.submit(first, detach=True, name="y")
        assert engine.wait_job(job, 60) and job.outputs == {"result": "first"}
        again = engine.submit(second, detach=True, name="y", replace=True)
        assert engine.wait_job(again, 60)
        assert again.outputs == {"result": "second"}
        assert engine["y"] is again
    finally:
        engine.shutdown()


@pytest.mark.timeout(30)
def test_unschedule_takes_a_name(tmp_path: Path) -> None:
    # unschedule(None) failed deep in the store: AttributeError ... 'isascii'.
    from jupyter_executor import InvalidOptionType

    engine = Engine(folder=tmp_path / "runs")
    try:
        for odd in (None, 5):
            with pytest.raises(InvalidOptionType, match="unschedule\\(\\) takes a job's name"):
                engine.unschedule(odd)  # type: ignore[arg-type]
        assert engine.unschedule("nothing") is False
    finally:
        engine.shutdown()


@pytest.mark.timeout(60)
def test_a_character_a_detached_command_writes_in_two_pieces_is_one(
    tmp_path: Path, marker: str
) -> None:
    # Its log was decoded read by read: "é" written as two bytes on either side of a read
    # showed as two U+FFFD in the job's output.
    engine = Engine(folder=tmp_path / "runs")
    try:
        script = "printf 'caf\\303'; sleep 1; printf '\\251\\n'"
        job = engine.submit(["sh", "-c", script, marker], name="split", detach=True)
        assert engine.wait_job(job, 30)
        assert "café" in job.tail(), repr(job.tail())
    finally:
        engine.shutdown()
