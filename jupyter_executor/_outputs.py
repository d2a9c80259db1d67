"""Reading what a detached Python job left: its result and the variables its cell assigned.

Used by ``Job.outputs`` and ``%jobs fetch``. A module of its own, below the job model: it reads a
job only through its public ``done()``, ``status``, ``name`` and ``log_path`` (typed ``Any``),
so job.py imports it without an import circle (job -> _detached -> job; issue 10). The writing
side is :mod:`._detached`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ._text import error_text
from .errors import JobNotFinished, JupyterExecutorError

__all__ = ["OutputsError", "input_file", "load_outputs", "read_file", "read_outputs", "result_file"]


class OutputsError(JupyterExecutorError):
    """The outputs of a detached Python job are not there, or cannot be loaded here."""


def input_file(log_path: Path) -> Path:
    """Where the shipped inputs of a detached Python job are kept."""
    return log_path.with_name(log_path.stem + ".input.pkl")


def result_file(log_path: Path) -> Path:
    """Where a detached Python job writes its result and assigned variables."""
    return log_path.with_name(log_path.stem + ".result.pkl")


def load_outputs(job: Any) -> dict[str, Any]:
    """The variables (and ``result``) a detached Python job left, loaded here.

    Raises
    ------
    JobNotFinished
        It is still pending or running.
    OutputsError
        It wrote no outputs (not a detached Python job, or it failed), or a value cannot be
        unpickled in this process (the message names it and says why).
    """
    values, errors = read_outputs(job)
    if errors:
        name, reason = next(iter(errors.items()))
        msg = f"{name!r} of job {job.name!r} cannot be loaded here: {reason}"
        raise OutputsError(msg)
    return values


def read_outputs(job: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """``(values, errors)``: what could be loaded, and why the others could not."""
    if not job.done():
        msg = f"job {job.name!r} is {job.status.value}: its outputs come when it is done"
        raise JobNotFinished(msg)
    log = job.log_path
    path = result_file(log) if log is not None else None
    if path is None or not path.exists():
        why = "it failed" if job.status.value != "done" else "it is not a detached Python job"
        msg = f"job {job.name!r} left no outputs ({why}); see its log: %jobs log {job.name}"
        raise OutputsError(msg)
    return read_file(path, str(job.name))


def read_file(path: Path, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """:func:`read_outputs` of the result file ``path`` of job ``name``."""
    try:
        with open(path, "rb") as f:
            box = pickle.load(f)
    except Exception as exc:
        msg = f"the outputs of job {name!r} in {path} cannot be read: {exc}"
        raise OutputsError(msg) from exc
    import cloudpickle

    values: dict[str, Any] = {}
    errors: dict[str, str] = dict(box.get("unpicklable", {}))
    for key, data in box.get("values", {}).items():
        try:
            values[key] = cloudpickle.loads(data)
        except Exception as exc:
            errors[key] = error_text(exc)
    if "result" in box:
        try:
            values.setdefault("result", cloudpickle.loads(box["result"]))
        except Exception as exc:
            errors.setdefault("result", error_text(exc))
    return values, errors
