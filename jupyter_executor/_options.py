"""The checks of ``Job(...)`` / ``Engine.submit`` options, at the door.

A bad value is refused when the job is made, with one line naming the option and the value
(:class:`~.errors.InvalidOption`, a ValueError; :class:`~.errors.InvalidOptionType`, also a
TypeError), instead of failing later in a thread, a process or the scheduler with a message
that names neither (``expected str, bytes or os.PathLike object, not int``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from ._duration import parse_duration
from .errors import InvalidOption, InvalidOptionType

__all__ = ["BACKENDS", "RESTART_POLICIES", "Checked", "check_options"]

BACKENDS = ("async", "thread", "process", "subprocess", "dask", "local")
RESTART_POLICIES = ("no", "on-failure", "always")


class Checked(NamedTuple):
    """Options as the job keeps them: durations in seconds, paths as flat tuples."""

    timeout: float | None
    retry_delay: float
    restart_delay: float
    inputs: tuple[str | os.PathLike[str], ...]
    outputs: tuple[str | os.PathLike[str], ...]


def check_options(
    *,
    name: Any,
    backend: Any,
    forever: Any,
    retries: Any,
    retry_delay: Any,
    timeout: Any,
    env: Any,
    cwd: Any,
    restart: Any,
    restart_delay: Any,
    max_restarts: Any,
    detach: Any,
    inputs: Any,
    outputs: Any,
    force: Any,
    before: Any,
    after: Any,
    notify: Any = None,
) -> Checked:
    """Check the options of a job; return those it keeps in another form.

    ``every``, ``cron`` and ``start`` are checked by :class:`~._schedule.Schedule`, ``condition``
    and ``requires`` where the job takes them.

    Raises
    ------
    InvalidOption
        A value out of range or not understood.
    InvalidOptionType
        A value of the wrong type.
    """
    if name is not None and (not isinstance(name, str) or not name.strip()):
        kind = InvalidOption if isinstance(name, str) else InvalidOptionType
        msg = f"name={name!r} is not a job name: give a non-empty string"
        raise kind(msg)
    if backend is not None and backend not in BACKENDS:
        msg = f"backend={backend!r} is not a backend: use one of {', '.join(BACKENDS)}"
        raise (InvalidOption if isinstance(backend, str) else InvalidOptionType)(msg)
    for option, flag in (("forever", forever), ("detach", detach), ("force", force)):
        _check_flag(option, flag)
    if notify is not None:  # None: the engine's default (``engine.notify``)
        _check_flag("notify", notify)
    _check_count("retries", retries)
    if max_restarts is not None:
        _check_count("max_restarts", max_restarts, "or None")
    seconds = None if timeout is None else parse_duration(timeout, "timeout")
    retry = parse_duration(retry_delay, "retry_delay", zero=True)
    if restart not in RESTART_POLICIES:
        policies = ", ".join(RESTART_POLICIES)
        msg = f"restart={restart!r} is not a restart policy: use one of {policies}"
        raise (InvalidOption if isinstance(restart, str) else InvalidOptionType)(msg)
    restart_seconds = parse_duration(restart_delay, "restart_delay", zero=True)
    if env is not None:
        _check_env(env)
    if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
        msg = f"cwd={cwd!r} is not a folder: give a path (str or pathlib.Path)"
        raise InvalidOptionType(msg)
    paths_in, paths_out = _paths("inputs", inputs), _paths("outputs", outputs)
    for option, hook in (("before", before), ("after", after)):
        if hook is not None and not callable(hook):
            msg = f"{option}={hook!r} is not callable: give a function taking the job"
            raise InvalidOptionType(msg)
    return Checked(seconds, retry, restart_seconds, paths_in, paths_out)


def _check_flag(option: str, value: Any) -> None:
    # numpy booleans and 0/1 compare equal to False/True; "no" or None would be truthy or
    # falsy by accident.
    if not isinstance(value, (bool, numbers.Integral)) or value not in (True, False):
        msg = f"{option}={value!r} is not True or False"
        raise InvalidOptionType(msg)


def _check_count(option: str, value: Any, extra: str = "") -> None:
    whole = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and int(float(value)) == value
    )
    if not whole or value < 0:
        kind = InvalidOption if isinstance(value, numbers.Real) else InvalidOptionType
        msg = f"{option}={value!r} is not a whole number >= 0{' ' + extra if extra else ''}"
        raise kind(msg)


def _check_env(env: Any) -> None:
    if not isinstance(env, Mapping):
        msg = f"env={env!r} is not a mapping: give a dict of names to text values"
        raise InvalidOptionType(msg)
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            msg = f"env: {key!r} is not an environment variable name"
            raise (InvalidOption if isinstance(key, str) else InvalidOptionType)(msg)
        if not isinstance(value, str):
            msg = (
                f"env[{key!r}]={value!r} is not text: environment values are strings "
                f"(write str({value!r}) to pass it)"
            )
            raise InvalidOptionType(msg)
        if "\0" in value:
            msg = f"env[{key!r}]={value!r} holds a NUL character, which no environment can"
            raise InvalidOption(msg)


def _paths(option: str, value: Any) -> tuple[str | os.PathLike[str], ...]:
    # A flat tuple: a generator given is consumed here, once.
    if isinstance(value, (str, os.PathLike)):
        return (value,)
    if not isinstance(value, Iterable):
        msg = f"{option}={value!r} is not a path or a list of paths"
        raise InvalidOptionType(msg)
    out: list[str | os.PathLike[str]] = []
    for item in value:
        if isinstance(item, (list, tuple)):
            out += _paths(option, item)
        elif isinstance(item, (str, os.PathLike)):
            out.append(item)
        else:
            msg = f"{option}: {item!r} is not a path (give str or pathlib.Path, globs allowed)"
            raise InvalidOptionType(msg)
    return tuple(out)
