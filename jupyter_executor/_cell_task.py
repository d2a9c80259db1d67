"""What a ``%%job`` cell runs in its worker (a process or dask job): the cell, on shipped variables.

Self-contained on purpose: nothing here imports jupyter_executor at import time, only the
standard library (and cloudpickle when called), so that the dask backend can ship
:func:`run_shipped` by value to workers that do not have jupyter_executor installed (an HPC
cluster's or a gateway's workers often run from another environment). The process backend
imports it by reference, as usual. :mod:`._cell` prepares the cell in the kernel and reads the
answer back.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import linecache
from collections.abc import Mapping
from typing import Any

__all__ = ["ShipError", "compile_cell", "run_shipped"]

_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


class ShipError(ValueError):
    """A variable could not be sent to (or back from) a process or dask job."""


def compile_cell(source: str, filename: str, flags: int) -> tuple[Any, Any]:
    """``(body_code, result_code_or_None)``: the cell, its last expression split off."""
    tree = ast.parse(source, filename)
    last = tree.body[-1] if tree.body else None
    result_code = None
    if isinstance(last, ast.Expr):
        tree.body.pop()
        expr = ast.Expression(last.value)
        result_code = compile(expr, filename, "eval", flags | _TOP_LEVEL_AWAIT, dont_inherit=True)
    body_code = compile(tree, filename, "exec", flags | _TOP_LEVEL_AWAIT, dont_inherit=True)
    return body_code, result_code


async def _arun(body: Any, result: Any, namespace: dict[str, Any]) -> Any:
    value = eval(body, namespace)  # the whole point: run the user's cell
    if inspect.iscoroutine(value):
        await value
    if result is None:
        return None
    value = eval(result, namespace)
    if inspect.iscoroutine(value):
        value = await value
    return value


def _dumps(obj: Any) -> bytes:
    try:
        # Keeps the file names of functions defined in the cell (tracebacks in the kernel);
        # a worker without jupyter_executor pickles them with plain cloudpickle.
        from jupyter_executor._pickling import dumps
    except ImportError:
        import cloudpickle

        return bytes(cloudpickle.dumps(obj))
    return dumps(obj)


def _culprit(values: Mapping[str, Any]) -> tuple[str, BaseException] | None:
    for name, value in values.items():
        try:
            _dumps(value)
        except Exception as exc:
            return name, exc
    return None


def _worker_shell() -> Any:
    # `!cmd` and `%magic` in a process job: a plain (non-kernel) IPython shell in the worker
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def run_shipped(
    source: str,
    filename: str,
    payload: bytes | Mapping[str, Any],
    assigns: tuple[str, ...],
    flags: int = 0,
) -> bytes:
    """Run a cell in a worker on a shipped copy of its variables (a process or dask job).

    Parameters
    ----------
    source : str
        The transformed cell.
    filename : str
        Its name in tracebacks; the source is put in the worker's ``linecache``.
    payload : bytes or dict
        ``pack_namespace`` of the variables it reads (or the variables themselves, once the
        job's argument was unpickled in the worker).
    assigns : tuple of str
        The names to send back.
    flags : int
        Compiler flags.

    Returns
    -------
    bytes
        Pickled ``(result, {name: value}, deleted_names)``, read by ``unpack_outcome``.
    """
    import cloudpickle

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace.update(cloudpickle.loads(payload) if isinstance(payload, bytes) else payload)
    if "get_ipython" in source and "get_ipython" not in namespace:
        namespace["get_ipython"] = _worker_shell
    body, result_code = compile_cell(source, filename, flags)
    is_async = bool(body.co_flags & inspect.CO_COROUTINE) or bool(
        result_code is not None and result_code.co_flags & inspect.CO_COROUTINE
    )
    if is_async:
        value = asyncio.run(_arun(body, result_code, namespace))
    else:
        exec(body, namespace)  # the whole point: run the user's cell
        value = None if result_code is None else eval(result_code, namespace)
    back = {name: namespace[name] for name in assigns if name in namespace}
    deleted = tuple(name for name in assigns if name not in namespace)
    try:
        return _dumps((value, back, deleted))
    except Exception as exc:
        found = _culprit(back)
        if found is None:
            msg = f"the cell's result cannot be pickled ({type(exc).__name__}: {exc})"
        else:
            name, err = found
            msg = f"variable {name!r} cannot be sent back ({type(err).__name__}: {err})"
        # `from None`: the worker's pickling traceback says nothing the message does not
        raise ShipError(msg) from None
