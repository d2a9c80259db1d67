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

The registry is replaced when pyplot has been imported, at the latest when a job starts.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._runtime import _attempt_hooks, _current_job

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
        job = _current_job.get()
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


def activate() -> None:
    """Keep pyplot figures with their jobs from now on (idempotent)."""
    if _HOOKS not in _attempt_hooks:
        _attempt_hooks.append(_HOOKS)
    _install()


def deactivate() -> None:
    """Give pyplot back its own registry (figures of jobs that were never shown are dropped)."""
    if _HOOKS in _attempt_hooks:
        _attempt_hooks.remove(_HOOKS)
    gcf = _gcf()
    if gcf is not None and isinstance(gcf.figs, FiguresByJob):
        gcf.figs = gcf.figs.main
