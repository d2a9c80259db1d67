"""Example flows: ``jupyter-executor run examples/flows.py sleepit`` (add ``--resume`` to skip
what is up to date). ``jupyter-executor flows examples/flows.py`` lists them.

scriptflow's example, on jupyter_executor: two solver scripts in parallel, then a Python
function that combines their outputs.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from jupyter_executor import flow, launcher

HERE = Path(__file__).parent
PYTHON = shlex.quote(sys.executable)  # the interpreter running the flow, whatever is on PATH


def combine() -> int:
    """Add the solvers' results into final.txt."""
    a = int((HERE / "test_1.txt").read_text())
    b = int((HERE / "test_2.txt").read_text())
    (HERE / "final.txt").write_text(f"{a + b}\n")
    print(f"final: {a} + {b} = {a + b}")
    return a + b


@flow
async def sleepit(engine):
    """Solve two problems in parallel, then combine them."""
    t1 = engine.submit(
        f"{PYTHON} solve.py 1", name="solve-1", cwd=HERE,
        inputs=["data_1.txt", "solve.py"], outputs=["test_1.txt"],
    )  # fmt: skip
    t2 = engine.submit(
        f"{PYTHON} solve.py 2", name="solve-2", cwd=HERE,
        inputs=["data_2.txt", "solve.py"], outputs=["test_2.txt"],
    )  # fmt: skip
    await engine.gather(t1, t2)  # like scriptflow's bag(t1, t2)
    return await engine.submit(
        combine, name="final", requires=[t1, t2], cwd=HERE,
        inputs=["test_1.txt", "test_2.txt"], outputs=["final.txt"],
    )  # fmt: skip


@launcher(backend="process")
def square(x: int) -> int:
    """A function that can submit itself (runs in a worker process)."""
    return x * x


@flow
def squares(engine):
    """A plain (not async) flow: submit with a launcher, wait, collect."""
    jobs = [square.options(name=f"square-{x}").submit(x) for x in range(4)]
    for job in jobs:
        engine.wait_job(job)
    total = sum(job.result() for job in jobs)
    print(f"sum of squares: {total}")
    return total
