"""A job's exception whose ``__str__`` raises: its job fails with it, and nothing else does.

The engine formats a failed job's exception on the thread that ends the job (a worker thread,
the loop) and in the history's writer: formatted unguarded, it killed the worker thread (its
pool one thread short), and the writer could write no run of the batch, retried for ever.
"""

from __future__ import annotations

import pytest

from jupyter_executor import Engine, Job
from jupyter_executor._text import error_text


class _BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def _raise_bad_str() -> None:
    raise _BadStr


async def _araise_bad_str() -> None:
    raise _BadStr


def _double(x: int) -> int:
    return 2 * x


@pytest.mark.parametrize("backend", ["thread", "async"])
def test_an_exception_whose_str_raises_fails_its_job_only(engine: Engine, backend: str) -> None:
    fn = _araise_bad_str if backend == "async" else _raise_bad_str
    engine.set_limits(**{backend: 1})
    bad = engine.submit(fn, backend=backend, name="bad")
    retried = engine.submit(fn, backend=backend, name="retried", retries=1, retry_delay=0)
    after = engine.submit(_double, 4, backend="thread", name="after")
    assert not engine.wait(timeout=60)
    assert bad.status == retried.status == "failed"
    assert type(bad.exception()).__name__ == "_BadStr"
    assert after.result() == 8
    listed = engine.list().set_index("name")["error"]
    assert listed["bad"] == listed["retried"] == "_BadStr: <exception str() failed>"
    rows = engine.history()
    errors = {
        (n, a): e for n, a, e in zip(rows["name"], rows["attempt"], rows["error"], strict=True)
    }
    assert errors[("bad", 1)] == "_BadStr: <exception str() failed>"
    assert errors[("retried", 2)] == "_BadStr: <exception str() failed>"
    assert not isinstance(errors[("after", 1)], str)  # (NaN: no error)
    assert "_BadStr" in repr(bad)


def test_error_text_never_raises() -> None:
    assert error_text(ValueError("x")) == "ValueError: x"
    assert error_text(_BadStr()) == "_BadStr: <exception str() failed>"
    assert error_text(RuntimeError(Job(_raise_bad_str).describe())) == (
        "RuntimeError: _raise_bad_str()"
    )
