"""The ways of running a job: one module per backend, all behind :class:`Backend`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import Backend, TaskBackend

if TYPE_CHECKING:
    from .._protocols import BackendHost

__all__ = ["Backend", "TaskBackend", "make_backend"]


def make_backend(name: str, engine: BackendHost) -> Backend:
    """Create the backend called ``name`` for ``engine`` (imports it on first use)."""
    if name == "async":
        from .async_ import AsyncBackend

        return AsyncBackend(engine)
    if name == "thread":
        from .thread import ThreadBackend

        return ThreadBackend(engine)
    if name == "process":
        from .process import ProcessBackend

        return ProcessBackend(engine)
    if name == "subprocess":
        from .subprocess import SubprocessBackend

        return SubprocessBackend(engine)
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(engine)
    if name == "dask":
        from .dask import DaskBackend

        return DaskBackend(engine)
    msg = f"unknown backend {name!r}"
    raise ValueError(msg)
