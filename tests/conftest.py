"""Shared fixtures: an engine per test that must leave no thread and no child process behind;
a real kernel and headless Chromium per test module that asks for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _browser import chromium
from _clocked import Clocked
from _kernel import Kernel, running_kernel
from _leaks import assert_nothing_left, child_processes

from jupyter_executor import Engine
from jupyter_executor.testing import MockClock

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine writing into tmp_path; shut down and checked for leftovers after the test."""
    before = {p.pid for p in child_processes()}
    eng = Engine(folder=tmp_path / "runs")
    eng.cancel_grace = 0.5
    try:
        yield eng
    finally:
        eng.shutdown()
        assert_nothing_left(before)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A real ipykernel with the extension loaded and ``get_engine`` imported, one per test
    module that asks for it (a module may define its own ``kernel``)."""
    with running_kernel(tmp_path_factory.mktemp("kernel")) as k:
        k.execute("%load_ext jupyter_executor\nfrom jupyter_executor import get_engine")
        yield k


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium (tests/_browser.py), one per test module that asks for it."""
    with chromium(tmp_path_factory.mktemp("chromium")) as b:
        yield b


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[Clocked]:
    """An engine on a mock clock: schedules, retry delays, back-off and restarts move only
    when the test advances it."""
    before = {p.pid for p in child_processes()}
    clock = MockClock()
    eng = Engine(folder=tmp_path / "runs", clock=clock)
    eng.cancel_grace = 0.5
    try:
        yield eng, clock
    finally:
        eng.shutdown()
        assert_nothing_left(before)


@pytest.fixture(scope="module")
def ipshell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    """One in-process IPython shell per test module (no history thread, no sqlite file)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    root = tmp_path_factory.mktemp("ipython")
    shell = InteractiveShell.instance(config=config, ipython_dir=str(root))
    try:
        yield shell
    finally:
        InteractiveShell.clear_instance()


@pytest.fixture
def ip(
    ipshell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    """That shell with the extension loaded, in the test's folder; its names removed after."""
    monkeypatch.chdir(tmp_path)  # the engine's log folder goes under the test's tmp dir
    ipshell.run_line_magic("load_ext", "jupyter_executor")
    try:
        yield ipshell
    finally:
        ipshell.run_line_magic("unload_ext", "jupyter_executor")
        for name in [n for n in ipshell.user_ns if not n.startswith("_")]:
            if name not in ipshell.user_ns_hidden:
                del ipshell.user_ns[name]
