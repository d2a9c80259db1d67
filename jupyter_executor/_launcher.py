"""Functions that submit themselves: ``@launcher`` and command-line templates, ``@command``.

executor-engine's launcher, on our engine::

    @launcher(backend="process")
    def add(a, b):
        return a + b

    add(1, 2)                  # still a plain call: 3
    job = add.submit(1, 2)     # a Job of the engine (get_engine() unless engine= was given)
    job = await add.asubmit(1, 2)   # the same from async code; `await job` gives 3

    @launcher(async_mode=True)      # executor-engine's async launcher:
    def add(a, b): ...
    job = await add.submit(1, 2)    # the Job (not its result); `await job.join()` waits

    @launcher
    @command
    def greet(who):
        return f"echo hello {who}"

    greet.submit("you")        # a subprocess job running `echo hello you`
"""

from __future__ import annotations

import functools
import inspect
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, Unpack, overload

from ._options import JobOptions, check_options
from .errors import CommandFailed, InvalidOption
from .job import Job

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["AsyncLauncher", "Command", "Launcher", "command", "launcher"]

P = ParamSpec("P")
R = TypeVar("R")


class LauncherOptions(JobOptions, total=False):
    """What ``@launcher(...)`` takes besides ``engine`` and ``async_mode``: the job options,
    and ``job_type``, executor-engine's name for ``backend``."""

    job_type: str


class _CopyOptions(JobOptions, total=False):
    """What :meth:`Launcher.options` takes: job options, and another engine."""

    engine: Engine | None


class Command(Generic[P]):
    """A command-line template: a function that returns a command, made runnable.

    Calling it runs the command now, in a subprocess, streams what the command prints to
    ``sys.stdout`` (so a notebook shows it), and returns the exit code (0); a non-zero exit
    raises :class:`~jupyter_executor.CommandFailed`. :meth:`render` only builds the command.
    Under :func:`launcher`, ``.submit(...)`` runs it as a subprocess job instead.

    Parameters
    ----------
    template
        A function of the command's parameters returning a shell command string (run by the
        shell) or an argv list (run without a shell).

    Examples
    --------
    >>> from jupyter_executor import command
    >>> @command
    ... def echo(word):
    ...     return ["echo", word]
    >>> echo.render("hi")
    ['echo', 'hi']
    >>> echo("hi")
    hi
    0
    """

    def __init__(self, template: Callable[P, str | Sequence[str]]) -> None:
        if not callable(template):
            msg = f"@command decorates a function returning a command line, not {template!r}"
            raise TypeError(msg)
        self.template = template
        functools.update_wrapper(self, template)

    def render(self, *args: P.args, **kwargs: P.kwargs) -> str | list[str]:
        """The command line for these arguments: a shell string or an argv list."""
        line = self.template(*args, **kwargs)
        if isinstance(line, str):
            if not line.strip():
                msg = f"{self.__name__}() returned an empty command"  # type: ignore[attr-defined]
                raise ValueError(msg)
            return line
        if isinstance(line, (list, tuple)) and line:
            return [str(word) if isinstance(word, Path) else word for word in line]
        msg = (
            f"{self.__name__}() must return a command string or a non-empty argv list, "  # type: ignore[attr-defined]
            f"not {line!r}"
        )
        raise TypeError(msg)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> int:
        line = self.render(*args, **kwargs)
        # The same runner as a command on a dask worker: it reads the pipe rather than inherit
        # file descriptor 1 (in a kernel, fd 1 is the terminal that started Jupyter, not the
        # notebook) and writes each line to sys.stdout, which a job captures.
        from .backends._dask_task import run_command
        from .backends.subprocess import describe_returncode

        try:
            return run_command(line, None, None)
        except subprocess.CalledProcessError as exc:
            shown = line if isinstance(line, str) else " ".join(map(str, line))
            msg = f"command {shown!r} {describe_returncode(exc.returncode)}"
            raise CommandFailed(msg, exc.returncode) from None

    def __repr__(self) -> str:
        return f"<command {self.__name__}>"  # type: ignore[attr-defined]


class _TemplateJob(Job):
    """A subprocess job named after its template (``cmd_add``, not ``python``)."""

    __slots__ = ("_base",)

    def __init__(self, target: Any, base: str, **options: Any) -> None:
        super().__init__(target, **options)
        self._base = base

    def default_name(self) -> str:
        return self._base


class Launcher(Generic[P, R]):
    """A function that can also submit itself as a job; made by :func:`launcher`.

    Calling a launcher calls the function, unchanged. :meth:`submit` runs it as a job of
    ``engine`` (the process's :func:`~jupyter_executor.get_engine` when None) with the options
    given to :func:`launcher`; :meth:`options` returns a copy with other options, e.g. a name.

    Examples
    --------
    >>> from jupyter_executor import Engine, launcher
    >>> engine = Engine()
    >>> @launcher(engine=engine)
    ... def add(a, b):
    ...     return a + b
    >>> add(1, 2)
    3
    >>> job = add.submit(1, 2)
    >>> engine.wait_job(job), job.result()
    (True, 3)
    >>> engine.shutdown()
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        engine: Engine | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            msg = f"@launcher decorates a function, not {fn!r}"
            raise TypeError(msg)
        options = dict(options or {})
        # Checked now, as Job(...) will check them (one schema, one message for each mistake):
        # a bad option shows at the decorator, not at the first submit.
        check_options(options)
        if isinstance(fn, Command) and options.get("backend") not in (None, "subprocess"):
            msg = f"a @command runs on the subprocess backend, not {options['backend']!r}"
            raise ValueError(msg)
        self.fn = fn
        self.engine = engine
        self.job_options = options
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def options(self, **options: Unpack[_CopyOptions]) -> Launcher[P, R]:
        """A copy of this launcher with job options changed (``name=``, ``requires=``, ...).

        Examples
        --------
        >>> from jupyter_executor import launcher
        >>> @launcher(retries=1)
        ... def step():
        ...     return 1
        >>> step.options(name="first").job_options
        {'retries': 1, 'name': 'first'}
        """
        engine = options.pop("engine", self.engine)
        return type(self)(self.fn, engine=engine, options={**self.job_options, **options})

    def job(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """The :class:`~jupyter_executor.Job` that :meth:`submit` would submit, unsubmitted."""
        options = dict(self.job_options)
        fn: Any = self.fn
        if isinstance(fn, Command):
            options["backend"] = "subprocess"
            return _TemplateJob(fn.render(*args, **kwargs), fn.__name__, **options)  # type: ignore[attr-defined]
        return Job(fn, args=args, kwargs=kwargs, **options)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Submit ``fn(*args, **kwargs)`` as a job; return the :class:`~jupyter_executor.Job`.

        The job's result is the function's return value (a command's exit code).
        """
        job = self.job(*args, **kwargs)
        engine = self.engine
        if engine is None:
            from .engine import get_engine

            engine = get_engine()
        submitted: Job = engine.submit(job)
        return submitted

    async def asubmit(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """The async twin of :meth:`submit`: ``job = await f.asubmit(...)``; ``await job``
        then gives the result.

        Submitting never blocks, so this returns at once too; it exists so that async code
        reads the same as executor-engine's ``await f.submit(...)`` in ``async_mode``.
        """
        return self.submit(*args, **kwargs)

    def __repr__(self) -> str:
        kind = "command" if isinstance(self.fn, Command) else "function"
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"<launcher of {kind} {name}>"


class AsyncLauncher(Launcher[P, R]):
    """A launcher for async code: ``job = await f.submit(...)`` gives the Job.

    Made by ``launcher(async_mode=True)``, as executor-engine's ``async_mode``: awaiting
    :meth:`submit` submits and returns the :class:`~jupyter_executor.Job` (never its result);
    ``await job.join()`` then waits for it, ``job.result()`` reads the result (``await job``
    gives it directly).
    """

    async def submit(self, *args: P.args, **kwargs: P.kwargs) -> Job:  # type: ignore[override]
        """Submit ``fn(*args, **kwargs)`` when awaited; return the Job."""
        return Launcher.submit(self, *args, **kwargs)


@overload
def launcher(fn: Callable[P, R], /) -> Launcher[P, R]: ...


@overload
def launcher(
    fn: None = None,
    /,
    *,
    engine: Engine | None = None,
    async_mode: bool = False,
    **options: Unpack[LauncherOptions],
) -> Callable[[Callable[P, R]], Launcher[P, R]]: ...


def launcher(
    fn: Callable[P, R] | None = None,
    /,
    *,
    engine: Engine | None = None,
    async_mode: bool = False,
    **options: Any,
) -> Launcher[P, R] | Callable[[Callable[P, R]], Launcher[P, R]]:
    """Decorate a function (sync or async) or a :func:`command` so that it can submit itself.

    Parameters
    ----------
    fn
        The function; ``@launcher`` and ``@launcher(...)`` both work.
    engine
        The engine to submit to; None means :func:`~jupyter_executor.get_engine` at submit time.
    async_mode
        Make an :class:`AsyncLauncher`: ``job = await f.submit(...)`` returns the Job (as in
        executor-engine), instead of ``submit`` returning it at once.
    **options
        Job options for every submission: ``backend``, ``retries``, ``timeout``, ``requires``,
        ``name``, ... as for :class:`~jupyter_executor.Job` (the one list:
        :class:`.JobOptions`), checked now, with Job's messages. A fixed ``name`` can be used
        once per engine; leave it out to get ``add``, ``add-2``, ... ``job_type`` is accepted
        as an alias of ``backend`` (executor-engine's name).

    Returns
    -------
    Launcher
        Callable like ``fn``, plus ``.submit(...)`` -> Job and ``await .asubmit(...)`` -> Job.

    Examples
    --------
    >>> import asyncio
    >>> from jupyter_executor import Engine, launcher
    >>> engine = Engine()
    >>> @launcher(engine=engine, backend="async")
    ... async def double(x):
    ...     return 2 * x
    >>> async def main():
    ...     job = await double.asubmit(21)
    ...     return await job
    >>> asyncio.run(main())
    42
    >>> engine.shutdown()
    """
    if "job_type" in options:  # executor-engine's name, free to accept
        if options.get("backend") not in (None, options["job_type"]):
            msg = "give backend= or job_type= (an alias), not both"
            raise InvalidOption(msg)
        options["backend"] = options.pop("job_type")
    check_options(options)  # at the decorator, with Job's messages

    def wrap(function: Callable[P, R]) -> Launcher[P, R]:
        if inspect.isclass(function):
            msg = f"@launcher decorates a function, not the class {function.__name__}"
            raise TypeError(msg)
        cls = AsyncLauncher if async_mode else Launcher
        return cls(function, engine=engine, options=options)

    if fn is not None:
        return wrap(fn)
    return wrap


def command(template: Callable[P, str | Sequence[str]]) -> Command[P]:
    """Turn a function that returns a command line into a runnable :class:`Command`.

    Stack it under :func:`launcher` to submit the command as a subprocess job (the job's
    result is the exit code, 0; a non-zero exit fails it).

    Examples
    --------
    >>> from jupyter_executor import Engine, command, launcher
    >>> engine = Engine()
    >>> @launcher(engine=engine)
    ... @command
    ... def cmd_add(a, b):
    ...     return f"python -c 'print({a} + {b})'"
    >>> job = cmd_add.submit(1, 2)
    >>> engine.wait_job(job), job.name, job.result(), job.tail()
    (True, 'cmd_add', 0, '3')
    >>> engine.shutdown()
    """
    return Command(template)
