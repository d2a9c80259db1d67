"""The engine's event bus: its log, its subscribers, and the history hooks.

Every job event goes through :class:`EventBus`: the engine's own log (:class:`EngineEvent`
lines), the ``jupyter_executor.jobs`` logger, the subscribers (views, publishers,
:meth:`EventBus.on_finish` callbacks) and the history store.
"""

from __future__ import annotations

import builtins
import contextvars
import functools
import logging
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal, NamedTuple, SupportsIndex, cast, overload

from ._clock import SYSTEM_CLOCK, Clock
from ._on_finish import FinishCalls
from ._snapshot import JobSnapshot, record_of, snapshot_of
from ._status import FINISHED, Status
from .errors import (
    InvalidOptionType,
)
from .job import Job

logger = logging.getLogger("jupyter_executor")
# Job events (started, done, failed...) go to a child logger, so that configuring
# "jupyter_executor" shows them; its NullHandler keeps Python's last-resort handler from
# printing every failure into whatever notebook cell ran last when nothing is configured.
jobs_logger = logging.getLogger("jupyter_executor.jobs")
jobs_logger.addHandler(logging.NullHandler())


def log_event(level: int, msg: str, *args: Any) -> None:
    """Log an engine event outside any job's context.

    The engine logs a job's start, end and pid from that job's own task; a logging handler
    writing to ``sys.stderr`` (the routing proxy, when logging was set up after the extension)
    would then file the engine's line in the job's output. A new, empty context has no job.
    """
    contextvars.Context().run(jobs_logger.log, level, msg, *args)


class EngineEvent(NamedTuple):
    """One line of :attr:`Engine.log`."""

    time: float
    event: str
    job: str
    detail: str = ""

    def __str__(self) -> str:
        # The date too, as in R executor's log: an engine's log often spans days.
        stamp = datetime.fromtimestamp(self.time).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"{stamp} {self.event:<9} {self.job}" + (f" ({self.detail})" if self.detail else "")


#: Makes an EngineEvent from a plain tuple with no Python-level call at all
#: (``EngineEvent._make`` is a Python function): what :class:`EventLog` hands its readers.
as_event = functools.partial(tuple.__new__, EngineEvent)

#: What the engine appends to its log: the plain tuple itself, ``(time, event, job, detail)``
#: (``tuple(t)`` returns ``t``: no call, no copy). Three events per job (issue 14): a
#: NamedTuple is a tuple *subclass*, which the garbage collector never untracks, so each of
#: the 10,000 kept was walked by every collection and promoted to the oldest generation,
#: where it brought full passes over every live job nearer; a plain tuple of a float and
#: strings is untracked at its first collection. :class:`EventLog` makes the EngineEvent on
#: read.
new_event = cast("Callable[[tuple[Any, ...]], EngineEvent]", tuple)


class EventLog(deque[EngineEvent]):
    """:attr:`Engine.log`: a bounded deque whose readers get :class:`EngineEvent` lines.

    It keeps plain tuples (see :data:`new_event`); iterating, indexing and popping make the
    :class:`EngineEvent` (a tuple equal to the plain one, so ``in``, ``count`` and ``==``
    compare the same).

    Examples
    --------
    >>> log = EventLog(maxlen=2)
    >>> log.append(new_event((0.0, "submitted", "a", "")))
    >>> log[-1].event, [e.job for e in log]
    ('submitted', ['a'])
    """

    __slots__ = ()

    def __iter__(self) -> Iterator[EngineEvent]:
        return map(as_event, super().__iter__())

    def __reversed__(self) -> Iterator[EngineEvent]:
        return map(as_event, super().__reversed__())

    def __getitem__(self, index: SupportsIndex) -> EngineEvent:  # type: ignore[override]
        return as_event(super().__getitem__(index))

    def pop(self) -> EngineEvent:  # type: ignore[override]  # (deque.pop takes no index)
        return as_event(super().pop())

    def popleft(self) -> EngineEvent:
        return as_event(super().popleft())

    def __repr__(self) -> str:
        return f"EventLog({list(self)!r}, maxlen={self.maxlen})"


#: The events that are changes of a job's recorded state: a subscriber that takes snapshots
#: gets the change's :class:`JobSnapshot` for these. The stream events (``"output"``,
#: ``"display"``, ``"progress"``) can come thousands of times a second; they bring the job.
CHANGE_EVENTS = frozenset({"submitted", "status", "removed"})

#: Seconds a plain job (no lifecycle record) runs before the history records it as running.
#: One that ends sooner is recorded once, at its end (its run's states are rebuilt from its
#: times): in a burst of short jobs that is one snapshot and one row per job instead of two.
#: Within the history's own bound: a crash loses at most the changes of the last second.
NOTE_RUNNING_AFTER = 0.5

# What _note_later's jobs may still be when they are checked: recorded then.
_UNFINISHED = (Status.PENDING, Status.RUNNING)

#: A subscriber: the callback, and whether it takes snapshots (``subscribe(snapshots=True)``).
_Subscriber = tuple[Callable[[str, Any], None], bool]


class EventBus:
    """The engine's events: its log, its subscribers, and the history store they feed.

    Owns :attr:`log`, the subscribers and the store handle; the other rooms report through
    :meth:`_emit`, :meth:`_record`, :meth:`_record_many` and :meth:`_job_changed`.
    """

    log: EventLog
    _subscribers: builtins.list[_Subscriber]
    _takes_snapshots: bool
    _finish_calls: FinishCalls
    _store: Any
    _clock: Clock
    _now: Callable[[], float]
    _unnoted: builtins.list[Job]
    _noting_running: bool
    _note_token: int
    # of the engine's other rooms (the loop, the lock)
    _loop: Any
    _lock: Any
    _call_soon: Callable[..., None]

    @property
    def _as_engine(self) -> Any:
        """This engine as the public ``Engine`` (what ``job.engine`` holds): ``self``.

        Typed Any: the rooms never import engine.py (the arrows point from the facade to them),
        and the facade is the only concrete class assembled from them.
        """
        return self

    def _init_events(self, clock: Clock | None) -> None:
        self._clock = SYSTEM_CLOCK if clock is None else clock
        # The time, read once per event: time.time itself for the real clock (no extra call).
        self._now = self._clock.time
        self.log = EventLog(maxlen=10_000)
        self._subscribers = []
        # Whether a subscriber takes snapshots: when none does, the history alone needs a
        # plain job's changes, and takes them as records (see _snapshot.record_of).
        self._takes_snapshots = False
        self._finish_calls = FinishCalls()
        self._store = None
        self._unnoted = []  # plain jobs waiting or started, not recorded yet (see _note_later)
        self._noting_running = False
        self._note_token = 0  # which check of _unnoted is armed (see _arm_note_unnoted)

    @overload
    def subscribe(self, callback: Callable[[str, Job], None]) -> Callable[[], None]: ...

    @overload
    def subscribe(
        self,
        callback: Callable[[str, Job | JobSnapshot], None],
        *,
        snapshots: Literal[True],
    ) -> Callable[[], None]: ...

    def subscribe(
        self, callback: Callable[[str, Any], None], *, snapshots: bool = False
    ) -> Callable[[], None]:
        """Call ``callback(event, job)`` on every job event; return a function that unsubscribes.

        Events: ``"submitted"``, ``"status"``, ``"removed"`` (changes of the job's state) and
        ``"output"``, ``"display"``, ``"progress"`` (its streams). The callback runs in whatever
        thread the event happens in, sometimes with the engine's lock held: it must be quick,
        must not block and must not call the engine.

        Parameters
        ----------
        callback
            Called with the event's name and the job.
        snapshots
            With True, a change (``"submitted"``, ``"status"``, ``"removed"``) comes as the
            :class:`~jupyter_executor._snapshot.JobSnapshot` taken at that change instead of the
            live job: one snapshot per change, built once and shared by the history and every
            subscriber that takes snapshots. The stream events still bring the job (a snapshot
            per printed line would cost more than the line).
        """
        entry: _Subscriber = (callback, bool(snapshots))
        self._subscribers = [*self._subscribers, entry]
        self._takes_snapshots = any(s[1] for s in self._subscribers)

        def unsubscribe() -> None:
            self._subscribers = [s for s in self._subscribers if s is not entry]
            self._takes_snapshots = any(s[1] for s in self._subscribers)

        return unsubscribe

    def on_finish(self, callback: Callable[[Job], Any]) -> Callable[[], None]:
        """Call ``callback(job)`` once each time a job ends; return a function that unsubscribes.

        For a word when a job ends by email, Slack or a sound. A job ends when it is done, has
        failed (after its last retry) or is cancelled; a periodic, forever or restarted job ends
        once per run. The calls are made in order, in a thread of the engine's own (not in the
        job's thread or context, without the engine's lock), so the callback may block, print
        or call the engine; what it raises is logged (``"jupyter_executor"`` logger), never
        raised. By the time of the call, a job that runs again may have started its next run.
        Calls still queued when the engine shuts down are made before it stops (up to 5 s).

        Examples
        --------
        >>> from jupyter_executor import Engine
        >>> ended = []
        >>> with Engine(history=False) as engine:
        ...     stop = engine.on_finish(lambda job: ended.append((job.name, job.status.value)))
        ...     job = engine.submit(sum, [1, 2], name="total")
        ...     engine.wait()
        True
        >>> ended
        [('total', 'done')]
        """
        if not callable(callback):
            msg = f"on_finish({callback!r}): give a function taking the job"
            raise InvalidOptionType(msg)
        calls = self._finish_calls

        def on_event(event: str, job: Job) -> None:
            # "status" with a final status is emitted once per end, by _settle (under the lock:
            # only queue the call here).
            if event == "status" and job.status in FINISHED:
                calls.put(callback, job)

        return self.subscribe(on_event)

    def _emit(self, event: str, job: Job, snap: JobSnapshot | None = None) -> None:
        """Tell the subscribers; ``snap`` is the change's snapshot if one was taken already."""
        for callback, snapshots in self._subscribers:
            try:
                if snapshots and event in CHANGE_EVENTS:
                    if snap is None:
                        # Taken on first need, once: the next subscriber gets the same object.
                        snap = snapshot_of(job)
                    callback(event, snap)
                else:
                    callback(event, job)
            except Exception:
                logger.exception("jupyter_executor: subscriber %r failed", callback)

    def _record(
        self, event: str, job: Job, detail: str = "", snap: JobSnapshot | None = None
    ) -> None:
        self.log.append(new_event((self._now(), event, str(job.name), detail)))
        logger.debug("%s %s %s", event, job.name, detail)
        if event in ("retried", "rerun") and self._subscribers:
            self._emit("status", job, snap)

    def _record_many(
        self,
        event: str,
        jobs: builtins.list[Job],
        snaps: dict[int, JobSnapshot] | None = None,
    ) -> None:
        """Log ``event`` for ``jobs``; ``snaps`` maps ``id(job)`` to a snapshot taken already."""
        now = self._now()
        if len(jobs) == 1:
            self.log.append(new_event((now, event, jobs[0].name, "")))
        else:
            keep = jobs[-(self.log.maxlen or len(jobs)) :]
            self.log.extend(new_event((now, event, j.name, "")) for j in keep)
        if self._subscribers:
            for job in jobs:
                self._emit(event, job, snaps.get(id(job)) if snaps else None)

    def _job_changed(self, job: Job) -> JobSnapshot | None:
        """Hand the history this change's snapshot; return it (None when nothing took one).

        A plain job (``Job`` itself, no lifecycle record) that no subscriber takes snapshots
        of is handed as a record (:func:`~jupyter_executor._snapshot.record_of`), as
        ``Scheduler._status_changed`` does: the notes of jobs still waiting (``_note_unnoted``,
        the queued ones) are taken under the lock, by the thousand in a burst or a long chain,
        where a whole snapshot cost ~3 us each (most of the loop's time in a chain).
        """
        store = self._store
        if store is None:
            return None
        life = job.runstate.life
        if life is None:
            if not self._takes_snapshots and type(job) is Job:
                store.job_recorded(record_of(job))
                return None
        elif life.reattached is not None:
            return None
        snap = snapshot_of(job)
        store.job_changed(snap)
        return snap

    def _note_later(self, job: Job) -> None:
        """(under the lock) A plain job waits or started: the history records it if it still
        waits or runs a moment later.

        See :data:`NOTE_RUNNING_AFTER`. Cheap (a list append) on the hot path; the check is
        armed once per interval, on the loop thread. Most jobs end first and are recorded
        once, at their end (their run keeps its submit and start times).
        """
        self._unnoted.append(job)
        if not self._noting_running:
            self._noting_running = True
            # A flush or a read of the history (history(), wait()) records them at once: what
            # the user saw waiting or running before is in what they read.
            self._store.before_flush = self._note_unnoted
            self._call_soon(self._arm_note_unnoted)

    def _arm_note_unnoted(self) -> None:
        # (loop thread) The jobs noted by now are checked a delay later; those noted after, at
        # the next check. Real time, not the engine's clock: a debounce of disk writes, not a
        # time the user set (a mock clock's timers are the user's schedules and timeouts only).
        with self._lock:
            self._note_token += 1
            token, mark = self._note_token, len(self._unnoted)
        self._loop.call_later(NOTE_RUNNING_AFTER, self._note_unnoted, token, mark)

    def _note_unnoted(self, token: int | None = None, mark: int | None = None) -> None:
        """Record the jobs noted that still wait or run (loop thread, or the thread that
        flushes the history).

        From the timer armed by :meth:`_arm_note_unnoted` (``token``, ``mark``): the ``mark``
        jobs noted before it was armed, a delay ago; the jobs noted since wait for the next
        check (a check recorded every job noted until then: in a steady flow of short jobs,
        those noted an instant before it, most of which end a moment later, were recorded
        twice: waiting, then ended). From a flush or a read (no arguments): all of them, at
        once; the timer armed before is void then.
        """
        with self._lock:  # their status and times do not move while they are read
            if token is not None and token != self._note_token:
                return  # a flush took them, or a later arming checks them
            unnoted = self._unnoted
            if mark is None or mark >= len(unnoted):
                jobs, self._unnoted = unnoted, []
                self._noting_running = False
                self._note_token += 1
            else:
                jobs = unnoted[:mark]
                del unnoted[:mark]
                self._call_soon(self._arm_note_unnoted)  # (it takes the lock: posted)
            store = self._store
            if store is None:
                return
            recorded: set[int] = set()  # a job noted waiting, then started: recorded once
            noted = []
            for job in jobs:
                if id(job) in recorded or job.status not in _UNFINISHED:
                    continue
                recorded.add(id(job))
                noted.append(job)
            self._record_notes(noted)

    def _record_notes(self, jobs: builtins.list[Job]) -> None:
        """(under the lock) Hand the history the current state of ``jobs``, queued at once.

        The engine's notes of jobs still waiting or running (``_note_unnoted``,
        ``Slots._note_queued``) are taken under its lock, by the thousand in a long chain or a
        burst queued behind a limit: one :meth:`HistoryStore.jobs_recorded`, which never waits
        for a writer that is behind (one ``put`` at a time would, holding every job thread and
        the loop). What each job is handed as is what :meth:`_job_changed` hands.
        """
        store = self._store
        if store is None or not jobs:
            return
        items: builtins.list[Any] = []
        plain = not self._takes_snapshots
        for job in jobs:
            life = job.runstate.life
            if life is None:
                if plain and type(job) is Job:
                    items.append(record_of(job))
                    continue
            elif life.reattached is not None:
                continue
            items.append(snapshot_of(job))
        store.jobs_recorded(items)

    def _note_pid(self, job: Job) -> None:
        """A job's process started: log it like R executor ("started LOL jobs/test.R (pid N)")."""
        self.log.append(
            new_event((self._now(), "pid", job.name, f"{job.describe()} (pid {job.pid})"))
        )
        if jobs_logger.isEnabledFor(logging.INFO):
            log_event(logging.INFO, "started %s %s (pid %s)", job.name, job.describe(), job.pid)
