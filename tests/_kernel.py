"""A real ipykernel for tests, driven through ``jupyter_client``.

Why not ``execute_interactive`` or nbclient: both stop listening to a cell at its ``idle``
status, and a background job's messages arrive after that. Here ONE reader thread owns the
iopub socket for the kernel's whole life and files every message under its parent msg_id,
so a test can ask afterwards "what did the kernel send, parented to which cell".

Recipe and pitfalls (docs/kernel-notes.md §5):

- ``PYTEST_CURRENT_TEST`` is removed from the kernel's environment, otherwise ipykernel stops
  capturing low-level output;
- each kernel gets its own ``IPYTHONDIR``, connection file, runtime dir and cwd under a temp
  dir, so nothing is written to the home directory;
- the repository root is put first on the kernel's ``PYTHONPATH`` so the kernel imports the
  working copy of ``jupyter_executor``;
- shutdown is deterministic: channels stopped, kernel asked to shut down (killed after a grace
  period), then every process the kernel had started (jobs may start theirs in a new session,
  which survives the kernel) is killed.

Examples
--------
>>> with running_kernel(tmp_path) as k:                      # doctest: +SKIP
...     ex = k.execute("print(1 + 1)")
...     assert ex.stdout == "2\\n"
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from jupyter_client import KernelManager

REPO = Path(__file__).resolve().parent.parent

Message = dict[str, Any]


class KernelError(AssertionError):
    """A cell raised in the kernel although the test did not expect it."""


@dataclass
class Execution:
    """One ``execute_request`` and everything the kernel sent parented to it (so far)."""

    kernel: Kernel
    msg_id: str
    code: str
    reply: Message | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[Message]:
        """Every iopub message parented to this request, in arrival order."""
        return self.kernel.messages(self.msg_id)

    def streams(self, name: str | None = None) -> str:
        """Concatenated ``stream`` text (``name`` = "stdout" or "stderr", or both)."""
        return "".join(
            m["content"]["text"]
            for m in self.messages
            if m["msg_type"] == "stream" and (name is None or m["content"]["name"] == name)
        )

    @property
    def stdout(self) -> str:
        return self.streams("stdout")

    @property
    def stderr(self) -> str:
        return self.streams("stderr")

    @property
    def outputs(self) -> list[Message]:
        """``display_data``, ``execute_result``, ``update_display_data`` and ``error`` messages."""
        kinds = {"display_data", "execute_result", "update_display_data", "error"}
        return [m for m in self.messages if m["msg_type"] in kinds]

    @property
    def result(self) -> str | None:
        """``text/plain`` of the cell's ``execute_result``, if any."""
        for m in self.messages:
            if m["msg_type"] == "execute_result":
                return str(m["content"]["data"].get("text/plain"))
        return None

    @property
    def error(self) -> Message | None:
        """The ``error`` message of the cell, if it raised."""
        for m in self.messages:
            if m["msg_type"] == "error":
                return m
        return None

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.reply["content"]["status"] == "ok"

    def wait(self, timeout: float = 30) -> Execution:
        """Block until the reply arrived and the kernel went idle for this request."""
        self.kernel.wait_for(lambda: self.done, timeout, what=f"cell {self.code!r} to finish")
        return self

    @property
    def done(self) -> bool:
        return self.reply is not None and self.kernel.went_idle(self.msg_id)


class Kernel:
    """A started kernel with its client and the iopub filing thread. Use :func:`running_kernel`."""

    def __init__(self, root: Path, *, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.cwd = root / "cwd"
        self.cwd.mkdir(parents=True, exist_ok=True)
        kernel_env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        kernel_env.update(
            IPYTHONDIR=str(root / "ipython"),
            JUPYTER_RUNTIME_DIR=str(root / "runtime"),
            JUPYTER_DATA_DIR=str(root / "data"),
            JUPYTER_CONFIG_DIR=str(root / "config"),
            PYTHONPATH=os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
            # the kernel's matplotlib (if any) must not try to open windows
            MPLBACKEND="module://matplotlib_inline.backend_inline",
        )
        kernel_env.update(env or {})
        self.km = KernelManager(kernel_name="python3", connection_file=str(root / "kernel.json"))
        self.km.shutdown_wait_time = 5.0
        self._env = kernel_env
        self._lock = threading.Condition()
        self._by_parent: dict[str, list[Message]] = defaultdict(list)
        self._all: list[Message] = []
        self._count = 0
        self._idle: set[str] = set()
        self._replies: dict[str, Message] = {}
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._executions: dict[str, Execution] = {}
        # psutil.Process objects remember their start time: a recycled pid is never killed
        self._procs: dict[int, psutil.Process] = {}
        self._killed = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        self.km.start_kernel(cwd=str(self.cwd), env=self._env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=timeout)
        self._reader = threading.Thread(target=self._read_iopub, name="test-iopub", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        provisioner = self.km.provisioner
        assert provisioner is not None
        return int(provisioner.pid)  # type: ignore[attr-defined]

    def children(self) -> list[psutil.Process]:
        """The kernel's live descendant processes (and remembers them for shutdown)."""
        if self._killed:
            return []  # its pid may belong to another process by now
        try:
            procs = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for proc in procs:
            self._procs.setdefault(proc.pid, proc)
        return procs

    def shutdown(self, *, kill_children: bool = True) -> None:
        """Stop the kernel and everything it started. Idempotent.

        ``kill_children=False`` leaves the kernel's processes to the kernel's own shutdown:
        for a test whose jobs must outlive their kernel (detached jobs); the test then owns
        their cleanup.
        """
        if self._stop.is_set():
            return
        self.children()  # remember them: after the kernel dies they are re-parented to init
        self._stop.set()
        if self._reader is not None:
            self._reader.join(5)
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            if self.km.is_alive():  # a killed kernel cannot answer a shutdown request
                self.km.shutdown_kernel(now=False)
        with contextlib.suppress(Exception):
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        if kill_children:
            kill_processes(self._procs.values())

    def kill(self, timeout: float = 10) -> None:
        """SIGKILL the kernel process alone, as a crash or the OOM killer would.

        No code runs in the kernel any more (no atexit, no engine shutdown); its child
        processes are not touched here (what becomes of them is what such a test checks), but
        they are remembered, so that :meth:`shutdown` still kills them afterwards.
        """
        self.children()
        os.kill(self.pid, signal.SIGKILL)
        self._killed = True
        provisioner = self.km.provisioner
        process = getattr(provisioner, "process", None)
        if process is not None:
            process.wait(timeout)  # reap it (it is our child)
        else:  # pragma: no cover - another provisioner
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(self.pid).wait(timeout)

    # -- the readers -----------------------------------------------------------------------

    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.iopub_channel.get_msg(timeout=0.1)
            except queue.Empty:
                continue
            except Exception:  # the socket is closed during shutdown
                if self._stop.is_set():
                    return
                raise
            parent = msg.get("parent_header", {}).get("msg_id", "")
            with self._lock:
                self._all.append(msg)
                self._count += 1
                self._by_parent[parent].append(msg)
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    self._idle.add(parent)
                self._lock.notify_all()

    def _pump_shell(self) -> None:
        # zmq sockets are not thread-safe: the shell socket is only touched by the test's
        # thread (sending in submit(), receiving here), never by the iopub reader.
        while True:
            try:
                msg = self.kc.shell_channel.get_msg(timeout=0)
            except queue.Empty:
                return
            parent = msg.get("parent_header", {}).get("msg_id", "")
            with self._lock:
                self._replies[parent] = msg
                ex = self._executions.get(parent)
                if ex is not None:
                    ex.reply = msg

    # -- querying --------------------------------------------------------------------------

    def messages(self, parent: str | None = None) -> list[Message]:
        """iopub messages parented to ``parent`` (all of them when None), in arrival order."""
        with self._lock:
            return list(self._all if parent is None else self._by_parent.get(parent, ()))

    def went_idle(self, parent: str) -> bool:
        with self._lock:
            return parent in self._idle

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 30, *, what: str = "condition"
    ) -> Any:
        """Return the first truthy ``predicate()``, re-checked on every message (or every 0.1 s).

        Raises ``TimeoutError`` naming ``what`` when ``timeout`` passes first.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._count
            self._pump_shell()
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"timed out after {timeout} s waiting for {what}"
                raise TimeoutError(msg)
            with self._lock:
                if self._count == seen:
                    # a message wakes us up; the cap covers shell replies and other state
                    self._lock.wait(min(remaining, 0.05))

    # -- executing -------------------------------------------------------------------------

    def submit(self, code: str) -> Execution:
        """Send ``code`` for execution and return at once."""
        msg_id = self.kc.execute(code, stop_on_error=False, allow_stdin=False)
        ex = Execution(self, msg_id, code)
        with self._lock:
            self._executions[msg_id] = ex
        return ex

    def execute(self, code: str, *, timeout: float = 30, allow_error: bool = False) -> Execution:
        """Execute ``code``, wait for reply and idle; raise :class:`KernelError` if it failed."""
        ex = self.submit(code).wait(timeout)
        if not allow_error and not ex.ok:
            err = ex.error
            if err is not None:
                detail = "\n".join(err["content"]["traceback"])
            else:
                detail = str(ex.reply and ex.reply["content"])
            msg = f"cell failed: {code!r}\n{detail}"
            raise KernelError(msg)
        return ex

    def eval(self, expr: str, *, timeout: float = 30) -> str:
        """The ``text/plain`` repr of ``expr`` evaluated in the kernel."""
        ex = self.execute(expr, timeout=timeout)
        result = ex.result
        if result is None:
            msg = f"{expr!r} produced no result"
            raise KernelError(msg)
        return result

    def interrupt(self) -> None:
        self.km.interrupt_kernel()


def kill_processes(procs: Iterable[psutil.Process]) -> None:
    """Kill the given processes if still alive (never a recycled pid) and reap them."""
    killed = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()  # psutil checks the start time: a reused pid raises NoSuchProcess
            killed.append(proc)
    psutil.wait_procs(killed, timeout=5)


@contextlib.contextmanager
def running_kernel(root: Path, *, env: dict[str, str] | None = None) -> Iterator[Kernel]:
    """Start a kernel under ``root`` and shut it (and its children) down on exit."""
    kernel = Kernel(root, env=env)
    try:
        kernel.start()
        yield kernel
    finally:
        kernel.shutdown()


# -- notebooks run whole (nbclient, nbconvert) -------------------------------------------------

#: The first cells of a test notebook: the extension, and the engine in ``runs/`` beside it.
SETUP_CELLS = [
    "%load_ext jupyter_executor",
    "from jupyter_executor import get_engine\nengine = get_engine(folder='runs')",
]


def notebook_of(cells: Iterable[str]) -> Any:
    """A notebook (nbformat 4) with one code cell per source in ``cells``."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return notebook
