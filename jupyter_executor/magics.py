"""``%%job``, ``%job`` and ``%jobs``: the IPython front door to the engine.

Argument parsing and :class:`~IPython.core.error.UsageError` only; the work is done by the
public engine API (:func:`jupyter_executor.get_engine`), by :mod:`._cell` (turning a cell into
a job), by :mod:`._ipython` (what each magic does) and :mod:`._extension` (loading, display
routing, the terminal fallback).
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.utils.process import arg_split  # type: ignore[attr-defined]
from traitlets import Bool, CaselessStrEnum, Integer, TraitError, Unicode, observe, validate

from ._duration import DURATIONS, duration_argument
from ._options import OPTIONS, Option
from .errors import InvalidOption

__all__ = ["JobMagics", "load_ipython_extension", "unload_ipython_extension"]

CELL_BACKENDS = ("thread", "async", "process", "dask")
JOBS_COMMANDS = (
    "list", "wait", "cancel", "rerun", "tail", "log", "history", "remove", "clear", "flow",
    "unschedule", "fetch", "notify",
)  # fmt: skip

_F = TypeVar("_F", bound=Callable[..., Any])


# -- argument types (argparse turns ArgumentTypeError into "argument --x: <message>") ----------


#: ``%jobs wait --timeout``: the one duration grammar, as the job options' duration flags.
_seconds = duration_argument("timeout")


def _flag_value(option: Option) -> Callable[[str], Any]:
    """The argparse type of a job option's flag: the option's own check (_options.py).

    The value is what ``Job(...)`` would keep (seconds for a duration); a bad one is one line,
    ``argument --timeout: takes ..., not 'abc'``, or the check's own message.
    """

    def convert(text: str) -> Any:
        try:
            value: Any = int(text) if option.takes == "count" else text
        except ValueError:
            value = text  # the check refuses it, with the option's message
        try:
            return option.check(value)
        except InvalidOption as exc:
            msg = f"takes {option.expects}, not {text!r}" if option.expects else str(exc)
            raise argparse.ArgumentTypeError(msg) from None

    convert.__name__ = option.name  # argparse names the type in some messages
    return convert


def _run_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        msg = f"takes a run number: 1 is the oldest log kept, -1 the latest; not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"takes a whole number >= 0, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


#: A word that reads as an environment variable assignment (``NAME=value``).
_ENV_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or any(c.isspace() for c in key):
        msg = f"takes KEY=VALUE, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return key, value


def _names(values: Sequence[str] | None) -> list[str]:
    """``--requires a b --requires c,d`` -> ``["a", "b", "c", "d"]``."""
    out: list[str] = []
    for value in values or ():
        out.extend(part for part in value.split(",") if part.strip())
    return [name.strip() for name in out]


# -- parsers and help ---------------------------------------------------------------------------
#
# IPython's ``magic_arguments`` would do, but its help is reStructuredText (``::`` blocks, one
# usage line for a line-and-cell magic); in a terminal ``%job?`` shows that markup raw. These
# parsers print plain text, and ``%job`` and ``%%job`` get a help each.


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=26, width=92)


class _MagicParser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line ``UsageError``s (never ``SystemExit``)."""

    def __init__(self, prog: str, usage: str) -> None:
        super().__init__(prog=prog, usage=usage, add_help=False, formatter_class=_HelpFormatter)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


#: The job options whose flags the magics read themselves; the others go to the job as they
#: are (see _lifecycle).
_OWN = frozenset({"name", "requires", "backend", "retries", "timeout", "forever", "env", "cwd"})


def _job_options(parser: argparse.ArgumentParser, *, cell: bool) -> None:
    """The options of ``%%job`` (``cell``) or ``%job``: the job options that have a flag, from
    the one option schema (_options.py), so the magics take what ``Job(...)`` takes.

    Options that belong to the other form are kept but hidden from the help, so that giving
    one gets the precise message of the magic rather than "unrecognized arguments".
    """
    for option in OPTIONS.values():
        if option.flag is None:
            continue
        hidden = option.magic == ("script" if cell else "cell")
        kwargs: dict[str, Any] = {"help": argparse.SUPPRESS if hidden else option.help}
        if option.metavar is not None:
            kwargs["metavar"] = option.metavar
        if option.takes == "switch":
            kwargs["action"] = "store_true"
        elif option.takes in ("names", "paths"):
            kwargs.update(nargs="+", action="extend", default=[])
        elif option.takes == "pairs":
            kwargs.update(type=_env_pair, nargs="+", action="extend")
        elif option.takes == "choice":
            # a cell runs on the backends that can run Python in the kernel's namespace
            kwargs["choices"] = CELL_BACKENDS if option.name == "backend" else option.choices
        else:  # text, count, duration: the option's check, at parse time
            kwargs["type"] = _flag_value(option)
            if option.takes == "count" and option.default is not None:
                kwargs["default"] = option.default
        if option.name == "name":
            kwargs["dest"] = "name_option"  # the positional NAME is "words"
        parser.add_argument(option.flag, **kwargs)


def _cell_parser() -> _MagicParser:
    parser = _MagicParser("%%job", "%(prog)s [NAME] [options]\n       <the cell's code>")
    parser.add_argument("words", nargs="*", metavar="NAME", help="the job's name (optional)")
    _job_options(parser, cell=True)
    return parser


def _script_parser() -> _MagicParser:
    parser = _MagicParser(
        "%job", '%(prog)s SCRIPT [ARGS ...] [options]\n       %(prog)s "shell command" [options]'
    )
    parser.add_argument("words", nargs="*", metavar="SCRIPT [ARGS ...]", help=argparse.SUPPRESS)
    _job_options(parser, cell=False)
    return parser


def _jobs_parser() -> _MagicParser:
    parser = _MagicParser("%jobs", "%(prog)s [COMMAND] [NAME ...] [options]")
    add = parser.add_argument
    add(
        "command",
        nargs="?",
        default=None,
        choices=JOBS_COMMANDS,
        metavar="COMMAND",
        help=" | ".join(JOBS_COMMANDS) + " (none: the dashboard)",
    )
    add("names", nargs="*", metavar="NAME", help="the jobs the command is about")
    add("-n", type=_count, default=20, metavar="LINES", help="lines shown by tail")
    add(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"give up waiting after this ({DURATIONS})",
    )
    add(
        "--run",
        type=_run_number,
        metavar="N",
        help="log: the log of the N-th run among those kept (1 = oldest kept, -1 = latest)",
    )
    return parser


_PARSERS: dict[str, _MagicParser] = {
    "%%job": _cell_parser(),
    "%job": _script_parser(),
    "%jobs": _jobs_parser(),
}


#: What each setting of :class:`JobMagics` does (``%config JobMagics`` shows it).
_SETTINGS = {
    "folder": "The engine's folder (logs, history.db); default ./.jupyter_executor",
    "backend": "The backend of %%job cells given without --backend (default: thread, or async "
    "for a cell that awaits); also the engine's default for callables",
    "max_jobs": "At most this many jobs run at once, all backends together (default: no limit)",
    "notify": "Every job says when it ends with a browser notification (its name, status and "
    "duration); %jobs notify on|off changes it for this kernel",
}


def _help(prog: str) -> Callable[[_F], _F]:
    """Make a magic's help (``%job?``) its docstring followed by its parser's options."""

    def decorate(func: _F) -> _F:
        parser = _PARSERS[prog]
        text = inspect.cleandoc(func.__doc__ or "")
        func.__doc__ = f"{text}\n\n{parser.format_help()}"
        return func

    return decorate


@magics_class
class JobMagics(Magics):
    """Run cells, scripts and commands as background jobs of the kernel's engine.

    The defaults of the kernel's engine can be set per IPython profile, in
    ``ipython_config.py`` or with ``%config`` before the first job::

        c.JobMagics.folder = "~/runs"          # logs and history.db
        c.JobMagics.backend = "process"        # %%job cells without --backend
        c.JobMagics.max_jobs = 4               # jobs running at once, all backends
        c.JobMagics.notify = True              # a browser notification when a job ends
    """

    folder = Unicode(None, allow_none=True, help=_SETTINGS["folder"]).tag(config=True)
    backend = CaselessStrEnum(CELL_BACKENDS, None, allow_none=True, help=_SETTINGS["backend"]).tag(
        config=True
    )
    max_jobs = Integer(None, allow_none=True, help=_SETTINGS["max_jobs"]).tag(config=True)
    notify = Bool(False, help=_SETTINGS["notify"]).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._publish_defaults()

    @validate("max_jobs")
    def _check_max_jobs(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value < 1:
            msg = f"JobMagics.max_jobs={value!r}: must be >= 1 (or None)"
            raise TraitError(msg)
        return value

    @observe("folder", "backend", "max_jobs", "notify")
    def _defaults_changed(self, change: Any) -> None:
        self._publish_defaults()

    def _publish_defaults(self) -> None:
        from . import _ipython

        options: dict[str, Any] = {}
        if self.folder is not None:
            options["folder"] = os.path.expanduser(self.folder)
        if self.max_jobs is not None:
            options["max_jobs"] = self.max_jobs
        if self.backend is not None:
            options["default_backend"] = self.backend
        if self.notify:
            options["notify"] = True
        _ipython.set_engine_defaults(options)

    @cell_magic("job")  # type: ignore[arg-type,unused-ignore]  # IPython types it as a union
    @_help("%%job")
    def job_cell(self, line: str, cell: str) -> Any:
        """Run this cell as a background job, in the notebook's namespace.

        The cell returns at once with a live view of the job (status, elapsed time, what it
        prints and displays, then its result or traceback). The value of the cell's last
        expression is the job's result: get_engine()[NAME].result(). Everything the cell
        prints, logs or displays goes to its view and log, never to the cell that happens to be
        running. Re-running a %%job NAME cell whose job is finished runs the cell's current code
        as a new attempt of that job.

        Backends: thread (default) and async (chosen when the cell uses top-level await) run in
        the notebook's namespace; an async cell shares the engine's event loop, so it should
        await rather than block. process and dask run on another core: the variables the cell
        reads are pickled (cloudpickle) and shipped when the job starts, and the variables it
        assigns are written back when it succeeds.

        Long-running cells: --every/--cron run the cell on a schedule (--start sets the first
        time; --start alone runs it once then); --restart on-failure|always runs it again when
        it ends, with --restart-delay doubling after each consecutive failure and at most
        --max-restarts restarts. --inputs/--outputs make it make-like: it is marked done
        ("up to date") without running when its outputs are newer than its inputs (--force runs
        it anyway), and fails, naming them, when it does not write its outputs.

        Cells that outlive the kernel: %%job NAME --detach runs the cell in a detached process
        (its inputs shipped as for --backend process, when it is submitted); it survives the
        kernel's death, the next kernel's engine on the same folder re-attaches it, and
        %jobs fetch NAME loads the variables it assigned once it is done.

        Examples:

            %%job load
            df = pd.read_csv("big.csv")
            len(df)

            %%job train --requires load --retries 2 --timeout 1h
            model = fit(df)

            %%job sim --backend process
            result = simulate(params)

            %%job poller --restart always --restart-delay 30 --max-restarts 10
            poll_api()

            %%job train --detach
            model = fit(X, y)

        For scripts and shell commands see %job?; to list, wait for, cancel and inspect jobs,
        their history and logs, see %jobs?.
        """
        return self._cell_job(line, cell)

    @line_magic("job")  # type: ignore[arg-type,unused-ignore]
    @_help("%job")
    def job_line(self, line: str) -> Any:
        """Run a script or a shell command as a background job, in a subprocess.

        A .py script runs with this kernel's Python, .sh with bash, .R with Rscript, any other
        executable file directly; a quoted string is a shell command. A script's job is named
        after it (etl for scripts/etl.py) unless --name is given; run the line again once that
        job is finished and it runs again under the same name, as a new run in its history.

        Options may appear anywhere after the script, and the words after -- all go to the
        script. An option with several values (--requires, --inputs, --outputs) takes the words
        up to the next option, so give the script's own arguments before it or after --.
        --env A=1 B=2 takes the KEY=VALUE words that follow it, up to the first other word
        (give the script's own KEY=VALUE arguments before --env or after --).

        Long-running scripts: --every/--cron run it on a schedule (--start sets the first time;
        --start alone runs it once then); %jobs cancel NAME also stops its future runs.
        --restart on-failure|always runs it again when it ends (a poller, a server).
        Schedules and restart policies of scripts are stored in the engine's folder: the next
        kernel's engine (or `jupyter-executor schedules run FOLDER` in a terminal) re-arms
        them, and reports runs missed meanwhile instead of running them late; %jobs cancel
        stops one in this kernel, %jobs unschedule NAME removes it for good.
        --detach keeps it running when the kernel restarts or dies; the next kernel's engine
        (same folder) shows it again, follows its log and records its exit. --inputs/--outputs
        make it make-like (skipped as "up to date" when its outputs are newer than its inputs).
        Paths are relative to --cwd, else to the kernel's working directory.

        Examples:

            %job scripts/etl.py --day 2026-11-20 --name etl --env TOKEN=abc --cwd data/
            %job "make -j2 all" --name build
            %job scrape.py --every "2 min"
            %job daily.R --every "1 day" --start "2026-11-22 06:00"
            %job srv.py --detach --name srv
            %job fit.py --inputs data.csv params.json --outputs model.pkl

        For cells see %%job?; to list, wait for, cancel and inspect jobs, see %jobs?.
        """
        return self._script_job(line)

    # -- %%job -------------------------------------------------------------------------------

    def _cell_job(self, line: str, cell: str) -> Any:
        args = _parse("%%job", _split(line))
        if args.env or args.cwd:
            msg = "--env and --cwd are for scripts (%job SCRIPT), not for %%job cells"
            raise UsageError(msg)
        if len(args.words) > 1:
            msg = (
                f"%%job takes one job name, got {' '.join(args.words)!r}: "
                "list requirements after --requires"
            )
            raise UsageError(msg)
        name = _one_name(args.words[0] if args.words else None, args.name_option)
        from . import _ipython

        return _ipython.submit_cell(
            self.shell,
            cell,
            name=name,
            backend=args.backend,
            requires=_names(args.requires),
            retries=args.retries,
            timeout=args.timeout,
            forever=args.forever,
            lifecycle=_lifecycle(args),
        )

    # -- %job --------------------------------------------------------------------------------

    def _script_job(self, line: str) -> Any:
        ours, script = _split_script_line(_PARSERS["%job"], _split(line))
        args = _parse("%job", ours)
        if args.backend is not None:
            msg = "scripts and commands always run in a subprocess: drop --backend"
            raise UsageError(msg)
        if not script:
            msg = 'give a script or a quoted command: %job PATH [ARGS ...] or %job "cmd args"'
            raise UsageError(msg)
        cwd = None
        if args.cwd is not None:
            cwd = Path(os.path.expanduser(args.cwd)).resolve()
            if not cwd.is_dir():
                msg = f"--cwd: no such directory: {args.cwd}"
                raise UsageError(msg)
        command = _command(script)
        from . import _ipython

        return _ipython.submit_command(
            self.shell,
            command,
            name=_one_name(None, args.name_option) or _script_name(script),
            requires=_names(args.requires),
            retries=args.retries,
            timeout=args.timeout,
            forever=args.forever,
            env=dict(args.env or ()),
            cwd=cwd,
            lifecycle=_lifecycle(args),
        )

    # -- %jobs -------------------------------------------------------------------------------

    @line_magic
    @_help("%jobs")
    def jobs(self, line: str) -> Any:
        """Show and control the engine's jobs.

        %jobs                     the live dashboard (a text table in terminal IPython)
        %jobs list                engine.list(next_run=True): a DataFrame with one row per job
                                  (with next_run, restarts and url columns)
        %jobs wait [NAME ...]     block until those jobs (default: every job that is not
                                  --forever, scheduled or restarted always) are finished;
                                  interrupting the kernel stops the waiting, not the jobs
        %jobs cancel NAME ...     stop jobs (their dependents are cancelled too); a scheduled
                                  or restarting job also stops its future runs in this
                                  kernel (a command's schedule stays stored: the next
                                  kernel re-arms it)
        %jobs unschedule NAME ... remove the stored schedule or restart policy of commands
                                  for good (and stop them here)
        %jobs fetch NAME          load the variables a detached cell (%%job NAME --detach)
                                  assigned into the namespace, once it is done, also in a
                                  later kernel; shows the cell's result
        %jobs rerun NAME          run a finished job again
        %jobs tail NAME [-n 50]   the last lines a job printed
        %jobs log NAME [--run N]  the job's log file. Each run writes its own log; the engine
                                  keeps the current one and the last archived ones (20 by
                                  default, Engine(keep_logs=...)), numbered in time order:
                                  --run 1 is the oldest log kept, --run 2 the next, --run -1
                                  the latest (the default) and --run -2 the one before it. A
                                  run that was skipped as up to date writes no log. Also works
                                  for a job of an earlier kernel that wrote its logs in the
                                  engine's folder.
        %jobs history [NAME]      engine.history(): a DataFrame with one row per run of every
                                  job (or of NAME) recorded in the engine's folder, across
                                  kernel restarts, oldest first: attempt, status, times, exit
                                  code, result, error, log, pid, engine id
        %jobs remove NAME ...     forget finished jobs
        %jobs clear               forget every finished job
        %jobs flow FILE.py NAME   run the flow NAME of FILE.py (a function decorated with
                                  @flow) as a background job flow:NAME whose jobs join this
                                  engine; %jobs flow FILE.py lists its flows
        %jobs notify on|off       a browser notification (name, status, duration) when any
                                  job of this kernel ends, from its %%job view (the browser
                                  asks for permission first); per job: %%job --notify
        """
        args = _parse("%jobs", _split(line))
        from . import _ipython

        command = args.command
        names = _names(args.names)
        if command is None:
            if names:
                msg = f"unknown %jobs command {names[0]!r}; see %jobs?"
                raise UsageError(msg)
            return _ipython.show_dashboard(self.shell)
        if command == "flow":
            return _flow_command(names)
        if command == "notify":
            return self._notify_command(args.names)
        if args.run is not None and command != "log":
            msg = f"--run goes with %jobs log NAME, not with %jobs {command}"
            raise UsageError(msg)
        if (
            command in {"cancel", "rerun", "tail", "log", "remove", "unschedule", "fetch"}
            and not names
        ):
            msg = f"%jobs {command} needs a job name: %jobs {command} NAME"
            raise UsageError(msg)
        if command in {"rerun", "tail", "log", "fetch"} and len(names) > 1:
            msg = f"%jobs {command} takes one job name, not {len(names)}"
            raise UsageError(msg)
        if command == "history" and len(names) > 1:
            msg = f"%jobs history takes at most one job name, not {len(names)}"
            raise UsageError(msg)
        if command in {"list", "clear"} and names:
            msg = f"%jobs {command} takes no job name"
            raise UsageError(msg)
        return _ipython.jobs_command(
            self.shell, command, names, lines=args.n, timeout=args.timeout, run=args.run
        )

    def _notify_command(self, words: list[str]) -> None:
        """``%jobs notify on|off``: every job of this kernel (its engine) says when it ends."""
        if len(words) != 1 or words[0].lower() not in ("on", "off"):
            msg = f"%jobs notify takes on or off, not {' '.join(words) or 'nothing'!r}"
            raise UsageError(msg)
        from . import _ipython

        on = words[0].lower() == "on"
        self.notify = on  # the default of an engine made later (after a shutdown)
        _ipython.kernel_engine().notify = on


def _flow_command(words: list[str]) -> Any:
    """``%jobs flow FILE.py [NAME]``: list a file's flows, or submit one as a job."""
    from ._flow import UnknownFlow, find_flow, load_flows
    from .engine import get_engine

    if not words or len(words) > 2:
        msg = "%jobs flow takes a file and a flow name: %jobs flow flows.py NAME"
        raise UsageError(msg)
    path = Path(os.path.expanduser(words[0]))
    if not path.is_file():
        msg = f"no flow file {words[0]!r}"
        raise UsageError(msg)
    try:
        if len(words) == 1:
            return sorted(load_flows(path))
        return find_flow(path, words[1]).submit(get_engine())
    except UnknownFlow as exc:
        raise UsageError(str(exc).replace("\n", " ")) from None
    except SyntaxError as exc:
        msg = f"{words[0]} is not valid Python: {exc.msg} (line {exc.lineno})"
        raise UsageError(msg) from None


def _lifecycle(args: argparse.Namespace) -> dict[str, Any]:
    """The job options given on the line that the magics do not read themselves (``every``,
    ``restart``, ``retry_delay``, ``inputs``...), as ``Job`` keyword arguments.

    Only those given: the engine's defaults stay the engine's, and its own checks of how they
    combine (a start in the past, every and cron) become one-line UsageErrors when submitting.
    """
    if args.restart in (None, "no") and (
        args.restart_delay is not None or args.max_restarts is not None
    ):
        msg = "--restart-delay and --max-restarts go with --restart on-failure or always"
        raise UsageError(msg)
    options: dict[str, Any] = {}
    for name, option in OPTIONS.items():
        if option.flag is None or name in _OWN:
            continue
        value = getattr(args, name)
        if value is None or value is False or value == []:
            continue  # not given
        options[name] = list(value) if isinstance(value, list) else value
    return options


def _script_name(script: list[str]) -> str | None:
    """``%job scripts/scrape.py`` is the job ``scrape``, whose runs and logs share that name.

    None for a shell command or a program on the PATH: the engine names those.
    """
    head = script[0]
    if any(c.isspace() for c in head):
        return None
    path = Path(os.path.expanduser(head))
    return path.stem if path.is_file() and path.stem and not path.stem.startswith("-") else None


def _one_name(positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        msg = f"two names for one job: {positional!r} and --name {option!r}"
        raise UsageError(msg)
    name = positional or option
    if name is not None and (name.startswith("-") or not name.strip()):
        msg = f"bad job name {name!r}"
        raise UsageError(msg)
    if name is not None and ("," in name or name != name.strip()):
        # %jobs and --requires split names at commas and strip them: such a job could not be
        # waited for, cancelled or required by its name
        msg = f"bad job name {name!r}: no comma in it and no space around it"
        raise UsageError(msg)
    return name


def _split(line: str) -> list[str]:
    # POSIX rules (unlike parse_argstring): quotes group words and are removed, so that
    # `%job "make -j2 all"` is one command and `--env "MSG=a b"` one value
    try:
        return list(arg_split(line, posix=True, strict=True))
    except ValueError as exc:
        msg = f"cannot split the line: {exc}"
        raise UsageError(msg) from None


def _parse(prog: str, argv: list[str]) -> argparse.Namespace:
    """Parse with the magic's parser (its errors are UsageErrors)."""
    return _PARSERS[prog].parse_args(argv)


def _split_script_line(
    parser: argparse.ArgumentParser, tokens: list[str]
) -> tuple[list[str], list[str]]:
    """Separate our options from the script and its arguments, keeping the script's order.

    argparse cannot do this (``--day 2026-11-20`` would be an unknown option), so the line is
    walked token by token: our options (with their values) go to ``ours``, the first other
    token is the script, everything else — and everything after ``--`` — goes to the script.
    """
    actions = parser._option_string_actions
    ours: list[str] = []
    script: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            script.extend(tokens[i + 1 :])
            break
        action = actions.get(token.split("=", 1)[0]) if token.startswith("--") else None
        if action is None:
            script.append(token)
            i += 1
        else:
            words, i = _our_option(action, tokens, i)
            ours.extend(words)
    return ours, script


def _our_option(action: argparse.Action, tokens: list[str], i: int) -> tuple[list[str], int]:
    """The words of our option ``tokens[i]`` with its values, and the index after them."""
    token = tokens[i]
    option, equals, value = token.partition("=")
    if equals and action.dest == "env":
        # --env=A=1 B=2: the pairs that follow are ours too (argparse gives an --opt=value
        # option one value only, so the option and its values go as separate words)
        return _words_while(["--env", value], tokens, i + 1, _ENV_WORD.match)
    if equals or action.nargs == 0:
        return [token], i + 1
    if i + 1 >= len(tokens) or tokens[i + 1] == "--":
        msg = f"{option} needs a value"
        raise UsageError(msg)
    words = [option, tokens[i + 1]]
    if action.dest == "env":
        # --env A=1 B=2: KEY=VALUE words are pairs (before, B=2 silently went to the
        # script); the first other word is the script's
        return _words_while(words, tokens, i + 2, _ENV_WORD.match)
    if action.nargs == "+":
        # --inputs a.csv b.csv: the words up to the next option (ours, the script's, or
        # --) are values; the script's own arguments go before such an option or after --
        return _words_while(words, tokens, i + 2, lambda word: not word.startswith("-"))
    return words, i + 2


def _words_while(
    words: list[str], tokens: list[str], i: int, more: Callable[[str], object]
) -> tuple[list[str], int]:
    """``words`` and the tokens from ``i`` on while ``more`` holds, and the index after them."""
    while i < len(tokens) and more(tokens[i]):
        words.append(tokens[i])
        i += 1
    return words, i


def _command(script: list[str]) -> str | list[str]:
    """The subprocess command for ``%job`` tokens: argv list, or a shell command string."""
    head, rest = script[0], script[1:]
    if not head.strip():
        msg = f'{head!r} is neither a script nor a command: %job PATH [ARGS ...] or %job "cmd"'
        raise UsageError(msg)
    if any(c.isspace() for c in head):
        # a quoted string: a shell command, with any further words appended
        return " ".join([head, *(shlex.quote(w) for w in rest)])
    path = Path(os.path.expanduser(head))
    if path.is_file():
        absolute = str(path.resolve())
        suffix = path.suffix.lower()
        if suffix == ".py":
            return [sys.executable, "-u", absolute, *rest]
        if suffix == ".sh":
            return ["bash", absolute, *rest]
        if suffix == ".r":
            rscript = shutil.which("Rscript")
            if rscript is None:
                msg = f"cannot run {head}: Rscript is not installed (install R, or r-base-core)"
                raise UsageError(msg)
            return [rscript, absolute, *rest]
        if os.access(path, os.X_OK):
            return [absolute, *rest]
        msg = f"{head} is not executable: chmod +x it, or run it with its interpreter"
        raise UsageError(msg)
    if path.exists():
        kind = "a directory" if path.is_dir() else "a special file (a device, a pipe, a socket)"
        msg = f"{head} is {kind}, not a script"
        raise UsageError(msg)
    looks_like_path = "/" in head or path.suffix.lower() in {".py", ".sh", ".r"}
    if not looks_like_path and shutil.which(head):
        return [head, *rest]
    msg = f"no such script or command: {head}"
    raise UsageError(msg)


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext jupyter_executor``: register the magics and route job output."""
    from . import _extension
    from ._platform import check_supported
    from .errors import UnsupportedPlatform

    try:
        check_supported("%load_ext jupyter_executor")
    except UnsupportedPlatform as exc:
        raise UsageError(str(exc)) from None

    ip.register_magics(JobMagics)
    _extension.activate(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext jupyter_executor``: shut the engine down and remove the magics."""
    from . import _extension

    _extension.deactivate(ip)
    magics = ip.magics_manager.magics
    for kind, name in (("line", "job"), ("cell", "job"), ("line", "jobs")):
        magics[kind].pop(name, None)
    ip.magics_manager.registry.pop("JobMagics", None)
    # IPython's Magics.__init__ adds each instance to the shell's configurables (for %config):
    # left there, every reload added one more, and each took every later %config JobMagics.
    configurables = getattr(ip, "configurables", None)
    if isinstance(configurables, list):
        configurables[:] = [c for c in configurables if not isinstance(c, JobMagics)]
