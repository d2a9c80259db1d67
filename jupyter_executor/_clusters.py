"""The dask cluster behind the dask backend: ``engine.cluster``, ``scale`` and ``adapt``."""

from __future__ import annotations

import asyncio
from typing import Any

from ._scheduler import Scheduler
from .errors import SubmitError


class Clusters(Scheduler):
    """The dask backend's cluster, started on first use, scaled or made adaptive."""

    @property
    def cluster(self) -> Any:
        """The dask cluster of the dask backend (started on first use; None for a client)."""
        backend = self._backend("dask")
        loop = self._ensure_loop()
        asyncio.run_coroutine_threadsafe(backend.client(), loop).result()  # type: ignore[attr-defined]
        return backend._cluster  # type: ignore[attr-defined]

    def scale(self, n: int | None = None, **options: Any) -> Any:
        """Scale the dask cluster (an HPC cluster: ``jobs=``, ``cores=``, ``memory=`` too)."""
        from ._hpc import scale

        return scale(self._require_cluster(), n, **options)

    def adapt(self, minimum: int = 0, maximum: int = 1, **options: Any) -> Any:
        """Let the dask cluster grow and shrink with the load, between the bounds."""
        from ._hpc import adapt

        return adapt(self._require_cluster(), minimum=minimum, maximum=maximum, **options)

    def _require_cluster(self) -> Any:
        cluster = self.cluster
        if cluster is None:
            msg = "the dask backend uses a client given to the engine; scale its cluster there"
            raise SubmitError(msg)
        return cluster
