"""Terminal IPython: no widgets, so job output is echoed as ``[job NAME] line``.

A real ``ipython`` with its prompt_toolkit prompt runs in a pseudo-terminal (pexpect). Job lines
must appear while the prompt waits (above it), be held back while a foreground cell runs, and
never appear bare.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

REPO = Path(__file__).resolve().parent.parent
# prompt_toolkit's screen control sequences, removed before looking at the text
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(
        IPYTHONDIR=str(tmp_path / "ipython"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        TERM="xterm",
        PROMPT_TOOLKIT_NO_CPR="1",  # a pty answers no cursor-position requests
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "IPython", "--no-banner", "--colors=NoColor", "--HistoryManager.enabled=False"],
        env=env,
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=20,
        dimensions=(50, 200),
    )
    child.logfile_read = io.StringIO()  # everything the terminal showed
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)
        child.close()


def cell(child: object, code: str, number: int) -> str:
    """Type one line at prompt ``number`` and return the screen text until the next prompt."""
    child.sendline(code)  # type: ignore[attr-defined]
    child.expect(rf"In \[{number + 1}\]")  # type: ignore[attr-defined]
    return _ESCAPES.sub("", child.before)  # type: ignore[attr-defined]


@pytest.mark.timeout(90)
def test_terminal_echo_prints_job_lines_with_their_name(terminal: object) -> None:
    child = terminal
    child.expect(r"In \[1\]")  # type: ignore[attr-defined]
    cell(child, "%load_ext jupyter_executor", 1)
    out = cell(
        child,
        "get_ipython().run_cell_magic('job', 'load', "
        "\"import time\\nfor i in range(3):\\n    print('rows:', i)\\n    time.sleep(0.2)\\ni\")",
        2,
    )
    assert re.search(r"\[job load\] (pending|running) \(thread\): import time", out)
    # nothing typed: the lines come while the prompt waits
    child.expect(r"\[job load\] rows: 2")  # type: ignore[attr-defined]
    child.expect(r"\[job load\] done in [0-9.]+ s -> 2")  # type: ignore[attr-defined]

    # a foreground cell holds the echo back until it ends
    cell(
        child,
        "get_ipython().run_cell_magic('job', 'beat', "
        "\"import time\\ntime.sleep(0.4)\\nfor i in range(3):\\n    print('beat', i)\")",
        3,
    )
    out = cell(child, "import time; time.sleep(1.5); print('foreground done')", 4)
    before, _, after = out.partition("foreground done")
    assert "[job beat]" not in before
    assert "[job beat] beat 0\n[job beat] beat 1\n[job beat] beat 2" in after
    # so far, job output never reached the terminal without its prefix
    screen = _ESCAPES.sub("", child.logfile_read.getvalue())  # type: ignore[attr-defined]
    assert not re.search(r"(^|\n)(rows|beat) \d", screen.replace("rows:", "rows"))

    out = cell(child, "%jobs tail load", 5)
    assert "rows: 0\nrows: 1\nrows: 2" in out.replace("\n\n", "\n")
    out = cell(child, "%jobs", 6)
    assert re.search(r"NAME\s+STATUS\s+BACKEND", out)
    assert re.search(r"load\s+done\s+thread", out)
    cell(child, "%unload_ext jupyter_executor", 7)
    child.sendline("exit")  # type: ignore[attr-defined]
    child.expect(pexpect.EOF)  # type: ignore[attr-defined]
