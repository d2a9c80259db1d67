"""Blocking waits show their jobs (issue 11 #6): ``engine.wait()``, ``orchestrate()`` and
``%jobs wait`` in a notebook cell display a live view of the jobs they wait for under that cell;
in terminal IPython the jobs' lines are printed as ``[job NAME] line`` while the cell waits.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from _kernel import Execution, Kernel, running_kernel
from _wait import wait_until

pytestmark = [pytest.mark.timeout(120)]

TALK = """
import threading, time
from jupyter_executor import Engine, get_engine
from jupyter_executor import _waiting
gates = {}
def open_when_waiting(names, pause=0.5):
    # Makes the gates of the jobs' 3 lines, and opens them line by line once a wait shows its
    # jobs (a wait on the main thread blocks the cell): the lines then come while the cell
    # waits, on a loaded machine too.
    gates.update({(n, i): threading.Event() for n in names for i in range(3)})
    def run():
        while not _waiting._wait_shown:
            time.sleep(0.02)
        for i in range(3):
            time.sleep(pause)
            for n in names:
                gates[n, i].set()
    threading.Thread(target=run, daemon=True).start()
def talk(name, n=3):
    for i in range(n):
        print(f"{name} line {i}", flush=True)
        gates[name, i].wait(60)
    return name
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with running_kernel(tmp_path_factory.mktemp("kernel")) as k:
        k.execute("%load_ext jupyter_executor\n" + TALK)
        yield k


def _views(ex: Execution) -> list[tuple[str, str, str]]:
    """(msg_type, display_id, text/plain) of the display messages parented to the cell."""
    out = []
    for m in ex.messages:
        if m["msg_type"] in ("display_data", "update_display_data"):
            content = m["content"]
            display_id = content.get("transient", {}).get("display_id", "")
            if display_id.startswith("jupyter-executor-wait-"):
                out.append((m["msg_type"], display_id, content["data"]["text/plain"]))
    return out


@pytest.mark.kernel
def test_engine_wait_in_a_cell_shows_the_jobs_lines_under_it(kernel: Kernel) -> None:
    # The gates are opened line by line once the wait has begun: the lines arrive while the
    # cell waits, and the view must show them then, not only at the end.
    ex = kernel.submit(
        "engine = get_engine()\n"
        "open_when_waiting(('alpha', 'beta'))\n"
        "engine.submit(talk, 'alpha', name='alpha')\n"
        "engine.submit(talk, 'beta', name='beta')\n"
        "print('ok' if engine.wait(60) else 'not ok')"
    )
    # while it waits: a view under the cell with both jobs running and their first lines
    wait_until(
        lambda: any(
            "[job alpha] alpha line 0" in t and "[job beta] beta line 0" in t and "running" in t
            for _, _, t in _views(ex)
        ),
        timeout=30,
        what=lambda: f"both first lines under the waiting cell, got {_views(ex)[-1:]}",
    )
    assert not ex.done
    ex.wait(60)
    assert ex.ok and ex.stdout == "ok\n"
    views = _views(ex)
    assert views[0][0] == "display_data" and len({d for _, d, _ in views}) == 1
    final = views[-1][2]
    assert final.startswith("waited for 2 jobs: 2 done"), final
    for name in ("alpha", "beta"):
        for i in range(3):
            assert f"[job {name}] {name} line {i}" in final, final


# a second engine in the same kernel, without a history, waited on by orchestrate()
ORCHESTRATE_SOLO = """\
open_when_waiting(('solo',), pause=0.1)
e2 = Engine(history=False)
e2.submit(talk, 'solo', name='solo')
print(e2.orchestrate(60))"""


@pytest.mark.kernel
def test_orchestrate_and_jobs_wait_show_their_jobs(kernel: Kernel) -> None:
    ex = kernel.execute(ORCHESTRATE_SOLO, timeout=60)
    assert ex.stdout == "True\n"
    final = _views(ex)[-1][2]
    assert final.startswith("waited for 1 job: 1 done") and "[job solo] solo line 2" in final
    kernel.execute("open_when_waiting(('named',), pause=0.1)")
    kernel.execute("%%job named\ntalk('named')")
    ex = kernel.execute("%jobs wait named", timeout=60)
    final = _views(ex)[-1][2]
    assert final.startswith("waited for 1 job: 1 done"), final
    assert "[job named] named line 2" in final
    # nothing waited for, nothing shown
    ex = kernel.execute("get_engine().wait(5)")
    assert _views(ex) == []


def test_terminal_wait_prints_the_lines_as_they_come(tmp_path: Any) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from jupyter_executor import Engine, _extension, _terminal
    from jupyter_executor import engine as engine_module

    # A shell of this test's own (no history database), cleared after: IPython's global test
    # shell would stay the process's singleton and leak into later tests.
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config, ipython_dir=str(tmp_path / "ipython"))
    stream = io.StringIO()
    ext = _extension._Extension(shell)
    engine = Engine(folder=tmp_path / "runs")
    previous = engine_module.set_wait_display(ext.wait_display)
    try:
        ext.echo = _terminal.TerminalEcho(shell, engine, stream=lambda: stream)
        ext.echo._busy = True  # as while a cell runs: held back unless a wait shows them
        import threading

        gate = threading.Event()

        def talk() -> str:
            print("first", flush=True)
            gate.wait(30)
            print("second", flush=True)
            return "ok"

        engine.submit(talk, name="t")
        seen: list[str] = []

        def release() -> None:
            wait_until(lambda: "[job t] first" in stream.getvalue(), timeout=30, what="first")
            seen.append(stream.getvalue())
            gate.set()

        helper = threading.Thread(target=release)
        helper.start()
        assert engine.wait(30)  # on the main thread: the hook prints while it waits
        helper.join(30)
        assert seen and "[job t] first" in seen[0] and "second" not in seen[0]
        assert "[job t] second" in stream.getvalue()
    finally:
        engine_module.set_wait_display(previous)
        if ext.echo is not None:
            ext.echo.close()
        engine.shutdown()
        InteractiveShell.clear_instance()
