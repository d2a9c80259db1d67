"""A notebook's ``%%job`` cells as a flow, run headless: ``jupyter-executor run NB.ipynb``.

In one new kernel (nbclient), in the notebook's folder:

1. ``%load_ext jupyter_executor`` (and the engine's options, when the command gave some);
2. every plain code cell, in notebook order (a failing one stops the run);
3. every ``%%job`` cell, ordered so that each comes after the jobs its ``--requires`` names
   (so a cell may require a job defined further down), each submitting its job;
4. a watcher in the kernel reports each job's status changes to this process, one JSON line
   at a time, until every job that is waited for has finished; then the engine shuts down.

Ctrl-C (or SIGTERM) interrupts the kernel, shuts its engine down (cancelling the jobs and
stopping their processes) and then the kernel.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import heapq
import json
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from .errors import NotebookError

__all__ = ["JobCell", "job_cells", "order_job_cells", "run_notebook"]

_T = TypeVar("_T")

#: Lines the watcher prints start with this, so that other output is told apart.
_MARK = "@@jupyter-executor "

#: %%job options that take one value (the magics' parser); --requires takes several.
_VALUED = {
    "--name", "--backend", "--retries", "--timeout", "--env", "--cwd", "--every", "--cron",
    "--start", "--restart", "--restart-delay", "--max-restarts",
}  # fmt: skip
_MULTI = {"--inputs", "--outputs"}  # several values each, like --requires

_WATCH = r"""
def _jupyter_executor_watch():
    import json, queue, sys, threading
    from jupyter_executor import get_engine
    engine = get_engine()
    changes = queue.SimpleQueue()

    def on_event(event, job):
        if event == "status":
            changes.put(job)

    def emit(job):
        info = job.info()
        print(MARK + json.dumps({
            "name": info.name, "status": info.status, "duration": info.duration,
            "error": info.error, "attempts": info.attempts, "cancel_reason": info.cancel_reason,
        }), flush=True)

    unsubscribe = engine.subscribe(on_event)
    done = threading.Thread(target=lambda: (engine.wait(), changes.put(None)), daemon=True)
    done.start()
    try:
        for job in list(engine.jobs.values()):
            emit(job)
        while (job := changes.get()) is not None:
            emit(job)
    finally:
        unsubscribe()

def _jupyter_executor_summary():
    import json
    from jupyter_executor import get_engine
    failed = []
    jobs = list(get_engine().jobs.values())
    for job in jobs:
        if job.status.value == "failed":
            failed.append({"name": job.name, "error": job.info().error, "tail": job.tail(TAIL),
                           "traceback": job.traceback, "log": str(job.log_path)})
    return json.dumps({"summary": {job.name: job.status.value for job in jobs}, "failed": failed})

_jupyter_executor_watch()
"""

_SHUTDOWN = "from jupyter_executor import get_engine as _ge; _ge().shutdown(); del _ge"


@dataclass(frozen=True)
class JobCell:
    """A ``%%job`` cell of a notebook: where it is, its job's name and requirements."""

    index: int
    name: str | None
    requires: tuple[str, ...]
    source: str


def job_cells(cells: list[Any]) -> tuple[list[int], list[JobCell]]:
    r"""Split a notebook's cells: the indices of plain code cells, and the ``%%job`` cells.

    Examples
    --------
    >>> import nbformat.v4 as v4
    >>> cells = [v4.new_code_cell("x = 1"), v4.new_markdown_cell("# hi"),
    ...          v4.new_code_cell("%%job b --requires a\ny = x"), v4.new_code_cell("%%job a\nx")]
    >>> plain, jobs = job_cells(cells)
    >>> plain, [(c.index, c.name, c.requires) for c in jobs]
    ([0], [(2, 'b', ('a',)), (3, 'a', ())])
    """
    plain: list[int] = []
    jobs: list[JobCell] = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        first = next((line for line in source.splitlines() if line.strip()), "")
        stripped = first.strip()
        if stripped == "%%job" or stripped.startswith(("%%job ", "%%job\t")):
            name, requires = _parse_job_line(stripped[len("%%job") :])
            jobs.append(JobCell(index, name, requires, source))
        elif source.strip():
            plain.append(index)
    return plain, jobs


def _parse_job_line(line: str) -> tuple[str | None, tuple[str, ...]]:
    """The job name and ``--requires`` of a ``%%job`` line (what ordering needs, no more)."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None, ()  # the magic will report the bad line when the cell runs
    name: str | None = None
    requires: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            name = token if name is None else name
            i += 1
            continue
        option = token.partition("=")[0]
        values, i = _option_values(tokens, i)
        if option == "--requires":
            for item in values:
                requires.extend(part.strip() for part in item.split(",") if part.strip())
        elif option == "--name":
            name = values[0] if values else None
    return name, tuple(dict.fromkeys(requires))


def _option_values(tokens: list[str], i: int) -> tuple[list[str], int]:
    """The values of the option ``tokens[i]``, and the index of the token after them."""
    option, equals, value = tokens[i].partition("=")
    if equals:
        return [value], i + 1
    if option == "--requires" or option in _MULTI:
        end = i + 1
        while end < len(tokens) and not tokens[end].startswith("--"):
            end += 1
        return tokens[i + 1 : end], end
    if option == "--name" or option in _VALUED:
        return tokens[i + 1 : i + 2], i + 2
    return [], i + 1  # a flag


def order_job_cells(cells: list[JobCell]) -> list[JobCell]:
    """The cells in an order where each comes after the named jobs it requires.

    Notebook order is kept where the requirements allow it; requirements naming no cell of
    the notebook, and cycles, are left for the engine to report when the cell runs.

    Examples
    --------
    >>> a, b, c = JobCell(1, "a", ("c",), ""), JobCell(2, "b", (), ""), JobCell(3, "c", (), "")
    >>> [cell.name for cell in order_job_cells([a, b, c])]
    ['b', 'c', 'a']
    """
    by_name = {cell.name: cell for cell in cells if cell.name}
    # Kahn's order, by notebook position: linear in cells and edges (the first ready cell was
    # searched for again after each placed one: 2.3 s for 5,000 cells).
    unmet: list[int] = []
    waiting: dict[int, list[int]] = {}  # a cell's index -> the positions of the cells it holds
    for pos, cell in enumerate(cells):
        deps = {by_name[r].index for r in cell.requires if r in by_name}
        unmet.append(len(deps))
        for dep in deps:
            waiting.setdefault(dep, []).append(pos)
    ready = [pos for pos, count in enumerate(unmet) if count == 0]
    placed: set[int] = set()
    order: list[JobCell] = []

    def mark(cell: JobCell) -> None:
        placed.add(cell.index)
        order.append(cell)
        for pos in waiting.get(cell.index, ()):
            unmet[pos] -= 1
            if unmet[pos] == 0:
                heapq.heappush(ready, pos)

    first = 0  # no cell before this position is left to place
    while len(order) < len(cells):
        while ready and cells[ready[0]].index in placed:
            heapq.heappop(ready)
        if ready:
            mark(cells[heapq.heappop(ready)])
            continue
        while cells[first].index in placed:
            first += 1
        _place_cycle(cells[first], by_name, placed, mark)
    return order


def _place_cycle(
    root: JobCell,
    by_name: dict[str, JobCell],
    placed: set[int],
    mark: Callable[[JobCell], None],
) -> None:
    """Place ``root``, part of a cycle, after what it requires, depth first; a requirement met
    again on the way closes the cycle and is left for the engine to report. A loop, not a
    recursion: a cycle of thousands of cells would pass Python's recursion limit."""
    visiting = {root.index}
    stack = [(root, iter(root.requires))]
    while stack:
        cell, requires = stack[-1]
        for name in requires:
            dep = by_name.get(name)
            if dep is not None and dep.index not in placed and dep.index not in visiting:
                visiting.add(dep.index)
                stack.append((dep, iter(dep.requires)))
                break
        else:
            stack.pop()
            visiting.discard(cell.index)
            if cell.index not in placed:
                mark(cell)


class _Stop(Exception):
    """Ctrl-C / SIGTERM / timeout: stop the run; ``code`` is the exit code."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


def run_notebook(
    path: str | Path,
    *,
    folder: str | Path | None = None,
    max_jobs: int | None = None,
    resume: bool = False,
    force: bool = False,
    timeout: float | None = None,
    kernel_name: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Run a notebook's ``%%job`` cells as a flow in a new kernel; return an exit code.

    Parameters
    ----------
    path
        The ``.ipynb`` file. The kernel runs in its folder.
    folder, max_jobs, resume, force
        Engine options; when one is given the kernel's engine is created with them before the
        notebook's cells run (the notebook must not create its engine with other options).
    timeout
        Seconds the whole run may take; then it is stopped like Ctrl-C (exit code 1).
    kernel_name
        The kernel to start (default: the notebook's, else ``python3``).
    out
        Where status lines go (default stdout); errors and log tails go to stderr.

    Returns
    -------
    int
        0 when every job succeeded, 1 when a cell or a job failed (its log tail is printed),
        130 on Ctrl-C, 143 on SIGTERM.
    """
    import nbformat

    out = out if out is not None else sys.stdout
    file = Path(path).resolve()
    # Through a typed name: nbformat.read is untyped, and without the cli extra installed
    # mypy sees nbformat as Any (an ignore comment would be unused there).
    read: Callable[..., Any] = nbformat.read
    try:
        nb = read(file, as_version=4)
        wrong = _wrong_shape(nb)
        if wrong is not None:
            raise TypeError(wrong)
    except Exception as exc:
        # Empty, truncated, not UTF-8, not JSON, or JSON of another shape: one line, no traceback.
        reason = getattr(exc, "message", None) or str(exc).strip().split("\n")[0]
        msg = f"{path} is not a notebook that can be read: {reason}"
        raise NotebookError(msg) from exc
    options: dict[str, Any] = {}
    if folder is not None:
        options["folder"] = str(Path(folder).resolve())
    if max_jobs is not None:
        options["max_jobs"] = max_jobs
    if resume:
        options["resume"] = True
    if force:
        options["force"] = True
    if kernel_name is None:
        kernel_name = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    runner = _Runner(nb, file, options, kernel_name, out)
    return asyncio.run(runner.run(timeout))


def _wrong_shape(nb: Any) -> str | None:
    """What makes the JSON that nbformat read unusable as a notebook here, if anything.

    nbformat only warns about an invalid notebook; these would fail later with a traceback.
    """
    kernelspec = nb.metadata.get("kernelspec", {})
    if not isinstance(kernelspec, dict) or not isinstance(kernelspec.get("name", ""), str):
        return f"its kernelspec metadata is {kernelspec!r}, not a mapping with a name"
    if not isinstance(nb.cells, list):
        return f"its cells are {type(nb.cells).__name__}, not a list"
    for number, cell in enumerate(nb.cells, 1):
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if not isinstance(source, str) and not (
            isinstance(source, list) and all(isinstance(line, str) for line in source)
        ):
            return f"its cell {number} is not a cell with a text source"
    return None


@dataclass(eq=False)
class _Runner:
    nb: Any
    file: Path
    options: dict[str, Any]
    kernel_name: str
    out: TextIO
    # the run's own state, not given by the caller
    stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    stop_code: int = field(default=0, init=False)
    stop_why: str = field(default="", init=False)
    summary: dict[str, Any] | None = field(default=None, init=False)
    _last: dict[str, str] = field(default_factory=dict, init=False)
    started: float = field(default_factory=time.monotonic, init=False)

    def say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} {text}", file=self.out, flush=True)

    def _on_signal(self, code: int, why: str) -> None:
        if not self.stop.is_set():
            self.stop_code, self.stop_why = code, why
            self.stop.set()

    async def _until_stopped(self, awaitable: Awaitable[_T]) -> _T:
        """Await ``awaitable`` unless a stop request comes first (then raise :class:`_Stop`)."""
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise _Stop(self.stop_code, self.stop_why)

    async def run(self, timeout: float | None) -> int:
        from jupyter_client.kernelspec import NoSuchKernel

        try:
            return await self._run(timeout)
        except NoSuchKernel as exc:
            msg = (
                f"{self.file.name} runs in the kernel {self.kernel_name!r}, which is not "
                "installed here (see: jupyter kernelspec list)"
            )
            raise NotebookError(msg) from exc

    async def _run(self, timeout: float | None) -> int:
        from nbclient import NotebookClient

        client = NotebookClient(
            self.nb,
            kernel_name=self.kernel_name,
            timeout=None,
            allow_errors=False,
            resources={"metadata": {"path": str(self.file.parent)}},
            # The kernel's own warnings (e.g. about TCP on loopback) are noise on a terminal.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            # The kernel's engine is shut down first (jobs cancelled, history written), so the
            # kernel itself can go at once; a graceful kernel shutdown costs seconds.
            shutdown_kernel="immediate",
        )
        plain, jobs = job_cells(self.nb.cells)
        ordered = order_job_cells(jobs)
        self.say(f"{self.file.name}: {len(plain)} plain cell(s), then {len(jobs)} %%job cell(s)")
        loop = asyncio.get_running_loop()
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, self._on_signal, 1, f"timed out after {timeout:g} s")
        try:
            async with client.async_setup_kernel(cwd=str(self.file.parent)):
                # nbclient's own handlers kill the kernel at once, which could orphan the
                # jobs' processes: stop gracefully instead (shut the engine down first).
                for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
                    with contextlib.suppress(RuntimeError, NotImplementedError):
                        loop.add_signal_handler(sig, self._on_signal, code, sig.name)
                try:
                    return await self._run_cells(client, plain, ordered)
                except _Stop as stop:
                    self.say(f"stopping ({stop}): cancelling the jobs")
                    await self._interrupt(client)
                    return stop.code
                finally:
                    await self._shutdown_engine(client)
        finally:
            if timer is not None:
                timer.cancel()

    async def _run_cells(self, client: Any, plain: list[int], ordered: list[JobCell]) -> int:
        from nbclient.exceptions import CellExecutionError

        setup = "%load_ext jupyter_executor\n"
        if self.options:
            args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
            setup += f"from jupyter_executor import get_engine as _ge; _ge({args}); del _ge\n"
        if not await self._execute(client, setup, "setup"):
            return 1
        for index in plain:
            try:
                await self._until_stopped(client.async_execute_cell(self.nb.cells[index], index))
            except CellExecutionError as exc:
                self._cell_failed(index, exc)
                return 1
        for cell in ordered:
            label = cell.name or f"cell {cell.index + 1}"
            try:
                await self._until_stopped(
                    client.async_execute_cell(self.nb.cells[cell.index], cell.index)
                )
            except CellExecutionError as exc:
                self._cell_failed(cell.index, exc)
                return 1
            self.say(f"submitted {label}")
        watch = _WATCH.replace("MARK", repr(_MARK)).replace("TAIL", "20")
        if not await self._execute(client, watch, "watch", hook=self._on_output):
            return 1
        # The summary comes back in the execute reply itself: stream output can arrive after
        # the cell's idle status and be dropped (docs/kernel-notes.md §5), the reply cannot.
        reply = await self._until_stopped(
            client.kc.execute_interactive(
                "pass",
                store_history=False,
                user_expressions={"summary": "_jupyter_executor_summary()"},
            )
        )
        found = reply["content"].get("user_expressions", {}).get("summary", {})
        if found.get("status") != "ok":
            print("--- cannot read the jobs' summary from the kernel ---", file=sys.stderr)
            print(_strip_ansi("\n".join(found.get("traceback", []))), file=sys.stderr)
            return 1
        self.summary = json.loads(ast.literal_eval(found["data"]["text/plain"]))
        return self._report()

    async def _execute(
        self,
        client: Any,
        code: str,
        what: str,
        hook: Callable[[dict[str, Any]], None] | None = None,
    ) -> bool:
        errors: list[dict[str, Any]] = []

        def output(msg: dict[str, Any]) -> None:
            if msg["header"]["msg_type"] == "error":
                errors.append(msg["content"])
            elif hook is not None:
                hook(msg)

        reply = await self._until_stopped(
            client.kc.execute_interactive(code, store_history=False, output_hook=output)
        )
        if reply["content"].get("status") != "ok" or errors:
            content = errors[0] if errors else reply["content"]
            print(f"--- the {what} code failed in the kernel ---", file=sys.stderr)
            print(_strip_ansi("\n".join(content.get("traceback", []))), file=sys.stderr)
            return False
        return True

    def _on_output(self, msg: dict[str, Any]) -> None:
        if msg["header"]["msg_type"] != "stream":
            return
        for line in msg["content"].get("text", "").splitlines():
            if not line.startswith(_MARK):
                continue
            data = json.loads(line[len(_MARK) :])
            if self._last.get(data["name"]) == data["status"]:
                continue  # the first listing and a change can report the same state
            self._last[data["name"]] = data["status"]
            text = f"{data['status']:<9} {data['name']}"
            if data["status"] in ("done", "failed", "cancelled") and data["duration"] is not None:
                text += f"  ({data['duration']:.1f} s)"
            if data["status"] == "failed" and data["error"]:
                text += f"  {data['error']}"
            elif data["status"] == "cancelled" and data["cancel_reason"]:
                text += f"  {data['cancel_reason']}"
            self.say(text)

    def _cell_failed(self, index: int, exc: Exception) -> None:
        print(f"--- cell {index + 1} of {self.file.name} failed ---", file=sys.stderr)
        print(_strip_ansi(str(exc)).strip(), file=sys.stderr)

    def _report(self) -> int:
        elapsed = time.monotonic() - self.started
        summary = self.summary or {"summary": {}, "failed": []}
        statuses: dict[str, str] = summary["summary"]
        for failure in summary["failed"]:
            print(f"--- {failure['name']} failed: {failure['error']} ---", file=sys.stderr)
            tail = (failure.get("tail") or "").rstrip("\n") or (failure.get("traceback") or "")
            if tail:
                print(tail.rstrip("\n"), file=sys.stderr)
            print(f"--- log: {failure['log']} ---", file=sys.stderr)
        counts: dict[str, int] = {}
        for status in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        text = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no jobs"
        bad = counts.get("failed", 0) or counts.get("cancelled", 0)
        verdict = "FAILED" if bad else "done"
        print(f"{self.file.name}: {verdict} in {elapsed:.1f} s ({text})", file=self.out)
        return 1 if bad else 0

    async def _interrupt(self, client: Any) -> None:
        with contextlib.suppress(Exception):
            await client.km.interrupt_kernel()
        # Let the interrupted cell finish before the next request is queued behind it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.kc.execute_interactive("pass", store_history=False), 10)

    async def _shutdown_engine(self, client: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                client.kc.execute_interactive(_SHUTDOWN, store_history=False), 30
            )


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
