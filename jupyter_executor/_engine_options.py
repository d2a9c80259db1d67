"""The options of ``Engine(...)`` itself, checked at the door (those of jobs: :mod:`._options`).

Each refusal is one line naming the option and the value (:class:`~.errors.InvalidOption`, or
:class:`~.errors.InvalidOptionType` for a value of the wrong kind).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._options import check_flag
from ._text import short_repr
from .errors import InvalidOption, InvalidOptionType
from .job import BACKENDS, Job

__all__ = ["HPC_KINDS", "check_engine_flags", "check_engine_options"]

#: dask= values that start a dask-jobqueue cluster.
HPC_KINDS = ("slurm", "pbs", "sge", "lsf")


def check_engine_options(
    jobs: tuple[Any, ...],
    notify: Any,
    dask: Any,
    cluster_options: Mapping[str, Any] | None,
    default_backend: str | None,
) -> None:
    """Raise, with a one-line message naming the option, on a bad ``Engine(...)`` option."""
    check_flag("notify", notify)
    for job in jobs:
        if not isinstance(job, Job):
            msg = f"Engine(*jobs) takes Job objects, not {job!r}"
            raise InvalidOptionType(msg)
    if cluster_options and not (isinstance(dask, str) and dask.lower() in HPC_KINDS):
        kinds = "'slurm', 'pbs', 'sge' or 'lsf'"
        msg = f"cluster_options= needs dask={kinds}, not dask={short_repr(dask)}"
        raise InvalidOption(msg)
    if default_backend is not None and default_backend not in BACKENDS:
        msg = (
            f"default_backend={default_backend!r} is not a backend: "
            f"use one of {', '.join(BACKENDS)}"
        )
        raise (InvalidOption if isinstance(default_backend, str) else InvalidOptionType)(msg)


def check_engine_flags(folder: Any, flags: Mapping[str, Any]) -> None:
    """Refuse a ``folder`` that is no path, and a flag (name: value) that is not True or False
    ("no" would be true, None false, by accident)."""
    if folder is not None and not isinstance(folder, (str, os.PathLike)):
        msg = f"folder={folder!r} is not a folder: give a path (str or pathlib.Path)"
        raise InvalidOptionType(msg)
    for name, value in flags.items():
        check_flag(name, value)
