"""Archived log files: one per past run, named by when it was last written, the oldest pruned."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jupyter_executor._logs import archive, logs_of


def _log(folder: Path, name: str, text: str, mtime: float) -> Path:
    path = folder / f"{name}.log"
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def test_archive_moves_the_log_aside_with_its_time(tmp_path: Path) -> None:
    mtime = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC).timestamp()
    path = _log(tmp_path, "job", "run 1\n", mtime)
    archived = archive(path)
    assert archived == tmp_path / "job.20300102-030405-678901.log"
    assert archived.read_text() == "run 1\n"
    assert not path.exists()
    assert logs_of(tmp_path, "job") == [archived]


def test_nothing_to_archive(tmp_path: Path) -> None:
    assert archive(tmp_path / "missing.log") is None
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert archive(empty) is None
    assert empty.exists()  # an empty log is left for the new run to append to
    assert logs_of(tmp_path, "empty") == [empty]
    assert logs_of(tmp_path / "no-such-folder", "job") == []


def test_runs_in_order_and_the_oldest_pruned(tmp_path: Path) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    archived: list[Path] = []
    for run in range(6):
        path = archive(_log(tmp_path, "job", f"run {run}\n", base + run * 60), keep=4)
        assert path is not None
        archived.append(path)
    current = _log(tmp_path, "job", "run 6\n", base + 400)
    files = logs_of(tmp_path, "job")
    assert files == [*archived[2:], current]
    assert [f.read_text() for f in files] == [f"run {i}\n" for i in range(2, 7)]
    assert not archived[0].exists() and not archived[1].exists()


def test_keep_zero_keeps_no_archive(tmp_path: Path) -> None:
    archive(_log(tmp_path, "job", "a\n", 1e9), keep=5)
    assert archive(_log(tmp_path, "job", "b\n", 2e9), keep=0) is None
    assert logs_of(tmp_path, "job") == []
    with pytest.raises(ValueError, match="keep must be >= 0"):
        archive(tmp_path / "job.log", keep=-1)


def test_runs_ending_within_the_same_microsecond_get_distinct_names(tmp_path: Path) -> None:
    first = archive(_log(tmp_path, "job", "first\n", 1e9))
    second = archive(_log(tmp_path, "job", "second\n", 1e9))
    assert first is not None and second is not None and first != second
    assert [p.read_text() for p in logs_of(tmp_path, "job")] == ["first\n", "second\n"]


def test_jobs_with_similar_names_do_not_mix(tmp_path: Path) -> None:
    for name in ("a", "a.b", "a_b", "ab"):
        archive(_log(tmp_path, name, name, 1e9))
        _log(tmp_path, name, name, 2e9)
    for name in ("a", "a.b", "a_b", "ab"):
        files = logs_of(tmp_path, name)
        assert [p.read_text() for p in files] == [name, name]
        assert re.fullmatch(re.escape(name) + r"\.\d{8}-\d{6}-\d{6}\.log", files[0].name)
    (tmp_path / "a.notastamp.log").write_text("x")
    assert len(logs_of(tmp_path, "a")) == 2


# -- log file names of real jobs -----------------------------------------------------------------
def say(text: str) -> None:
    print(f"I am {text}")


def test_distinct_job_names_never_share_a_log_file(tmp_path: Path) -> None:
    from jupyter_executor import Engine

    names = ["a b", "a_b", "a/b", "a?b"]
    with Engine(folder=tmp_path / "runs", keep_logs=1) as engine:
        jobs = [engine.submit(say, name, name=name) for name in names]
        assert engine.wait(timeout=30)
        assert len({job.log_path for job in jobs}) == 4  # all four were logs/a_b.log
        assert jobs[1].log_path.name == "a_b.log"  # a plain name keeps its file name
        for job, name in zip(jobs, names, strict=True):
            assert [p.read_text() for p in job.logs()] == [f"I am {name}\n"]
        # Rotating the logs of "a b" (keep_logs=1) deletes none of "a_b"'s.
        engine.submit(say, "a_b again", name="a_b", replace=True)
        assert engine.wait(timeout=30)
        for _ in range(3):
            engine.submit(say, "a b again", name="a b", replace=True)
            assert engine.wait(timeout=30)
        texts = [p.read_text() for p in engine["a_b"].logs()]
        assert texts == ["I am a_b\n", "I am a_b again\n"]


def test_a_long_or_odd_name_gets_a_bounded_file_name(tmp_path: Path) -> None:
    from jupyter_executor import Engine

    long_name = "n" * 300
    odd_name = "data-" + os.fsdecode(b"\xff") + "-" + "é" * 200
    with Engine(folder=tmp_path / "runs") as engine:
        jobs = [
            engine.submit(say, "long", name=long_name),
            engine.submit(say, "odd", name=odd_name),
        ]
        assert engine.wait(timeout=30), [job.traceback for job in jobs]  # File name too long
        for job in jobs:
            assert len(os.fsencode(job.log_path.name)) < 100
            assert len(job.logs()) == 1


@pytest.mark.timeout(60)
def test_a_failed_run_s_log_ends_with_its_plain_traceback(tmp_path: Path) -> None:
    from jupyter_executor import Engine

    def fails() -> None:
        print("first line")
        print("partial", end="")
        raise ValueError("bad input")

    engine = Engine(folder=tmp_path, history=False)
    try:
        job = engine.submit(fails, name="fails")
        engine.wait(timeout=30)
        assert job.status.value == "failed"
        text = job.log_path.read_text()
    finally:
        engine.shutdown()
    # the output, then the traceback on a line of its own, without the engine's frames
    assert text.startswith("first line\npartial\nTraceback (most recent call last):\n"), text
    assert text.endswith("ValueError: bad input\n"), text
    assert "jupyter_executor" not in text and "\x1b" not in text, text
    assert 'raise ValueError("bad input")' in text, text


@pytest.mark.timeout(60)
def test_log_timestamps_prefix_every_line(tmp_path: Path) -> None:
    from jupyter_executor import Engine

    def talks() -> None:
        print("one")
        print("two, written ", end="")
        print("in pieces")
        raise RuntimeError("stop")

    engine = Engine(folder=tmp_path, history=False, log_timestamps=True)
    try:
        job = engine.submit(talks, name="talks")
        engine.wait(timeout=30)
        lines = job.log_path.read_text().splitlines()
    finally:
        engine.shutdown()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
    assert re.fullmatch(stamp + "one", lines[0]), lines
    assert re.fullmatch(stamp + "two, written in pieces", lines[1]), lines
    assert all(re.match(stamp, line) for line in lines), lines
    assert lines[-1].endswith("RuntimeError: stop"), lines
    # off by default
    plain = Engine(folder=tmp_path / "plain", history=False)
    try:
        job = plain.submit(print, "hello", name="hello")
        plain.wait(timeout=30)
        assert job.log_path.read_text() == "hello\n"
    finally:
        plain.shutdown()
