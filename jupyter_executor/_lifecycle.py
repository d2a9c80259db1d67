"""The options and state of a long-running job: schedule, restarts, detach, make-like, web app.

``job.runstate.life``; None for the plain jobs that are most jobs. Below job.py (it never imports
it), so that the run state record can name its type.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidOption

__all__ = ["Lifecycle", "has_lifecycle"]


def has_lifecycle(options: Mapping[str, Any]) -> bool:
    """Whether checked ``options`` make a long-running job (a :class:`Lifecycle` is needed)."""
    return bool(
        options["every"] is not None or options["cron"] is not None
        or options["start"] is not None or options["restart"] != "no" or options["detach"]
        or options["inputs"] or options["outputs"] or options["force"]
        or options["before"] is not None or options["after"] is not None
    )  # fmt: skip


class Lifecycle:
    """The options and state of long-running jobs (issue "nothing lost"); None for plain jobs."""

    __slots__ = (
        "after",
        "base",
        "before",
        "checked",
        "detach",
        "failures",
        "force",
        "identity",
        "inputs",
        "max_restarts",
        "next_run",
        "outputs",
        "periodic",
        "pid_start_time",
        "reattached",
        "restart",
        "restart_delay",
        "restarts",
        "schedule",
        "ticking",
        "url",
    )  # fmt: skip

    def __init__(self) -> None:
        self.schedule: Any = None
        self.periodic = False
        self.checked = -1  # the attempt whose inputs/outputs were checked
        self.restart = "no"
        self.restart_delay = 1.0
        self.max_restarts: int | None = None
        self.detach = False
        self.inputs: tuple[str, ...] = ()
        self.outputs: tuple[str, ...] = ()
        # The folder its relative inputs and outputs were found in when it started (see _make).
        self.base: str | None = None
        self.force = False
        # Called with the Job (typed Any: this module never imports job.py).
        self.before: Callable[[Any], Any] | None = None
        self.after: Callable[[Any], Any] | None = None
        self.restarts = 0
        self.failures = 0  # consecutive failed runs, for the restart backoff
        self.next_run: float | None = None
        self.ticking = False
        self.url: str | None = None
        self.identity: str | None = None
        self.pid_start_time: float | None = None
        self.reattached: int | None = None  # the history row of a run started by another kernel

    @classmethod
    def build(cls, kind: str, options: Mapping[str, Any]) -> Lifecycle:
        """The long-running part of a job of ``kind``, from its options as :func:`.check_options`
        left them."""
        life = cls()
        every, cron, start = options["every"], options["cron"], options["start"]
        if every is not None or cron is not None or start is not None:
            if every is not None and cron is not None:
                msg = "give every= or cron=, not both"
                raise InvalidOption(msg)
            from ._schedule import Schedule

            life.schedule = Schedule(every=every, cron=cron, start=start)
            life.periodic = every is not None or cron is not None
            if not life.periodic:
                # A one-shot job at a given time: that time must still be ahead.
                first = life.schedule.first(_now())
                if first.timestamp() < time.time() - 1:
                    msg = f"start={start!r} is in the past; give a future time or a period (every=)"
                    raise InvalidOption(msg)
        life.restart = options["restart"]
        life.restart_delay = options["restart_delay"]
        life.max_restarts = options["max_restarts"]
        if options["detach"] and kind != "command":
            msg = (
                "Job(detach=True) is for commands; run a function detached with "
                "engine.submit(fn, ..., detach=True, name=...)"
            )
            raise InvalidOption(msg)
        life.detach = options["detach"]
        life.inputs = tuple(str(p) for p in options["inputs"])
        life.outputs = tuple(str(p) for p in options["outputs"])
        life.force = options["force"]
        life.before, life.after = options["before"], options["after"]
        return life


def _now() -> Any:
    from datetime import datetime

    return datetime.now().astimezone()
