"""The ``jupyter-executor`` command on a hostile folder or with bad values: a corrupt history,
a read-only folder, durations that are not durations, names that are not UTF-8.

Whatever goes wrong, the command prints one line that says what (naming the file, or the option
and the value) and exits non-zero: never a Python traceback. Run for real in a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_executor import Engine

CLI = [sys.executable, "-m", "jupyter_executor"]
#: The commands that read the history, each as (arguments before --folder).
READERS = (("list",), ("logs", "x"), ("why", "out.txt"), ("cancel", "x"))


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=60
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command's only line of error (asserting there is exactly one, and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def record_runs(folder: Path) -> None:
    """A history in ``folder``: a run of ``x`` that printed, one of ``make`` that made out.txt."""
    out = folder.parent / "out.txt"
    with Engine(folder=folder) as engine:
        engine.submit(["echo", "hello"], name="x")
        engine.submit(["sh", "-c", f"echo made > {out}"], name="make", outputs=[str(out)])
        assert engine.wait(timeout=30)


# a corrupt history -----------------------------------------------------------------------------
def _random_bytes(db: Path) -> None:
    db.write_bytes(os.urandom(8192))


def _truncated(db: Path) -> None:
    # A valid header whose pages are cut short: SQLite opens it, then fails to read it.
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2] + os.urandom(100))


@pytest.mark.parametrize("damage", [_random_bytes, _truncated], ids=["random", "truncated"])
@pytest.mark.parametrize(
    "command", [*READERS, ("schedules", "list")], ids=[*(c[0] for c in READERS), "schedules"]
)
def test_a_corrupt_history_is_one_line_naming_the_file(
    tmp_path: Path, damage: object, command: tuple[str, ...]
) -> None:
    record_runs(tmp_path / "runs")
    db = tmp_path / "runs" / "history.db"
    for extra in tmp_path.glob("runs/history.db-*"):
        extra.unlink()
    damage(db)  # type: ignore[operator]
    result = cli(tmp_path, *command, "--folder", "runs")
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("jupyter-executor: ")
    assert "runs/history.db" in line
    assert "not a database" in line or "malformed" in line


# a read-only folder -------------------------------------------------------------------------
@contextlib.contextmanager
def _read_only_mount(path: Path) -> Iterator[None]:
    """``path`` as a tmpfs mounted read-only after ``record_runs`` filled it (root only: the
    permission bits do not stop root)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], capture_output=True)
    # Not skipped when it cannot: a read-only folder would then go untested without a word.
    assert mounted.returncode == 0, f"cannot mount a tmpfs as root: {mounted.stderr.strip()!r}"
    try:
        record_runs(path / "runs")
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder holding a history in ``runs``, which this process cannot write."""
    where = tmp_path / "ro"
    if os.geteuid() == 0:
        with _read_only_mount(where):
            yield where
        return
    where.mkdir()
    record_runs(where / "runs")
    for path in (where, where / "runs", where / "runs" / "logs"):
        path.chmod(0o555)
    try:
        yield where
    finally:
        for path in (where, where / "runs", where / "runs" / "logs"):
            path.chmod(0o755)


def test_the_commands_that_read_need_no_write_access(read_only: Path) -> None:
    listed = cli(read_only, "list", "--folder", "runs")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["x", "make"]
    logs = cli(read_only, "logs", "x", "--folder", "runs")
    assert (logs.returncode, logs.stdout) == (0, "hello\n"), logs.stderr
    why = cli(read_only, "why", "out.txt", "--folder", "runs")
    assert why.returncode == 0, why.stderr
    assert "out.txt was made by job 'make'" in why.stdout
    assert "unchanged since" in why.stdout
    schedules = cli(read_only, "schedules", "list", "--folder", "runs")
    assert schedules.returncode == 0, schedules.stderr
    assert not list(read_only.glob("runs/history.db-*"))  # nothing written beside it


def test_cancel_on_a_read_only_folder_says_so_in_one_line(read_only: Path) -> None:
    result = cli(read_only, "cancel", "x", "--folder", "runs")
    assert result.returncode == 1
    line = one_line(result)
    assert "runs" in line
    assert "not writable" in line or "cannot create a file there" in line


# bad durations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("grace", ["nan", "-1", "inf", "1e999", "soon", ""])
def test_cancel_refuses_a_grace_that_is_not_a_duration(tmp_path: Path, grace: str) -> None:
    # Refused by the parser, before any process is signalled (nan crashed after the SIGTERM;
    # inf waited for as long as the job ignored it).
    result = cli(tmp_path, "cancel", "x", "--folder", "runs", "--grace", grace)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument --grace: takes a positive number of seconds, 0, or a duration" in (
        result.stderr
    )
    assert f"not {grace!r}" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("grace", ["0", "1.5", "1m30s"])
def test_cancel_takes_a_grace_in_the_duration_grammar(tmp_path: Path, grace: str) -> None:
    result = cli(tmp_path, "cancel", "x", "--folder", "runs", "--grace", grace)
    assert result.returncode == 1  # accepted: there is nothing to cancel here
    assert one_line(result) == "no history in runs (no run recorded there yet)"


@pytest.mark.parametrize("rescan", ["0", "nan", "-5", "inf", "soon"])
def test_schedules_run_refuses_a_rescan_that_is_not_a_period(tmp_path: Path, rescan: str) -> None:
    result = cli(tmp_path, "schedules", "run", "--folder", "runs", "--rescan", rescan)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert one_line(result).startswith(
        "jupyter-executor: --rescan takes a number of seconds > 0 or a duration (90, "
    )
    assert result.stderr.endswith(f"), not {rescan!r}\n")
    assert not (tmp_path / "runs").exists()


# odd values that reached Python ----------------------------------------------------------------
def test_a_tail_longer_than_any_file_is_the_whole_log(tmp_path: Path) -> None:
    record_runs(tmp_path / "runs")
    result = cli(tmp_path, "logs", "x", "--folder", "runs", "--tail", "1" + "0" * 30)
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr


def test_why_a_path_that_is_not_utf8(tmp_path: Path) -> None:
    # Python decodes the byte 0xff of a command line as a lone surrogate, which SQLite refuses.
    record_runs(tmp_path / "runs")
    result = cli(tmp_path, "why", os.fsdecode(b"out-\xff.txt"), "--folder", "runs")
    assert result.returncode == 1
    assert "no recorded run made out-" in one_line(result)


def test_an_unreadable_log_is_one_line(tmp_path: Path) -> None:
    record_runs(tmp_path / "runs")
    log = tmp_path / "runs" / "logs" / "x.log"
    log.unlink()
    log.mkdir()  # unreadable as a file, even by root
    os.utime(log)
    result = cli(tmp_path, "logs", "x", "--folder", "runs")
    assert result.returncode == 1
    assert "x.log" in one_line(result)
    shutil.rmtree(log)
