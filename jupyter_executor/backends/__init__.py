"""The ways of running a job: one module per backend, all behind :class:`Backend`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._base import Backend, TaskBackend

if TYPE_CHECKING:
    from .._protocols import BackendHost

__all__ = ["Backend", "TaskBackend", "make_backend"]


#: Each backend's module and class, imported on first use: an engine that never runs a dask or
#: a process job never imports distributed or the process pool's machinery.
_CLASSES = {
    "async": ("async_", "AsyncBackend"),
    "thread": ("thread", "ThreadBackend"),
    "process": ("process", "ProcessBackend"),
    "subprocess": ("subprocess", "SubprocessBackend"),
    "local": ("local", "LocalBackend"),
    "dask": ("dask", "DaskBackend"),
}


def make_backend(name: str, engine: BackendHost) -> Backend:
    """Create the backend called ``name`` for ``engine`` (imports it on first use)."""
    if name not in _CLASSES:
        msg = f"unknown backend {name!r}"
        raise ValueError(msg)
    module, cls = _CLASSES[name]
    backend: type[Backend] = getattr(importlib.import_module(f".{module}", __name__), cls)
    return backend(engine)
