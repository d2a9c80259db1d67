"""Python that outlives the kernel: ``%%job NAME --detach`` and ``submit(fn, detach=True)``.

The cell (or the function and its arguments) is shipped as the process backend ships it: the
variables the cell reads are pickled with cloudpickle (functions defined in the notebook by
value) into ``logs/NAME.input.pkl``, and a *detached command* runs it::

    python -m jupyter_executor._detached logs/NAME.input.pkl logs/NAME.result.pkl

So it is a detached job like any other: it runs under the supervisor in its own session, writes
its log and exit status, and the next kernel's engine on the folder re-attaches it. When the
code ends, the result and the variables the cell assigned are written to ``NAME.result.pkl``
(each value pickled on its own, so that one that cannot be pickled loses only itself), then the
process exits 0 (1 with the traceback in the log when the code raised). Both files are
user-only (0o600): they hold the notebook's data.

``engine[NAME].outputs`` and ``%jobs fetch NAME`` read the result file, in any later kernel.
Caveats: the inputs are read when the job is submitted; the values come back as copies; a value
whose class the reading kernel cannot import (a module it lacks) cannot be loaded there.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._outputs import (
    OutputsError,
    input_file,
    load_outputs,
    read_file,
    read_outputs,
    result_file,
)
from .job import Job

if TYPE_CHECKING:
    from ._cell import CellCode


class DetachHost(Protocol):
    """What a detached submission uses of its engine.

    A protocol, not engine.py's ``Engine``: job.py imports this module, and the engine
    imports job.py, so importing the facade here (even for typing) would close a circle.
    """

    def log_path(self, name: str) -> Path:
        """The log file of the job called ``name``."""

    def submit(self, job: Job, *, replace: bool = ...) -> Any:
        """Submit ``job``."""

    def __contains__(self, name: object) -> bool:
        """Whether a job is called ``name``."""

    def __getitem__(self, name: str) -> Job:
        """The job called ``name``."""


# The reading side lives in _outputs (below job.py); its names are re-exported here, where
# %jobs fetch and older callers look for them.
__all__ = [
    "DetachedPython", "OutputsError", "load_outputs", "main", "read_file", "read_outputs",
    "result_file", "submit_call", "submit_cell",
]  # fmt: skip

_FORMAT = 1  # of the result file


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically into a user-only file."""
    from ._files import private_dir, private_opener

    private_dir(path.parent)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb", opener=private_opener) as f:
        f.write(data)
    os.chmod(tmp, 0o600)  # an existing tmp file keeps its mode: make sure
    os.replace(tmp, path)


def _command(payload: Path, result: Path) -> list[str]:
    return [sys.executable, "-m", "jupyter_executor._detached", str(payload), str(result)]


def _ship(
    engine: DetachHost, name: str, payload: dict[str, Any], *, replace: bool = False
) -> list[str]:
    from ._intake import check_replaceable
    from ._pickling import dumps

    # Refused here as submit() would refuse it, before the files are touched: they are the
    # ones of the job that has the name, whose process may not have read its input yet.
    if name in engine:
        check_replaceable(name, engine[name], replace)
    log = engine.log_path(name)
    with contextlib.suppress(FileNotFoundError):
        result_file(log).unlink()  # an earlier run's outputs must not pass for this one's
    # The kernel's sys.path goes along, so that a function of a module the kernel imported
    # (pickled by reference) is found in the detached process too.
    box = {"format": _FORMAT, "sys_path": list(sys.path), "payload": dumps(payload)}
    _write_private(input_file(log), pickle.dumps(box))
    return _command(input_file(log), result_file(log))


def submit_cell(
    engine: DetachHost,
    cell: CellCode,
    namespace: Mapping[str, Any],
    hidden: Mapping[str, Any] | None,
    *,
    name: str,
    **options: Any,
) -> Job:
    """Submit a ``%%job NAME --detach`` cell; return its (detached command) job.

    Raises
    ------
    ShipError
        A variable the cell reads cannot be pickled (the message names it).
    """
    from ._cell import pack_namespace, shipped_names

    values = pack_namespace(shipped_names(cell, namespace, hidden))
    payload = {
        "kind": "cell",
        "source": cell.source,
        "filename": cell.filename,
        "flags": cell.flags,
        "assigns": tuple(cell.assigns),
        "values": values,
    }
    replace = bool(options.pop("replace", False))
    command = _ship(engine, name, payload, replace=replace)
    job = DetachedPython(command, name=name, detach=True, **options)
    job.source_text = cell.raw
    job.shown = cell.description or "(cell)"
    engine.submit(job, replace=replace)
    return job


def submit_call(
    engine: DetachHost,
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    replace: bool = False,
    **options: Any,
) -> Job:
    """``engine.submit(fn, *args, detach=True, ...)``: run ``fn`` in a detached process.

    Raises
    ------
    InvalidOption
        No ``name=``, or an option a detached function does not take.
    ShipError
        ``fn`` or an argument cannot be pickled.
    """
    from ._cell import ShipError
    from ._pickling import dumps
    from .errors import InvalidOption

    name = options.pop("name", None) or options.pop("label", None)
    if not isinstance(name, str) or not name:
        msg = "submit(fn, detach=True) needs name=: the next kernel finds the job by its name"
        raise InvalidOption(msg)
    taken = {k for k, v in options.items() if v not in (None, (), False, 0, "no")}
    extra = taken - {"requires", "timeout", "env", "cwd"}
    if extra:
        msg = (
            "detach=True for a function takes name, requires, timeout, env and cwd, "
            f"not {sorted(extra)}"
        )
        raise InvalidOption(msg)
    try:
        dumps((fn, args, kwargs))
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        msg = f"cannot ship {fn!r} and its arguments to a detached process ({why})"
        raise ShipError(msg) from None
    payload = {"kind": "call", "fn": fn, "args": args, "kwargs": kwargs}
    command = _ship(engine, name, payload, replace=replace)
    given = {k: options[k] for k in ("requires", "timeout", "env", "cwd") if options.get(k)}
    job = DetachedPython(command, name=name, detach=True, **given)
    job.shown = f"{getattr(fn, '__qualname__', repr(fn))}(...)"
    engine.submit(job, replace=replace)
    return job


class DetachedPython(Job):
    """A detached command that runs Python shipped from the kernel (see the module's doc)."""

    __slots__ = ("shown", "source_text")

    def __init__(self, command: list[str], **options: Any) -> None:
        super().__init__(command, **options)
        self.shown: str | None = None
        self.source_text: str | None = None

    def describe(self) -> str:
        """The cell's first line, or the function's name."""
        return self.shown or super().describe()

    @property
    def source(self) -> str | None:
        """The cell as written (what the history records)."""
        return self.source_text


# -- the detached process ------------------------------------------------------------------------


def _run(payload: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    if payload["kind"] == "call":
        import asyncio
        import inspect

        value = payload["fn"](*payload["args"], **payload["kwargs"])
        if inspect.iscoroutine(value):
            value = asyncio.run(value)
        return value, {}
    import inspect
    import linecache

    import cloudpickle

    from ._cell import CellCode, run_cell
    from ._cell_task import compile_cell as _compile

    source, filename, flags = payload["source"], payload["filename"], payload["flags"]
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace.update(cloudpickle.loads(payload["values"]))
    body, result_code = _compile(source, filename, flags)
    cell = CellCode(
        raw=source,
        source=source,
        filename=filename,
        reads=(),
        assigns=payload["assigns"],
        is_async=bool(body.co_flags & inspect.CO_COROUTINE)
        or bool(result_code is not None and result_code.co_flags & inspect.CO_COROUTINE),
        has_result=result_code is not None,
        description="",
        flags=flags,
    )
    value = run_cell(cell, namespace)
    return value, {n: namespace[n] for n in payload["assigns"] if n in namespace}


def main(argv: list[str] | None = None) -> int:
    """Run a shipped cell or function; write its outputs; return the exit code."""
    from ._pickling import dumps

    payload_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    import cloudpickle

    with open(payload_path, "rb") as f:
        shipped = pickle.load(f)
    sys.path.extend(p for p in shipped["sys_path"] if p not in sys.path)
    payload = cloudpickle.loads(shipped["payload"])
    try:
        value, assigned = _run(payload)
    except BaseException:
        traceback.print_exc()
        return 1
    box: dict[str, Any] = {"format": _FORMAT, "values": {}, "unpicklable": {}}
    for name, item in assigned.items():
        try:
            box["values"][name] = dumps(item)
        except Exception as exc:  # this one is lost, not the others
            box["unpicklable"][name] = f"it could not be pickled ({type(exc).__name__}: {exc})"
    try:
        box["result"] = dumps(value)
    except Exception as exc:
        box["unpicklable"]["result"] = f"it could not be pickled ({type(exc).__name__}: {exc})"
    for name, why in box["unpicklable"].items():
        print(f"jupyter_executor: {name!r} is not kept: {why}", file=sys.stderr)
    _write_private(Path(result_path), pickle.dumps(box))
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.exit(main())
