"""POSIX only, said at the door: on Windows ``Engine()`` and ``%load_ext`` refuse in one line.

Windows is faked by setting ``os.name`` for the duration of the call: the check reads it when
it runs, and nothing else of the engine has run yet when it refuses. The magics' side is in
tests/test_magics.py (it needs the module's shell).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jupyter_executor import Engine, JupyterExecutorError, UnsupportedPlatform

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(os, "name", "nt")
    yield


def test_engine_refuses_windows_in_one_line(windows: None, tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(UnsupportedPlatform) as info:
        Engine(folder=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Engine(): jupyter_executor runs on POSIX systems (Linux, macOS)")
    assert isinstance(info.value, JupyterExecutorError)
    assert isinstance(info.value, RuntimeError)


def test_posix_is_accepted(tmp_path: os.PathLike[str]) -> None:
    with Engine(folder=tmp_path, history=False) as engine:
        engine.submit(sum, [1, 2], name="s")
        assert engine.wait(30)
