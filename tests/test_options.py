"""Every option of Job(...) / Engine.submit is checked at the door: one line naming it and the
value."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jupyter_executor import Engine, InvalidOption, InvalidOptionType, Job
from jupyter_executor._duration import parse_duration
from jupyter_executor.magics import _delay, _seconds


def work() -> int:
    return 1


@pytest.mark.parametrize(
    ("options", "error", "expected"),
    [
        ({"name": 5}, InvalidOptionType, "name=5 is not a job name"),
        ({"name": "  "}, InvalidOption, "name='  ' is not a job name"),
        ({"backend": "gpu"}, InvalidOption, "backend='gpu' is not a backend: use one of async"),
        ({"backend": 3}, InvalidOptionType, "backend=3 is not a backend"),
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


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("5m", 300), ("2 min", 120), ("1h30m", 5400), ("1d", 86400),
     (90, 90), (timedelta(minutes=2), 120)],
)  # fmt: skip
def test_one_duration_grammar_for_the_api_and_the_magics(text: Any, seconds: float) -> None:
    assert parse_duration(text, "timeout") == seconds
    assert Job(work, timeout=text, retry_delay=text).timeout == seconds
    assert Job(work, restart="always", restart_delay=text)._life.restart_delay == seconds  # type: ignore[union-attr]
    if isinstance(text, str):
        assert _seconds(text) == seconds == _delay(text)
