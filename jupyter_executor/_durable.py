"""Durable schedules: the ``every=``/``cron=`` schedules and restart policies of commands.

When a command job with a schedule or a restart policy is submitted, its spec (the command,
the schedule, the policy, ``env=``, ``cwd=``, ``timeout=``, ``retries=``) is stored in the
schedules table of the engine's ``history.db`` (see ``store/_history.py``), at once, in the
caller's thread.
The next engine on that folder (a new kernel, or ``jupyter-executor schedules run FOLDER``)
re-arms the schedules no live engine has armed, and says so in one line.

Only commands are durable: a Python callable, its closure and its module live in the kernel
that submitted it, and cannot be re-armed in another process.

A run missed while no engine was alive is not run late: it is reported (the re-arm line, and a
``cancelled`` run in the history whose reason starts with "missed"), and the next run is the
schedule's next time after now. Each schedule has one owner at a time (the engine that armed
it, while its process lives), so two kernels on one folder never both run it.

``engine.cancel(name)`` stops a schedule for that engine only (the next engine re-arms it);
``engine.unschedule(name)`` removes it for good.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ._status import Status

if TYPE_CHECKING:
    from pathlib import Path

    from .job import Job


class DurableHost(Protocol):
    """What durable jobs read and change of their engine (the engine's rooms provide it).

    A protocol, not engine.py's ``Engine``: the scheduler imports this module, so importing
    the facade back (even for typing) would close an import circle (issue 10).
    """

    _store: Any
    _jobs: dict[str, Job]
    _deferred: list[Job]
    _durable_names: set[str]
    _rearmed: set[str]

    @property
    def id(self) -> str:
        """The engine's id."""

    def log_path(self, name: str) -> Path:
        """The log file of the job called ``name``."""

    def cancel(self, job: Job | str, reason: str = ...) -> bool:
        """Ask ``job`` to stop."""

    def remove(self, job: Job | str) -> None:
        """Forget finished ``job``."""

    def unschedule(self, name: str) -> bool:
        """Stop scheduling the job called ``name``."""

    def _submit(self, jobs: list[Job], replace: bool) -> None: ...


__all__ = [
    "RearmedWarning",
    "describe",
    "durable",
    "make_way",
    "rearm",
    "release",
    "remember",
    "unschedule",
]

logger = logging.getLogger("jupyter_executor")

# The jobs rearm() made: their schedule is stored already (saving it again is no news).
_REARMED: weakref.WeakSet[Job] = weakref.WeakSet()

# Missed runs counted at most (a schedule every second left for a month would count forever).
_MAX_MISSED = 10_000


def durable(job: Job) -> bool:
    """True when ``job`` is stored: a command with a period, a cron expression or a restart
    policy of its own (not one given by ``keep_restarting()``), and not detached."""
    life = job.runstate.life
    return (
        life is not None
        and job.kind == "command"
        and (life.periodic or life.restart != "no")
        and not life.detach
    )


def spec_of(job: Job) -> dict[str, Any]:
    """What the next engine needs to re-arm ``job`` (JSON-safe)."""
    life = job.runstate.life
    assert life is not None
    schedule = life.schedule
    every = cron = start = None
    if schedule is not None:
        every = schedule.every.total_seconds() if schedule.every is not None else None
        cron = schedule.cron
        if schedule.start is not None:
            start = schedule.start.timestamp()
        elif every is not None:
            # The phase of a period: the next engine keeps the same times (submit + k * every).
            start = job.submitted if job.submitted is not None else time.time()
    target = job.target
    command: str | list[str] = target if isinstance(target, str) else [os.fspath(a) for a in target]
    return {
        "command": command,
        "every": every,
        "cron": cron,
        "start": start,
        "restart": life.restart,
        "restart_delay": life.restart_delay,
        "max_restarts": life.max_restarts,
        # The command ran in the kernel's working directory: keep it, so that a terminal
        # started elsewhere runs it in the same place.
        "cwd": os.fspath(job.cwd) if job.cwd is not None else os.getcwd(),
        "env": job.env,
        "timeout": job.timeout,
        "retries": job.retries,
        "retry_delay": job.retry_delay,
    }


def describe(name: str, spec: dict[str, Any]) -> str:
    """One phrase: 'scrape every 2 min', 'report daily at 06:00', 'server restart always'."""
    every, cron = spec.get("every"), spec.get("cron")
    if every is not None:
        return f"{name} every {_period(float(every))}"
    if cron is not None:
        fields = str(cron).split()
        if (
            len(fields) == 5
            and fields[2:] == ["*", "*", "*"]
            and all(f.isdigit() for f in fields[:2])
        ):
            return f"{name} daily at {int(fields[1]):02d}:{int(fields[0]):02d}"
        return f"{name} cron {cron!r}"
    return f"{name} restart {spec.get('restart')}"


def _period(seconds: float) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''}"
    return f"{seconds:g} s"


def remember(engine: DurableHost, jobs: list[Job]) -> None:
    """Store the schedules of the durable ``jobs`` just submitted to ``engine``.

    Written at once (a kernel killed right after submitting keeps its schedule). A failure to
    write is logged, not raised: the job runs, only not durably.
    """
    store = engine._store
    if store is None:
        return
    for job in jobs:
        if job in _REARMED:
            continue
        try:
            store.save_schedule(str(job.name), spec_of(job))
        except Exception as exc:
            logger.warning(
                "jupyter_executor: the schedule of %r is not stored (it will not be re-armed "
                "by the next engine): %s",
                job.name,
                exc,
            )
        else:
            engine._durable_names.add(str(job.name))


def make_way(engine: DurableHost, jobs: list[Job]) -> None:
    """Free the names of re-armed schedules that the user submits again (a notebook run anew
    after a kernel restart): the re-armed job, while it waits for its next time, gives way."""
    for job in jobs:
        old = engine._jobs.get(str(job.name)) if job.name is not None else None
        if old is None or old is job or str(job.name) not in engine._rearmed:
            continue
        if old.status is Status.PENDING:
            engine.cancel(old, "submitted again")
        if old.done():
            engine.remove(old)
            engine._rearmed.discard(str(job.name))


def _alive(row: dict[str, Any], engine: DurableHost) -> bool:
    """Whether the owner of a stored schedule still runs (so it keeps it)."""
    owner = row.get("owner")
    if owner is None:
        return False
    if owner == engine.id:
        return True
    host = row.get("owner_host")
    if host is None:
        return False  # never registered: no engine has it
    if host != socket.gethostname():
        return True  # another machine's engine: we cannot tell, so we leave it alone
    from ._procs import same_process

    return same_process(row.get("owner_pid"), row.get("owner_pid_start_time"))


def rearm(engine: DurableHost, *, warn: bool = True) -> list[str]:
    """Re-arm the stored schedules that no live engine has armed; return one phrase each.

    Also cancels the jobs this engine re-armed whose schedule was removed elsewhere
    (``unschedule`` in another kernel). Says what it did in one line (a warning, and the log).
    """
    store = engine._store
    if store is None:
        return []
    try:
        rows = store.schedules()
    except Exception as exc:
        logger.warning("jupyter_executor: cannot read the stored schedules: %s", exc)
        return []
    _cancel_unscheduled(engine, {row["name"] for row in rows})
    jobs, phrases = _take_over(engine, store, rows)
    if not jobs:
        return []
    # Not with the jobs given to Engine(*jobs): those wait for the user's first submit.
    deferred, engine._deferred = engine._deferred, []
    try:
        engine._submit(jobs, False)
    finally:
        engine._deferred = deferred + engine._deferred
    engine._rearmed.update(str(job.name) for job in jobs)
    line = rearm_line(phrases)
    logger.info("jupyter_executor: %s", line)
    if warn:
        warnings.warn(line, RearmedWarning, stacklevel=3)
    return phrases


def _cancel_unscheduled(engine: DurableHost, stored: set[str]) -> None:
    """Cancel the jobs this engine re-armed whose schedule is no longer ``stored``."""
    for name in list(engine._rearmed):
        job = engine._jobs.get(name)
        if name not in stored and job is not None and not job.done():
            engine.cancel(job, "unscheduled")


def _take_over(
    engine: DurableHost, store: Any, rows: list[dict[str, Any]]
) -> tuple[list[Job], list[str]]:
    """Claim the stored schedules no live engine runs; return their jobs and one phrase each."""
    phrases: list[str] = []
    jobs: list[Job] = []
    for row in rows:
        name = row["name"]
        if name in engine._jobs or _alive(row, engine):
            continue
        try:
            if not store.claim_schedule(name, row.get("owner")):
                continue  # another engine took it just now
            job = _job(name, row["spec"])
        except Exception as exc:
            logger.warning("jupyter_executor: cannot re-arm the schedule %r: %s", name, exc)
            continue
        phrase = describe(name, row["spec"])
        try:
            missed = _missed(engine, name, row)
        except (ValueError, TypeError, OverflowError) as exc:
            # (a period so long that its next time is past year 9999, a corrupt row): the
            # schedule is re-armed all the same; only its missed runs go uncounted.
            logger.warning("jupyter_executor: cannot count the missed runs of %r: %s", name, exc)
            missed = ""
        if missed:
            phrase += f" ({missed})"
        jobs.append(job)
        _REARMED.add(job)
        phrases.append(phrase)
    return jobs, phrases


def rearm_line(phrases: list[str]) -> str:
    """'re-armed 2 schedules: scrape every 2 min, report daily at 06:00'."""
    n = len(phrases)
    return f"re-armed {n} schedule{'s' if n > 1 else ''}: {', '.join(phrases)}"


class RearmedWarning(UserWarning):
    """Stored schedules were re-armed by a new engine (one line saying which)."""


def _job(name: str, spec: dict[str, Any]) -> Job:
    from .job import Job

    command = spec["command"]
    return Job(
        command if isinstance(command, str) else list(command),
        name=name,
        every=spec.get("every"),
        cron=spec.get("cron"),
        start=spec.get("start") if (spec.get("every") or spec.get("cron")) else None,
        restart=spec.get("restart") or "no",
        restart_delay=spec.get("restart_delay", 1.0),
        max_restarts=spec.get("max_restarts"),
        cwd=spec.get("cwd"),
        env=spec.get("env"),
        timeout=spec.get("timeout"),
        retries=spec.get("retries") or 0,
        retry_delay=spec.get("retry_delay", 1.0),
    )


def _missed(engine: DurableHost, name: str, row: dict[str, Any]) -> str:
    """Count the runs of a periodic schedule due while no engine ran it; record and say so."""
    spec = row["spec"]
    if spec.get("every") is None and spec.get("cron") is None:
        return ""
    from ._schedule import Schedule

    schedule = Schedule(every=spec.get("every"), cron=spec.get("cron"), start=spec.get("start"))
    created = float(row["created"])
    try:
        last = engine._store.last_started(name, created)
    except Exception:
        return ""
    now = datetime.now().astimezone()
    # Started a moment after its time: the next time after the start is the next one due.
    at = (
        schedule.next_after(datetime.fromtimestamp(last).astimezone())
        if last is not None
        else schedule.first(datetime.fromtimestamp(created).astimezone())
    )
    due: list[datetime] = []
    while at < now and len(due) < _MAX_MISSED:
        due.append(at)
        at = schedule.next_after(at)
    if not due:
        return ""
    n = len(due)
    span = _clock(due[0]) if n == 1 else f"{_clock(due[0])} to {_clock(due[-1])}"
    text = f"missed {n} run{'s' if n > 1 else ''} while no engine was alive: {span}"
    try:
        engine._store.record_note(name, "cancelled", f"{text}; not run late", time.time())
    except Exception as exc:
        logger.warning("jupyter_executor: cannot record the missed runs of %r: %s", name, exc)
    return text


def _clock(moment: datetime) -> str:
    today = datetime.now().astimezone().date()
    fmt = "%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M:%S"
    return moment.strftime(fmt)


def unschedule(engine: DurableHost, name: str) -> bool:
    """Remove schedule ``name`` for good and stop it in ``engine``; True if there was one."""
    removed = engine._store.delete_schedule(name) if engine._store is not None else False
    job = engine._jobs.get(name)
    stopped = False
    if job is not None and (durable(job) or name in engine._rearmed) and not job.done():
        stopped = engine.cancel(job, "unscheduled")
    engine._durable_names.discard(name)
    engine._rearmed.discard(name)
    return bool(removed or stopped)


def release(engine: DurableHost) -> None:
    """At shutdown: the schedules this engine armed are free for the next engine at once."""
    if engine._store is None or not (engine._durable_names or engine._rearmed):
        return
    try:
        engine._store.release_schedules()
    except Exception as exc:
        logger.warning("jupyter_executor: cannot release the stored schedules: %s", exc)
