"""The magics against odd input: every mistake is one ``UsageError`` line, never a traceback,
a half-registered job, a job nobody can address, or a half-unloaded extension.

In-process, with IPython's own shell (the terminal code paths), as ``test_magics.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _usage import usage_error
from IPython.core.interactiveshell import InteractiveShell

from jupyter_executor import _extension, get_engine


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "body",
    [
        "return 1",
        "x = 1\nbreak",
        "continue",
        "yield 1",
        "nonlocal x",
        "from __future__ import braces",
        "def f():\n    x = 1\n    global x",
        "x = " + "1+" * 200_000 + "1",  # the compiler's RecursionError
    ],
)
def test_a_cell_the_compiler_refuses_is_a_usage_error(ip: InteractiveShell, body: str) -> None:
    # ast.parse accepts these; only compile() or symtable refuses them
    message = usage_error(ip.run_cell_magic, "job", "bad", body)
    assert message.startswith("the cell is"), message
    assert "bad" not in get_engine().jobs


@pytest.mark.timeout(60)
def test_jobs_wait_with_a_scheduled_job_returns_once_the_others_end(ip: InteractiveShell) -> None:
    ip.run_cell_magic("job", "every --every 1h", "x = 1")
    ip.run_cell_magic("job", "always --restart always --restart-delay 1h", "y = 1")
    ip.run_cell_magic("job", "plain", "import time\ntime.sleep(0.2)\nz = 1")
    ip.run_line_magic("jobs", "wait")  # raised TypeError formatting a None timeout
    engine = get_engine()
    assert engine["plain"].status.value == "done"
    assert not engine["every"].done()
    ip.run_line_magic("jobs", "cancel every always")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("names", ["", "slow"])
def test_jobs_wait_with_a_timeout_beyond_what_a_lock_takes(
    ip: InteractiveShell, names: str
) -> None:
    ip.run_cell_magic("job", "slow", "import time\ntime.sleep(0.2)")
    ip.run_line_magic("jobs", f"wait {names} --timeout 1e12")  # raised OverflowError
    assert get_engine()["slow"].status.value == "done"


@pytest.mark.timeout(60)
def test_unload_ext_inside_a_job_is_refused_before_anything_is_undone(
    ip: InteractiveShell,
) -> None:
    ip.run_cell_magic(
        "job", "unload", "get_ipython().run_line_magic('unload_ext', 'jupyter_executor')"
    )
    engine = get_engine()
    engine.wait_job("unload", 30)
    info = engine["unload"].info()
    assert info.status == "failed"
    assert "UsageError" in str(info.error) and "inside job 'unload'" in str(info.error)
    # the extension is still set up in this shell (before: popped, its echo and exit hook gone,
    # while IPython still counted it as loaded)
    assert id(ip) in _extension._active
    ip.run_cell_magic("job", "after", "5")
    assert engine.wait_job("after", 30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("magic", "line"),
    [
        ("cell", "'a,b'"),
        ("cell", "' spaced'"),
        ("cell", "--name 'trailing '"),
        ("line", "'true' --name 'c,d'"),
    ],
)
def test_a_name_the_jobs_commands_cannot_address_is_refused(
    ip: InteractiveShell, magic: str, line: str
) -> None:
    # %jobs and --requires split names at commas and strip them: `%jobs cancel 'a,b'` said
    # "no job named 'a' (jobs: a,b)"
    if magic == "cell":
        message = usage_error(ip.run_cell_magic, "job", line, "x = 1")
    else:
        message = usage_error(ip.run_line_magic, "job", line)
    assert message.startswith("bad job name"), message
    assert not get_engine().jobs


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("'' --name empty", "neither a script nor a command"),
        ("'   ' --name blank", "neither a script nor a command"),
        ("/dev/null", "/dev/null is a special file"),
    ],
)
def test_a_script_that_is_no_file_is_named_for_what_it_is(
    ip: InteractiveShell, line: str, says: str
) -> None:
    # '' was ". is a directory" (shown as " is a directory"); /dev/null "is a directory" too
    message = usage_error(ip.run_line_magic, "job", line)
    assert says in message, message
    assert "directory" not in message
    assert not get_engine().jobs


@pytest.mark.timeout(120)
def test_a_detached_cell_keeps_its_retries(ip: InteractiveShell) -> None:
    # --retries was dropped for %%job --detach (one attempt, retries 0); %job --detach kept it
    body = (
        "import os\n"
        "os.makedirs('marks', exist_ok=True)\n"
        "n = len(os.listdir('marks'))\n"
        "open(f'marks/{n}', 'w').close()\n"
        "if n < 1:\n"
        "    raise SystemExit(1)\n"
        "n"
    )
    ip.run_cell_magic("job", "flaky --detach --retries 1", body)
    engine = get_engine()
    assert engine.wait_job("flaky", 90), engine["flaky"].info().error
    assert engine["flaky"].retries == 1
    assert list(engine.history("flaky")["status"]) == ["failed", "done"]


@pytest.mark.timeout(60)
def test_reloading_the_extension_leaves_one_set_of_magics_configurable(
    ipshell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each load added a JobMagics to the shell's configurables and no unload removed it: they
    # piled up, and every one of them took each later %config JobMagics.
    from jupyter_executor.magics import JobMagics

    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        ipshell.run_line_magic("load_ext", "jupyter_executor")
        ipshell.run_line_magic("unload_ext", "jupyter_executor")
    assert [c for c in ipshell.configurables if isinstance(c, JobMagics)] == []
    ipshell.run_line_magic("load_ext", "jupyter_executor")
    try:
        assert len([c for c in ipshell.configurables if isinstance(c, JobMagics)]) == 1
    finally:
        ipshell.run_line_magic("unload_ext", "jupyter_executor")
