"""Tracebacks of failed jobs, as a user reads them: without the engine's own frames.

A job's exception passes through the backend that ran it (``backends/*.py``), the cell runner
(``_cell.py``) and, for coroutines run by a thread, ``asyncio``'s runner: none of these frames
is the user's. :func:`format_exception` drops them from the start of the traceback (as IPython
drops its own ``run_code`` frame) and returns the plain text, and, when a front end installed a
formatter (the IPython extension does: ``Cell In[3], line 4`` with colours, see
:func:`set_formatter`), a coloured text for the views. The core never imports IPython: the
formatter is a plain callable.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .errors import JupyterExecutorError

logger = logging.getLogger(__name__)

#: Frames in these directories are the engine's (or asyncio's runner) when they lead a traceback.
_OWN: tuple[str, ...] = (
    str(Path(__file__).resolve().parent) + os.sep,
    str(Path(asyncio.__file__).parent) + os.sep,
)


def _package_dirs(*names: str) -> tuple[str, ...]:
    """The folders of these packages, found without importing them (dask is heavy)."""
    dirs = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            dirs += [str(Path(p).resolve()) + os.sep for p in spec.submodule_search_locations]
    return tuple(dirs)


# A dask task's traceback starts in the worker's own frames (distributed, dask): they lead it
# like the engine's and say nothing about the job.
_OWN += _package_dirs("distributed", "dask")

#: (exception, traceback without the engine's frames) -> coloured text
Formatter = Callable[[BaseException, TracebackType | None], str]
#: plain worker text -> text that names cells as the front end does (process backends)
Renamer = Callable[[str], str]

_lock = threading.Lock()
_formatter: Formatter | None = None
_renamer: Renamer | None = None
# Terminal escape sequences (the set widget.strip_ansi and js/ansi.js remove).
_ANSI = re.compile(
    r"\x1b(?:\[[0-9;:?]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+][0-9A-Za-z]|[@-Z\\-_])"
)


def set_formatter(formatter: Formatter | None, renamer: Renamer | None = None) -> None:
    """Install (or with None, remove) the formatter of coloured tracebacks and the renamer of
    tracebacks formatted in another process (the IPython extension installs both)."""
    global _formatter, _renamer  # one per process, like sys.excepthook
    with _lock:
        _formatter, _renamer = formatter, renamer


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without its leading frames of the engine and of asyncio's runner.

    Keeps the whole traceback when every frame is the engine's (the engine's own failure)."""
    first = tb
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN):
        tb = tb.tb_next
    return tb if tb is not None else first


def _all_own(tb: TracebackType | None) -> bool:
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_OWN):
            return False
        tb = tb.tb_next
    return True


def strip_colours(text: str) -> str:
    """``text`` without terminal escape sequences (colours)."""
    return _ANSI.sub("", text)


def format_exception(exc: BaseException) -> tuple[str, str | None]:
    """``(plain, coloured or None)`` traceback text of a job's exception.

    An error of ours that says how a job ended (a command's exit code, missing outputs, a
    crashed worker) is its one line: the engine's frames that raised it say nothing more.
    """
    tb = user_frames(exc.__traceback__)
    if isinstance(exc, JupyterExecutorError) and _all_own(tb):
        tb = None  # every frame is the engine's: the line is the whole story
    plain = "".join(traceback.format_exception(type(exc), exc, tb))
    formatter = _formatter
    if formatter is None:
        return plain, None
    try:
        coloured = formatter(exc, tb)
    except Exception:  # a broken formatter must not lose the failure: the plain text stays
        logger.debug("jupyter_executor: the traceback formatter failed", exc_info=True)
        return plain, None
    # The formatter's own plain text: it names cells as the front end does ("Cell In[3]").
    return strip_colours(coloured).rstrip("\n") + "\n", coloured


def rename(text: str) -> str:
    """A traceback formatted in a worker process, with cells named as the front end does."""
    renamer = _renamer
    if renamer is None:
        return text
    try:
        return renamer(text)
    except Exception:
        logger.debug("jupyter_executor: the traceback renamer failed", exc_info=True)
        return text
