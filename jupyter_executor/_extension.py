"""Loading and unloading the extension in a shell, and what must happen when the kernel exits.

:func:`activate` (``%load_ext jupyter_executor``) sets up, once per shell:

- **display routing**: ``display(obj)`` inside a job is captured by wrapping the shell's
  ``display_pub.publish``: when the calling context belongs to a job, the mimebundle goes to that
  job's :class:`~jupyter_executor._capture.Output` instead of the cell that happens to be running
  (``print`` is routed by the engine's stream proxy; docs/kernel-notes.md §1);
- the stream proxy, pyplot's per-job figures, and tracebacks formatted as the shell formats a
  failed cell's;
- what a blocking wait shows (``engine.set_wait_display``): a live view under the cell in a
  kernel, the jobs' lines in a terminal;
- in a kernel, the **exit hook**: a graceful shutdown runs no ``atexit`` handler, but the kernel
  sets ``shell.exit_now`` when it handles the request (docs/kernel-notes.md §7); unfinished jobs
  are then recorded as cancelled;
- in terminal IPython, the :class:`~._terminal.TerminalEcho` and the prompt's ``patch_stdout``
  wrapped so that jobs printing while the prompt waits stay captured.

:func:`deactivate` undoes all of it and shuts the engine down.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import _capture, _display, _pyplot, _traceback
from ._capture import current_output
from ._terminal import TerminalEcho, routed_patch_stdout, temporary_echo

__all__ = [
    "activate",
    "deactivate",
    "install_display_routing",
    "traceback_formatter",
    "traceback_renamer",
    "uninstall_display_routing",
]


# -- display routing -----------------------------------------------------------------------------


def _route_publish(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        out = current_output()
        if out is None:
            return original(data, metadata, *args, **kwargs)
        _display.job_displayed(out, data, metadata)
        return None

    publish._jupyter_executor_original = original  # type: ignore[attr-defined]
    return publish


def _route_clear(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def clear_output(*args: Any, **kwargs: Any) -> Any:
        # clear_output() in a job would clear the foreground cell: a job's view is append-only
        if current_output() is None:
            return original(*args, **kwargs)
        return None

    clear_output._jupyter_executor_original = original  # type: ignore[attr-defined]
    return clear_output


def install_display_routing(shell: Any) -> None:
    """Route ``display()`` calls made inside jobs to the job (idempotent)."""
    pub = shell.display_pub
    for attr, wrap in (("publish", _route_publish), ("clear_output", _route_clear)):
        current = getattr(pub, attr)
        if not hasattr(current, "_jupyter_executor_original"):
            setattr(pub, attr, wrap(current))


def uninstall_display_routing(shell: Any) -> None:
    """Undo :func:`install_display_routing` (idempotent)."""
    pub = shell.display_pub
    for attr in ("publish", "clear_output"):
        if hasattr(getattr(pub, attr), "_jupyter_executor_original"):
            with contextlib.suppress(AttributeError):
                delattr(pub, attr)  # the instance attribute; the class method shows again


# -- tracebacks ----------------------------------------------------------------------------------


def traceback_formatter(shell: Any) -> Callable[[BaseException, Any], str]:
    """Format a job's exception as the shell formats a failed cell's: ``Cell In[3], line 4``
    with the cell's lines around it, in the shell's mode and colours (IPython's ``ultratb``; a
    new formatter per call: jobs fail in other threads than the shell's)."""

    def format_exception(exc: BaseException, tb: Any) -> str:
        from IPython.core.ultratb import AutoFormattedTB

        shown = shell.InteractiveTB
        formatter = AutoFormattedTB(  # type: ignore[no-untyped-call]
            mode=getattr(shown, "mode", "Context"),
            theme_name=getattr(shown, "_theme_name", "linux"),
        )
        return str(formatter.stb2text(formatter.structured_traceback(type(exc), exc, tb)))

    return format_exception


_FILE_LINE = re.compile(r'File "(?P<file>[^"\n]+)", line (?P<line>\d+)')


def traceback_renamer(shell: Any) -> Callable[[str], str]:
    """Rename the cells in a traceback formatted elsewhere (a worker process ran the cell under
    the name the shell cached it by): ``File "/tmp/ipykernel_1/2.py", line 4`` becomes
    ``Cell In[3], line 4``, as IPython names them."""

    def rename(text: str) -> str:
        names = getattr(shell.compile, "_filename_map", {})

        def one(m: re.Match[str]) -> str:
            count = names.get(m["file"])
            return f"Cell In[{count}], line {m['line']}" if count is not None else m[0]

        return _FILE_LINE.sub(one, text)

    return rename


# -- the extension's state -----------------------------------------------------------------------


class _Extension:
    """What :func:`activate` set up in one shell, and how to undo it."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.echo: TerminalEcho | None = None
        self.patched_prompt: Any = None
        self.previous_wait_display: Any = None

    def start(self) -> None:
        from .engine import set_wait_display

        install_display_routing(self.shell)
        self.previous_wait_display = set_wait_display(self.wait_display)
        _capture.install()
        _pyplot.activate()
        _traceback.set_formatter(traceback_formatter(self.shell), traceback_renamer(self.shell))
        if _display.is_kernel(self.shell):
            # A graceful kernel shutdown (what nbconvert, papermill and a restart do) runs no
            # atexit handler, but the kernel sets shell.exit_now when it handles the request.
            self.shell.observe(self._kernel_exiting, names="exit_now")
            return
        from ._ipython import kernel_engine

        self.echo = TerminalEcho(self.shell, kernel_engine())
        with contextlib.suppress(ImportError):
            from IPython.terminal import interactiveshell as terminal

            names = vars(terminal)  # the module's globals: prompt_for_code looks it up there
            original = names["patch_stdout"]
            if not isinstance(original, functools.partial):
                names["patch_stdout"] = functools.partial(routed_patch_stdout, original)
                self.patched_prompt = original

    def wait_display(self, engine: Any, jobs: list[Any]) -> contextlib.AbstractContextManager[Any]:
        """What a blocking wait (``engine.wait()``, ``orchestrate()``, ``%jobs wait``) on the
        main thread shows: a live view under the cell in a kernel; in a terminal, the jobs'
        lines as ``[job NAME] line`` as they come (the echo holds them back while a cell runs)."""
        if _display.is_kernel(self.shell):
            from ._wait_view import CellWaitView

            return CellWaitView(self.shell.kernel, engine, jobs)
        echo = self.echo
        if echo is not None and echo.engine is engine:
            return echo.live()
        return temporary_echo(self.shell, engine)

    def _kernel_exiting(self, change: Mapping[str, Any]) -> None:
        """The kernel is shutting down: record its unfinished jobs as cancelled, say so."""
        if not change["new"]:
            return
        from ._lifetime import unfinished_jobs
        from .engine import shutdown_all

        # Said first: the kernel is killed a few seconds after the request (jupyter_client's
        # shutdown_wait_time, 5 s by default), and on a loaded machine the shutdown below
        # can take that long (a CI run printed nothing once).
        stopped = unfinished_jobs()
        if stopped:
            names = ", ".join(stopped[:5]) + (", ..." if len(stopped) > 5 else "")
            jobs = "1 job" if len(stopped) == 1 else f"{len(stopped)} jobs"
            # the process's own stderr: the kernel's output channel is closing (a headless
            # run shows this in its terminal)
            print(
                f"jupyter_executor: the kernel shut down while {jobs} had not finished "
                f"({names}): recorded as cancelled ('kernel shut down'); end a headless "
                "notebook with %jobs wait",
                file=sys.__stderr__,
                flush=True,
            )
        shutdown_all("kernel shut down", timeout=1.0)

    def stop(self) -> None:
        from .engine import current_engine, set_wait_display

        if _display.is_kernel(self.shell):
            with contextlib.suppress(ValueError):
                self.shell.unobserve(self._kernel_exiting, names="exit_now")
        _display.close_views(self.shell)
        if self.echo is not None:
            self.echo.close()
            self.echo = None
        if self.patched_prompt is not None:
            from IPython.terminal import interactiveshell as terminal

            vars(terminal)["patch_stdout"] = self.patched_prompt
            self.patched_prompt = None
        # Put the previous wait display back, unless someone installed another one since.
        installed = set_wait_display(self.previous_wait_display)
        if installed != self.wait_display:
            set_wait_display(installed)
        engine = current_engine()
        if engine is not None:
            engine.shutdown()
        uninstall_display_routing(self.shell)
        _capture.uninstall()
        _traceback.set_formatter(None)
        _pyplot.deactivate()


_active: dict[int, _Extension] = {}


def activate(shell: Any) -> None:
    """Set up display routing (and the terminal echo); idempotent per shell."""
    if id(shell) in _active:
        return
    ext = _active[id(shell)] = _Extension(shell)
    ext.start()


def deactivate(shell: Any) -> None:
    """Shut the engine down and undo :func:`activate` (idempotent)."""
    from IPython.core.error import UsageError

    from ._context import running_job
    from .engine import current_engine

    engine = current_engine()
    job = running_job.get()
    if engine is not None and job is not None and job.engine is engine:
        # Refused before anything is undone: the engine's shutdown would refuse it anyway,
        # after the echo, the views and the exit hook were gone, with the extension still loaded
        msg = (
            f"%unload_ext jupyter_executor inside job {job.name!r} would shut down the engine "
            "that runs that job; unload it from a cell that is not a job"
        )
        raise UsageError(msg)
    ext = _active.pop(id(shell), None)
    if ext is not None:
        ext.stop()
        return
    if engine is not None:
        engine.shutdown()
