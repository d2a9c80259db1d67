"""jupyter_executor: turn a Jupyter kernel into a background job engine.

In a notebook: ``%load_ext jupyter_executor``, then ``%%job NAME`` on top of a cell. From Python::

    from jupyter_executor import get_engine
    engine = get_engine()
    job = engine.submit(train, data, name="train", backend="process")
    engine.wait()
"""

from __future__ import annotations

from typing import Any

from . import engine as _engine_module
from ._abstract import AbstractJob
from ._conditions import (
    AfterAll,
    AfterAny,
    AfterJob,
    AfterTime,
    AllOf,
    AnyOf,
    Condition,
    FunctionCondition,
)
from ._flow import Flow, UnknownFlow, flow
from ._launcher import Command, Launcher, command, launcher
from ._runtime import cancelled, current_job, progress
from ._status import Status
from ._version import __version__
from .engine import Engine, EngineEvent, get_engine
from .errors import (
    CommandFailed,
    DependencyCycle,
    DuplicateJobName,
    InvalidOption,
    InvalidOptionType,
    InvalidTransition,
    JobCancelled,
    JobNotFinished,
    JobTimeout,
    JupyterExecutorError,
    MissingOutputs,
    NotebookError,
    StoreError,
    SubmitError,
    UnknownDependency,
    UnsupportedPlatform,
    WorkerCrashed,
)
from .job import Job, JobInfo

__all__ = [
    "AbstractJob",
    "AfterAll",
    "AfterAny",
    "AfterJob",
    "AfterTime",
    "AllOf",
    "AnyOf",
    "Command",
    "CommandFailed",
    "Condition",
    "DependencyCycle",
    "DuplicateJobName",
    "Engine",
    "EngineEvent",
    "Flow",
    "FunctionCondition",
    "InvalidOption",
    "InvalidOptionType",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobInfo",
    "JobNotFinished",
    "JobTimeout",
    "JupyterExecutorError",
    "Launcher",
    "MissingOutputs",
    "NotebookError",
    "Status",
    "StoreError",
    "SubmitError",
    "UnknownDependency",
    "UnknownFlow",
    "UnsupportedPlatform",
    "WorkerCrashed",
    "__version__",
    "cancelled",
    "command",
    "current_job",
    "flow",
    "get_engine",
    "launcher",
    "load_ipython_extension",
    "progress",
    "unload_ipython_extension",
]


def _dashboard(engine: Engine) -> Any:
    """``engine.widget()``: the dashboard, imported only when asked for (it needs anywidget)."""
    from .widget import Dashboard

    return Dashboard(engine)


_engine_module._view_makers.setdefault("dashboard", _dashboard)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_executor``: register ``%%job``, ``%job`` and ``%jobs``."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_executor``: shut the engine down and remove the routing."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)
