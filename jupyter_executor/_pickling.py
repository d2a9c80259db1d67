"""cloudpickle that keeps the file names of the code it pickles by value.

cloudpickle 3.1.3 writes ``co_filename = "<dynamic-code>"`` into every code object it pickles by
value (to make payloads deterministic), so that a traceback from a worker process showed neither
the file nor the source line of a notebook's function. :func:`dumps` pickles the real file name
instead (as cloudpickle did up to 3.1.2), and :func:`dumps_with_sources` also returns the source
lines that only this process knows: IPython compiles each cell under a file name that does not
exist and keeps its lines in ``linecache``. A worker that puts them in its own ``linecache``
formats a traceback with the notebook's lines, as the kernel would.
"""

from __future__ import annotations

import io
import linecache
import os
import types
from collections import ChainMap
from contextvars import ContextVar
from typing import Any

import cloudpickle

__all__ = ["dumps", "dumps_with_sources", "install_sources"]

# cloudpickle's own reducer of code objects (a class attribute from 2.2 to 3.1 at least).
_code_reduce = cloudpickle.Pickler.dispatch_table[types.CodeType]
_DYNAMIC_CODE = "<dynamic-code>"
_PACKAGE = __name__.rpartition(".")[0] + "."  # "jupyter_executor."
# The file names met while dumps_with_sources() runs, also by pickling nested in it (a cell
# job's variables are pickled by a __reduce__ inside the job's own pickling).
_met: ContextVar[set[str] | None] = ContextVar("jupyter_executor_pickled_files", default=None)


def _reduce_code(code: types.CodeType) -> Any:
    make, args = _code_reduce(code)
    filename = code.co_filename
    met = _met.get()
    if met is not None:
        met.add(filename)
    if filename != _DYNAMIC_CODE:
        for i, arg in enumerate(args):
            if isinstance(arg, str) and arg == _DYNAMIC_CODE:
                return make, (*args[:i], filename, *args[i + 1 :])
    return make, args


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    # Read by the C pickler when an instance is made; the rest is cloudpickle's.
    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)

    def reducer_override(self, obj: Any) -> Any:
        # The package's own functions go by reference: our worker processes import the
        # package. The dask backend registers two of its modules to travel by value (a dask
        # worker may not have the package), for the whole process: by value here, a cell's
        # run_shipped copied its module's globals and failed on a lock.
        if type(obj) is types.FunctionType and str(obj.__module__).startswith(_PACKAGE):
            return NotImplemented  # pickle's own: by reference
        return super().reducer_override(obj)


def dumps(obj: Any) -> bytes:
    """``cloudpickle.dumps(obj)``, keeping the real file name of code pickled by value."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
    return buffer.getvalue()


def dumps_with_sources(obj: Any) -> tuple[bytes, dict[str, list[str]]]:
    """:func:`dumps`, and the source lines of that code which exist only in ``linecache``.

    Returns
    -------
    bytes, dict
        The pickle, and ``{file name: lines}`` for the file names met that do not exist on disk
        but whose lines ``linecache`` holds (notebook cells); see :func:`install_sources`.
    """
    met: set[str] = set()
    token = _met.set(met)
    try:
        data = dumps(obj)
    finally:
        _met.reset(token)
    sources: dict[str, list[str]] = {}
    for filename in met:
        entry = linecache.cache.get(filename)
        if entry is not None and len(entry) == 4 and not os.path.exists(filename):
            sources[filename] = list(entry[2])
    return data, sources


def install_sources(sources: dict[str, list[str]]) -> None:
    """Put source lines from :func:`dumps_with_sources` into this process's ``linecache``."""
    for filename, lines in sources.items():
        # mtime None: linecache.checkcache never drops them (IPython does the same).
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
