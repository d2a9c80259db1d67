"""The dask backend: functions, and commands, on a ``distributed`` cluster.

A command (a string or argv list submitted with ``backend="dask"``) runs in a subprocess of a
worker: on an HPC cluster (``Engine(dask="slurm")``), scripts go through the batch queue. A
job's ``resources=`` and ``priority=`` are passed to ``Client.submit``.

``Engine(dask=...)`` takes a ``Client``, a scheduler address, or a dict of ``LocalCluster``
options; with None a ``LocalCluster`` is started on first use and closed at shutdown. A job's
prints on the worker reach its output as they happen (batches at most every 0.2 s, sent as
worker events on a topic of the engine's own), and what the batches did not bring is added
when the task ends, also when it fails: the output is complete (up to the last million
characters) and written once.

Jobs reach the cluster in batches: the jobs started in one turn of the engine's loop go in
one ``Client.map`` per set of options (one graph message), and their ends come back through
one done-callback per future; the results of the tasks that ended meanwhile are fetched
together, one gather per batch, off the loop. A batch that cannot be sent (an argument that
does not pickle) is sent again one job at a time: only the jobs that cannot be sent fail.

What runs on the worker (:mod:`._dask_task`, and :mod:`.._cell_task` for ``%%job`` cells) is
shipped by value: workers need dask and cloudpickle, not jupyter_executor (the job's own
function must be importable there or picklable by value, e.g. defined in the notebook). Dask
cannot stop a task that is running: cancelling such a job frees its slot and says so in its
reason, but the task runs on; one that had not started never does. At shutdown, a cluster of
the engine's own that does not close in time (it waits for such a task) is left to close in
the background, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import subprocess
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _cell_task
from .._text import env_text
from ..errors import CommandFailed
from ..job import resolve_args
from . import _dask_task
from ._base import TaskBackend

if TYPE_CHECKING:
    from .._protocols import BackendHost
    from ..job import Job

__all__ = ["DaskBackend"]

logger = logging.getLogger(__name__)

_HINT = "the dask backend needs dask.distributed: pip install 'jupyter_executor[dask]'"


#: Appended to a cancelled job's reason when its task was already running on a worker.
STILL_RUNNING = "cancel requested; dask cannot stop a running task"

#: Seconds an owned cluster gets to close at shutdown, after the engine's cancel grace.
CLOSE_AFTER_GRACE = 5.0


class _ByValue:
    """A function that pickles by value (cloudpickle), whatever its module.

    distributed pickles a task with plain pickle when it can, which stores a function by
    reference (its module's name): a worker without that module cannot load it. This wrapper
    pickles as ``cloudpickle.loads(<the function by value>)``, which a worker with only
    cloudpickle can load.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self._pickled: bytes | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        import cloudpickle

        if self._pickled is None:
            # Pickled once: by value, the module's functions cost 0.8 ms to pickle, at every
            # task that was a third of what the backend added to a no-op task.
            for module in _BY_VALUE:
                cloudpickle.register_pickle_by_value(module)
            self._pickled = cloudpickle.dumps(self.fn)
        return cloudpickle.loads, (self._pickled,)


#: The self-contained modules whose functions travel by value.
_BY_VALUE = (_dask_task, _cell_task)
_CALL = _ByValue(_dask_task.call_capturing)
_RUN_COMMAND = _ByValue(_dask_task.run_command)
_CLAIM = _ByValue(_dask_task.claim)
#: A ``%%job --backend dask`` cell (:class:`.._cell.CellJob`'s target is ``run_shipped``).
_RUN_CELL = _ByValue(_cell_task.run_shipped)


class _Stream:
    """One task's output as it reaches the kernel: live batches in order, then the rest.

    The live batches arrive on the dask client's thread, the end on the engine's: a lock makes
    each character written once, in order. ``pos`` counts the characters of the task's output
    accounted for (written, or skipped with a note).
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.pos = 0
        self._lock = threading.Lock()
        self._ended = False
        # A batch may end inside a line (``print`` writes the text and its newline apart):
        # a note then starts on a line of its own, never glued to a piece of a line.
        self._mid_line = False

    def _note(self, skipped: int) -> None:
        lead = "\n" if self._mid_line else ""
        self.job.output.write(f"{lead}[{skipped:,} characters not shown]\n")
        self._mid_line = False

    def _write(self, text: str) -> None:
        if text:
            self.job.output.write(text)
            self._mid_line = not text.endswith("\n")

    def live(self, start: int, text: str) -> None:
        with self._lock:
            end = start + len(text)
            if self._ended or end <= self.pos:
                return  # after the end, or already written
            if start > self.pos:
                # The worker skipped part of a flood (a bounded live stream): say so.
                self._note(start - self.pos)
            self._write(text[max(0, self.pos - start) :])
            self.pos = end

    def end(self, captured: Any) -> None:
        """Write what the live batches did not bring (``captured``: the task's kept text and
        total count); later batches are ignored."""
        with self._lock:
            self._ended = True
            if not (isinstance(captured, tuple) and len(captured) == 2):
                return
            kept, total = captured
            missing = total - self.pos
            if missing <= 0:
                return
            if missing > len(kept):
                self._note(missing - len(kept))
                missing = len(kept)
            self._write(kept[len(kept) - missing :])
            self.pos = total


@dataclass(slots=True, eq=False)
class _Task:
    """One attempt of a job on the cluster, from its submission to its outcome."""

    job: Job
    key: str
    fn: Any
    args: Any
    kwargs: Any
    options: dict[str, Any]
    #: ``(status, value)`` once the task ended (see :func:`_outcomes`).
    done: asyncio.Future[tuple[str, Any]]
    stream: _Stream = field(init=False)
    future: Any = field(default=None, init=False)  # the dask future, once submitted

    def __post_init__(self) -> None:
        self.stream = _Stream(self.job)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_HINT) from exc
    return distributed


class DaskBackend(TaskBackend):
    """Submits callables to a dask ``distributed`` client."""

    name = "dask"

    def __init__(self, engine: BackendHost) -> None:
        super().__init__(engine)
        self._client: Any = None
        self._cluster: Any = None
        self._owned = False
        self._lock = asyncio.Lock()
        # Live output: the tasks running now, by key, and the event topic they publish on.
        self._streams: dict[str, _Stream] = {}
        self._topic = f"jupyter-executor-output-{engine.id}-{id(self):x}"
        # Tasks waiting for the next submission pass (loop thread only).
        self._to_submit: list[_Task] = []
        # Tasks that ended, posted by dask's callback thread for the loop to collect.
        self._ended_lock = threading.Lock()
        self._ended_tasks: list[_Task] = []
        self._wake_pending = False
        self._fetching = False  # a batch of outcomes is being fetched (under _ended_lock)

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                loop = asyncio.get_running_loop()
                # Creating a client or cluster blocks: do it off the engine's loop.
                client = await loop.run_in_executor(None, self._connect)
                # Sent before any task (the client keeps the order of its messages), so the
                # scheduler forwards a task's first batch.
                client.subscribe_topic(self._topic, self._on_event)
                self._client = client
            return self._client

    def _on_event(self, event: Any) -> None:
        """(dask client's thread) A live batch of some task's output."""
        try:
            _, msg = event
            stream = self._streams.get(msg["key"])
            if stream is not None:
                stream.live(int(msg["start"]), bytes(msg["data"]).decode("utf-8", "surrogatepass"))
        except Exception:  # a malformed event must not break the client's loop
            logger.debug("jupyter_executor: bad live output event %r", event, exc_info=True)

    def _connect(self) -> Any:
        distributed = _import_distributed()
        option = self.engine.dask
        if isinstance(option, distributed.Client):
            return option
        if isinstance(option, str) and option.lower() in ("slurm", "pbs", "sge", "lsf"):
            from .._hpc import make_cluster

            self._cluster = make_cluster(option.lower(), **self.engine.cluster_options)
            self._owned = True
            return distributed.Client(self._cluster)
        if isinstance(option, str):
            self._owned = True
            return distributed.Client(option)
        options = {"n_workers": 2, "threads_per_worker": 1, "dashboard_address": None}
        if isinstance(option, dict):
            options.update(option)
        elif option is not None:
            msg = (
                "dask= takes a Client, an address, a dict of LocalCluster options or None, "
                f"not {option!r}"
            )
            raise TypeError(msg)
        self._cluster = distributed.LocalCluster(**options)
        self._owned = True
        return distributed.Client(self._cluster)

    async def execute(self, job: Job) -> Any:
        # Most jobs find the client made: no lock, no await before the task is queued.
        client = self._client if self._client is not None else await self.client()
        args, kwargs = resolve_args(job)
        key = f"{job.name}-{job.attempts}-{id(job):x}"
        fn = job.target
        if job.kind == "command":
            # A command runs in a subprocess of the worker (scriptflow's tasks on a cluster or
            # an HPC queue); the engine's id and the job's name reach it as for subprocess jobs.
            env = {**(job.env or {}), "JUPYTER_EXECUTOR_ID": self.engine.id}
            env["JUPYTER_EXECUTOR_JOB"] = env_text(job.name)
            env.setdefault("PYTHONUNBUFFERED", "1")  # child Python output arrives as printed
            cwd = os.fspath(job.cwd) if job.cwd is not None else None
            fn, args, kwargs = _RUN_COMMAND, (job.target, cwd, env), {}
        elif fn is _cell_task.run_shipped:
            fn = _RUN_CELL  # by value: the worker may not have jupyter_executor
        options = job.runstate.dask_options or {}
        task = _Task(job, key, fn, args, kwargs, options, self.loop.create_future())
        self._streams[key] = task.stream
        try:
            self._to_submit.append(task)
            if len(self._to_submit) == 1:
                # One submission pass per loop turn for the tasks queued in that turn.
                self.loop.call_soon(self._submit_batch, client)
            return await self._outcome(client, task)
        finally:
            self._streams.pop(task.key, None)  # (its key changes when it is sent again)

    def _submit_batch(self, client: Any) -> None:
        """(loop thread) Submit the tasks queued since the last pass.

        One ``Client.map`` per set of options (resources, priority): one graph message to the
        scheduler for the batch. It does not wait for the scheduler (the client's own loop sends
        the message), so it is called here, on the engine's loop: no thread hop per task.
        """
        batch, self._to_submit = self._to_submit, []
        groups: dict[tuple[Any, ...], list[_Task]] = {}
        for task in batch:
            if task.done.done():
                continue  # cancelled before it was submitted
            options = task.options
            resources = options.get("resources")
            group = (tuple(sorted(resources.items())) if resources else None,
                     options.get("priority", 0))  # fmt: skip
            groups.setdefault(group, []).append(task)
        for tasks in groups.values():
            try:
                self._send(client, tasks)
            except Exception as exc:
                if len(tasks) == 1:
                    _cannot_send(tasks[0], exc)
                    continue
                # Most likely one job's argument that does not pickle: one job at a time, only
                # the jobs that cannot be sent fail (the map named none of them).
                for task in tasks:
                    # A new key: the failed map's futures hold the old ones in the client.
                    self._streams.pop(task.key, None)
                    task.key = f"{task.key}-again"
                    self._streams[task.key] = task.stream
                    try:
                        self._send(client, [task])
                    except Exception as exc:
                        _cannot_send(task, exc)

    def _send(self, client: Any, tasks: list[_Task]) -> None:
        """Submit ``tasks`` (the same options) in one ``Client.map``; raises when the client
        cannot send them (a job's function or argument does not pickle)."""
        futures = client.map(
            _CALL,
            [t.fn for t in tasks],
            [t.args for t in tasks],
            [t.kwargs for t in tasks],
            [self._topic] * len(tasks),
            [t.key for t in tasks],
            key=[t.key for t in tasks],
            pure=False,
            **tasks[0].options,
        )
        for task, future in zip(tasks, futures, strict=True):
            task.future = future
            # Called on the client's callback thread when the task ends, whatever the end.
            future.add_done_callback(functools.partial(self._ended, task))

    def _ended(self, task: _Task, _future: Any) -> None:
        """(dask's callback thread) A task ended: post it to the engine's loop, one wake-up
        for all the tasks that end before the loop gets to them."""
        with self._ended_lock:
            self._ended_tasks.append(task)
            if self._wake_pending:
                return
            self._wake_pending = True
        loop = self.engine.loop
        if loop is None:
            return  # the engine stopped: nobody waits for this task any more
        with contextlib.suppress(RuntimeError):  # the loop closed: the engine is gone
            loop.call_soon_threadsafe(self.collect_jobs)

    def collect_jobs(self) -> None:
        """(loop thread) Start fetching the outcomes of the tasks that ended, unless a fetch is
        under way: the tasks that end meanwhile wait for it and go in the next one together."""
        with self._ended_lock:
            self._wake_pending = False
            if self._fetching or not self._ended_tasks:
                return
            self._fetching = True
        self.loop.create_task(self._fetch())

    async def _fetch(self) -> None:
        """Settle the ended tasks' waiters with their results or errors, a batch at a time
        (one round trip to the cluster per batch, made off the loop)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                with self._ended_lock:
                    batch, self._ended_tasks = self._ended_tasks, []
                    if not batch:
                        self._fetching = False
                        return
                batch = [t for t in batch if not t.done.done()]  # not those cancelled
                if not batch:
                    continue
                futures = [t.future for t in batch]
                try:
                    outcomes = await loop.run_in_executor(None, _outcomes, futures)
                except Exception as exc:  # the client broke: every task of the batch fails
                    outcomes = [("error", exc)] * len(batch)
                for task, outcome in zip(batch, outcomes, strict=True):
                    if not task.done.done():
                        task.done.set_result(outcome)
        except BaseException:
            with self._ended_lock:
                self._fetching = False
            raise

    async def _outcome(self, client: Any, task: _Task) -> Any:
        job, stream = task.job, task.stream
        loop = asyncio.get_running_loop()
        try:
            status, value = await task.done
        except asyncio.CancelledError:
            future = task.future
            if future is None:
                task.done.cancel()  # not submitted yet: the submission pass skips it
                raise
            running = False
            with contextlib.suppress(Exception):
                running = await loop.run_in_executor(None, _is_running, client, future.key)
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, future.cancel)
            if running:
                # The worker's thread cannot be stopped: say so rather than pretend it was.
                run = job.runstate
                reason = run.cancel_reason
                run.cancel_reason = f"{reason}; {STILL_RUNNING}" if reason else STILL_RUNNING
            raise
        if status == "cancelled":
            raise asyncio.CancelledError
        if status == "error":
            exc = value
            captured = getattr(exc, _dask_task.OUTPUT_ATTR, None)
            stream.end(captured)
            if captured is not None:
                with contextlib.suppress(Exception):
                    delattr(exc, _dask_task.OUTPUT_ATTR)  # delivered: the error stays as raised
            if job.kind == "command" and isinstance(exc, subprocess.CalledProcessError):
                from ..backends.subprocess import describe_returncode

                rc = exc.returncode
                msg = f"command {job.describe()!r} {describe_returncode(rc)} (on a dask worker)"
                raise CommandFailed(msg, rc) from None
            raise exc
        result, captured = value
        stream.end(captured)
        return result

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._owned:
            # The user's client lives on: stop it calling this backend.
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(None, self._client.unsubscribe_topic, self._topic)
            return
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is None and cluster is None:
            return
        closed: asyncio.Future[None] = loop.create_future()
        budget = self.engine.cancel_grace + CLOSE_AFTER_GRACE

        def close(timeout: float | None = None) -> None:
            options = {} if timeout is None else {"timeout": timeout}  # (else dask's defaults)
            try:
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close(**options)
                if cluster is not None:
                    with contextlib.suppress(Exception):
                        cluster.close(**options)
            finally:
                with contextlib.suppress(RuntimeError):  # the engine's loop closed: nobody waits
                    loop.call_soon_threadsafe(_settle, closed)

        # A daemon thread, not the loop's executor: a cluster whose worker still runs a task
        # (dask cannot stop it) waits for it to close, and the executor's threads hold the
        # interpreter at exit.
        name = f"jupyter-executor-{self.engine.id}-dask-close"
        try:
            threading.Thread(target=close, name=name, daemon=True).start()
        except RuntimeError:
            # At interpreter exit, where Python 3.12 starts no thread: here, within dask's
            # own timeouts (what it does not close then, its own exit hooks do).
            close(budget)
            return
        try:
            await asyncio.wait_for(closed, budget)
        except TimeoutError:
            logger.warning(
                "jupyter_executor: the dask cluster did not close within %.3g s (a task that "
                "dask cannot stop may run on it); it goes on closing in the background",
                budget,
            )


def _outcomes(futures: list[Any]) -> list[tuple[str, Any]]:
    """(a thread) ``(status, value)`` of each ended future, the results fetched in one gather.

    ``status`` is ``"ok"`` (value: the task's ``(result, captured output)``), ``"error"``
    (value: the exception, as the task raised it) or ``"cancelled"``.
    """
    outcomes: list[tuple[str, Any]] = []
    finished: list[int] = []
    for i, future in enumerate(futures):
        status = future.status
        if status == "finished":
            finished.append(i)
            outcomes.append(("ok", None))  # filled below
        elif status == "cancelled":
            outcomes.append(("cancelled", None))
        else:  # "error", or "lost" (its worker died: this waits for its recomputation)
            try:
                outcomes.append(("error", future.exception()))
            except Exception as exc:  # cancelled meanwhile, or the client closed
                outcomes.append(("error", exc))
    if not finished:
        return outcomes
    client = futures[finished[0]].client
    try:
        # One gather for the batch: the client asks each worker once for all its results.
        values = client.gather([futures[i] for i in finished])
    except Exception:
        values = None  # one of them was lost meanwhile (its worker died): one at a time
    for n, i in enumerate(finished):
        if values is not None:
            outcomes[i] = ("ok", values[n])
            continue
        try:
            outcomes[i] = ("ok", futures[i].result())
        except Exception as exc:
            outcomes[i] = ("error", exc)
    return outcomes


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _cannot_send(task: _Task, exc: Exception) -> None:
    """Fail ``task``'s attempt with why the client could not send it, in one line."""
    if not isinstance(exc, TypeError):  # (dask's error for what does not pickle)
        task.done.set_exception(exc)
        return
    reason = exc.__cause__ or exc  # (dask's own message names the graph, not what failed in it)
    lines = str(reason).strip().splitlines() or [type(reason).__name__]
    msg = f"job {task.job.name!r} cannot be sent to a worker: {lines[0]}"
    error = TypeError(msg)
    error.__cause__ = exc
    task.done.set_exception(error)


def _is_running(client: Any, key: str) -> bool:
    """(a thread) True when the task ``key`` runs on a worker; else it never will.

    A task the scheduler has handed to a worker may still wait there for a thread: the worker
    tells, and marks it so that it never starts (:func:`._dask_task.claim`).
    """
    workers = [w for w, keys in client.processing().items() if key in keys]
    if not workers:
        # Still on the scheduler: the cancel that follows releases it there (unless a worker
        # takes it and starts it in the few milliseconds between the two).
        return False
    try:
        return any(client.run(_CLAIM, key, workers=workers).values())
    except Exception:  # its worker cannot be asked (gone): say what may be
        return True
