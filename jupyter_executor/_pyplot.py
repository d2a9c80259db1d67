"""pyplot figures made inside a job stay with that job.

pyplot keeps its figures in one process-wide registry (``matplotlib._pylab_helpers.Gcf.figs``),
and the inline backend shows every figure of it after each foreground cell. A figure that a
job is still drawing would be shown (and closed) under whatever cell ends next, and a job's
``plt.plot`` could draw into the figure a foreground cell just made.

While the IPython extension is active, that registry is replaced by :class:`FiguresByJob`, which
gives each job its own figures (the foreground keeps the original registry): ``plt.gcf()``,
``plt.show()`` and the inline backend's flush see only the figures of the context they run
in. When an attempt of a thread or async job ends, the figures it left open are shown in the
job's output, as the inline backend shows a cell's figures when the cell ends.

The registry is replaced as soon as pyplot is imported, also when a job imports it first: an
import hook waits for ``matplotlib._pylab_helpers`` while the extension is active.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._context import attempt_hooks, running_job

if TYPE_CHECKING:
    from .job import Job

__all__ = ["FiguresByJob", "activate", "deactivate"]


class FiguresByJob:
    """Stands in for ``Gcf.figs``: the figure managers of the job running in this context.

    Every operation goes to the ordered dict of the current job (made on first use), or to
    the original registry outside jobs.
    """

    def __init__(self, main: OrderedDict[Any, Any]) -> None:
        self.main = main
        self.by_job: weakref.WeakKeyDictionary[Job, OrderedDict[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def current(self) -> OrderedDict[Any, Any]:
        job = running_job.get()
        if job is None:
            return self.main
        figs = self.by_job.get(job)
        if figs is None:
            with self._lock:  # two threads of one job (rare) must share one dict
                figs = self.by_job.setdefault(job, OrderedDict())
        return figs

    def __getattr__(self, name: str) -> Any:  # get, pop, values, clear, move_to_end...
        return getattr(self.current(), name)

    def __len__(self) -> int:
        return len(self.current())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.current())

    def __reversed__(self) -> Iterator[Any]:
        keys: Iterator[Any] = reversed(self.current())
        return keys

    def __contains__(self, key: object) -> bool:
        return key in self.current()

    def __getitem__(self, key: Any) -> Any:
        return self.current()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.current()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.current()[key]

    def __bool__(self) -> bool:
        return bool(self.current())

    def __repr__(self) -> str:
        return f"<FiguresByJob {self.current()!r}>"


def _gcf() -> Any:
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    return getattr(helpers, "Gcf", None)


def _install() -> FiguresByJob | None:
    """Replace pyplot's registry, once pyplot is imported (idempotent); the stand-in or None."""
    gcf = _gcf()
    if gcf is None:
        return None
    figs = gcf.figs
    if not isinstance(figs, FiguresByJob):
        figs = gcf.figs = FiguresByJob(figs)
    return figs


def _enter(job: Job) -> None:
    _install()


def _leave(job: Job) -> None:
    figs = _install()
    if figs is None or not figs.by_job.get(job):
        return
    import matplotlib

    # Other backends show figures themselves (a GUI window, ipympl's widget), and only in
    # interactive mode does the inline backend show a cell's figures without plt.show().
    if "inline" not in str(matplotlib.get_backend()) or not matplotlib.is_interactive():
        return
    from matplotlib_inline.backend_inline import show

    show()  # type: ignore[no-untyped-call]  # in the job's context: its figures, then closed


_HOOKS = (_enter, _leave)
_MODULE = "matplotlib._pylab_helpers"


class _OnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Replaces the registry right after ``matplotlib._pylab_helpers`` is first imported."""

    def __init__(self) -> None:
        self._inner: importlib.abc.Loader | None = None

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        self._inner = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: Any) -> Any:
        assert self._inner is not None
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        assert self._inner is not None
        self._inner.exec_module(module)
        _install()  # the module is in sys.modules by now


_on_import = _OnImport()


def activate() -> None:
    """Keep pyplot figures with their jobs from now on (idempotent)."""
    if _HOOKS not in attempt_hooks:
        attempt_hooks.append(_HOOKS)
    if _install() is None and _on_import not in sys.meta_path:
        sys.meta_path.insert(0, _on_import)


def deactivate() -> None:
    """Give pyplot back its own registry (figures of jobs that were never shown are dropped)."""
    if _HOOKS in attempt_hooks:
        attempt_hooks.remove(_HOOKS)
    if _on_import in sys.meta_path:
        sys.meta_path.remove(_on_import)
    gcf = _gcf()
    if gcf is not None and isinstance(gcf.figs, FiguresByJob):
        gcf.figs = gcf.figs.main
