"""Failures read like IPython's (issue 11 #5), in a real kernel: the traceback of a failed
``%%job`` cell (thread, async, process) starts at the user's code, not at the engine's frames
(``backends/*.py``, ``_cell.py``), names the cell ``Cell In[n], line k`` with its source line
as IPython does for a failed cell; the job view gets it in colour (ANSI), ``job.traceback``,
``engine.list()`` and the log keep plain text.
"""

from __future__ import annotations

import json

import pytest
from _kernel import Kernel
from test_magics_kernel import comm_text, value, view_id, wait_job

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]


CELL = "%%job {name} --backend {backend}\nx = 1\nprint('about to fail')\n{body}"
BODIES = {
    "thread": "1 / 0",
    "async": "import asyncio\nawait asyncio.sleep(0)\n1 / 0",
    "process": "1 / 0",
}


@pytest.mark.parametrize("backend", ["thread", "async", "process"])
def test_job_traceback_names_the_cell_like_ipython(kernel: Kernel, backend: str) -> None:
    name = f"tb_{backend}"
    body = BODIES[backend]
    ex = kernel.execute(CELL.format(name=name, backend=backend, body=body))
    count = ex.reply["content"]["execution_count"]
    assert wait_job(kernel, name, 60) == "failed"
    tb = value(kernel, f"get_engine()[{name!r}].traceback")
    line = 2 + len(body.splitlines())  # the cell's lines after the magic line
    assert f"Cell In[{count}], line {line}" in tb, tb
    assert "1 / 0" in tb, tb  # the source line
    assert tb.rstrip().endswith("ZeroDivisionError: division by zero"), tb
    for own in ("jupyter_executor/backends", "jupyter_executor/_cell.py", "_worker.py"):
        assert own not in tb, tb
    assert "\x1b" not in tb, tb
    error = value(kernel, f"get_engine().list().set_index('name').loc[{name!r}, 'error']")
    assert error == "ZeroDivisionError: division by zero"
    # the view shows it in colour (thread and async: IPython's own formatting)
    view = view_id(ex)
    kernel.wait_for(lambda: "ZeroDivisionError" in comm_text(kernel, view), what="traceback")
    shown = [
        r.get("traceback") or ""
        for part in comm_text(kernel, view).splitlines()
        if part.startswith("{")
        for r in _rows(json.loads(part))
    ]
    if backend != "process":
        assert any("\x1b[" in t and "Cell" in t for t in shown), shown


def _rows(msg: dict) -> list[dict]:
    # a snapshot buffer ({"cols", "data"}), or a diff with "rows"
    if "cols" in msg and "data" in msg:
        return [dict(zip(msg["cols"], row, strict=False)) for row in msg["data"]]
    content = msg.get("content", msg)
    rows = content.get("rows") if isinstance(content, dict) else None
    return [r for r in rows or () if isinstance(r, dict)]
