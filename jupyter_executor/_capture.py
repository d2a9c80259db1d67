"""Per-job output: a bounded in-memory tail, a log file, displayed objects, and stream routing.

Job code runs with :data:`._context.running_job` set. :func:`install` replaces ``sys.stdout``
and ``sys.stderr`` once by proxies that send a write to the current job's :class:`Output`, and
to the original stream otherwise, so a job's prints never land in the caller's cell (see
docs/kernel-notes.md §1: threads started by a cell otherwise print into whichever cell ran last).
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import importlib
import logging
import os
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TextIO

from ._context import running_attempt, running_job
from ._files import create_private, private_dir, private_opener
from ._text import ERRORS

__all__ = ["Output", "current_output", "install"]

logger = logging.getLogger("jupyter_executor")

#: Lines kept in memory per job; the log file has everything.
TAIL_LINES = 500
#: Characters kept of a line that never ends (a job printing without newlines stays bounded).
MAX_LINE = 10_000
#: Displayed objects kept per job.
MAX_DISPLAYS = 50
_FLUSH_EVERY = 1.0


class Output:
    """Everything one job wrote: the last lines in memory, all of it in a log file.

    Carriage returns rewrite the current line, so a text progress bar (tqdm) keeps one line of
    the tail instead of thousands. Thread-safe: a job may write from several threads.
    """

    def __init__(
        self,
        log_path: Callable[[], Path | None] | None = None,
        notify: Callable[[str], None] | None = None,
        maxlines: int = TAIL_LINES,
        archive: Callable[[Path], None] | None = None,
        timestamps: bool = False,
    ) -> None:
        self._lines: deque[str] = deque(maxlen=maxlines)
        self._partial = ""
        # The last write ended with a carriage return (``print(f"{i}%", end="\r")``): the next
        # text starts the line again. Not kept in _partial, which is read as the line shown.
        self._cr = False
        # Reentrant, with _busy: see write (a finalizer that prints while this thread writes).
        self._lock = threading.RLock()
        self._busy = False
        self._reentered: list[tuple[str, bool]] = []
        self._log_path = log_path
        self._archive = archive  # called once, before this output first opens its log file
        self._timestamps = timestamps
        self._log_at_line_start = True  # the next log text starts a line (gets a timestamp)
        self._file: IO[str] | None = None
        #: (device, inode) of the log file this output last wrote, once it was closed: a later
        #: write (a thread or task the job left running) reopens that file only.
        self._closed_file: tuple[int, int] | None = None
        self._ended = False  # close() was called: the run is over
        #: Why the log file stopped being written (a full disk, a file size limit), if it did:
        #: the output goes on in memory, and the job with it (see _log_failed).
        self.log_error: OSError | None = None
        self._unsaid: OSError | None = None  # log_error, not told to the logger yet
        self._last_flush = 0.0
        self._notify = notify
        self._displays: deque[tuple[dict[str, Any], dict[str, Any]]] = deque(maxlen=MAX_DISPLAYS)
        #: {stream: UTF-8 decoder} of the bytes written to ``sys.stdout.buffer`` (write_bytes)
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        #: Streams this run closed (``sys.stdout.close()`` in the job): writing them raises.
        self.closed_streams: frozenset[str] = frozenset()
        self.version = 0
        self.nbytes = 0
        #: How many complete lines were ever written (the tail keeps the last ones).
        self.line_count = 0

    # writing -----------------------------------------------------------------------------
    def write(self, text: str, stream: str = "stdout", log: bool = True) -> int:
        """Append ``text`` (from ``stream``) to the tail and the log; return its length.

        ``log=False`` when the text is already in the log file (a detached process writes its
        log itself and the engine follows it).
        """
        if not isinstance(text, str):
            text = str(text)
        if not text:
            return 0
        with self._lock:
            if self._busy:
                # Re-entered by this very thread while it writes: a ``__del__`` (or a signal
                # handler) that prints, run by the garbage collector inside the write. A plain
                # lock would wait for itself for ever; the write under way adds it after its own.
                self._reentered.append((text, log))
                return len(text)
            self._busy = True
            size = len(text)
            try:
                while True:  # this write, then those re-entered meanwhile, in order
                    self._append(text)
                    if log:
                        self._log(text)
                    self.version += 1
                    self.nbytes += len(text)
                    if not self._reentered:
                        break
                    text, log = self._reentered.pop(0)
            finally:
                self._busy = False
        if self._unsaid is not None:
            self._say_log_failed()
        if self._notify is not None:
            self._notify("output")
        return size

    def write_bytes(self, data: bytes, stream: str = "stdout") -> int:
        """Append ``data`` (written to ``sys.stdout.buffer``) as :meth:`write`; return its length.

        Decoded as UTF-8 as a command's output is (an invalid byte becomes U+FFFD), a character
        split between two writes whole.
        """
        with self._lock:
            decoder = self._decoders.get(stream)
            if decoder is None:
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                self._decoders[stream] = decoder
            text = decoder.decode(data)
        self.write(text, stream)
        return len(data)

    def _append(self, text: str) -> None:
        lines = self._lines
        partial = self._partial
        if self._cr:
            partial += "\r"
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        chunks = text.split("\n")
        for chunk in chunks[:-1]:
            line = partial + chunk
            if "\r" in line:
                line = _after_cr(line)
            if len(line) > MAX_LINE:
                # A 10 MB line stays in the log file, not in memory (nor in every view update).
                line = f"{line[:MAX_LINE]}… ({len(line) - MAX_LINE:,} more characters in the log)"
            lines.append(line)
            partial = ""
            self.line_count += 1
        partial += chunks[-1]
        self._cr = partial.endswith("\r")
        if "\r" in partial:
            # A carriage return starts the line again (a progress bar redrawing itself).
            partial = _after_cr(partial)
        if len(partial) > MAX_LINE:
            partial = partial[-MAX_LINE:]
        self._partial = partial

    def log_only(self, text: str) -> None:
        """Append ``text`` to the log file only (the traceback that ends a failed attempt)."""
        with self._lock:
            if not self._log_at_line_start:
                self._log("\n")
            self._log(text)
            self._flush_log()
        self._say_log_failed()

    def _stamped(self, text: str) -> str:
        # Each line gets the time it was written; a line written in pieces, its first piece's.
        stamp = _timestamp()
        lines = text.split("\n")
        out = []
        for i, line in enumerate(lines):
            start = self._log_at_line_start if i == 0 else True
            if i == len(lines) - 1 and not line:
                break  # text ended with a newline: the next write starts the line
            out.append(stamp + line if start else line)
        self._log_at_line_start = text.endswith("\n")
        return "\n".join(out) + ("\n" if text.endswith("\n") else "")

    def _log(self, text: str) -> None:
        # (under the lock) Never raises: a log that cannot be written stops the log, not the
        # job, nor the engine that writes the end of a run into it (see _log_failed).
        if self.log_error is not None:
            return
        try:
            self._write_log(text)
        except OSError as exc:
            self._log_failed(exc)

    def _flush_log(self) -> None:
        # (under the lock) As _log: never raises.
        if self._file is not None and self.log_error is None:
            try:
                self._file.flush()
            except OSError as exc:
                self._log_failed(exc)

    def _log_failed(self, exc: OSError) -> None:
        """(under the lock) The log cannot be written: say so once, in the log's place and in
        the tail, and keep the output in memory only from here on."""
        self.log_error = exc
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # (the same error, flushing what it held)
                file.close()
        note = f"[jupyter_executor: the log cannot be written from here on: {exc}]\n"
        self._append(("\n" if self._partial else "") + note)
        self._unsaid = exc

    def _say_log_failed(self) -> None:
        """(after the lock) Tell the logger once that the log stopped (see _log_failed).

        Not under the lock: in a job, the logger's stderr is this very output."""
        exc, self._unsaid = self._unsaid, None
        if exc is not None:
            path = self._log_path() if self._log_path is not None else None
            logger.warning(
                "jupyter_executor: the log %s cannot be written (%s); the output goes on in memory",
                path,
                exc,
            )

    def _write_log(self, text: str) -> None:
        if self._timestamps:
            text = self._stamped(text)
        else:
            self._log_at_line_start = text.endswith("\n")
        if self._file is None:
            path = self._log_path() if self._log_path is not None else None
            if path is None:
                return
            if self._ended and not self._still_ours(path):
                return  # the file is a later run's now (see _still_ours): the tail keeps it
            private_dir(path.parent, depth=1)  # logs/ and the engine's folder: user-only
            if self._archive is not None:
                archive, self._archive = self._archive, None
                archive(path)
            # errors=ERRORS: a lone surrogate (a non-UTF-8 file name) is written as \xff, as
            # in the history and the views, rather than as "?".
            self._file = open(  # noqa: SIM115
                path, "a", encoding="utf-8", errors=ERRORS, opener=private_opener
            )
        self._file.write(text)
        now = time.monotonic()
        if now - self._last_flush > _FLUSH_EVERY:
            self._file.flush()
            self._last_flush = now

    def _still_ours(self, path: Path) -> bool:
        """(under the lock) Whether text written after :meth:`close` may go to ``path``.

        Once the run is over, the job may be rerun or replaced by a job of the same name, whose
        run archives this log and writes its own at the same path: what a thread or a task left
        by this run prints later must not land there. So the log is reopened only when it is
        still the file this output wrote, or when there is no file at all and this output never
        wrote one (a job whose leftover thread prints its first line after the end).
        """
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return self._closed_file is None
        except OSError:
            return False
        return (stat.st_dev, stat.st_ino) == self._closed_file

    def display(self, data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        """Keep a displayed object (a mimebundle, as IPython's ``display`` publishes it)."""
        with self._lock:
            self._displays.append((dict(data), dict(metadata or {})))
            self.version += 1
        if self._notify is not None:
            self._notify("display")

    def start_log(self) -> None:
        """Archive the previous log now (a detached process is about to write a new one)."""
        path = self._log_path() if self._log_path is not None else None
        if path is not None:
            private_dir(path.parent, depth=1)
            if self._archive is not None:
                archive, self._archive = self._archive, None
                archive(path)
            # Created now, user-only: the process then appends to it (it would make it 0o644).
            create_private(path)

    def flush(self) -> None:
        """Write buffered log text to disk."""
        with self._lock:
            self._flush_log()
        self._say_log_failed()

    def close(self) -> None:
        """Flush and close the log file: the run is over (a later write opens it again, appending,
        while it is still this run's file; see :meth:`_still_ours`)."""
        with self._lock:
            # The end of a character cut short by the end of the run: shown as U+FFFD.
            ends = [(name, d.decode(b"", final=True)) for name, d in self._decoders.items()]
        for name, text in ends:
            self.write(text, name)
        with self._lock:
            self._flush_log()
            self._ended = True
            if self._file is not None:
                file, self._file = self._file, None
                self._closed_file = (-1, -1)  # (no file matches, if fstat fails)
                with contextlib.suppress(OSError, ValueError):
                    stat = os.fstat(file.fileno())
                    self._closed_file = (stat.st_dev, stat.st_ino)
                try:
                    file.close()
                except OSError as exc:
                    self._log_failed(exc)
        self._say_log_failed()

    # reading -----------------------------------------------------------------------------
    def tail(self, n: int = 20) -> str:
        """The last ``n`` lines, the unfinished current line included."""
        with self._lock:
            lines = list(self._lines)
            if self._partial:
                lines.append(self._partial)
        if n <= 0:
            return ""
        return "\n".join(lines[-n:])

    def lines_since(self, index: int) -> tuple[int, list[str]]:
        """The complete lines numbered ``index`` and later that are still in memory.

        Returns the next index to ask for and the lines; lines that scrolled out of the tail
        are skipped. Lets a reader print every new line exactly once.
        """
        with self._lock:
            count = self.line_count
            first = count - len(self._lines)
            start = max(index, first)
            lines = list(self._lines)[start - first :] if start < count else []
        return count, lines

    def last_line(self) -> str:
        """The last non-empty line."""
        with self._lock:
            if self._partial.strip():
                return self._partial
            for line in reversed(self._lines):
                if line.strip():
                    return line
        return ""

    @property
    def displays(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The displayed objects, oldest first, as ``(data, metadata)`` mimebundles."""
        with self._lock:
            return list(self._displays)


def _timestamp() -> str:
    """The local time, to the millisecond, as a log line prefix."""
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d} "


def _after_cr(line: str) -> str:
    # What a terminal shows for a line with carriage returns: the text after the last one that
    # is followed by something.
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def current_output() -> Output | None:
    """The :class:`Output` of the job running in this context, or None outside jobs."""
    job = running_job.get()
    return None if job is None else _output_of(job)


_bind_lock = threading.Lock()


def _output_of(job: Any) -> Output:
    """The :class:`Output` that ``job``'s code in this context writes to: its attempt's.

    Not ``job.output`` at write time: a thread or a task left running by one run would write
    into the next run's (see :class:`._context.Attempt`).
    """
    attempt = running_attempt.get()
    if attempt is None or attempt.job is not job:
        return job.output  # type: ignore[no-any-return]
    out: Output | None = attempt.output
    if out is None:
        with _bind_lock:  # (two threads of the attempt writing their first line at once)
            out = attempt.output
            if out is None:
                out = job.output
                if job.attempts != attempt.number:
                    # This attempt wrote nothing before the next one began: ``out`` may be
                    # the next one's. What the attempt's leftovers write is kept with it.
                    out = Output()
                attempt.output = out
    return out


# A job's own redirections of sys.stdout/sys.stderr (``contextlib.redirect_stdout``): the job
# (its attempt, see _owner) they belong to and {stream: target}, in the job's context. The
# owner is checked because a job started inside a redirection copies its context.
_redirects: contextvars.ContextVar[tuple[Any, dict[str, Any]] | None] = contextvars.ContextVar(
    "jupyter_executor_redirects", default=None
)
_active = 0  # jobs' redirections made and not undone
_active_lock = threading.Lock()


def _owner(job: Any) -> Any:
    """Whose redirections apply here: the attempt's, so that one a run left in place (its
    worker thread keeps the context) does not take a later run's prints."""
    attempt = running_attempt.get()
    return attempt if attempt is not None and attempt.job is job else job


class StreamProxy:
    """Stands in for ``sys.stdout``/``sys.stderr``: job writes go to the job, others pass.

    A job that closes its stream (``sys.stdout.close()``, or a library doing it) closes its
    own only: its later writes to it raise ``ValueError: I/O operation on closed file.``, as
    they would on a real closed file, until its next run; the kernel's stream, and every other
    job's, stay open. Outside jobs, ``close`` reaches the original stream, as it would without
    the proxy.

    Assigning ``sys.stdout`` (``redirect_stdout``, ``%%capture``) keeps a proxy in place (see
    :class:`_Sys`): in a job, the new stream is that job's alone (its prints go there, no one
    else's), and reading ``sys.stdout`` in that job gives it back; outside jobs, the new stream
    is wrapped in a proxy of its own, so it takes every write made outside jobs, as a plain
    assignment would, and no job's.
    """

    def __init__(self, original: TextIO, stream: str) -> None:
        self.original = original
        self._stream = stream

    def write(self, text: str) -> int:
        job = running_job.get()
        if job is None:
            return self.original.write(text)
        mine = _redirects.get()
        if mine is not None and mine[0] is _owner(job) and self._stream in mine[1]:
            target = mine[1][self._stream]
            if target is None:  # ``sys.stdout = None``: print() writes nothing (it reads the
                return len(text)  # proxy from sys's dict in C, not the job's None)
            return target.write(text)  # type: ignore[no-any-return]
        if not isinstance(text, str):
            # As a real text stream: Output.write would store str(b"x"), "b'x'".
            msg = f"write() argument must be str, not {type(text).__name__}"
            raise TypeError(msg)
        return self._open_output(job).write(text, self._stream)

    def _open_output(self, job: Any) -> Output:
        out = _output_of(job)
        if out.closed_streams and self._stream in out.closed_streams:
            msg = "I/O operation on closed file."
            raise ValueError(msg)
        return out

    @property
    def buffer(self) -> Any:
        """``sys.stdout.buffer``: in a job, one whose bytes go to the job (see :class:`_Buffer`)."""
        current = self._current()
        if current is not self:
            return current.buffer
        if running_job.get() is None:
            return self.original.buffer
        buffer = self.original.buffer  # (AttributeError where the stream has none, as it would)
        return _Buffer(self, buffer)

    def detach(self) -> Any:
        """In a job, the job's :attr:`buffer`: the original stream stays attached.

        ``sys.stdout = io.TextIOWrapper(sys.stdout.detach(), ...)`` in a job detached the
        kernel's (or terminal's) stream: every print outside jobs raised from then on, and the
        job's went around its output.
        """
        current = self._current()
        if current is not self:
            return current.detach()
        if running_job.get() is None:
            return self.original.detach()
        return self.buffer

    def _current(self) -> Any:
        """What ``sys.stdout`` is in this context: the job's own stream, or the proxy."""
        job = running_job.get()
        mine = _redirects.get()
        if job is not None and mine is not None and mine[0] is _owner(job):
            return mine[1].get(self._stream, self)
        return self

    def _assign(self, value: Any) -> None:
        """``sys.stdout = value`` from a job (see the class docstring)."""
        global _active
        job = running_job.get()
        owner = _owner(job)
        mine = _redirects.get()
        targets = dict(mine[1]) if mine is not None and mine[0] is owner else {}
        before = self._stream in targets
        if type(value) is StreamProxy:
            targets.pop(self._stream, None)  # restored what it found
        else:
            targets[self._stream] = value
        after = self._stream in targets
        _redirects.set((owner, targets) if targets else None)
        if before != after:
            with _active_lock:
                _active = max(_active + (1 if after else -1), 0)
                _set_sys_class(_RedirectedSys if _active else _Sys)

    def close(self) -> None:
        job = running_job.get()
        if job is None:
            self.original.close()
            return
        out = _output_of(job)
        out.closed_streams = out.closed_streams | {self._stream}

    @property
    def closed(self) -> bool:
        job = running_job.get()
        if job is None:
            return bool(self.original.closed)
        return self._stream in _output_of(job).closed_streams

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        current = self._current()
        if current is not self:
            current.flush()
        elif running_job.get() is None:
            self.original.flush()

    def __getattr__(self, name: str) -> Any:
        current = self._current()
        return getattr(self.original if current is self else current, name)


class _Buffer:
    """``sys.stdout.buffer`` read in a job: what is written to it goes to the job running when
    it is written, as through the proxy (the original's own buffer would print outside)."""

    def __init__(self, proxy: StreamProxy, original: Any) -> None:
        self._proxy = proxy
        self._original = original

    def write(self, data: Any) -> int:
        proxy = self._proxy
        job = running_job.get()
        if job is None:
            return self._original.write(data)  # type: ignore[no-any-return]
        if isinstance(data, str):
            msg = "a bytes-like object is required, not 'str'"
            raise TypeError(msg)
        data = bytes(memoryview(data))  # (a TypeError naming the type, if it is not bytes-like)
        return proxy._open_output(job).write_bytes(data, proxy._stream)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if running_job.get() is None:
            self._original.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False  # (a TextIOWrapper over it would ask the original's position)

    @property
    def closed(self) -> bool:
        return self._proxy.closed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


_module_getattribute = types.ModuleType.__getattribute__
_module_setattr = types.ModuleType.__setattr__


class _Sys(types.ModuleType):
    """The class of the ``sys`` module while the proxies are installed.

    ``sys.stdout = x`` is a global swap: from a job (``redirect_stdout``) it would take the
    cells' and every other job's prints; from a cell (``%%capture``) the jobs'. So a job's
    assignment leaves the proxy in place and tells it (:meth:`StreamProxy._assign`), and a
    cell's puts ``x`` behind a proxy of its own. C code (``print``) reads the module's dict,
    so it always finds a proxy.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "stdout" or name == "stderr":
            proxy = self.__dict__.get(name)
            if type(proxy) is StreamProxy:
                if running_job.get() is not None:
                    proxy._assign(value)  # the job's own redirection
                    return
                if value is not None and type(value) is not StreamProxy:
                    value = StreamProxy(value, name)  # a cell's: still no job's writes
        _module_setattr(self, name, value)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # pickle (cloudpickle shipping a function that uses ``sys`` to a worker or a dask
        # cluster) knows plain modules only: ``sys`` travels by name, as it would unpatched
        return importlib.import_module, ("sys",)


class _RedirectedSys(_Sys):
    """``_Sys`` while a job has redirected a stream: reading ``sys.stdout`` in it gives its own.

    Only then, because a Python-level ``__getattribute__`` makes every ``sys.x`` read slower
    (about 0.1 µs); ``redirect_stdout`` needs it to restore what it found when nested.
    """

    def __getattribute__(self, name: str) -> Any:
        value = _module_getattribute(self, name)
        if (name == "stdout" or name == "stderr") and type(value) is StreamProxy:
            return value._current()
        return value


def _set_sys_class(cls: type[types.ModuleType]) -> None:
    # Only over our own classes: another library's module class is not ours to replace.
    if type(sys) in (types.ModuleType, _Sys, _RedirectedSys):
        sys.__class__ = cls


_install_lock = threading.Lock()


def install() -> None:
    """Put the routing proxies on ``sys.stdout``/``sys.stderr`` (idempotent, cheap to repeat).

    Also points logging handlers that write to the original streams at the proxies, so that
    ``logging`` inside a job lands in the job too.
    """
    streams = sys.__dict__
    if type(streams.get("stdout")) is StreamProxy and type(streams.get("stderr")) is StreamProxy:
        return
    with _install_lock:
        swapped: dict[int, StreamProxy] = {}
        for attr in ("stdout", "stderr"):
            current = streams.get(attr)
            if type(current) is not StreamProxy and current is not None:
                proxy = StreamProxy(current, attr)
                _module_setattr(sys, attr, proxy)
                swapped[id(current)] = proxy
        if swapped:
            for handler in _stream_handlers():
                found = swapped.get(id(handler.stream))
                if found is not None:
                    handler.setStream(found)  # type: ignore[arg-type,unused-ignore]
        _set_sys_class(_Sys)


def uninstall() -> None:
    """Put the original streams back (used when the extension is unloaded)."""
    global _active
    with _install_lock:
        _set_sys_class(types.ModuleType)
        with _active_lock:
            _active = 0
        for attr in ("stdout", "stderr"):
            current = sys.__dict__.get(attr)
            if type(current) is StreamProxy:
                original = current.original
                setattr(sys, attr, original)
                for handler in _stream_handlers():
                    if handler.stream is current:
                        handler.setStream(original)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[logging.Logger | logging.PlaceHolder] = [logging.getLogger()]
    loggers += list(logging.Logger.manager.loggerDict.values())
    found = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                found.append(handler)
    return found
