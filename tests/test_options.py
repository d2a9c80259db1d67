"""Every option of Job(...) / Engine.submit is checked at the door: one line naming it and the
value."""

from __future__ import annotations

import inspect
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import jupyter_executor
from jupyter_executor import AbstractJob, Engine, InvalidOption, InvalidOptionType, Job, launcher
from jupyter_executor._duration import parse_duration
from jupyter_executor._options import OPTIONS, JobOptions, SubmitOptions
from jupyter_executor.magics import _PARSERS, JobMagics, _parse, _seconds


def work() -> int:
    return 1


@pytest.mark.parametrize(
    ("options", "error", "expected"),
    [
        ({"name": 5}, InvalidOptionType, "name=5 is not a job name"),
        ({"name": "  "}, InvalidOption, "name='  ' is not a job name"),
        ({"backend": "gpu"}, InvalidOption, "backend='gpu' is not a backend: use one of async"),
        ({"backend": 3}, InvalidOptionType, "backend=3 is not a backend"),
        ({"label": ""}, InvalidOption, "label='' is not a job name"),
        ({"label": 7}, InvalidOptionType, "label=7 is not a job name"),
        ({"label": "other"}, InvalidOption, "give name= or label= (an alias), not both: 'bad' != 'other'"),  # noqa: E501
        ({"forever": "no"}, InvalidOptionType, "forever='no' is not True or False"),
        ({"retries": -1}, InvalidOption, "retries=-1 is not a whole number >= 0"),
        ({"retries": 1.5}, InvalidOption, "retries=1.5 is not a whole number >= 0"),
        ({"retries": "2"}, InvalidOptionType, "retries='2' is not a whole number >= 0"),
        ({"retry_delay": "soon"}, InvalidOption, "retry_delay='soon' is not a duration"),
        ({"retry_delay": -1}, InvalidOption, "retry_delay=-1 must be a duration >= 0"),
        ({"timeout": "abc"}, InvalidOption, "timeout='abc' is not a duration (seconds, or text like '90', '5m', '1h30m')"),  # noqa: E501
        ({"timeout": 0}, InvalidOption, "timeout=0 must be a duration > 0"),
        ({"timeout": float("nan")}, InvalidOption, "timeout=nan is not a duration"),
        ({"timeout": [5]}, InvalidOptionType, "timeout=[5] is not a duration"),
        ({"condition": "later"}, InvalidOptionType, "condition must be a Condition"),
        ({"env": {"N": 1}}, InvalidOptionType, "env['N']=1 is not text"),
        ({"env": {"N": None}}, InvalidOptionType, "env['N']=None is not text"),
        ({"env": {"A=B": "x"}}, InvalidOption, "env: 'A=B' is not an environment variable name"),
        ({"env": {3: "x"}}, InvalidOptionType, "env: 3 is not an environment variable name"),
        ({"env": ["N=1"]}, InvalidOptionType, "env=['N=1'] is not a mapping"),
        ({"cwd": 5}, InvalidOptionType, "cwd=5 is not a folder"),
        ({"every": "soon"}, InvalidOption, "cannot use every='soon'"),
        ({"every": [1]}, InvalidOptionType, "every= takes"),
        ({"cron": "61 * * * *"}, InvalidOption, "bad cron expression '61 * * * *'"),
        ({"cron": 5}, InvalidOptionType, "cron= takes a cron expression string, not 5"),
        ({"start": "tomorrowish"}, InvalidOption, "cannot use start='tomorrowish'"),
        ({"start": [1]}, InvalidOptionType, "start= takes"),
        ({"restart": "sometimes"}, InvalidOption, "restart='sometimes' is not a restart policy"),
        ({"restart_delay": "x"}, InvalidOption, "restart_delay='x' is not a duration"),
        ({"max_restarts": -2}, InvalidOption, "max_restarts=-2 is not a whole number >= 0"),
        ({"detach": "yes"}, InvalidOptionType, "detach='yes' is not True or False"),
        ({"inputs": 5}, InvalidOptionType, "inputs=5 is not a path or a list of paths"),
        ({"outputs": ["a.csv", 3]}, InvalidOptionType, "outputs: 3 is not a path"),
        ({"force": None}, InvalidOptionType, "force=None is not True or False"),
        ({"notify": "yes"}, InvalidOptionType, "notify='yes' is not True or False"),
        ({"before": "setup"}, InvalidOptionType, "before='setup' is not callable"),
        ({"after": 1}, InvalidOptionType, "after=1 is not callable"),
        ({"requires": [1]}, InvalidOptionType, "requires() takes jobs or job names, not 1"),
        ({"replace": "yes"}, InvalidOptionType, "replace='yes' is not True or False"),
        ({"on_duplicate": "ignore"}, InvalidOption, "on_duplicate='ignore' is not one of error"),
        ({"resources": {"GPU": 1}}, InvalidOption, "resources= and priority= are for backend='dask'"),  # noqa: E501
        ({"backend": "dask", "resources": {"GPU": -1}}, InvalidOptionType, "resources={'GPU': -1} is not a dict of names to positive amounts"),  # noqa: E501
        ({"backend": "dask", "priority": "high"}, InvalidOptionType, "priority='high' is not a whole number"),  # noqa: E501
    ],
)  # fmt: skip
def test_a_bad_option_is_refused_at_submit_naming_it(
    engine: Engine, options: dict[str, Any], error: type[Exception], expected: str
) -> None:
    with pytest.raises(error) as info:
        engine.submit(work, **{"name": "bad", **options})
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert isinstance(info.value, ValueError)  # what earlier versions raised for most
    assert not engine.jobs  # nothing of it was submitted


def test_env_with_a_non_text_value_used_to_fail_in_the_job(engine: Engine) -> None:
    # Before: accepted, then the job failed with "expected str, bytes or os.PathLike object,
    # not int", naming no variable.
    with pytest.raises(InvalidOptionType, match=r"env\['N'\]=1 is not text"):
        Job("echo $N", env={"N": 1})
    job = engine.submit("echo $N", env={"N": "1"}, name="ok")
    assert engine.wait(timeout=30) and job.output.tail() == "1"


# -- one schema: every entry point takes its options from _options.OPTIONS -----------------------


class Custom(AbstractJob):
    async def run(self) -> int:
        return 1


def test_the_schema_is_the_one_list_of_options() -> None:
    # What type checkers see (JobOptions) and what runs (OPTIONS) hold the same options...
    assert set(JobOptions.__optional_keys__) == set(OPTIONS)
    assert not JobOptions.__required_keys__
    assert set(SubmitOptions.__optional_keys__) == {*OPTIONS, "replace", "on_duplicate"}
    # ...and no entry point writes them out again: each takes **options (Unpack[JobOptions]).
    signatures = {
        Job.__init__: ["self", "target", "args", "kwargs", "options"],
        Engine.submit: ["self", "target", "args", "replace", "on_duplicate", "options"],
        AbstractJob.__init__: ["self", "options"],
        # (the overload with options: what type checkers see of launcher(...))
        typing.get_overloads(launcher)[1]: ["fn", "engine", "async_mode", "options"],
    }
    for function, names in signatures.items():
        parameters = inspect.signature(function).parameters
        assert list(parameters) == names, function
        assert parameters["options"].kind is inspect.Parameter.VAR_KEYWORD
        assert "Unpack[" in str(parameters["options"].annotation)


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_entry_point_takes_every_option(engine: Engine, option: str) -> None:
    default = OPTIONS[option].default
    given: dict[str, Any] = {option: default}
    job = Job(work, **given)
    submitted = engine.submit(work, **given)
    assert submitted.kwargs == {}  # an option, not an argument of the function
    launched = launcher(engine=engine, **given)(work).job()
    copied = launcher(work).options(**given).job()
    custom = Custom(**({option: "async"} if option == "backend" else given))
    for made in (job, submitted, launched, copied, custom):
        assert isinstance(made, Job)
    engine.wait(timeout=30)


def test_an_option_given_is_what_each_entry_point_keeps(engine: Engine) -> None:
    given: dict[str, Any] = {"retries": 2, "retry_delay": "1.5", "timeout": "5m", "notify": True}
    launch = launcher(engine=engine, **given)(work)
    made = [
        Job(work, **given),
        engine.submit(work, **given),
        launch.job(),
        launch.options(name="copy").job(),
        Custom(**given),
    ]
    for job in made:
        assert (job.retries, job.retry_delay, job.timeout, job.notify) == (2, 1.5, 300, True)
    assert engine.wait(timeout=30)


def test_an_unknown_option_gets_the_same_message_everywhere(engine: Engine) -> None:
    expected = (
        "retry=2 is not a job option (did you mean retries=?); see help(jupyter_executor.Job)"
    )
    bad: dict[str, Any] = {"retry": 2}
    calls = {
        "Job": lambda: Job(work, **bad),
        "submit(Job)": lambda: engine.submit(Job(work), **bad),
        "launcher": lambda: launcher(**bad),
        "Launcher.options": lambda: launcher(work).options(**bad),
        "AbstractJob": lambda: Custom(**bad),
    }
    for where, call in calls.items():
        with pytest.raises(InvalidOptionType) as info:
            call()
        assert str(info.value) == expected, where
    assert not engine.jobs
    # submit(fn, ...) passes every keyword that is not an option on to fn (documented)
    job = engine.submit(dict, **bad)
    assert job.kwargs == {"retry": 2} and engine.wait(timeout=30) and job.result() == bad


def test_the_magics_list_the_flags_of_the_schema() -> None:
    cell_help = str(JobMagics.job_cell.__doc__)
    line_help = str(JobMagics.job_line.__doc__)
    flags = [option for option in OPTIONS.values() if option.flag is not None]
    assert len(flags) >= 20
    for option in flags:
        assert option.flag is not None
        shown = option.flag + (f" {option.metavar}" if option.metavar else "")
        for magic, text in (("cell", cell_help), ("script", line_help)):
            if option.magic in ("both", magic):
                assert f"  {shown}" in text, (option.name, magic)
                assert option.help.split()[0] in text
            else:  # given anyway, it gets the magic's own message (not "unrecognized")
                assert f"  {option.flag} " not in text
                assert (
                    option.flag
                    in _PARSERS["%%job" if magic == "cell" else "%job"]._option_string_actions
                )


# -- one duration grammar for every option that takes a duration ------------------------------

GRAMMAR = [
    ("90", 90), ("1.5", 1.5), ("5m", 300), ("2 min", 120), ("1h30m", 5400), ("1d", 86400),
    (90, 90), (1.5, 1.5), (timedelta(minutes=2), 120),
]  # fmt: skip
DURATION_OPTIONS = sorted(name for name, option in OPTIONS.items() if option.duration)


def test_the_duration_options_are_those_expected() -> None:
    # A new option taking a duration joins the grammar test below by being marked so.
    assert DURATION_OPTIONS == ["every", "restart_delay", "retry_delay", "timeout"]


def _seconds_kept(job: Job, option: str) -> float:
    """What the job keeps for ``option``, in seconds."""
    if option == "every":
        assert job.runstate.life is not None and job.runstate.life.schedule is not None
        assert job.runstate.life.schedule.every is not None
        return float(job.runstate.life.schedule.every.total_seconds())
    if option == "restart_delay":
        assert job.runstate.life is not None
        return float(job.runstate.life.restart_delay)
    value = getattr(job, option)
    assert isinstance(value, float)
    return value


def _with(option: str, value: Any) -> dict[str, Any]:
    # a restart delay goes with a restart policy
    return {option: value, **({"restart": "always"} if option == "restart_delay" else {})}


@pytest.mark.parametrize("option", DURATION_OPTIONS)
@pytest.mark.parametrize(("text", "seconds"), GRAMMAR)
def test_one_duration_grammar_for_every_duration_option(
    engine: Engine, option: str, text: Any, seconds: float
) -> None:
    assert parse_duration(text, option) == seconds
    # in Python: Job, submit (the job is refused before it runs: no time is waited), launcher
    assert _seconds_kept(Job(work, **_with(option, text)), option) == seconds
    assert _seconds_kept(launcher(**_with(option, text))(work).job(), option) == seconds
    assert _seconds_kept(Custom(**_with(option, text)), option) == seconds
    job = engine.submit(work, name="d", forever=True, **_with(option, text))
    assert _seconds_kept(job, option) == seconds
    job.cancel()
    # in the magics: the option's flag, on %%job and %job lines, and %jobs wait --timeout
    if isinstance(text, str):
        flag = OPTIONS[option].flag
        assert flag is not None
        for prog, line in (("%%job", ["x"]), ("%job", [])):
            args = _parse(prog, [*line, flag, text])
            kept = getattr(args, option)
            got = parse_duration(kept, option)  # --every keeps the text for its schedule
            assert got == seconds, (prog, flag, text)
        assert _parse("%jobs", ["wait", "--timeout", text]).timeout == seconds == _seconds(text)


@pytest.mark.parametrize("option", DURATION_OPTIONS)
@pytest.mark.parametrize("bad", ["soon", "-5", "5 parsecs", "1h30"])
def test_a_bad_duration_is_one_line_naming_the_option(option: str, bad: str) -> None:
    with pytest.raises(InvalidOption) as info:
        Job(work, **_with(option, bad))
    message = str(info.value)
    assert f"{option}={bad!r}" in message and "\n" not in message
    flag = OPTIONS[option].flag
    assert flag is not None
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=f"argument {flag}: takes .*not {bad!r}"):
        _parse("%%job", ["x", flag, bad])
    with pytest.raises(UsageError, match=f"argument --timeout: takes .*not {bad!r}"):
        _parse("%jobs", ["wait", "--timeout", bad])


# -- what type checkers see ---------------------------------------------------------------------

USER_CODE = """
from jupyter_executor import AbstractJob, Engine, Job, launcher


def work(x: int = 0) -> int:
    return x


class Mine(AbstractJob):
    async def run(self) -> int:
        return 1


engine = Engine()
Job(work, retries=2, timeout="5m", every="1h30m", restart="always", restart_delay=0)
engine.submit(work, 1, name="ok", on_duplicate="skip", replace=False, inputs=["a.csv"])
launcher(engine=engine, job_type="process", timeout=3)(work).options(name="a", engine=None)
Mine(name="m", retry_delay="2 min", requires=["ok"])
Job(work, retries="2")  # line 19
engine.submit(work, timeout=[1])  # line 20
launcher(forever="yes")  # line 21
Mine(colour="red")  # line 22
"""


@pytest.mark.timeout(300)
def test_type_checkers_see_each_option_and_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # **options: Unpack[JobOptions] keeps what the written-out keywords gave mypy --strict users
    api = pytest.importorskip("mypy.api")
    (tmp_path / "user.py").write_text(USER_CODE)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")  # not the project's settings
    monkeypatch.setenv("MYPYPATH", str(Path(jupyter_executor.__file__).parent.parent))
    out, err, _status = api.run(
        ["--strict", "--python-version", "3.11", "--follow-imports=silent", "--no-incremental",
         "--config-file", str(tmp_path / "mypy.ini"), str(tmp_path / "user.py")]
    )  # fmt: skip
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == [19, 20, 21, 22], out + err
    assert 'Argument "retries" to "Job" has incompatible type "str"' in errors[0]
    assert '"timeout" to "submit" of "Engine" has incompatible type "list[int]"' in errors[1]
    assert 'Unexpected keyword argument "colour" for "Mine"' in errors[3]


def test_the_guide_lists_every_flag_of_the_schema() -> None:
    # docs/notebook-guide.md's table is written by hand: it must not fall behind the schema
    guide = Path(__file__).parent.parent / "docs" / "notebook-guide.md"
    table = guide.read_text().split("## The options of `%%job` and `%job`")[1]
    for option in OPTIONS.values():
        if option.flag is not None:
            assert f"`{option.flag}" in table or f"<code>{option.flag}" in table, option.flag


def test_the_defaults_plain_jobs_share_are_read_only() -> None:
    # A plain Job reads its options from the shared defaults, not a copy (issue 14): a write
    # there would change every job made after it.
    from jupyter_executor._options import DEFAULTS, check_options

    with pytest.raises(TypeError):
        DEFAULTS["retries"] = 3  # type: ignore[index]
    job = Job(work, name="plain")
    assert (job.retries, job.timeout, job.forever, job.requirements) == (0, None, False, ())
    options = check_options({"retries": 2})
    options["timeout"] = 5.0  # a copy: the defaults stay
    assert DEFAULTS["retries"] == 0 and DEFAULTS["timeout"] is None
