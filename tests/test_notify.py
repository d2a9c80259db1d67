"""A word when a job ends (issue 11): ``engine.on_finish(callback)`` and the ``notify`` option.

The browser side (the Web Notification the job view sends) is in ``test_browser_notify.py``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from _kernel import Kernel
from _wait import wait_until

from jupyter_executor import Engine, InvalidOptionType, Job
from jupyter_executor._context import running_job

pytestmark = pytest.mark.timeout(60)


def fail() -> None:
    msg = "boom"
    raise RuntimeError(msg)


def test_on_finish_is_called_once_per_end_with_the_job(engine: Engine) -> None:
    ended: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(job: Job) -> None:
        with lock:
            ended.append((str(job.name), job.status.value))

    engine.on_finish(record)
    gate = threading.Event()
    engine.submit(sum, [1, 2], name="ok")
    engine.submit(fail, name="bad", retries=1, retry_delay=0.01)  # ends once, after its retry
    waiting = engine.submit(gate.wait, 30, name="waiting")
    engine.submit(sum, [1], name="dependent", requires="bad")  # cancelled with "bad"
    assert engine.wait(timeout=0.5) is False  # "waiting" still runs
    engine.cancel(waiting)
    engine.wait(timeout=30)
    expected = {
        ("ok", "done"),
        ("bad", "failed"),
        ("waiting", "cancelled"),
        ("dependent", "cancelled"),
    }
    wait_until(lambda: len(ended) >= 4, what=lambda: f"four ends, got {ended}")
    gate.set()
    engine.shutdown()  # makes the calls still queued: none may come twice
    assert sorted(ended) == sorted(expected)


def test_on_finish_runs_outside_the_job_and_its_errors_are_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[object, str]] = []
    release = threading.Event()

    def broken(job: Job) -> None:
        msg = "the mail server is down"
        raise ConnectionError(msg)

    def slow(job: Job) -> None:
        # blocks: neither the engine nor wait() may wait for it
        release.wait(30)
        seen.append((running_job.get(None), threading.current_thread().name))

    engine.on_finish(broken)
    engine.on_finish(slow)
    with caplog.at_level(logging.ERROR, logger="jupyter_executor"):
        job = engine.submit(print, "hi", name="printer")
        assert engine.wait(timeout=30)  # returns while `slow` is still blocked
        assert job.status.value == "done" and not seen
        release.set()
        wait_until(lambda: seen, what="the slow callback")
    assert seen[0][0] is None  # not in the job's context (its output routing)
    assert seen[0][1] == "jupyter-executor-on-finish"
    failures = [r for r in caplog.records if "on_finish callback" in r.getMessage()]
    assert len(failures) == 1 and "ConnectionError" in (failures[0].exc_text or "")


def test_on_finish_unsubscribes_and_refuses_a_non_callable(engine: Engine) -> None:
    ended: list[str] = []
    stop = engine.on_finish(lambda job: ended.append(str(job.name)))
    engine.submit(sum, [1], name="first")
    engine.wait(timeout=30)
    wait_until(lambda: ended == ["first"], what="the first end")
    stop()
    engine.submit(sum, [2], name="second")
    engine.wait(timeout=30)
    engine.shutdown()  # the queue is drained: a call for "second" would be made by now
    assert ended == ["first"]
    with pytest.raises(InvalidOptionType, match=r"on_finish\('mail'\)"):
        engine.on_finish("mail")  # type: ignore[arg-type]


def test_notify_option_follows_the_engine_default(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionType, match="notify='on' is not True or False"):
        Engine(folder=tmp_path / "bad", notify="on")  # type: ignore[arg-type]
    from jupyter_executor._publisher import _notifies

    with Engine(folder=tmp_path / "runs") as engine:
        plain = engine.submit(sum, [1], name="plain")
        asked = engine.submit(sum, [1], name="asked", notify=True)
        refused = engine.submit(sum, [1], name="refused", notify=False)
        assert (_notifies(plain), _notifies(asked), _notifies(refused)) == (False, True, False)
        engine.notify = True  # %jobs notify on
        assert (_notifies(plain), _notifies(asked), _notifies(refused)) == (True, True, False)
        engine.wait(timeout=30)


def test_dashboard_rows_say_which_jobs_notify(tmp_path: Path) -> None:
    """The %jobs table notifies like a job view (js/notify.js): its rows carry ``notify``."""
    from jupyter_executor._publisher import DashboardPublisher

    with Engine(folder=tmp_path / "runs", history=False) as engine:
        engine.submit(sum, [1], name="plain")
        engine.submit(sum, [1], name="asked", notify=True)
        assert engine.wait(timeout=30)
        publisher = DashboardPublisher(engine, lambda msg, buffers: None)
        snap = publisher.start(thread=False)
        try:
            assert snap is not None
            rows = {r[0]: dict(zip(snap["cols"], r, strict=True)) for r in snap["data"]}
            assert snap["cols"][0] == "name"
            assert (rows["plain"]["notify"], rows["asked"]["notify"]) == (False, True)
        finally:
            publisher.stop()


# -- in a kernel --------------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_notify_from_the_magics(kernel: Kernel) -> None:
    kernel.execute("%%job told --notify\n6 * 7")
    kernel.execute("%job 'echo hi' --name said --notify")
    kernel.execute("%%job quiet\n1")
    assert kernel.eval("get_engine()['told'].notify, get_engine()['said'].notify") == (
        "(True, True)"
    )
    assert kernel.eval("get_engine()['quiet'].notify, get_engine().notify") == "(None, False)"
    kernel.execute("%jobs notify on")
    assert kernel.eval("get_engine().notify") == "True"
    kernel.execute("%jobs notify off")
    assert kernel.eval("get_engine().notify") == "False"
    ex = kernel.execute("%jobs notify maybe", allow_error=True)
    assert ex.stderr == "UsageError: %jobs notify takes on or off, not 'maybe'\n"
    kernel.execute("%config JobMagics.notify = True")
    assert kernel.eval("from jupyter_executor import _ipython\n_ipython._engine_defaults") == (
        "{'notify': True}"
    )
