"""Custom job classes: subclass :class:`AbstractJob` and write ``async def run(self)``.

asynciojobs' extension point, with its missing piece: a resource shared by several jobs (an SSH
connection, a database pool, a scratch directory) is opened once by ``setup()`` and closed once
by ``shutdown()`` at the end of the engine's run, whatever happened to the jobs.

Life cycle of a *group* of jobs (the jobs whose :meth:`AbstractJob.shared_key` is equal, by
default all the jobs of one class) within one engine run::

    first job of the group starts  ->  await setup()            (the others wait for it)
    every job                      ->  await run()              (self.shared = what setup returned)
    orchestrate() returns, or the engine shuts down
                                   ->  await shutdown()          (once, on the job that ran setup)

A run ends when ``orchestrate()`` returns or ``shutdown()`` is called; a group used again after
that is set up again. Everything runs on the engine's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Unpack, cast

from ._options import JobOptions
from .errors import InvalidOption
from .job import Job

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["AbstractJob"]

logger = logging.getLogger("jupyter_executor")


class _Group:
    """The shared state of one group in one engine run."""

    def __init__(self) -> None:
        self.lock: asyncio.Lock | None = None
        self.ready = False
        self.owner: AbstractJob | None = None
        self.shared: Any = None


#: engine -> {shared key -> group}; weak so that a forgotten engine takes its groups along.
_groups: weakref.WeakKeyDictionary[Engine, dict[Hashable, _Group]] = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


class AbstractJob(Job):
    """A job defined by a class: override ``async def run(self)``; optionally ``setup()``
    and ``shutdown()``, called once per group of jobs per engine run.

    Parameters
    ----------
    **options
        The options of :class:`~jupyter_executor.Job` (``name``, ``requires``, ``retries``,
        ``timeout``, ``every``, ``restart``...; the one list is :class:`.JobOptions`). The job
        runs on the ``async`` backend: ``run()`` is a coroutine on the engine's loop, so it
        must not block (use ``asyncio.to_thread`` for blocking calls).

    Attributes
    ----------
    shared
        What the group's ``setup()`` returned, set on every job of the group before its
        ``run()`` (None when the class has no ``setup``).

    Notes
    -----
    - ``setup()`` runs before the first ``run()`` of the group; the group's other jobs wait
      for it. If it raises, the job that ran it fails with that error, and the next job of the
      group to start tries ``setup()`` again.
    - ``shutdown()`` runs exactly once per run for a group whose ``setup()`` succeeded (or,
      without ``setup``, whose first job started), when ``orchestrate()`` returns or the
      engine shuts down, even if jobs failed or were cancelled. It is called on the job that
      ran ``setup()``. An exception in it is logged, not raised.
    - Jobs share hooks when :meth:`shared_key` returns equal values. The default, the class,
      means "one resource per class"; return e.g. ``("ssh", self.host)`` for one per host.

    Examples
    --------
    >>> import asyncio
    >>> from jupyter_executor import AbstractJob, Engine
    >>> class Ping(AbstractJob):
    ...     opened = closed = 0
    ...     def __init__(self, n, **options):
    ...         super().__init__(**options)
    ...         self.n = n
    ...     async def setup(self):
    ...         Ping.opened += 1
    ...         return "connection"
    ...     async def run(self):
    ...         await asyncio.sleep(0)
    ...         return f"{self.shared} {self.n}"
    ...     async def shutdown(self):
    ...         Ping.closed += 1
    >>> jobs = [Ping(i) for i in range(3)]
    >>> Engine(*jobs).orchestrate()
    True
    >>> [job.result() for job in jobs], Ping.opened, Ping.closed
    (['connection 0', 'connection 1', 'connection 2'], 1, 1)
    """

    shared: Any = None

    def __init__(self, **options: Unpack[JobOptions]) -> None:
        if type(self).run is AbstractJob.run:
            msg = f"{type(self).__name__} must define `async def run(self)`"
            raise TypeError(msg)
        backend = options.get("backend")
        if backend not in (None, "async"):
            msg = (
                f"backend={backend!r}: an AbstractJob runs on the async backend (its run() "
                "is a coroutine on the engine's loop)"
            )
            raise InvalidOption(msg)
        options["backend"] = "async"
        # The target is a bound coroutine *function*, so retries and rerun() call it afresh.
        super().__init__(self._attempt, **options)
        self.kind = "custom"

    # to override ---------------------------------------------------------------------------
    async def run(self) -> Any:
        """The job's work; its return value is the job's result."""
        raise NotImplementedError

    async def setup(self) -> Any:
        """Open what the group shares; the value returned becomes ``self.shared``."""
        return None

    async def shutdown(self) -> None:
        """Release what :meth:`setup` opened (once per group per engine run)."""

    def shared_key(self) -> Hashable:
        """Jobs with equal keys share one ``setup()``/``shutdown()``; default: the class."""
        # (mypy does not see a class object as Hashable, though it is)
        return cast("Hashable", type(self))

    # naming --------------------------------------------------------------------------------
    def describe(self) -> str:
        return f"{type(self).__qualname__}.run()"

    def default_name(self) -> str:
        return type(self).__name__

    # the attempt ---------------------------------------------------------------------------
    async def _attempt(self) -> Any:
        engine = self.engine
        assert engine is not None, "an AbstractJob runs only inside an engine"
        group = await self._enter_group(cast("Engine", engine))  # the only JobHost
        self.shared = group.shared
        return await self.run()

    async def _enter_group(self, engine: Engine) -> _Group:
        key = self.shared_key()
        with _groups_lock:
            group = _groups.setdefault(engine, {}).setdefault(key, _Group())
            if group.lock is None:
                group.lock = asyncio.Lock()
        if group.ready:
            return group
        async with group.lock:
            if group.ready:
                return group
            has_setup = type(self).setup is not AbstractJob.setup
            if has_setup:
                group.shared = await self.setup()  # raises: this job fails, the next retries
            group.owner = self
            group.ready = True
            # The engine runs it once when this run ends (orchestrate() returns, or shutdown).
            closer = (
                _closer if has_setup or type(self).shutdown is not AbstractJob.shutdown else _forget
            )
            engine.add_cleanup(("jupyter_executor.AbstractJob", key), closer(engine, key))
        return group


def _forget(engine: Engine, key: Hashable) -> Callable[[], Awaitable[None]]:
    async def forget() -> None:
        with _groups_lock:
            _groups.get(engine, {}).pop(key, None)

    return forget


def _closer(engine: Engine, key: Hashable) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        with _groups_lock:
            group = _groups.get(engine, {}).pop(key, None)
        if group is None or group.owner is None:
            return
        try:
            await group.owner.shutdown()
        except Exception:
            logger.exception(
                "jupyter_executor: %s.shutdown() failed", type(group.owner).__qualname__
            )

    return close
