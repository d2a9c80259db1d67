"""The job options, written once: their types, defaults, checks and ``%%job`` flags.

``Job(...)``, ``Engine.submit``, ``@launcher(...)``, ``AbstractJob(...)`` and the magics all take
their options from here:

- :class:`JobOptions`, a :class:`~typing.TypedDict`, is what a type checker sees: each entry
  point declares ``**options: Unpack[JobOptions]``, so ``Job(f, retries="2")`` is a mypy error
  and the list of keywords is written only here.
- :data:`OPTIONS`, one :class:`Option` record per key of :class:`JobOptions` (a test holds the
  two together), is what runs: the default, the check that refuses a bad value at the door
  with one line naming the option and the value (:class:`~.errors.InvalidOption`, a
  ValueError; :class:`~.errors.InvalidOptionType`, also a TypeError), instead of failing later
  in a thread, a process or the scheduler with a message that names neither, and the option's
  ``%%job`` / ``%job`` flag and help line, from which the magics build their parsers.

Why a TypedDict and not a frozen dataclass of options: users pass options as keywords
(``submit(f, timeout="5m")``), as asynciojobs, executor-engine and ``concurrent.futures`` do;
a dataclass would have to be built by the caller (``JobOptions(timeout=...)``) or have its
fields written out again as keywords on every entry point. ``Unpack[TypedDict]`` (PEP 692,
``typing`` since Python 3.11, our oldest) types the keywords themselves; the runtime half (defaults,
checks, flags) lives in :data:`OPTIONS`, which a TypedDict cannot carry.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypedDict, overload

from ._duration import DURATIONS, Duration, flag_expects, parse_duration
from .errors import InvalidOption, InvalidOptionType

if TYPE_CHECKING:
    from datetime import datetime

    from ._conditions import Condition

__all__ = [
    "BACKENDS",
    "MAX_LIMIT",
    "OPTIONS",
    "RESTART_POLICIES",
    "JobOptions",
    "Option",
    "SubmitOptions",
    "check_limit",
    "check_options",
    "check_os_text",
    "check_unknown",
    "os_text_problem",
    "shown_text",
    "split_submit_options",
]

BACKENDS = ("async", "thread", "process", "subprocess", "dask", "local")
RESTART_POLICIES = ("no", "on-failure", "always")

#: Paths or globs: one, or a (nested) list of them.
Paths = str | os.PathLike[str] | Iterable[Any]


class JobOptions(TypedDict, total=False):
    """The keyword options of a job, as ``Job(...)``, ``Engine.submit``, ``@launcher`` and
    ``AbstractJob`` take them (see :class:`~jupyter_executor.Job` for what each one does)."""

    name: str | None
    label: str | None
    backend: str | None
    requires: Any
    forever: bool
    retries: int
    retry_delay: Duration
    timeout: Duration | None
    condition: Condition | None
    env: Mapping[str, str] | None
    cwd: str | os.PathLike[str] | None
    every: Duration | None
    cron: str | None
    start: str | datetime | float | None
    restart: str
    restart_delay: Duration
    max_restarts: int | None
    detach: bool
    inputs: Paths
    outputs: Paths
    force: bool
    # Called with the Job; typed Any so that this module, which job.py imports, never imports
    # job.py back (no import circle, issue 10).
    before: Callable[[Any], Any] | None
    after: Callable[[Any], Any] | None
    resources: Mapping[str, float] | None
    priority: int | None
    notify: bool | None


class SubmitOptions(JobOptions, total=False):
    """:class:`JobOptions` and what only ``Engine.submit`` takes (about the name, not the job)."""

    replace: bool
    on_duplicate: str


#: How a flag's value is read on a magic's line (the magics map each to an argparse argument).
Takes = Literal["switch", "text", "count", "duration", "choice", "names", "paths", "pairs"]


@dataclass(frozen=True, slots=True)
class Option:
    """One job option: its default, its check, and its magics flag (None: no flag).

    ``check(value)`` raises a one-line :class:`~.errors.InvalidOption` naming the option and the
    value, or returns the value as the job keeps it (durations in seconds, paths as a flat
    tuple). ``expects`` says what the flag takes, for the magics' one-line errors.
    """

    name: str
    default: Any
    check: Callable[[Any], Any]
    flag: str | None = None
    takes: Takes = "text"
    help: str = ""
    metavar: str | None = None
    expects: str = ""
    magic: Literal["both", "cell", "script"] = "both"
    choices: tuple[str, ...] = ()

    @property
    def duration(self) -> bool:
        """Whether the option takes a duration (one grammar: :mod:`._duration`)."""
        return self.takes == "duration"


# -- checks (each raises one line naming the option and the value) ------------------------------


def _check_name(option: str) -> Callable[[Any], Any]:
    def check(name: Any) -> Any:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            kind = InvalidOption if isinstance(name, str) else InvalidOptionType
            msg = f"{option}={name!r} is not a job name: give a non-empty string"
            raise kind(msg)
        return name

    return check


def _check_backend(backend: Any) -> Any:
    if backend is not None and backend not in BACKENDS:
        msg = f"backend={backend!r} is not a backend: use one of {', '.join(BACKENDS)}"
        raise (InvalidOption if isinstance(backend, str) else InvalidOptionType)(msg)
    return backend


def check_flag(option: str, value: Any) -> None:
    """Refuse a ``value`` of the flag ``option`` that is not a real bool (one line naming both)."""
    # numpy booleans and 0/1 compare equal to False/True; "no" or None would be truthy or
    # falsy by accident.
    if not isinstance(value, (bool, numbers.Integral)) or value not in (True, False):
        msg = f"{option}={value!r} is not True or False"
        raise InvalidOptionType(msg)


def _flag(option: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        check_flag(option, value)
        return bool(value)

    return check


def _check_notify(value: Any) -> bool | None:
    if value is None:  # the engine's default (``engine.notify``)
        return None
    check_flag("notify", value)
    return bool(value)


def _is_whole(value: Any) -> bool:
    """Whether ``value`` is a whole number: an int (not a bool) or an integral float (2.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if isinstance(value, numbers.Integral):
        return True  # (float() of 10**400 would overflow)
    try:
        return math.isfinite(value) and math.floor(value) == value
    except (OverflowError, ValueError):  # a Fraction too large for a float
        return False


def _check_count(option: str, value: Any, extra: str = "") -> None:
    if not _is_whole(value) or value < 0:
        kind = InvalidOption if isinstance(value, numbers.Real) else InvalidOptionType
        msg = f"{option}={value!r} is not a whole number >= 0{' ' + extra if extra else ''}"
        raise kind(msg)


#: The largest limit of ``Engine(max_jobs=..., limits=..., keep_logs=...)``: more jobs than any
#: machine runs at once, more logs than anyone reads; a larger number is a slip (10**30), and
#: "no limit" is written None.
MAX_LIMIT = 1_000_000


@overload
def check_limit(option: str, value: Any, *, least: int = 1, none: Literal[False]) -> int: ...


@overload
def check_limit(option: str, value: Any, *, least: int = 1, none: bool = True) -> int | None: ...


def check_limit(option: str, value: Any, *, least: int = 1, none: bool = True) -> int | None:
    """``value`` as the int an engine keeps: a whole number from ``least`` to :data:`MAX_LIMIT`,
    or None (no limit) when ``none``.

    An integral float (``2.0``) is the whole number it is, as for ``retries=``; a bool, nan,
    inf or text is refused. Such a value used to be compared with ``<`` only: nan compares
    False with everything, so ``max_jobs=nan`` was taken, and no job ever got a slot.

    Raises
    ------
    InvalidOption
        One line naming ``option`` and the value (:class:`InvalidOptionType` for a value that
        is not a number, or a bool).

    Examples
    --------
    >>> check_limit("max_jobs", 2.0)
    2
    >>> check_limit("max_jobs", float("nan"))
    Traceback (most recent call last):
    ...
    jupyter_executor.errors.InvalidOption: max_jobs=nan is not a whole number >= 1 or None (no limit)
    """  # noqa: E501
    if value is None and none:
        return None
    if not _is_whole(value) or value < least:
        what = f"a whole number >= {least}{' or None (no limit)' if none else ''}"
        numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
        msg = f"{option}={_shown_number(value)} is not {what}"
        raise (InvalidOption if numeric else InvalidOptionType)(msg)
    if value > MAX_LIMIT:
        hint = ", or None for no limit" if none else ""
        msg = f"{option}={_shown_number(value)} is too large: at most {MAX_LIMIT:_}{hint}"
        raise InvalidOption(msg)
    return int(value)


def _shown_number(value: Any) -> str:
    try:
        return repr(value)
    except ValueError:  # an int of more than 4300 digits (sys.set_int_max_str_digits)
        return f"<an int of {value.bit_length()} bits>"


def os_text_problem(text: str) -> tuple[int, str] | None:
    """Where and why ``text`` cannot reach the operating system (an argv item, an environment
    variable, a path), or None when it can.

    A NUL ends a C string: the system would cut the text there, so Python refuses it when it
    spawns. A lone surrogate that :func:`os.fsencode` cannot encode (``"\\ud800"``) is no
    character at all. Both used to be found only by the shared subprocess zygote. An
    undecodable byte as :func:`os.fsdecode` writes it (``"\\udcff"`` for ``0xff``) encodes back
    to its byte: a legal non-UTF-8 file name, and fine.

    Examples
    --------
    >>> import os
    >>> os_text_problem(os.fsdecode(b"data-\\xff.csv")) is None
    True
    >>> os_text_problem("a\\x00b")
    (1, 'holds a NUL character')
    """
    at = text.find("\0")
    if at >= 0:
        return at, "holds a NUL character"
    if text.isascii():  # O(1): the string knows
        return None
    try:
        os.fsencode(text)
    except UnicodeEncodeError as exc:
        return exc.start, "holds a lone surrogate, which is no character (os.fsencode fails)"
    return None


def shown_text(text: str, at: int) -> str:
    """The repr of ``text``, or of its part around index ``at`` when it is long (one line)."""
    if len(text) <= 120:
        return repr(text)
    start = max(0, at - 40)
    return f"...{text[start : at + 40]!r}... (index {at} of {len(text)} characters)"


def check_os_text(option: str, text: str) -> None:
    """Refuse ``text`` of ``option`` that no command line, environment or path can hold.

    Raises
    ------
    InvalidOption
        ``option=repr(text) holds ...``, one line (see :func:`os_text_problem`).
    """
    problem = os_text_problem(text)
    if problem is not None:
        at, why = problem
        msg = f"{option}={shown_text(text, at)} {why}"
        raise InvalidOption(msg)


def _check_retries(value: Any) -> int:
    _check_count("retries", value)
    return int(value)


def _check_max_restarts(value: Any) -> int | None:
    if value is None:
        return None
    _check_count("max_restarts", value, "or None")
    return int(value)


def _duration(option: str, *, zero: bool, none: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> float | None:
        if value is None and none:
            return None
        return parse_duration(value, option, zero=zero)

    return check


def _by_schedule(parser: str) -> Callable[[Any], Any]:
    """The check of a schedule option (``every``, ``cron``, ``start``): the schedule's own
    parser (its grammar, its messages), imported on first use; the job keeps what was given,
    which the Schedule reads when the job is built."""

    def check(value: Any) -> Any:
        if value is not None:
            from . import _schedule

            getattr(_schedule, parser)(value)
        return value

    return check


_check_every = _by_schedule("parse_every")
_check_cron = _by_schedule("check_cron")
_check_start = _by_schedule("parse_start")


def _check_restart(restart: Any) -> str:
    if restart not in RESTART_POLICIES:
        policies = ", ".join(RESTART_POLICIES)
        msg = f"restart={restart!r} is not a restart policy: use one of {policies}"
        raise (InvalidOption if isinstance(restart, str) else InvalidOptionType)(msg)
    return str(restart)


def _check_env(env: Any) -> dict[str, str] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        msg = f"env={env!r} is not a mapping: give a dict of names to text values"
        raise InvalidOptionType(msg)
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key:
            msg = f"env: {key!r} is not an environment variable name"
            raise (InvalidOption if isinstance(key, str) else InvalidOptionType)(msg)
        problem = os_text_problem(key)
        if problem is not None:
            shown = shown_text(key, problem[0])
            msg = f"env: {shown} is not an environment variable name: it {problem[1]}"
            raise InvalidOption(msg)
        if not isinstance(value, str):
            msg = (
                f"env[{key!r}]={value!r} is not text: environment values are strings "
                f"(write str({value!r}) to pass it)"
            )
            raise InvalidOptionType(msg)
        check_os_text(f"env[{key!r}]", value)
    return dict(env) if env else None


def _check_cwd(cwd: Any) -> Any:
    if cwd is None:
        return None
    # The job keeps the path given; the backends read os.fspath(cwd), which must be text.
    path = os.fspath(cwd) if isinstance(cwd, os.PathLike) else cwd
    if not isinstance(path, str):
        msg = f"cwd={cwd!r} is not a folder: give a path (str or pathlib.Path)"
        raise InvalidOptionType(msg)
    check_os_text("cwd", path)
    return cwd


def _paths(option: str) -> Callable[[Any], tuple[str | os.PathLike[str], ...]]:
    def check(value: Any) -> tuple[str | os.PathLike[str], ...]:
        return _flat_paths(option, value)

    return check


def _flat_paths(option: str, value: Any) -> tuple[str | os.PathLike[str], ...]:
    # A flat tuple: a generator given is consumed here, once.
    if isinstance(value, (str, os.PathLike)):
        return (value,)
    if not isinstance(value, Iterable):
        msg = f"{option}={value!r} is not a path or a list of paths"
        raise InvalidOptionType(msg)
    out: list[str | os.PathLike[str]] = []
    for item in value:
        if isinstance(item, (list, tuple)):
            out += _flat_paths(option, item)
        elif isinstance(item, (str, os.PathLike)):
            out.append(item)
        else:
            msg = f"{option}: {item!r} is not a path (give str or pathlib.Path, globs allowed)"
            raise InvalidOptionType(msg)
    return tuple(out)


def _hook(option: str) -> Callable[[Any], Any]:
    def check(hook: Any) -> Any:
        if hook is not None and not callable(hook):
            msg = f"{option}={hook!r} is not callable: give a function taking the job"
            raise InvalidOptionType(msg)
        return hook

    return check


def _check_condition(condition: Any) -> Any:
    if condition is not None:
        from ._conditions import check_condition

        check_condition(condition)
    return condition


def _check_resources(resources: Any) -> Any:
    if resources is not None and (
        not isinstance(resources, Mapping)
        or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and v > 0
            for k, v in resources.items()
        )
    ):
        msg = f"resources={resources!r} is not a dict of names to positive amounts"
        raise InvalidOptionType(msg)
    return resources


def _check_priority(priority: Any) -> Any:
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        msg = f"priority={priority!r} is not a whole number"
        raise InvalidOptionType(msg)
    return priority


def _unchecked(value: Any) -> Any:
    # ``requires``: checked item by item by Job.requires(), which also takes them later.
    return value


#: Every job option, in the order the magics' help lists their flags.
OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("name", None, _check_name("name"), "--name", help="the job's name", metavar="NAME"),
        Option("label", None, _check_name("label")),  # asynciojobs' name for it
        Option(
            "requires", (), _unchecked, "--requires", "names", metavar="JOB",
            help="jobs that must be done before this one starts (names, or one "
            "comma-separated word)",
        ),
        Option(
            "backend", None, _check_backend, "--backend", "choice", magic="cell", choices=BACKENDS,
            help="where the cell runs: thread (default; async if the cell awaits), async, "
            "process (another core; variables shipped), dask",
        ),
        Option(
            "retries", 0, _check_retries, "--retries", "count", metavar="N",
            help="run again after a failure", expects="a whole number >= 0",
        ),
        Option(
            "retry_delay", 1.0, _duration("retry_delay", zero=True), "--retry-delay",
            "duration", metavar="SECONDS",
            help=f"wait before a retry (default 1 s), doubled after each attempt ({DURATIONS})",
            expects=flag_expects(zero=True),
        ),
        Option(
            "timeout", None, _duration("timeout", zero=False, none=True), "--timeout",
            "duration", metavar="SECONDS", help=f"stop an attempt after this ({DURATIONS})",
            expects=flag_expects(),
        ),
        Option("forever", False, _flag("forever"), "--forever", "switch",
               help="a monitor loop; not waited for"),
        Option("condition", None, _check_condition),
        Option(
            "env", None, _check_env, "--env", "pairs", metavar="KEY=VALUE", magic="script",
            help="environment variables for the script: --env A=1 B=2 takes the KEY=VALUE "
            "words that follow, up to the first other word; the script's own KEY=VALUE "
            "arguments go before --env or after --",
        ),
        Option("cwd", None, _check_cwd, "--cwd", metavar="DIR", magic="script",
               help="the script's working directory"),
        Option(
            "every", None, _check_every, "--every", "duration", metavar="PERIOD",
            help='run again every PERIOD: "30 s", "2 min", "1h30m", "1 day" (quote it); a run '
            "still going at its next time is not started twice",
            expects="a positive duration (30 s, 2 min, 1h30m, 1 day, hourly)",
        ),
        Option("cron", None, _check_cron, "--cron", metavar="EXPR",
               help='a cron schedule, local time: "*/5 * * * *" (quote it)'),
        Option(
            "start", None, _check_start, "--start", metavar="WHEN",
            help='first run at WHEN: "2026-11-22 06:00", "08:00", ISO with a time zone (quote '
            "it); alone, the job runs once then",
        ),
        Option(
            "restart", "no", _check_restart, "--restart", "choice", choices=RESTART_POLICIES,
            help="run again when the job ends: no (default), on-failure, always",
        ),
        Option(
            "restart_delay", 1.0, _duration("restart_delay", zero=True), "--restart-delay",
            "duration", metavar="SECONDS",
            help="wait before a restart (default 1 s), doubled after each consecutive failure",
            expects=flag_expects(zero=True),
        ),
        Option(
            "max_restarts", None, _check_max_restarts, "--max-restarts", "count", metavar="N",
            help="stop restarting after N restarts; the job keeps its last run's outcome",
            expects="a whole number >= 0",
        ),
        Option(
            "detach", False, _flag("detach"), "--detach", "switch",
            help="keep running when the kernel stops or dies (a cell: in a process of its "
            "own); a later kernel's engine on the same folder re-attaches to it",
        ),
        Option(
            "inputs", (), _paths("inputs"), "--inputs", "paths", metavar="PATH",
            help="files (globs allowed) the job reads: with --outputs, the job is skipped as "
            '"up to date" when its outputs are newer',
        ),
        Option(
            "outputs", (), _paths("outputs"), "--outputs", "paths", metavar="PATH",
            help="files (globs allowed) the job must write; missing ones fail it",
        ),
        Option("force", False, _flag("force"), "--force", "switch",
               help="run even when the outputs are up to date"),
        Option("before", None, _hook("before")),
        Option("after", None, _hook("after")),
        Option("resources", None, _check_resources),
        Option("priority", None, _check_priority),
        Option(
            "notify", None, _check_notify, "--notify", "switch",
            help="a browser notification (name, status, duration) when the job ends; "
            "%%jobs notify on does it for every job",
        ),
    )
}  # fmt: skip

_OPTION_NAMES = frozenset(OPTIONS)

_DEFAULT_VALUES: dict[str, Any] = {name: option.default for name, option in OPTIONS.items()}

#: The defaults, for a job made with none of the options. Read only: a plain job reads its
#: options from here, not from a copy (issue 14).
DEFAULTS: Mapping[str, Any] = MappingProxyType(_DEFAULT_VALUES)


def check_unknown(options: Mapping[str, Any]) -> None:
    """Refuse a keyword that is not a job option, with the same one line at every entry point.

    Raises
    ------
    InvalidOptionType
        (A TypeError, as Python's own "unexpected keyword argument".)
    """
    for key, value in options.items():
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            hint = f" (did you mean {close[0]}=?)" if close else ""
            msg = f"{key}={value!r} is not a job option{hint}; see help(jupyter_executor.Job)"
            raise InvalidOptionType(msg)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every job option, checked: the given ones as the job keeps them, the others' defaults.

    Only the given values are checked (the defaults are good), so a job made with few options
    costs few checks.

    Raises
    ------
    InvalidOption
        A value out of range or not understood, or a keyword that is no option.
    InvalidOptionType
        A value of the wrong type.

    Examples
    --------
    >>> check_options({"timeout": "1h30m"})["timeout"]
    5400.0
    >>> check_options({"retry": 2})
    Traceback (most recent call last):
    ...
    jupyter_executor.errors.InvalidOptionType: retry=2 is not a job option (did you mean retries=?); see help(jupyter_executor.Job)
    """  # noqa: E501
    values = _DEFAULT_VALUES.copy()
    for key, value in options.items():
        option = OPTIONS.get(key)
        if option is None:
            check_unknown({key: value})
            raise AssertionError  # pragma: no cover (check_unknown raised)
        values[key] = option.check(value)
    return values


def _is_default(name: str, value: Any) -> bool:
    default = OPTIONS[name].default
    return value is default or (type(value) is type(default) and value == default)


def split_submit_options(
    options: dict[str, Any], *, for_jobs: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``Engine.submit``'s keywords: (the job options given, the function's own keywords).

    ``for_jobs``: the target is a :class:`~jupyter_executor.Job`, whose options were given to
    ``Job(...)``: every keyword is then refused, an unknown one as everywhere (see
    :func:`check_unknown`), an option set to anything but its default as going on ``Job``.
    """
    if for_jobs:
        check_unknown(options)
        extra = [k for k, v in options.items() if not _is_default(k, v)]
        if extra:
            msg = f"options {extra} go on Job(...) when submitting Job objects"
            raise InvalidOptionType(msg)
        return {}, {}
    if options.keys() <= _OPTION_NAMES:  # (a set comparison in C: once per submit)
        return options, {}
    ours = {k: v for k, v in options.items() if k in OPTIONS}
    return ours, {k: v for k, v in options.items() if k not in OPTIONS}
