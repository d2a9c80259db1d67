"""The dask backend: functions on a ``distributed`` cluster.

``Engine(dask=...)`` takes a ``Client``, a scheduler address, or a dict of ``LocalCluster``
options; with None a ``LocalCluster`` is started on first use and closed at shutdown. A job's
prints on the worker are captured there and added to the job's output when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import TYPE_CHECKING, Any

from ..job import resolve_args
from ._base import TaskBackend

if TYPE_CHECKING:
    from ..engine import Engine
    from ..job import Job

__all__ = ["DaskBackend"]

_HINT = "the dask backend needs dask.distributed: pip install 'jupyter_executor[dask]'"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_HINT) from exc
    return distributed


class DaskBackend(TaskBackend):
    """Submits callables to a dask ``distributed`` client."""

    name = "dask"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._client: Any = None
        self._cluster: Any = None
        self._owned = False
        self._lock = asyncio.Lock()

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                loop = asyncio.get_running_loop()
                # Creating a client or cluster blocks: do it off the engine's loop.
                self._client = await loop.run_in_executor(None, self._connect)
            return self._client

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
        client = await self.client()
        args, kwargs = resolve_args(job)
        loop = asyncio.get_running_loop()
        key = f"{job.name}-{job.attempts}-{id(job):x}"
        future = await loop.run_in_executor(
            None,
            functools.partial(
                client.submit, _call_capturing, job.target, args, kwargs, key=key, pure=False
            ),
        )
        done: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def wake(_f: Any) -> None:
            loop.call_soon_threadsafe(settle)

        future.add_done_callback(wake)
        try:
            await done
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, future.cancel)
            raise
        if future.status == "error":
            exc = await loop.run_in_executor(None, future.exception)
            raise exc
        if future.status == "cancelled":
            raise asyncio.CancelledError
        result, output = await loop.run_in_executor(None, future.result)
        if output:
            job.output.write(output)
        return result

    async def aclose(self) -> None:
        if not self._owned:
            return
        loop = asyncio.get_running_loop()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, client.close)
        if cluster is not None:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, cluster.close)


def _call_capturing(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, str]:
    """Run on a dask worker: call ``fn`` with its prints routed into a buffer of its own."""
    from jupyter_executor import _capture
    from jupyter_executor._capture import Output
    from jupyter_executor._runtime import _current_job

    class _Sink:
        def __init__(self) -> None:
            self.output = Output()
            self._cancel_requested = False

    sink = _Sink()
    _capture.install()
    token = _current_job.set(sink)  # type: ignore[arg-type]
    try:
        result = fn(*args, **kwargs)
    finally:
        _current_job.reset(token)
    return result, sink.output.tail(10_000)
