"""Exceptions raised by jupyter_executor.

::

    JupyterExecutorError
    ├── InvalidTransition        a job status change that the life cycle does not allow
    ├── SubmitError              a job was refused at submit time (nothing was started)
    │   ├── DuplicateJobName
    │   ├── UnknownDependency
    │   ├── DependencyCycle
    │   └── InvalidOption        a bad option value of Job(...) / submit(...) (a ValueError)
    │       └── InvalidOptionType    ... of the wrong type (also a TypeError)
    ├── JobNotFinished           result()/exception() asked of a job still pending or running
    ├── JobCancelled             result() of a cancelled job (its ``reason`` says why)
    │   └── JobTimeout           the job was stopped because it ran longer than ``timeout=``
    ├── CommandFailed            a subprocess job exited non-zero or was killed by a signal
    ├── MissingOutputs           a make-like job succeeded without producing its declared outputs
    ├── StoreError               the history database cannot be used (folder, newer version)
    ├── UnsupportedPlatform      not a POSIX system (Windows): nothing can be run here yet
    └── WorkerCrashed            a process-backend worker died while running the job

Errors raised inside a job are stored on the job (``job.exception()``) and re-raised by
``job.result()``; they never propagate into the code that submitted the job.
"""

from __future__ import annotations

__all__ = [
    "CommandFailed",
    "DependencyCycle",
    "DuplicateJobName",
    "InvalidOption",
    "InvalidOptionType",
    "InvalidTransition",
    "JobCancelled",
    "JobNotFinished",
    "JobTimeout",
    "JupyterExecutorError",
    "MissingOutputs",
    "NotebookError",
    "StoreError",
    "SubmitError",
    "UnknownDependency",
    "UnsupportedPlatform",
    "WorkerCrashed",
]


#: What every call that would start work on a shut down engine raises (a SubmitError) with.
ENGINE_SHUT_DOWN = "this engine is shut down; create a new one (or call get_engine() again)"


class JupyterExecutorError(Exception):
    """Base class of every error raised by jupyter_executor."""


class InvalidTransition(JupyterExecutorError):
    """A status change that the job life cycle does not allow."""


class SubmitError(JupyterExecutorError, ValueError):
    """A job was refused at submit time; nothing of the submission was started."""


class DuplicateJobName(SubmitError):
    """A job with this name is already in the engine."""


class UnknownDependency(SubmitError):
    """A job requires a name that the engine does not know."""


class DependencyCycle(SubmitError):
    """The requirements of the submitted jobs form a cycle."""


class InvalidOption(SubmitError):
    """An option of ``Job(...)`` or ``Engine.submit`` has a bad value; the message names both.

    A :class:`ValueError` too (through :class:`SubmitError`), so ``except ValueError`` written
    for earlier versions still catches it.
    """


class InvalidOptionType(InvalidOption, TypeError):
    """An option of ``Job(...)`` or ``Engine.submit`` has a value of the wrong type."""


class JobNotFinished(JupyterExecutorError):
    """The job has no result yet."""


class JobCancelled(JupyterExecutorError):
    """The job was cancelled; ``reason`` says by whom or why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"job {name!r} was cancelled: {reason}")
        self.name = name
        self.reason = reason


class JobTimeout(JobCancelled, TimeoutError):
    """The job was stopped because an attempt ran longer than its ``timeout``."""


class CommandFailed(JupyterExecutorError):
    """A subprocess job exited with a non-zero code or was killed by a signal."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


class WorkerCrashed(JupyterExecutorError):
    """The worker process running a process-backend job died."""


class MissingOutputs(JupyterExecutorError):
    """A job succeeded but did not produce the outputs it declared."""


class NotebookError(JupyterExecutorError, ValueError):
    """A notebook cannot be run as a flow: it cannot be read, or its kernel is not installed."""


class StoreError(JupyterExecutorError):
    """The history database cannot be used (an unwritable folder, a newer schema)."""


class UnsupportedPlatform(JupyterExecutorError, RuntimeError):
    """This operating system is not supported (jupyter_executor needs POSIX: Linux, macOS)."""
