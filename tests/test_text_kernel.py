"""Jobs that close or redirect their streams, and odd text, in a real ipykernel (kernel-facts
§5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _kernel import Kernel, running_kernel

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with running_kernel(tmp_path_factory.mktemp("kernel")) as k:
        k.execute("%load_ext jupyter_executor\nfrom jupyter_executor import get_engine")
        yield k


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
