"""Jobs that close or redirect their streams, and odd text, in a real ipykernel
(docs/kernel-notes.md §5)."""

from __future__ import annotations

import pytest
from _kernel import Kernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]


def wait_job(k: Kernel, name: str, timeout: float = 30) -> str:
    """Wait for a job in the kernel; return its final status."""
    k.execute(f"get_engine().wait_job({name!r}, {timeout})", timeout=timeout + 5)
    return str(k.execute(f"get_engine()[{name!r}].status.value").result).strip("'")


def test_a_job_closing_its_stdout_closes_only_its_own(kernel: Kernel) -> None:
    code = """%%job closer
import sys
print("before close")
sys.stdout.close()
print("closed:", sys.stdout.closed, file=sys.stderr)
try:
    print("after close")
except ValueError as exc:
    print("print raised:", exc, file=sys.stderr)
"""
    assert kernel.execute(code).ok
    assert wait_job(kernel, "closer") == "done"
    tail = kernel.execute("print(get_engine()['closer'].tail(10))").stdout
    assert "before close" in tail and "closed: True" in tail
    assert "print raised: I/O operation on closed file." in tail and "after close" not in tail
    # The kernel's stdout is open: later cells print (they raised ValueError: closed file).
    later = kernel.execute("import sys\nprint('cell prints', sys.stdout.closed)")
    assert later.ok and later.stdout == "cell prints False\n"
    # And another job prints.
    assert kernel.execute("%%job other_printer\nprint('other job prints')").ok
    assert wait_job(kernel, "other_printer") == "done"
    tail = kernel.execute("print(get_engine()['other_printer'].tail())").stdout
    assert "other job prints" in tail


def test_redirect_stdout_in_a_job_captures_that_job_only(kernel: Kernel) -> None:
    setup = "import contextlib, io, threading\ninside, go = threading.Event(), threading.Event()"
    assert kernel.execute(setup).ok
    job = """%%job redirector
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    print("job line")
    inside.set()
    go.wait(20)
    with contextlib.redirect_stdout(io.StringIO()):
        print("nested")
    print("job line 2")
print("after the redirection")
buf.getvalue()
"""
    assert kernel.execute(job).ok
    # A cell printing while the job's redirection is on: its line stays in the cell.
    cell = kernel.execute("inside.wait(20)\nprint('cell line')\ngo.set()")
    assert cell.ok and cell.stdout == "cell line\n"
    assert wait_job(kernel, "redirector") == "done"
    result = kernel.execute("print(repr(get_engine()['redirector'].result()))").stdout
    assert result == "'job line\\njob line 2\\n'\n"  # it got the cell's line
    tail = kernel.execute("print(get_engine()['redirector'].tail())").stdout
    assert "after the redirection" in tail and "job line" not in tail


def test_capture_in_a_cell_does_not_capture_jobs(kernel: Kernel) -> None:
    setup = "import threading\ncapturing, printed = threading.Event(), threading.Event()"
    assert kernel.execute(setup).ok
    job = """%%job printer
capturing.wait(20)
print("job line during the capture")
printed.set()
"""
    assert kernel.execute(job).ok
    cell = kernel.execute(
        "%%capture cap\ncapturing.set()\nprinted.wait(20)\nprint('cell line')", timeout=30
    )
    assert cell.ok
    assert wait_job(kernel, "printer") == "done"
    assert kernel.execute("print(repr(cap.stdout))").stdout == "'cell line\\n'\n"
    tail = kernel.execute("print(get_engine()['printer'].tail())").stdout
    assert "job line during the capture" in tail
    # The kernel's streams are the proxies again, and print as usual.
    after = kernel.execute("import sys\nprint(type(sys.stdout).__name__, 'prints')")
    assert after.stdout == "StreamProxy prints\n"


def test_a_job_failing_on_a_non_utf8_file_name_leaves_the_views_working(kernel: Kernel) -> None:
    job = "%%job oddfail\nimport os\nraise ValueError('cannot parse ' + os.fsdecode(b'data-\\xff'))"
    assert kernel.execute(job).ok
    assert wait_job(kernel, "oddfail") == "failed"
    # %jobs raised UnicodeEncodeError from _publisher.pack, as long as the job was in the engine.
    for code in (
        "%jobs",
        "from jupyter_executor.widget import JobView\nJobView(get_engine()['oddfail'])",
        "get_engine().history()[['name', 'error']]",
    ):
        ex = kernel.execute(code)
        assert ex.ok, code
    assert "cannot parse data-\\xff" in str(ex.result)
