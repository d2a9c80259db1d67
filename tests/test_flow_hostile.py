"""Flows, make-like jobs, logs and output capture against hostile input: folders with glob
characters in their names, dangling symlinks, non-UTF-8 file names, job names that look like
archived logs, a replaced job that keeps printing, a finalizer that prints inside a write, and
notebooks that are not notebooks.

Each test is a bug that was found and fixed: the engine (or the command) must say what is wrong
in one line, or simply work, and never hang, crash or put output in another job's log.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import threading
import time
from pathlib import Path

import pytest
from _wait import wait_until

from jupyter_executor import Engine, JupyterExecutorError
from jupyter_executor._capture import Output
from jupyter_executor._nbflow import run_notebook
from jupyter_executor.cli import main


@pytest.mark.timeout(30)
def test_make_like_globs_in_a_folder_whose_name_has_brackets(
    engine: Engine, tmp_path: Path
) -> None:
    # "exp [1]" is a folder name: its brackets must not be read as a glob character class.
    folder = tmp_path / "exp [1]"
    folder.mkdir()
    (folder / "a.in").write_text("x")
    job = engine.submit(
        lambda: (folder / "a.out").write_text("y"),
        name="make",
        inputs=["*.in"],
        outputs=["*.out"],
        cwd=folder,
    )
    engine.wait()
    assert job.status.value == "done", job.info().error
    assert (folder / "a.out").read_text() == "y"


@pytest.mark.timeout(30)
def test_an_output_glob_matching_a_dangling_symlink_runs_the_job(
    engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "old.out").symlink_to(tmp_path / "gone")  # a dangling link: no output yet
    job = engine.submit(
        lambda: (tmp_path / "new.out").write_text("y"),
        name="make",
        inputs=["in.txt"],
        outputs=["*.out"],
        cwd=tmp_path,
    )
    engine.wait()
    assert job.status.value == "done", job.info().error  # was: FileNotFoundError, never ran
    assert (tmp_path / "new.out").exists()


@pytest.mark.timeout(30)
def test_make_like_inputs_with_non_utf8_names_run_and_are_recorded(
    engine: Engine, tmp_path: Path
) -> None:
    data = tmp_path / os.fsdecode(b"data-\xff.csv")
    data.write_text("1,2\n")
    out = tmp_path / "out.txt"
    for pattern in (data.name, "data-*.csv"):
        job = engine.submit(
            lambda: out.write_text("made"),
            name=f"make {pattern}",
            inputs=[pattern],
            outputs=["out.txt"],
            cwd=tmp_path,
            force=True,
        )
        engine.wait()
        assert job.status.value == "done", job.info().error  # was: UnicodeEncodeError
    store = engine._store
    assert store is not None
    rows = wait_until(lambda: store.made(str(out.resolve())), what="the files recorded")
    assert {row["path"] for row in rows if row["role"] == "input"} == {
        str(tmp_path.resolve() / "data-\\xff.csv")
    }


@pytest.mark.timeout(30)
def test_a_job_name_ending_like_an_archive_stamp_keeps_its_own_log(tmp_path: Path) -> None:
    # "a.<stamp>.log" is how the log of an earlier run of job "a" is archived: a job named
    # "a.<stamp>" must not have its log listed as a run of "a", nor deleted when "a" prunes.
    with Engine(folder=tmp_path / "runs", keep_logs=1) as engine:
        other = engine.submit(print, "the other job's output", name="a.20000101-000000-000000")
        engine.wait()
        a = engine.submit(print, "run of a", name="a")
        engine.wait()
        assert other.log_path is not None and other.log_path not in a.logs()
        for _ in range(2):
            engine.rerun(a)
            engine.wait()
        assert other.log_path.read_text() == "the other job's output\n"
        assert other.logs() == [other.log_path]


@pytest.mark.timeout(30)
def test_a_replaced_jobs_late_output_stays_out_of_the_new_jobs_log(engine: Engine) -> None:
    # An async job leaves a task running; the job is replaced by a new job of the same name,
    # whose run writes the same log path. What the task prints later belongs to the old job.
    go, printed = threading.Event(), threading.Event()

    async def leaves_a_task() -> None:
        async def late() -> None:
            while not go.is_set():
                await asyncio.sleep(0.01)
            print("late line of the old job")
            printed.set()

        asyncio.get_running_loop().create_task(late())
        print("old job")

    old = engine.submit(leaves_a_task, name="a")
    engine.wait()

    def new_job() -> None:
        print("new job", flush=True)
        go.set()
        assert printed.wait(10)
        print("new job again")

    new = engine.submit(new_job, name="a", replace=True)
    engine.wait()
    assert new.status.value == "done", new.info().error
    assert new.log_path is not None
    old.output.flush()  # (as reading the old job's logs does)
    assert new.log_path.read_text() == "new job\nnew job again\n"
    assert old.tail(5) == "old job\nlate line of the old job"


class _PrintsWhenCollected:
    """Garbage in a reference cycle whose finalizer writes to an output (as a ``__del__`` that
    prints or logs does, run by the garbage collector in whichever thread allocates)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.me = self

    def __del__(self) -> None:
        self.out.write("collected\n")


@pytest.mark.timeout(30)
def test_a_finalizer_that_prints_inside_a_write_does_not_hang(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "job.log"
    out: Output

    def log_path() -> Path:
        # The collector runs inside the write (here: while it opens the log file) and calls
        # the finalizer of garbage that writes to this very output, in this very thread.
        _PrintsWhenCollected(out)
        gc.collect()
        return log

    out = Output(log_path)
    wrote = threading.Thread(target=out.write, args=("first line\n",), daemon=True)
    wrote.start()
    wrote.join(10)
    assert not wrote.is_alive(), "the write waits for itself"
    out.close()
    assert out.tail() == "first line\ncollected"
    assert log.read_text() == "first line\ncollected\n"


def _notebook(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


NB = '{"nbformat": 4, "nbformat_minor": 5, "metadata": %s, "cells": %s}'
BAD_NOTEBOOKS = {
    "empty": "",
    "truncated": '{"cells": [',
    "not-utf8": b"\xff\xfe{}",
    "a-list": "[]",
    "kernelspec-a-string": NB % ('{"kernelspec": "python3"}', "[]"),
    "cell-source-a-number": NB
    % ("{}", '[{"cell_type": "code", "id": "c1", "source": 5, "metadata": {}, "outputs": []}]'),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(BAD_NOTEBOOKS))
def test_running_a_notebook_that_cannot_be_read_says_so_in_one_line(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _notebook(tmp_path / f"{kind}.ipynb", BAD_NOTEBOOKS[kind])
    with pytest.raises(
        JupyterExecutorError, match=f"{kind}.ipynb is not a notebook that can be read"
    ):
        run_notebook(path)
    capsys.readouterr()
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


@pytest.mark.timeout(60)
def test_running_a_notebook_whose_kernel_is_not_installed_says_so(tmp_path: Path) -> None:
    kernelspec = '{"kernelspec": {"name": "no-such-kernel", "display_name": "x"}}'
    path = _notebook(tmp_path / "nb.ipynb", NB % (kernelspec, "[]"))
    with pytest.raises(
        JupyterExecutorError, match="kernel 'no-such-kernel', which is not installed"
    ):
        run_notebook(path, out=io.StringIO())


@pytest.mark.timeout(60)
def test_ordering_the_job_cells_of_a_long_notebook_is_linear() -> None:
    # The first ready cell was searched for again after each placed cell: 5,000 cells took
    # 2.3 s, 20,000 about 40 s.
    from jupyter_executor._nbflow import JobCell, order_job_cells

    n = 20_000
    cells = [JobCell(i, f"c{i}", (f"c{i + 1}",) if i + 1 < n else (), "") for i in range(n)]
    began = time.perf_counter()
    order = order_job_cells(cells)
    took = time.perf_counter() - began
    assert [cell.index for cell in order] == list(range(n - 1, -1, -1))
    assert took < 5, f"{n} cells ordered in {took:.1f} s"


@pytest.mark.timeout(60)
def test_a_cycle_of_thousands_of_job_cells_is_ordered_without_recursion() -> None:
    # A cycle through 3,000 cells passed Python's recursion limit (RecursionError): the cycle
    # is the engine's to report, when the cells run.
    from jupyter_executor._nbflow import JobCell, order_job_cells

    n = 3_000
    cells = [JobCell(i, f"c{i}", (f"c{(i + 1) % n}",), "") for i in range(n)]
    order = order_job_cells(cells)
    assert sorted(cell.index for cell in order) == list(range(n))
    assert [cell.index for cell in order[:2]] == [n - 1, n - 2]  # the first cell comes last


@pytest.mark.timeout(60)
def test_the_maker_of_a_non_utf8_output_is_found(engine: Engine, tmp_path: Path) -> None:
    # record_files stores such a path made safe; made() queried with the raw one, and SQLite
    # refused its lone surrogate (UnicodeEncodeError) instead of finding the run.
    out = tmp_path / os.fsdecode(b"out-\xfe.txt")
    job = engine.submit(
        lambda: out.write_text("made"), name="maker", outputs=[out.name], cwd=tmp_path
    )
    assert engine.wait_job(job, timeout=30)
    store = engine._store
    assert store is not None
    rows = wait_until(lambda: store.made(str(out.resolve())), what="the maker found")
    assert {row["name"] for row in rows} == {"maker"}


@pytest.mark.timeout(60)
def test_a_make_like_jobs_outputs_are_looked_for_where_it_started(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relative outputs were looked for in the kernel's folder at the job's end: a %cd while it
    # ran failed a job that made them (MissingOutputs), and recorded nothing.
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(start)
    go = threading.Event()

    def make() -> None:
        go.wait(30)
        (start / "out.txt").write_text("made")

    job = engine.submit(make, name="maker", outputs=["out.txt"], backend="thread")
    wait_until(lambda: job.status == "running", what="the job starts")
    monkeypatch.chdir(elsewhere)  # the notebook's %cd
    go.set()
    assert engine.wait_job(job, timeout=30), job.info().error
    store = engine._store
    assert store is not None
    rows = wait_until(lambda: store.made(str(start / "out.txt")), what="the output recorded")
    assert {row["name"] for row in rows} == {"maker"}
