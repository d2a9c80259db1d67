"""Web apps as jobs: a command or callable serving on a port, whose row shows the URL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._scheduler import Scheduler
from .job import Job

logger = logging.getLogger("jupyter_executor")


class WebApps(Scheduler):
    """Web apps as jobs (:meth:`submit_webapp`)."""

    if TYPE_CHECKING:

        def submit(self, target: Any, /, *args: Any, **options: Any) -> Any: ...

    def submit_webapp(
        self,
        target: Callable[..., Any] | str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        ready_timeout: float = 30.0,
        **options: Any,
    ) -> Job:
        """Start a web app as a job; its row shows the URL once the port answers.

        Parameters
        ----------
        target
            A command template (``"python -m http.server {port} --bind {host}"``; ``{ip}`` is
            accepted for ``{host}``, as in executor-engine), run as a subprocess job, or a
            callable ``target(host, port)`` that serves (a thread job).
        port
            The port; a free one is picked when None.
        ready_timeout
            Seconds to wait for the port to answer before logging that it did not.
        **options
            Job options (``name=``, ``requires=``, ``restart=``...).
        """
        if port is None:
            port = _free_port(host)
        job: Job
        if isinstance(target, str):
            try:
                command = target.format(port=port, host=host, ip=host)
            except (KeyError, IndexError, ValueError) as exc:
                msg = (
                    f"submit_webapp(): bad command template {target!r} ({exc!r}); "
                    "it may use {port}, {host} and {ip}"
                )
                raise ValueError(msg) from exc
            job = self.submit(command, **options)
        elif callable(target):
            job = self.submit(target, host, port, **options)
        else:
            msg = f"submit_webapp() takes a command template or a callable, not {target!r}"
            raise TypeError(msg)
        if job.runstate.life is None:
            from ._lifecycle import Lifecycle

            job.runstate.life = Lifecycle()
        self._call_soon(self._watch_port, job, host, port, ready_timeout)
        return job

    def _watch_port(self, job: Job, host: str, port: int, ready_timeout: float) -> None:
        async def watch() -> None:
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline and not job.done():
                try:
                    _, writer = await asyncio.open_connection(host, port)
                except OSError:
                    await asyncio.sleep(0.1)
                    continue
                writer.close()
                assert job.runstate.life is not None
                job.runstate.life.url = f"http://{host}:{port}/"
                self._record("listening", job, job.runstate.life.url)
                self._emit("progress", job)
                return
            if not job.done():
                self._record("no answer", job, f"port {port} did not answer in {ready_timeout} s")

        assert self._loop is not None
        self._loop.create_task(watch())


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
