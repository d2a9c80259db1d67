"""The throttled publisher: engine events in, coalesced and bounded diff messages out.

One :class:`Publisher` per widget; a dashboard's has a thread of its own, the job views share one
(:class:`SharedThread`). The engine calls :meth:`Publisher._on_event` from any thread, sometimes
under its lock, so that callback only records the job as dirty and wakes the thread. The
publisher thread sleeps until woken (no polling), waits out the
minimum interval since its last message, then turns the dirty jobs into rows with
:meth:`JobInfo.to_dict`, diffs them field by field against what it sent before and sends one
message. Three bounds hold whatever the jobs do (docs/kernel-notes.md §3: iopub drops messages when
flooded):

- at most one message per ``interval`` (10 per second for the dashboard);
- at most about ``max_bytes`` of rows per message: status changes go first, then output and
  progress changes, oldest first; whatever does not fit stays dirty for the next message;
- only changed fields travel, never whole tables (a full snapshot is sent only on request).

Durations are not sent while a job runs: the browser ticks them from ``started``.

Wire format (the browser side is ``js/store.js``)::

    {"k": "snap", "seq": n, "t": now, "cols": [...], "data": [[...], ...]}     # full table
    {"k": "patch", "seq": n, "t": now, "rows": [{"name": ..., <changed>}], "removed": [...]}

A snapshot travels as one binary buffer of UTF-8 JSON (:func:`pack`): the widget's ``_init``
state, or a custom message ``{"k": "snap", "packed": true}`` with the buffer attached. Nested
lists of 10,000 rows would otherwise be walked by ipywidgets looking for binary buffers and
escaped once more inside the message's JSON; a buffer crosses the wire as it is.

``seq`` increases by one per message so the browser can detect a gap and ask for a snapshot;
``t`` is the kernel's clock, from which the browser computes its clock offset.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._snapshot import JobSnapshot, snapshot_of
from ._text import safe_json, short_repr

if TYPE_CHECKING:
    from .engine import Engine
    from .job import Job

__all__ = [
    "JOB_VIEWS_PACER",
    "JOB_VIEWS_THREAD",
    "DashboardPublisher",
    "JobPublisher",
    "Pacer",
    "Publisher",
    "SharedThread",
    "encode_snapshot",
    "pack",
    "table_row",
]

logger = logging.getLogger(__name__)

#: Events that change what a row's status shows: sent before output and progress changes.
URGENT_EVENTS = frozenset({"submitted", "status", "removed"})
#: Fields of ``JobInfo.to_dict()`` a table row leaves out; ``tail`` and ``traceback`` are sent
#: only for rows whose details are open in a view.
_DROPPED = frozenset({"tail", "traceback", "output_version"})
#: Longest text sent per field (the full text stays in the kernel and the log file).
TEXT_LIMITS = {
    "result": 200,
    "error": 300,
    "last_line": 200,
    "description": 160,
    "progress_text": 80,
    "cancel_reason": 200,
}
_TEXT_LIMITS = tuple(TEXT_LIMITS.items())
_TIME_FIELDS = ("submitted", "started", "finished", "duration", "next_run")
#: Longest ``url`` sent; a longer one is left out rather than clipped (a clipped URL would point
#: somewhere else).
URL_CHARS = 2_000
#: Lines of output of an open row / a job view, and their character bounds.
TAIL_LINES = 40
TAIL_CHARS = 8_000
TRACEBACK_CHARS = 16_000
#: Mime types a job view renders; other keys of a display's bundle are not sent.
DISPLAY_MIMES = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "text/plain")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: Largest display sent (bytes of its bundle); bigger ones are replaced by a note.
MAX_DISPLAY_BYTES = 2_000_000
#: Minimum seconds between two full snapshots sent on request.
SNAPSHOT_EVERY = 1.0
_MISSING = object()


def _clip(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


def _as_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a user object's __str__ must not cost the row
        return short_repr(value)


def table_row(
    info: dict[str, Any], *, tail: str | None = None, traceback: bool = False
) -> dict[str, Any]:
    """The JSON row the widgets show for one ``JobInfo.to_dict()``.

    Parameters
    ----------
    info
        ``job.info().to_dict()`` (or the same dict, made faster by ``_jobinfo.info_dict(job)``).
    tail
        Output to include (the row's details are open), or None for a plain table row.
    traceback
        Include the traceback (with ``tail``: details are open).
    """
    # 10,000 of these make a snapshot: plain dict operations, no generic loops over every field.
    row = info.copy()
    for key in _DROPPED:
        row.pop(key, None)
    for key, limit in _TEXT_LIMITS:
        value = row.get(key)
        if value is None:
            continue
        if type(value) is not str:
            # e.g. job.cancel(reason=12345): len() of it would fail every row of the table
            value = row[key] = _as_text(value)
        if len(value) > limit:
            row[key] = _clip(value, limit)
    for key in _TIME_FIELDS:
        value = row.get(key)
        if value is not None:
            row[key] = round(value, 3)
    requires = row.get("requires")
    if type(requires) is tuple:  # as JobInfo.to_dict() gives it
        row["requires"] = list(requires)
    url = row.get("url")
    if url is not None and len(url) > URL_CHARS:
        row["url"] = None
    if row.get("status") == "running":
        # The browser ticks the duration of a running job; sending it would change every row
        # on every message.
        row["duration"] = None
    _progress_fields(row)
    if tail is not None:
        row["tail"] = _clip(tail, TAIL_CHARS, keep_end=True)
    if traceback:
        tb = info.get("traceback")
        row["traceback"] = _clip(tb, TRACEBACK_CHARS, keep_end=True) if tb else None
    return row


def _progress_fields(row: dict[str, Any]) -> None:
    """The progress the job reported, rounded; else the text bar its last line draws, if any."""
    progress = row.get("progress")
    if progress is not None:
        row["progress"] = round(progress, 4)
        return
    bar = text_bar(row.get("last_line"))
    if bar is not None:
        row["progress"], row["progress_text"] = bar


# tqdm's text bar, as its last redraw leaves the job's last line:
# "epochs:  25%|##5       | 10/40 [00:01<00:03, 9.87it/s]" (the description is optional).
_TEXT_BAR = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*(\S+/\S+.*?)\s*$")


def text_bar(line: Any) -> tuple[float, str] | None:
    """The fraction and counts of a text progress bar (tqdm's) ending ``line``, or None.

    A job that reports no progress itself but draws a text bar (``from tqdm import tqdm``, a
    script's bar) gets it in the views' progress column; what the job reports wins.
    """
    if not isinstance(line, str) or "%|" not in line:
        return None
    found = _TEXT_BAR.search(line)
    if found is None:
        return None
    return min(int(found.group(1)), 100) / 100, found.group(2)


def encode_snapshot(
    rows: Iterable[dict[str, Any]], *, seq: int, t: float | None = None
) -> dict[str, Any]:
    """A snapshot message: rows as columns + arrays, which halves the bytes of 10,000 dicts."""
    rows = list(rows)
    cols: dict[str, None] = {}
    for row in rows:
        for key in row:
            cols.setdefault(key, None)
    names = list(cols)
    return {
        "k": "snap",
        "seq": seq,
        "t": round(time.time() if t is None else t, 3),
        "cols": names,
        "data": [[row.get(c) for c in names] for row in rows],
    }


def pack(msg: dict[str, Any]) -> bytes:
    """A message as one buffer of UTF-8 JSON (``js/store.js`` ``unpack`` reads it back).

    Text with lone surrogates (a non-UTF-8 file name in a job's output, error or name) is
    sent made safe (see :mod:`._text`) rather than failing the whole message.
    """
    try:
        return _dumps(msg).encode()
    except UnicodeEncodeError:
        return _dumps(safe_json(msg)).encode()


def json_safe(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` itself when it encodes as UTF-8 JSON, else a copy with its text made safe."""
    try:
        _dumps(msg).encode()
    except UnicodeEncodeError:
        safe: dict[str, Any] = safe_json(msg)
        return safe
    return msg


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def _size(obj: Any) -> int:
    # surrogatepass: a size estimate must not fail on text that pack() will make safe.
    return len(_dumps(obj).encode("utf-8", "surrogatepass"))


class Pacer:
    """Spaces the messages of many publishers: at most ``rate`` per second between them all.

    Each ``%%job`` cell has its own view and publisher; a hundred of them printing at once would
    each send up to 1 / interval messages a second. They share one pacer, so the total stays
    bounded and each view is updated less often instead.
    """

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate
        self._next = float("-inf")
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next free slot; return how many seconds to wait for it."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._gap
            return slot - now


#: The pace all job views share (the dashboard has its own 10 messages/s).
JOB_VIEWS_PACER = Pacer(rate=20.0)


class SharedThread:
    """One thread that builds and sends the messages of many publishers.

    Every ``%%job`` cell has a view and a publisher; a thread each made a cell pay for starting
    one (on the kernel's main thread, while the job starts) and left a thousand threads after a
    thousand cells. Publishers that share this thread are scheduled by when they may send next
    (their ``interval`` after their last message); the thread starts with its first publisher
    and ends with its last, so a kernel whose views are all closed has none.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._members: dict[Publisher, float] = {}  # publisher -> when it last sent
        self._due: dict[Publisher, float] = {}  # woken publishers -> when they may send
        self._busy: Publisher | None = None
        self._thread: threading.Thread | None = None

    def add(self, publisher: Publisher) -> None:
        """Start sending for ``publisher`` (what arrived meanwhile is sent first)."""
        start = None
        with self._cond:
            if publisher in self._members:
                msg = "publisher thread already started"
                raise RuntimeError(msg)
            self._members[publisher] = float("-inf")
            self._due[publisher] = time.monotonic()
            if self._thread is None:
                start = self._thread = threading.Thread(
                    target=self._run, name=self.name, daemon=True
                )
            self._cond.notify()
        if start is not None:
            # Not under the lock: Thread.start() waits for the new thread, in which the garbage
            # collector may finalize a closed view, whose close() takes this lock (a deadlock,
            # seen once in the test suite).
            start.start()

    def serves(self, publisher: Publisher) -> bool:
        """Whether ``publisher`` is sent for (added, not removed)."""
        with self._cond:
            return publisher in self._members and self._thread is not None

    def wake(self, publisher: Publisher) -> None:
        """``publisher`` has something to send (any thread, maybe under the engine's lock)."""
        with self._cond:
            last = self._members.get(publisher)
            if last is None or publisher in self._due:
                return
            self._due[publisher] = max(time.monotonic(), last + publisher.interval)
            self._cond.notify()

    def remove(self, publisher: Publisher, timeout: float = 5.0) -> None:
        """Stop sending for ``publisher``: when this returns, nothing more is sent for it (unless
        called from the thread itself). The last one out waits for the thread to end."""
        here = threading.current_thread()
        with self._cond:
            self._members.pop(publisher, None)
            self._due.pop(publisher, None)
            deadline = time.monotonic() + timeout
            while self._busy is publisher and here is not self._thread:
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    break
            thread = self._thread if not self._members else None
            self._cond.notify_all()
        # (a thread not started yet, by an add() racing with this, finds nobody and ends)
        if thread is not None and thread is not here and thread.ident is not None:
            thread.join(timeout)

    def _next(self) -> Publisher | None:
        """The next publisher whose time has come, waiting for it; None when none is left."""
        with self._cond:
            while self._members:
                if self._due:
                    # A copy: a collection during the search may finalize a view, whose close()
                    # removes it from _due (the lock is reentrant).
                    publisher, at = min(self._due.copy().items(), key=lambda item: item[1])
                    wait = at - time.monotonic()
                    if wait <= 0:
                        if self._due.pop(publisher, None) is not None:
                            self._busy = publisher
                            return publisher
                        continue
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            self._thread = None
            return None

    def _run(self) -> None:
        while (publisher := self._next()) is not None:
            more = failed = False
            try:
                if publisher.pacer is not None:
                    # The pace all job views share: this thread sends for all of them.
                    delay = publisher.pacer.reserve()
                    if delay > 0:
                        time.sleep(delay)
                more = publisher._send_next()
            except Exception:
                logger.exception("jupyter_executor: publisher failed to build an update")
                failed = True
            finally:
                with self._cond:
                    self._busy = None
                    if publisher in self._members:
                        # After a failure, a pause: a persistent error must not turn into a
                        # snapshot every interval.
                        self._members[publisher] = time.monotonic() + (1.0 if failed else 0.0)
                    self._cond.notify_all()
            if failed:
                publisher.request_sync()  # the dirty rows it had taken are lost: resend all
            elif more:
                self.wake(publisher)


#: The thread all job views share.
JOB_VIEWS_THREAD = SharedThread("jupyter-executor-jobview")


class Publisher:
    """Turn engine events into rate- and size-bounded diff messages, from one thread.

    Subclasses choose which jobs they follow and what a row holds.

    Parameters
    ----------
    engine
        The engine whose events are followed.
    send
        Called with each message (a JSON-safe dict) and its binary buffers (or None), from the
        publisher thread.
    interval
        Minimum seconds between two messages.
    max_bytes
        Approximate budget of row bytes per message (at least one row is always sent).
    """

    thread_name = "jupyter-executor-publisher"
    #: A rate shared with other publishers (None: only this publisher's ``interval``).
    pacer: Pacer | None = None
    #: A thread shared with other publishers (None: a thread of its own).
    shared: SharedThread | None = None

    def __init__(
        self,
        engine: Engine,
        send: Callable[[dict[str, Any], list[bytes] | None], None],
        *,
        interval: float = 0.1,
        max_bytes: int = 12_000,
    ) -> None:
        self._engine = engine
        self._send = send
        self.interval = interval
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # name -> job, in the order they became dirty (dicts keep insertion order)
        self._urgent: dict[str, Job | JobSnapshot] = {}
        self._lazy: dict[str, Job | JobSnapshot] = {}
        self._sync = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._sent: dict[str, dict[str, Any]] = {}
        # view id -> names whose details (tail, traceback) that view shows
        self._detail_by_view: dict[str, set[str]] = {}
        self._detail: frozenset[str] = frozenset()
        self._seq = 0
        self._last_snapshot = float("-inf")
        #: Messages and bytes sent so far (tests and benchmarks read these).
        self.messages = 0
        self.bytes = 0

    # life cycle --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the publisher thread is alive (and sends for this publisher)."""
        if self.shared is not None:
            return self.shared.serves(self)
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, snapshot: bool = True, thread: bool = True) -> dict[str, Any] | None:
        """Subscribe to the engine and (unless ``thread`` is False) start the thread.

        With ``snapshot`` the full table is built now and returned (seq 0, for the widget's
        initial state) and only changes are sent afterwards; without, the thread's first message
        is a snapshot (a restart after :meth:`stop`). A widget passes ``thread=False`` and calls
        :meth:`start_thread` once its comm is open: events in between wait in the dirty set,
        where a message sent before the comm existed would be lost.
        """
        if self._unsubscribe is not None:
            msg = "publisher already started"
            raise RuntimeError(msg)
        self._stopping.clear()
        # Subscribe before reading the jobs: an event in between only makes a row dirty twice.
        # snapshots=True: a change comes as the snapshot the engine took once for the history
        # and every view, not as a job each publisher would snapshot again.
        self._unsubscribe = self._engine.subscribe(self._on_event, snapshots=True)
        init = None
        try:
            if snapshot:
                init = self._snapshot()
            else:
                self.request_sync()
        except BaseException:
            self._unsubscribe()
            self._unsubscribe = None
            raise
        if thread:
            self.start_thread()
        return init

    def start_thread(self) -> None:
        """Start sending (see :meth:`start`)."""
        if self.shared is not None:
            self.shared.add(self)
            return
        if self._thread is not None:
            msg = "publisher thread already started"
            raise RuntimeError(msg)
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Unsubscribe and stop the thread; idempotent, and :meth:`start` may be called again."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.shared is not None:
            self.shared.remove(self, timeout)
        thread = self._thread
        self._stopping.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():  # pragma: no cover - a send blocked for `timeout` seconds
                logger.warning("jupyter_executor: publisher thread did not stop in %s s", timeout)
        self._thread = None
        with self._lock:
            self._urgent.clear()
            self._lazy.clear()
        # What the browser has is unknown after a stop: the next start sends a snapshot.
        self._sent = {}

    # inputs -------------------------------------------------------------------------------------
    def _follows(self, job: Job | JobSnapshot) -> bool:
        return True

    def _on_event(self, event: str, job: Job | JobSnapshot) -> None:
        # Runs in engine threads, maybe under the engine's lock: record and wake, nothing else.
        # A job or the snapshot of its change: either way only its name is kept, and the row is
        # built from the job's state when it is sent (the changes of an interval make one row,
        # and output, which comes without a snapshot, is as fresh as the status).
        if not self._follows(job):
            return
        name = str(job.name)
        with self._lock:
            if event in URGENT_EVENTS:
                self._lazy.pop(name, None)
                self._urgent[name] = job
            elif name not in self._urgent:
                self._lazy[name] = job
        self._poke()

    def _poke(self) -> None:
        # Something is waiting to be sent: wake the thread that sends for this publisher.
        if self.shared is not None:
            self.shared.wake(self)
        else:
            self._wake.set()

    def request_sync(self) -> None:
        """Send a full snapshot next (a view found a gap, or the publisher restarted)."""
        with self._lock:
            self._sync = True
        self._poke()

    def set_detail(self, view: str, name: str, open_: bool) -> None:
        """Show (or stop showing) the output tail and traceback of a row in one view."""
        with self._lock:
            names = self._detail_by_view.setdefault(view, set())
            if open_:
                names.add(name)
            else:
                names.discard(name)
            self._refresh_detail()
        self._mark(name)

    def drop_view(self, view: str) -> None:
        """Forget the open rows of a view that went away."""
        with self._lock:
            self._detail_by_view.pop(view, None)
            self._refresh_detail()

    def _refresh_detail(self) -> None:
        self._detail = frozenset().union(*self._detail_by_view.values())

    def _mark(self, name: str) -> None:
        job = self._lookup(name)
        if job is None:
            return
        with self._lock:
            self._lazy.pop(name, None)
            self._urgent[name] = job
        self._poke()

    # rows ---------------------------------------------------------------------------------------
    def _lookup(self, name: str) -> Job | None:
        return self._engine.jobs.get(name)

    def _all_jobs(self) -> list[Job]:
        return list(self._engine)

    def _row(self, job: Job, detail: bool) -> dict[str, Any]:
        snap = snapshot_of(job)
        info = snap.info_dict()
        if detail:
            row = table_row(_view_info(snap, info), tail=job.tail(TAIL_LINES), traceback=True)
        else:
            row = table_row(info)
        # The dashboard, like a job view, sends the browser notification of a job that asked
        # for one (js/notify.js): a job may have no view, or its view may be scrolled away.
        row["notify"] = _notifies(job)
        return row

    def _all_rows(self) -> dict[str, dict[str, Any]]:
        detail = self._detail
        rows = {}
        for job in self._all_jobs():
            row = self._row(job, str(job.name) in detail)
            rows[row["name"]] = row
        return rows

    def _lookup_row(self, name: str) -> dict[str, Any] | None:
        """Hook: the row of a name that is no job of the engine (None: the row is removed)."""
        return None

    def _snapshot(self) -> dict[str, Any]:
        rows = self._all_rows()
        self._sent = rows
        msg = encode_snapshot(rows.values(), seq=self._seq)
        self._extend_snapshot(msg)
        return msg

    def peek_snapshot(self) -> dict[str, Any]:
        """A snapshot of the current state that changes nothing of what the thread tracks
        (safe from any thread): what a saved notebook stores as the widget's state."""
        msg = encode_snapshot(self._all_rows().values(), seq=self._seq)
        self._peek_extend(msg)
        return msg

    def _peek_extend(self, msg: dict[str, Any]) -> None:
        """Hook: add to a peeked snapshot."""

    def _extend_snapshot(self, msg: dict[str, Any]) -> None:
        """Hook: add to a snapshot (the job view adds its displays)."""

    def _extend_patch(self, msg: dict[str, Any]) -> bool:
        """Hook: add to a patch; return True when something was added."""
        return False

    # the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        last = float("-inf")
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            delay = last + self.interval - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return
            if self.pacer is not None:
                # Shared by all job views: wait for a slot; events keep coalescing meanwhile.
                delay = self.pacer.reserve()
                if delay > 0 and self._stopping.wait(delay):
                    return
            # Clear before taking the dirty set: an event during the build wakes us again.
            self._wake.clear()
            try:
                msg, more = self._next_message()
                if msg is not None:
                    self._deliver(msg)
                    last = time.monotonic()
            except Exception:
                logger.exception("jupyter_executor: publisher failed to build an update")
                # The dirty rows it had taken are lost: resend everything, after a pause so a
                # persistent error cannot turn into a snapshot every 100 ms.
                if self._stopping.wait(1.0):
                    return
                self.request_sync()
                more = False
                last = time.monotonic()
            if more:
                self._wake.set()

    def _send_next(self) -> bool:
        """Build and send the next message, if there is one (what a shared thread does for this
        publisher); return True when more is waiting."""
        msg, more = self._next_message()
        if msg is not None:
            self._deliver(msg)
        return more

    def _deliver(self, msg: dict[str, Any]) -> None:
        if msg["k"] == "snap":
            buffer = pack(msg)
            self._send({"k": "snap", "packed": True}, [buffer])
            size = len(buffer)
        else:
            try:
                size = len(_dumps(msg).encode())
            except UnicodeEncodeError:
                msg = safe_json(msg)  # text with lone surrogates, made safe (see _text)
                size = len(_dumps(msg).encode())
            self._send(msg, None)
        self.messages += 1
        self.bytes += size

    def _next_message(self) -> tuple[dict[str, Any] | None, bool]:
        """The next message to send (None: nothing now), and whether more is waiting."""
        if self._sync and time.monotonic() - self._last_snapshot < SNAPSHOT_EVERY:
            # Snapshots are big (1.5 MB for 10,000 jobs): however often views ask, at most one
            # per SNAPSHOT_EVERY seconds. Diffs wait too: the snapshot will carry them.
            return None, True
        sync, urgent, lazy = self._take_dirty()
        if sync:
            self._seq += 1
            self._last_snapshot = time.monotonic()
            return self._snapshot(), False
        pending = [*urgent.items(), *lazy.items()]
        rows, removed, done = self._diffs(pending)
        leftover = pending[done:]
        if leftover:
            self._put_back(leftover, urgent)
        msg: dict[str, Any] = {"k": "patch", "seq": self._seq + 1, "t": round(time.time(), 3)}
        if rows:
            msg["rows"] = rows
        if removed:
            msg["removed"] = removed
        extended = self._extend_patch(msg)
        if not rows and not removed and not extended:
            return None, bool(leftover)
        self._seq += 1
        return msg, bool(leftover)

    def _take_dirty(
        self,
    ) -> tuple[bool, dict[str, Job | JobSnapshot], dict[str, Job | JobSnapshot]]:
        """Take whether a snapshot was asked for and the dirty rows (a snapshot drops them)."""
        with self._lock:
            sync, self._sync = self._sync, False
            if sync:
                self._urgent.clear()
                self._lazy.clear()
            urgent, self._urgent = self._urgent, {}
            lazy, self._lazy = self._lazy, {}
        return sync, urgent, lazy

    def _diffs(
        self, pending: list[tuple[str, Job | JobSnapshot]]
    ) -> tuple[list[dict[str, Any]], list[str], int]:
        """The changed fields of the ``pending`` rows that fit the byte budget (at least one
        row), the names removed, and how many of ``pending`` were handled."""
        detail = self._detail
        rows: list[dict[str, Any]] = []
        removed: list[str] = []
        budget = self.max_bytes
        done = 0
        for name, _job in pending:
            current = self._lookup(name)
            new = self._lookup_row(name) if current is None else self._row(current, name in detail)
            if new is None:
                if self._sent.pop(name, None) is not None:
                    removed.append(name)
                    budget -= len(name) + 3
                done += 1
                continue
            diff = _diff(self._sent.get(name), new)
            if diff is not None:
                size = _size(diff)
                if rows and size > budget:
                    break
                rows.append(diff)
                budget -= size
                self._sent[name] = new
            done += 1
        return rows, removed, done

    def _put_back(
        self, leftover: list[tuple[str, Job | JobSnapshot]], urgent: dict[str, Job | JobSnapshot]
    ) -> None:
        """Put back what did not fit, ahead of what arrived meanwhile (oldest first)."""
        left_urgent = {n: j for n, j in leftover if n in urgent}
        left_lazy = {n: j for n, j in leftover if n not in urgent}
        with self._lock:
            newer_urgent, newer_lazy = self._urgent, self._lazy
            self._urgent = {**left_urgent, **newer_urgent}
            self._lazy = {
                n: j for n, j in {**left_lazy, **newer_lazy}.items() if n not in self._urgent
            }


def _diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of ``new`` that differ from ``old`` (all of them for a new row), or None.

    A field ``old`` had and ``new`` lacks is sent as None (a job of this kernel taking the name
    of an earlier kernel's row must lose its ``earlier`` mark in the browser).
    """
    if old is None:
        return new
    changed = {k: v for k, v in new.items() if old.get(k, _MISSING) != v}
    changed.update({k: None for k, v in old.items() if k not in new and v is not None})
    if not changed:
        return None
    changed["name"] = new["name"]
    return changed


def earlier_row(run: dict[str, Any]) -> dict[str, Any]:
    """The table row of a run recorded by an earlier kernel (a row of ``HistoryStore.history``).

    It carries ``earlier`` (the engine id that ran it) and its final or last known status; its
    duration never ticks (``js/format.js`` ``durationOf``) and its only action is "log".
    """
    info = {
        "name": run["name"],
        "status": run["status"],
        "backend": run.get("backend"),
        "description": run.get("description"),
        "requires": list(run.get("requires") or []),
        "submitted": run.get("submitted"),
        "started": run.get("started"),
        "finished": run.get("finished"),
        "duration": run.get("duration"),
        "attempts": run.get("attempt"),
        "result": run.get("result"),
        "error": run.get("error"),
        "cancel_reason": run.get("cancel_reason"),
        "last_line": None,
    }
    row = table_row(info)
    row["duration"] = run.get("duration")  # table_row drops it for "running": not live here
    row["earlier"] = run.get("engine_id") or "?"
    return row


class DashboardPublisher(Publisher):
    """Every job of the engine, as table rows, then the last run of each job that only earlier
    kernels ran in the engine's folder (its history)."""

    thread_name = "jupyter-executor-dashboard"
    #: Most rows of earlier kernels' runs shown (the latest ones).
    EARLIER_ROWS = 2_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # name -> last run of an earlier kernel (its history row), read at each snapshot
        self.earlier: dict[str, dict[str, Any]] = {}

    def _read_earlier(self) -> dict[str, dict[str, Any]]:
        store = getattr(self._engine, "_store", None)
        if store is None:
            return {}
        try:
            # The last run of each name of another engine, the latest names only: picked by
            # SQLite (reading the whole history at each snapshot took seconds at 100k runs).
            runs = store.last_runs(self.EARLIER_ROWS, other_than=self._engine.id)
        except Exception:  # a history that cannot be read must not cost the dashboard
            logger.warning("jupyter_executor: cannot read the history", exc_info=True)
            return {}
        return {run["name"]: run for run in runs}

    def _snapshot(self) -> dict[str, Any]:
        self.earlier = self._read_earlier()
        return super()._snapshot()

    def _all_rows(self) -> dict[str, dict[str, Any]]:
        rows = super()._all_rows()
        for name, run in self.earlier.items():
            if name not in rows:
                rows[name] = earlier_row(run)
        return rows

    def _lookup_row(self, name: str) -> dict[str, Any] | None:
        run = self.earlier.get(name)
        return earlier_row(run) if run is not None else None


class JobPublisher(Publisher):
    """One job, always with its output tail, traceback and displays (the ``%%job`` view)."""

    thread_name = "jupyter-executor-jobview"
    pacer = JOB_VIEWS_PACER
    shared = JOB_VIEWS_THREAD

    def __init__(
        self,
        engine: Engine,
        job: Job,
        send: Callable[[dict[str, Any], list[bytes] | None], None],
        *,
        interval: float = 0.2,
        max_bytes: int = 64_000,
    ) -> None:
        super().__init__(engine, send, interval=interval, max_bytes=max_bytes)
        self._job = job
        self._key = snapshot_of(job).key
        # The display tuples the browser has, kept (not their ids) so identity stays meaningful.
        self._sent_displays: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def _follows(self, job: Job | JobSnapshot) -> bool:
        if type(job) is JobSnapshot:
            return job.key == self._key
        return job is self._job

    def _lookup(self, name: str) -> Job | None:
        # The view keeps showing its job even after the engine forgot it.
        return self._job if name == str(self._job.name) else None

    def _all_jobs(self) -> list[Job]:
        return [self._job]

    def _row(self, job: Job, detail: bool) -> dict[str, Any]:
        snap = snapshot_of(job)
        info = _view_info(snap, snap.info_dict())
        row = table_row(info, tail=job.tail(TAIL_LINES), traceback=True)
        # The view sends the browser notification when the job ends (js/notify.js); a field of
        # the view's row only, not of JobInfo (engine.list() keeps its columns).
        row["notify"] = _notifies(job)
        return row

    def _current_displays(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        out = self._job.runstate.output  # created lazily: do not create one just to look
        return out.displays if out is not None else []

    def _peek_extend(self, msg: dict[str, Any]) -> None:
        msg["displays"] = [_display(d) for d in self._current_displays()]

    def _extend_snapshot(self, msg: dict[str, Any]) -> None:
        current = self._current_displays()
        self._sent_displays = current
        msg["displays"] = [_display(d) for d in current]

    def _extend_patch(self, msg: dict[str, Any]) -> bool:
        current = self._current_displays()
        sent = self._sent_displays
        if len(current) == len(sent) and all(a is b for a, b in zip(current, sent, strict=True)):
            return False
        # Displays are appended and the oldest dropped (a bounded deque): find where the
        # browser's list starts in the current one.
        drop = len(sent)
        if current:
            for i, d in enumerate(sent):
                if d is current[0]:
                    drop = i
                    break
        kept = sent[drop:]
        if all(a is b for a, b in zip(kept, current, strict=False)) and len(kept) <= len(current):
            msg["displays"] = {"drop": drop, "add": [_display(d) for d in current[len(kept) :]]}
        else:  # a rerun starts a new output
            msg["displays"] = {"reset": [_display(d) for d in current]}
        self._sent_displays = current
        return True


def _notifies(job: Job) -> bool:
    """Whether ``job`` asked to be told of its end, itself or through its engine's default."""
    if job.notify is not None:
        return job.notify
    engine = job.engine
    return bool(engine is not None and engine.notify)


def _view_info(snap: JobSnapshot, info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with the traceback the views show: coloured when a formatter made one (the
    views render ANSI; ``job.traceback``, the list and the log keep the plain text)."""
    coloured = snap.traceback_ansi
    if coloured and info.get("traceback"):
        info["traceback"] = coloured
    return info


def _display(item: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    data, metadata = item
    shown = {m: data[m] for m in DISPLAY_MIMES if isinstance(data.get(m), str)}
    widget = data.get(WIDGET_MIME)
    if isinstance(widget, dict) and isinstance(widget.get("model_id"), str):
        # A widget the job displayed (tqdm.auto's bar): the view draws the kernel's model, live
        # (js/mime.js); the text stands in where it cannot.
        shown[WIDGET_MIME] = {"model_id": widget["model_id"]}
    if not shown:
        shown = {"text/plain": f"<display of {', '.join(sorted(data)) or 'nothing'}>"}
    meta = {m: metadata[m] for m in shown if isinstance(metadata.get(m), dict)}
    if meta:
        meta = _json_metadata(meta)
    out = {"data": shown, "metadata": meta}
    size = _size(out)
    if size > MAX_DISPLAY_BYTES:
        text = data.get("text/plain")
        note = f"<display of {size:,} bytes not sent to the browser>"
        plain = text if isinstance(text, str) and len(text) < 10_000 else note
        out = {"data": {"text/plain": plain}, "metadata": {}}
    return out


def _json_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` as plain JSON data, or ``{}`` when JSON cannot hold it.

    A job displays what it likes: metadata with tuple keys, a NaN (which the browser's
    ``JSON.parse`` refuses), a cycle or an object whose ``__str__`` raises would otherwise fail
    every message of the view, for ever (the display stays in the job's output).
    """
    try:
        plain: dict[str, Any] = json.loads(json.dumps(meta, default=str, allow_nan=False))
    except Exception:
        logger.warning("jupyter_executor: display metadata dropped: JSON cannot hold it")
        return {}
    return plain
