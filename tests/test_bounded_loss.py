"""Bounded loss (issue 12 #11): a run's end reaches the disk within about a second, and the
waits (``wait()``, ``join()``, ``wait_job()``) return only once the ends they report are there.

The history is read with a connection of the test's own, as the next kernel would read it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_executor import Engine, Job


def noop() -> None:
    return None


def on_disk(folder: Path, sql: str) -> float:
    db = folder / "history.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=30)
    try:
        return float(con.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError as exc:  # created by the writer meanwhile
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        con.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(folder=tmp_path / "runs")
    try:
        yield eng
    finally:
        eng.shutdown()


@pytest.mark.timeout(60)
def test_wait_returns_once_the_ends_it_reports_are_on_disk(engine: Engine) -> None:
    jobs = [engine.submit(noop, name=f"n{i}", backend="async") for i in range(2000)]
    assert engine.wait(30)
    finished = "SELECT COUNT(*) FROM runs WHERE finished IS NOT NULL"
    assert on_disk(engine.folder, finished) == len(jobs)


@pytest.mark.timeout(60)
def test_wait_job_and_join_return_once_the_end_is_on_disk(engine: Engine) -> None:
    job = engine.submit(noop, name="one")
    assert engine.wait_job(job, 30)
    done = "SELECT COUNT(*) FROM runs WHERE name = '{}' AND status = 'done'"
    assert on_disk(engine.folder, done.format("one")) == 1
    engine.submit(noop, name="two", backend="async")
    assert asyncio.run(engine.join(30))
    assert on_disk(engine.folder, done.format("two")) == 1


@pytest.mark.timeout(60)
def test_during_a_long_burst_of_short_jobs_ends_reach_the_disk_within_about_a_second(
    engine: Engine,
) -> None:
    # The writer batches a burst of tiny jobs, but never keeps an end in memory for long: a
    # kernel killed during the burst loses at most the last second. Sampled from outside, the
    # newest end on disk is never older than that (1.5 s allows for a loaded 2-core machine;
    # the writer used to wait up to 5 s while a burst went on). Submitted as fast as the engine
    # takes them: a flood the writer cannot keep up with (it needs more CPU per run than a
    # no-op job) must be slowed to its pace, not leave ends waiting in memory for seconds.
    stop = threading.Event()
    lags: list[float] = []

    def sample() -> None:
        while not stop.is_set():
            now = time.time()  # before the query: what it returns was on disk by then
            newest = on_disk(engine.folder, "SELECT MAX(finished) FROM runs")
            if newest:
                lags.append(now - newest)
            time.sleep(0.05)

    began = time.monotonic()
    count = 0
    while time.monotonic() - began < 0.5:  # the burst is under way before sampling starts
        engine.submit(*[Job(noop, backend="async") for _ in range(500)])
        count += 500
        time.sleep(0.01)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        while time.monotonic() - began < 4.0:  # a burst far longer than the bound
            engine.submit(*[Job(noop, backend="async") for _ in range(500)])
            count += 500
            time.sleep(0.01)
    finally:
        stop.set()
        sampler.join(10)
    assert engine.wait(60)
    assert lags, "nothing was sampled"
    print(f"{count} jobs; newest end on disk lagged at most {max(lags):.2f} s")
    assert max(lags) < 1.5, f"newest end on disk lagged {max(lags):.2f} s ({count} jobs)"


@pytest.mark.timeout(60)
def test_jobs_wait_magic_returns_once_the_ends_are_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from jupyter_executor import get_engine

    config = Config()
    config.HistoryManager.enabled = False  # no IPython history thread or file
    monkeypatch.chdir(tmp_path)  # the kernel engine's folder goes under the test's tmp dir
    ip = InteractiveShell.instance(config=config, ipython_dir=str(tmp_path / "ipython"))
    try:
        ip.run_line_magic("load_ext", "jupyter_executor")
        try:
            for i in range(200):
                ip.run_cell_magic("job", f"cell{i}", f"x{i} = {i}")
            ip.run_line_magic("jobs", "wait")
            finished = "SELECT COUNT(*) FROM runs WHERE name LIKE 'cell%' AND status = 'done'"
            assert on_disk(get_engine().folder, finished) == 200
        finally:
            ip.run_line_magic("unload_ext", "jupyter_executor")
    finally:
        InteractiveShell.clear_instance()
