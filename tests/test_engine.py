"""The engine from plain Python: submit, dependencies, conditions, waiting, retries, timeouts."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from _clocked import Clocked
from _leaks import assert_nothing_left, child_processes

from jupyter_executor import (
    AfterAll,
    AfterAny,
    AfterJob,
    AfterTime,
    Condition,
    DependencyCycle,
    DuplicateJobName,
    Engine,
    FunctionCondition,
    Job,
    JobCancelled,
    JobTimeout,
    SubmitError,
    UnknownDependency,
    get_engine,
)
from jupyter_executor.engine import COLUMNS


async def mycoro(t: float, value: object = None) -> object:
    await asyncio.sleep(t)
    return t if value is None else value


def add(a: int, b: int) -> int:
    return a + b


def boom() -> None:
    raise ValueError("boom")


def test_submit_wait_result_and_list(engine: Engine) -> None:
    a = engine.submit(add, 1, 2, name="a")
    b = engine.submit(add, a, 10, name="b")  # a Job as an argument: a dependency and its value
    c = engine.submit(add, a.future, b.future, name="c")  # futures work the same way
    assert engine.wait(timeout=10) is True
    assert (a.result(), b.result(), c.result()) == (3, 13, 16)
    assert c.requirements == ("a", "b")
    df = engine.list()
    assert tuple(df.columns) == COLUMNS
    assert df["name"].tolist() == ["a", "b", "c"]
    assert df["status"].tolist() == ["done"] * 3
    assert df.loc[2, "requires"] == ["a", "b"] and df.loc[2, "result"] == "16"
    assert engine["b"] is b and set(engine.jobs) == {"a", "b", "c"}
    assert [e.event for e in engine.log if e.job == "a"] == ["submitted", "started", "done"]
    assert engine.list(status="done").shape[0] == 3 and engine.list(status="failed").empty


def test_asynciojobs_style_orchestrate() -> None:
    bus: asyncio.Queue[str] = asyncio.Queue()
    seen: list[str] = []

    async def producer(t: float) -> float:
        await asyncio.sleep(t)
        await bus.put(f"done {t}")
        return 1000 * t

    async def monitor() -> None:
        while True:
            seen.append(await bus.get())

    a1, a2, a3 = Job(producer(0.1)), Job(producer(0.2)), Job(producer(0.15), label="a3")
    a3.requires(a1)
    mon = Job(monitor(), forever=True)
    engine = Engine(a1, a2, a3, mon)
    t0 = time.monotonic()
    assert engine.orchestrate(timeout=10) is True
    assert time.monotonic() - t0 < 2
    assert (a1.result(), a2.result(), a3.result()) == (100.0, 200.0, 150.0)
    assert a3.started is not None and a1.finished is not None and a3.started >= a1.finished
    assert mon.status == "cancelled" and mon.cancel_reason == "the finite jobs are done"
    assert sorted(seen) == ["done 0.1", "done 0.15", "done 0.2"]
    assert engine._thread is None  # orchestrate released its thread
    engine.shutdown()


def test_orchestrate_inside_a_running_event_loop() -> None:
    async def cell() -> bool:  # what a notebook cell is: code running on a live loop
        jobs = [Job(mycoro(0.05, i)) for i in range(3)]
        return Engine(*jobs).orchestrate(timeout=10)

    assert asyncio.run(cell()) is True


def test_orchestrate_timeout_cancels_the_rest() -> None:
    slow = Job(mycoro(30), name="slow")
    engine = Engine(slow)
    assert engine.orchestrate(timeout=0.3) is False
    assert slow.status == "cancelled" and "timed out" in str(slow.cancel_reason)
    engine.shutdown()


def test_join_from_async_code_and_shielding(engine: Engine) -> None:
    job = engine.submit(mycoro, 0.3, name="slow")

    async def main() -> tuple[bool, bool]:
        waiter = asyncio.ensure_future(engine.join())
        await asyncio.sleep(0.05)
        waiter.cancel()  # as a kernel interrupt of an awaiting cell does
        await asyncio.sleep(0)
        return await engine.join(timeout=5), job.status == "done"

    assert asyncio.run(main()) == (True, True)


def test_wait_from_a_thread_while_the_caller_blocks(engine: Engine) -> None:
    chain = [engine.submit(time.sleep, 0.2, name="s0")]
    for i in range(1, 3):
        chain.append(engine.submit(time.sleep, 0.2, name=f"s{i}", requires=chain[-1]))
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(engine.wait(timeout=10)))
    waiter.start()
    time.sleep(0.9)  # the caller's thread is blocked; the chain still advances
    assert all(j.status == "done" for j in chain)
    waiter.join(5)
    assert results == [True]


def test_names_are_unique_with_clear_messages(engine: Engine) -> None:
    engine.submit(add, 1, 1, name="x")
    engine.wait()
    with pytest.raises(DuplicateJobName, match=r"'x' already exists \(done\).*replace=True"):
        engine.submit(add, 1, 1, name="x")
    slow = engine.submit(mycoro, 5, name="slow")
    with pytest.raises(DuplicateJobName, match=r"'slow' is (pending|running); cancel it first"):
        engine.submit(add, 1, 1, name="slow", replace=True)
    new = engine.submit(add, 2, 2, name="x", replace=True)
    slow.cancel()
    engine.wait()
    assert new.result() == 4 and len(new.previous) == 1 and new.previous[0].result == "2"
    # generated names are readable and unique
    jobs = [engine.submit(add, 0, 0) for _ in range(3)]
    assert [j.name for j in jobs] == ["add", "add-2", "add-3"]
    # ... also next to a name taken by hand that a generated one would have been
    engine.submit(add, 0, 0, name="add-5")
    jobs = [engine.submit(add, 0, 0) for _ in range(3)]
    assert [j.name for j in jobs] == ["add-4", "add-6", "add-7"]


def test_unknown_dependency_and_cycles_refused_at_submit(engine: Engine) -> None:
    with pytest.raises(UnknownDependency, match="'b' requires 'nope'"):
        engine.submit(add, 1, 2, name="b", requires="nope")
    a, b = Job(add, args=(1, 2), name="a"), Job(add, args=(1, 2), name="b")
    a.requires(b)
    b.requires(a)
    with pytest.raises(DependencyCycle, match=r"a -> b -> a|b -> a -> b"):
        engine.submit(a, b)
    assert len(engine) == 0  # nothing of a refused submission was kept


def test_failure_cancels_dependents_with_reason(engine: Engine) -> None:
    a = engine.submit(boom, name="a")
    b = engine.submit(add, 1, 2, name="b", requires=a)
    c = engine.submit(add, 1, 2, name="c", requires=b)
    assert engine.wait(timeout=10) is False
    assert a.status == "failed" and isinstance(a.exception(), ValueError)
    assert "ValueError: boom" in str(a.traceback)
    with pytest.raises(ValueError, match="boom"):
        a.result()
    assert b.cancel_reason == "dependency 'a' failed"
    assert c.cancel_reason == "dependency 'b' cancelled"
    with pytest.raises(JobCancelled, match="dependency 'a' failed"):
        b.result()
    late = engine.submit(add, 1, 2, name="late", requires="a")  # a failed requirement, later
    engine.wait(timeout=5)
    assert late.status == "cancelled"


def test_dependents_submitted_first_and_unsubmitted_requirements(engine: Engine) -> None:
    jobs = [Job(mycoro(0, i), name=f"j{i}") for i in range(50)]
    for prev, job in itertools.pairwise(jobs):
        job.requires(prev)
    engine.submit(*reversed(jobs))
    assert engine.wait(timeout=10)
    starts = [j.started for j in jobs]
    assert starts == sorted(starts)  # type: ignore[type-var]
    x, y = Job(add, args=(1, 1), name="x"), Job(add, args=(2, 2), name="y")
    y.requires(x)
    engine.submit(y)  # x comes along
    assert engine.wait(timeout=10) and x.result() == 2


def test_conditions(engine: Engine) -> None:
    a = engine.submit(mycoro, 0.1, name="a")
    f = engine.submit(boom, name="f")
    after_a = engine.submit(add, 1, 1, name="after_a", condition=AfterJob("a"))
    any_ok = engine.submit(add, 1, 1, name="any_ok", condition=AfterAny(a, f))
    all_bad = engine.submit(add, 1, 1, name="all_bad", condition=AfterAll(a, f))
    finished = engine.submit(add, 1, 1, name="finished", condition=AfterJob(f, success=False))
    at = time.time() + 0.3
    timed = engine.submit(time.time, name="timed", condition=AfterTime(at))
    combo = engine.submit(
        add, 2, 2, name="combo", condition=AfterJob(a) & AfterTime(at) | AfterJob(f)
    )
    flag: list[int] = []
    custom = engine.submit(
        add, 3, 3, name="custom", condition=FunctionCondition(lambda: bool(flag), every=0.05)
    )
    time.sleep(0.2)
    assert custom.status == "pending"
    flag.append(1)
    engine.wait(timeout=10)
    assert after_a.status == any_ok.status == finished.status == "done"
    assert all_bad.status == "cancelled" and "can never be met" in str(all_bad.cancel_reason)
    assert timed.result() >= at
    assert combo.status == "done" and custom.result() == 6


@dataclass
class AfterDone(Condition):
    """executor-engine's way: satisfy(engine), re-asked on the engine's events."""

    name: str
    poll_every: float = 600.0  # no timer in time: only a job's end can wake it

    def satisfy(self, engine: Engine) -> bool:
        return self.name in engine and engine[self.name].status == "done"


class FlagSet(Condition):
    """A check() that names no job and no time: only the timer can see the flag change."""

    poll_every = 0.05

    def __init__(self, flag: list[int]) -> None:
        self.flag = flag

    def check(self, lookup: object) -> bool | None:
        return True if self.flag else None


class Neither(Condition):
    pass


class Broken(Condition):
    def satisfy(self, engine: Engine) -> bool:
        raise RuntimeError("bad condition")


def test_custom_conditions_of_both_forms_are_asked_again(engine: Engine) -> None:
    # a job's end wakes a satisfy() condition (its own timer would take 10 minutes)
    waits = engine.submit(add, 1, 2, name="waits", condition=AfterDone("first"))
    time.sleep(0.2)
    assert waits.status == "pending"
    first = engine.submit(mycoro, 0.05, name="first")
    assert engine.wait_job(waits, timeout=30) and waits.result() == 3
    assert first.status == "done"
    # the timer wakes a check() that depends on nothing the engine sees
    flag: list[int] = []
    flagged = engine.submit(add, 2, 2, name="flagged", condition=FlagSet(flag))
    time.sleep(0.2)
    assert flagged.status == "pending"
    flag.append(1)
    assert engine.wait_job(flagged, timeout=30) and flagged.result() == 4
    # combined with a built-in one
    both = engine.submit(add, 3, 3, name="both", condition=AfterDone("first") & AfterJob(first))
    assert engine.wait_job(both, timeout=30) and both.result() == 6
    # a condition that raises fails its job with its error (not only a line in the log)
    broken = engine.submit(add, 1, 1, name="broken", condition=Broken())
    engine.wait_job(broken, timeout=30)
    assert broken.status == "failed" and "bad condition" in str(broken.exception())
    # one that defines neither form is refused at submit time
    with pytest.raises(TypeError, match=r"Neither defines neither check.*nor satisfy"):
        engine.submit(add, 1, 1, name="neither", condition=Neither())
    with pytest.raises(TypeError, match="Neither defines neither"):
        engine.submit(add, 1, 1, name="neither", condition=AfterJob(first) | Neither())
    assert "neither" not in engine


def test_retries_with_backoff(clocked: Clocked) -> None:
    engine, clock = clocked
    calls: list[float] = []

    def flaky() -> str:
        calls.append(clock.time())
        if len(calls) < 3:
            raise RuntimeError(f"attempt {len(calls)}")
        return "ok"

    job = engine.submit(flaky, name="flaky", retries=3, retry_delay=0.1)
    clock.advance_to_next()
    clock.advance_to_next()
    assert engine.wait(timeout=10) and job.result() == "ok" and job.attempts == 3
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps == [pytest.approx(0.1, abs=1e-6), pytest.approx(0.2, abs=1e-6)]  # it doubles
    assert [e.event for e in engine.log if e.job == "flaky"].count("retried") == 2
    never = engine.submit(boom, name="never", retries=1, retry_delay=0.01)
    clock.advance_to_next()
    engine.wait(timeout=10)
    assert never.status == "failed" and never.attempts == 2


@pytest.mark.parametrize("backend", ["async", "thread", "process", "subprocess"])
def test_timeout_stops_the_work(engine: Engine, tmp_path: Path, backend: str) -> None:
    marker = tmp_path / f"{backend}.written"
    if backend == "async":

        async def slow() -> None:
            await asyncio.sleep(3)
            marker.write_text("x")

        job = engine.submit(slow, name="slow", timeout=0.3)
    elif backend == "subprocess":
        job = engine.submit(f"sleep 3 && touch {marker}", name="slow", timeout=0.3)
    else:
        job = engine.submit(
            _sleep_then_write, str(marker), name="slow", backend=backend, timeout=0.3
        )
    assert engine.wait(timeout=20) is False
    assert job.status == "cancelled" and job.cancel_reason == "timed out after 0.3 s"
    assert isinstance(job.exception(), JobTimeout)
    time.sleep(3.5)
    assert not marker.exists()


def _sleep_then_write(path: str) -> None:
    for _ in range(60):
        time.sleep(0.05)
    Path(path).write_text("x")


def test_timeout_then_retry(engine: Engine) -> None:
    attempts: list[int] = []

    async def sometimes_slow() -> str:
        attempts.append(1)
        await asyncio.sleep(5 if len(attempts) == 1 else 0)
        return "fast"

    job = engine.submit(sometimes_slow, name="s", timeout=0.2, retries=1, retry_delay=0.01)
    assert engine.wait(timeout=10) and job.result() == "fast" and job.attempts == 2


def test_cancel_pending_and_rerun(engine: Engine) -> None:
    release = threading.Event()
    gate = engine.submit(release.wait, 30, name="gate")  # runs until the test releases it
    waiting = engine.submit(add, 1, 1, name="waiting", requires=gate)
    assert waiting.status == "pending"
    assert engine.cancel(waiting) is True  # the engine says it stopped a job...
    # ...and the job is cancelled at once (taken off the queue), its requirement untouched
    assert waiting.status == "cancelled" and waiting.cancel_reason == "cancelled by user"
    assert gate.status in ("pending", "running")  # not cancelled with it
    assert engine.cancel(waiting) is False  # already finished: nothing left to stop
    release.set()
    assert engine.wait_job(gate, timeout=10) and gate.status == "done"
    waiting.rerun()
    assert engine.wait(timeout=10) and waiting.result() == 2
    assert waiting.previous[0].status == "cancelled"
    slow = engine.submit(mycoro, 5, name="slow5")  # not the call expected to raise
    with pytest.raises(SubmitError, match="only a finished job can be rerun"):
        slow.rerun()
    slow.cancel()


def test_limits(engine: Engine) -> None:
    engine.set_limits(thread=2)
    running: list[int] = []
    peak = [0]
    lock = threading.Lock()

    def work() -> None:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.1)
        with lock:
            running.pop()

    for _ in range(6):
        engine.submit(work)
    assert engine.wait(timeout=10) and peak[0] == 2
    with pytest.raises(ValueError, match="unknown backend"):
        engine.set_limits(gpu=1)


@pytest.mark.timeout(120)
def test_threads_submitting_and_cancelling_while_jobs_end(engine: Engine) -> None:
    # Several threads submit, chain and cancel while thousands of short jobs end on a bounded
    # pool and the loop settles them (holding the engine's lock a batch at a time): nothing
    # deadlocks, every job ends, and every slot is given back.
    engine.set_limits(thread=4)
    made: list[Job] = []
    made_lock = threading.Lock()

    def submitter(k: int) -> None:
        previous: Job | None = None
        for i in range(400):
            requires = (previous,) if previous is not None and i % 2 else ()
            job = engine.submit(int, i, name=f"s{k}-{i}", requires=requires)
            if i % 7 == 0:
                engine.cancel(job, reason="changed my mind")
            previous = job
            with made_lock:
                made.append(job)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    engine.wait(timeout=60)
    assert len(made) == 1600
    assert {j.status.value for j in made} <= {"done", "cancelled"}
    done = [j for j in made if j.status.value == "done"]
    assert done and all(j.result() == int(str(j.name).split("-")[1]) for j in done)
    assert all(j.done() for j in made)
    assert engine._running == 0 and engine._queued == 0  # every slot given back


def test_max_jobs_bounds_all_backends(tmp_path: Path) -> None:
    with Engine(folder=tmp_path, max_jobs=1) as engine:
        jobs = [engine.submit(mycoro, 0.05, i) for i in range(3)]
        jobs += [engine.submit(time.sleep, 0.05) for _ in range(2)]
        assert engine.wait(timeout=10)
        spans = sorted((j.started, j.finished) for j in jobs)
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))  # type: ignore[operator]


def test_async_concurrency_has_no_hidden_cap(engine: Engine) -> None:
    jobs = [Job(asyncio.sleep(0.3)) for _ in range(500)]
    t0 = time.monotonic()
    engine.submit(*jobs)
    assert engine.wait(timeout=10)
    assert time.monotonic() - t0 < 2.5


def test_jobs_can_submit_jobs(engine: Engine) -> None:
    def parent() -> int:
        child = engine.submit(add, 20, 22, name="child")
        engine.wait_job(child)
        return int(child.result())

    job = engine.submit(parent, name="parent")
    assert engine.wait(timeout=10) and job.result() == 42

    def bad() -> None:
        engine.wait()

    b = engine.submit(bad, name="bad")
    engine.wait_job(b, timeout=10)
    assert "would wait for that job itself" in str(b.exception())


def test_get_engine_is_per_process_and_checks_options(tmp_path: Path) -> None:
    before = {p.pid for p in child_processes()}
    e = get_engine(folder=tmp_path)
    try:
        assert get_engine() is e and get_engine(folder=tmp_path) is e
        with pytest.raises(ValueError, match="already exists with folder"):
            get_engine(folder=tmp_path / "other")
        with pytest.raises(TypeError, match="unknown engine option"):
            get_engine(colour="red")
    finally:
        e.shutdown()
    e2 = get_engine(id="fresh")
    assert e2 is not e and e2.id == "fresh"
    e2.shutdown()
    assert_nothing_left(before)


def test_identity_reaches_subprocesses(tmp_path: Path) -> None:
    with Engine(id="xg15", folder=tmp_path) as engine:
        job = engine.submit('echo "$JUPYTER_EXECUTOR_ID/$JUPYTER_EXECUTOR_JOB"', name="who")
        engine.wait(timeout=10)
        assert job.tail() == "xg15/who"


def test_shutdown_cancels_everything_and_leaves_nothing(tmp_path: Path) -> None:
    before = {p.pid for p in child_processes()}
    engine = Engine(folder=tmp_path)
    engine.cancel_grace = 0.5
    engine.submit(mycoro, 30, name="async")
    engine.submit(_sleep_then_write, str(tmp_path / "t"), name="thread")
    engine.submit(_sleep_then_write, str(tmp_path / "p"), name="process", backend="process")
    engine.submit("sleep 30", name="sub")
    engine.submit(mycoro, 30, name="mon", forever=True)
    time.sleep(1.0)
    assert len(child_processes()) >= 2
    engine.shutdown()
    engine.shutdown()  # idempotent
    assert {j.status for j in engine} == {"cancelled"}
    assert {j.cancel_reason for j in engine} == {"the engine shut down"}
    assert_nothing_left(before)
    with pytest.raises(SubmitError, match="this engine is shut down"):
        engine.submit(add, 1, 2)


def test_a_skipped_duplicate_warns_at_the_line_that_submitted(engine: Engine) -> None:
    # submit() hands Job objects to Registry._submit_jobs: the warning must still name the
    # caller's line, not the engine's (warnings' stacklevel), for both forms of submit.
    first = engine.submit(Job(len, args=("a",), name="dup"))
    with pytest.warns(UserWarning, match="Skipping dup") as jobs_form:
        kept = engine.submit(Job(len, args=("bb",), name="dup"), on_duplicate="skip")
    with pytest.warns(UserWarning, match="Skipping dup") as call_form:
        again = engine.submit(len, "ccc", name="dup", on_duplicate="skip")
    assert kept is first and again is first
    assert [w.filename for w in (*jobs_form, *call_form)] == [__file__, __file__]
    assert engine.wait(timeout=60)


def test_log_lines_are_not_walked_by_the_garbage_collector(engine: Engine) -> None:
    # Issue 14: the log keeps 10,000 lines; a NamedTuple is never untracked by the collector,
    # so each line was walked by every collection and aged into the oldest generation. The
    # log keeps plain tuples of atoms (untracked at the first collection) and hands its
    # readers EngineEvent lines.
    import gc

    from jupyter_executor import EngineEvent

    jobs = [engine.submit(add, i, 1, name=f"gc-{i}", backend="thread") for i in range(50)]
    assert engine.wait(timeout=30) is True
    assert [j.result() for j in jobs] == [i + 1 for i in range(50)]
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is EngineEvent]
    lines = [e for e in engine.log if e.job == "gc-7"]
    assert [type(e) for e in lines] == [EngineEvent] * 3
    assert [e.event for e in lines] == ["submitted", "started", "done"]
    assert engine.log[-1].event == "done" and str(engine.log[0]).endswith("gc-0")
    assert lines[0] in engine.log and engine.log.count(lines[0]) == 1


def test_requires_takes_one_job_or_name_as_a_list_of_them(engine: Engine) -> None:
    # One job or one name is a chain's link, taken without flattening (issue 14): the same
    # checks and the same order as the list forms.
    a = Job(add, args=(1, 2), name="a")
    b = Job(add, args=(3, 4), name="b")
    c = Job(add, args=(0, 0), name="c").requires(a).requires("b")
    d = Job(add, args=(0, 0), name="d").requires([a, None, ("b",)])
    with pytest.raises(SubmitError, match="job 'c' cannot require itself"):
        c.requires(c)
    with pytest.raises(TypeError, match=r"requires\(\) takes jobs or job names, not 5"):
        c.requires(5)
    with pytest.raises(TypeError, match=r"requires\(\) takes jobs or job names, not 5"):
        c.requires([5])
    assert c.required_jobs() == [a, "b"] and d.required_jobs() == [a, "b"]
    engine.submit(a, b, c, d)
    assert engine.wait(timeout=30) is True
    assert c.requirements == d.requirements == ("a", "b")
    assert [j.status.value for j in (a, b, c, d)] == ["done"] * 4
    with pytest.raises(SubmitError, match="already submitted"):
        c.requires(a)


def test_a_submitted_chain_keeps_no_list_of_requirements_per_job(engine: Engine) -> None:
    # Issue 14: the requires() spec stayed on every job after the engine had named it in
    # job.requirements: one more object per job for the garbage collector to walk (a chain of
    # 1e5 jobs: 1e5 lists), each holding the job before it.
    import gc

    def lists() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is list)

    before = lists()
    jobs = [Job(add, args=(i, 1), name=f"link-{i}") for i in range(300)]
    for earlier, later in itertools.pairwise(jobs):
        later.requires(earlier)
    engine.submit(*jobs)
    assert engine.wait(timeout=60) is True
    assert jobs[-1].requirements == ("link-298",) and jobs[-1].result() == 300
    del earlier, later
    assert lists() - before < 100  # not one per job
