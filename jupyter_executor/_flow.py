"""Flows: functions that submit and await jobs, run by name from a file or a notebook.

A flow is scriptflow's idea in our engine: a function (async or not) taking the engine, that
submits jobs and waits for the ones it needs::

    # flows.py
    from jupyter_executor import flow

    @flow
    async def sleepit(engine):
        t1 = engine.submit("python solve.py 1", name="solve-1")
        t2 = engine.submit("python solve.py 2", name="solve-2")
        await engine.gather(t1, t2)          # scriptflow's bag()
        await engine.submit(combine, name="final", requires=[t1, t2])

Run it with ``jupyter-executor run flows.py sleepit``, with ``await sleepit(get_engine())`` in
a notebook, with ``sleepit.run()`` from a script, or in the background with
``sleepit.submit()``. :func:`load_flows` finds the flows of a file: the functions decorated
with :func:`flow`, and (as in scriptflow) the functions named ``flow_NAME``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, overload

from .errors import JupyterExecutorError

if TYPE_CHECKING:
    from .engine import Engine
    from .job import Job

__all__ = ["Flow", "UnknownFlow", "find_flow", "flow", "load_flows", "load_module"]

_PREFIX = "flow_"


class UnknownFlow(JupyterExecutorError, LookupError):
    """No flow of that name in the file; the message lists the flows that exist."""

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


class Flow:
    """A function that submits and awaits jobs, with a name; made by :func:`flow`.

    Attributes
    ----------
    name
        The flow's name (the function's name by default; ``flow_`` removed).
    fn
        The function. It takes the engine as its only argument, or no argument at all (then
        it reaches the engine with ``get_engine()``).
    description
        The first line of the function's docstring.

    Examples
    --------
    >>> from jupyter_executor import Engine, flow
    >>> @flow
    ... async def double(engine):
    ...     '''Double a number in a job.'''
    ...     return await engine.submit(lambda: 2 * 21, name="double")
    >>> double.name, double.description
    ('double', 'Double a number in a job.')
    >>> with Engine() as engine:
    ...     double.run(engine)
    42
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn) or inspect.isclass(fn):
            msg = f"@flow decorates a function, not {fn!r}"
            raise TypeError(msg)
        if name is None:
            name = getattr(fn, "__name__", None) or "flow"
            if name.startswith(_PREFIX) and len(name) > len(_PREFIX):
                name = name[len(_PREFIX) :]
        if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name):
            msg = f"a flow name must be one word, not {name!r}"
            raise ValueError(msg)
        self.fn = fn
        self.name = name
        self.is_async = inspect.iscoroutinefunction(fn)
        self._takes_engine = _takes_an_argument(fn)
        doc = inspect.getdoc(fn) or ""
        self.description = doc.strip().splitlines()[0] if doc.strip() else ""
        functools.update_wrapper(self, fn)

    def __call__(self, engine: Engine | None = None) -> Any:
        """Call the function: a coroutine to ``await`` for an async flow, its result otherwise."""
        if not self._takes_engine:
            return self.fn()
        if engine is None:
            from .engine import get_engine

            engine = get_engine()
        return self.fn(engine)

    def run(self, engine: Engine | None = None) -> Any:
        """Run the flow to its end in this thread; return what it returns.

        An async flow runs in a new event loop; when this thread already runs one (a notebook
        cell), it runs in a helper thread while this one waits, so it still works there (use
        ``await flow(engine)`` in async code to keep the loop free). The jobs themselves run
        in the engine: interrupting the wait (Ctrl-C) stops the flow, not its jobs.
        """
        if not self.is_async:
            return self(engine)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self(engine))
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def main() -> None:
            try:
                result.set_result(asyncio.run(self(engine)))
            except BaseException as exc:  # handed to the waiting thread
                result.set_exception(exc)

        threading.Thread(target=main, name=f"flow-{self.name}", daemon=True).start()
        return result.result()

    def submit(self, engine: Engine | None = None, *, name: str | None = None) -> Job:
        """Run the flow itself as a job of ``engine`` (default ``get_engine()``): returns at once.

        An async flow runs on the engine's loop (``async`` backend), a plain one in a thread.
        The job's result is the flow's return value; its name is ``flow:NAME`` by default.
        """
        from .job import Job

        if engine is None:
            from .engine import get_engine

            engine = get_engine()
        bound = functools.partial(self.__call__, engine)
        if self.is_async:

            async def target() -> Any:
                return await bound()

            target.__qualname__ = f"flow {self.name}"
            job = Job(target, name=name or f"flow:{self.name}", backend="async")
        else:
            job = Job(bound, name=name or f"flow:{self.name}", backend="thread")
        submitted: Job = engine.submit(job)
        return submitted

    def __repr__(self) -> str:
        kind = "async flow" if self.is_async else "flow"
        return f"<{kind} {self.name}>"


@overload
def flow(fn: Callable[..., Any], /) -> Flow: ...


@overload
def flow(
    fn: None = None, /, *, name: str | None = None
) -> Callable[[Callable[..., Any]], Flow]: ...


def flow(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Flow | Callable[[Callable[..., Any]], Flow]:
    """Mark a function as a flow that ``jupyter-executor run FILE NAME`` can run.

    Parameters
    ----------
    fn
        ``async def f(engine)`` or ``def f(engine)`` (or without the argument); ``@flow`` and
        ``@flow(name="other")`` both work.
    name
        The name to run it by (default: the function's name).

    Returns
    -------
    Flow
        Callable like the function (``await sleepit(engine)``), plus ``.run()`` and
        ``.submit()``.

    Examples
    --------
    >>> from jupyter_executor import Engine, flow
    >>> @flow(name="hello")
    ... def say_hello(engine):
    ...     job = engine.submit(print, "hello", name="hello")
    ...     engine.wait_job(job)
    ...     return job.tail()
    >>> with Engine() as engine:
    ...     say_hello.run(engine)
    'hello'
    """
    if fn is not None:
        return Flow(fn, name)
    return lambda function: Flow(function, name)


def load_module(path: str | Path) -> ModuleType:
    """Import a Python file as a module, the way ``python FILE`` would see its neighbours.

    The file's folder goes first on ``sys.path`` (so ``import solve`` next to it works, also
    in worker processes), and the module is registered under the file's stem when that name
    is free, so functions defined there pickle by reference.
    """
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        msg = f"no such file: {path}"
        raise FileNotFoundError(msg)
    if file.suffix != ".py":
        msg = f"flows are defined in a .py file, not {file.name}"
        raise ValueError(msg)
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = file.stem
    existing = sys.modules.get(name)
    renamed = existing is not None and getattr(existing, "__file__", None) != str(file)
    if renamed:
        # the stem is taken by another module (e.g. a file named json.py)
        name = f"_flows_{hashlib.sha1(str(file).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have one
        msg = f"cannot import {file}"
        raise ImportError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if renamed:
        # Worker processes cannot import it under its made-up name: ship its functions whole.
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_flows(source: str | Path | ModuleType) -> dict[str, Flow]:
    """The flows a file (or module) defines, by name, in the order they appear.

    Flows are the :class:`Flow` objects of the module (made by :func:`flow`, also imported
    ones), and the functions defined there whose name starts with ``flow_`` (scriptflow's
    convention; ``flow_sleepit`` is the flow ``sleepit``).

    Examples
    --------
    >>> import types
    >>> from jupyter_executor._flow import flow, load_flows
    >>> module = types.ModuleType("demo")
    >>> async def flow_sleepit(): ...
    >>> module.flow_sleepit = flow_sleepit
    >>> flow_sleepit.__module__ = "demo"
    >>> module.other = flow(lambda engine: None, name="other")
    >>> list(load_flows(module))
    ['sleepit', 'other']
    """
    module = source if isinstance(source, ModuleType) else load_module(source)
    found: dict[str, Flow] = {}
    for attr, value in vars(module).items():
        if isinstance(value, Flow):
            found.setdefault(value.name, value)
        elif (
            attr.startswith(_PREFIX)
            and len(attr) > len(_PREFIX)
            and inspect.isfunction(value)
            and value.__module__ == module.__name__
        ):
            found.setdefault(attr[len(_PREFIX) :], Flow(value))
    return found


def find_flow(source: str | Path | ModuleType, name: str) -> Flow:
    """The flow called ``name`` in a file.

    Raises
    ------
    UnknownFlow
        There is none; the message lists the flows the file defines.
    """
    flows = load_flows(source)
    found = flows.get(name)
    if found is None:
        where = source.__name__ if isinstance(source, ModuleType) else str(source)
        if flows:
            msg = f"no flow {name!r} in {where}; its flows: {', '.join(flows)}"
        else:
            msg = f"no flow {name!r} in {where}: it defines none (decorate functions with @flow)"
        raise UnknownFlow(msg, list(flows))
    return found


def _takes_an_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: give them the engine
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional or p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
