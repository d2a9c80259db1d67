"""Run the quickstart notebook headlessly and print its final ``%jobs list``.

Usage::

    python notebooks/run_demo.py [NOTEBOOK] [--keep DIR]

The notebook is copied into a temporary directory (or ``--keep DIR``, to look at the executed
notebook, the files it wrote and the job logs afterwards) and executed there with nbclient, in a
kernel that imports this checkout of ``jupyter_executor``. Exit status 1 if a cell fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def kernel_env() -> dict[str, str]:
    """The environment of the notebook's kernel: this checkout first on the import path."""
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)  # ipykernel captures less output when it is set
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def run(notebook: Path, workdir: Path, timeout: int = 300) -> object:
    """Execute ``notebook`` in ``workdir`` and return it executed (raises if a cell fails)."""
    import nbformat
    from nbclient import NotebookClient

    target = workdir / notebook.name
    shutil.copy(notebook, target)
    nb = nbformat.read(target, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute(env=kernel_env())
    finally:
        nbformat.write(nb, target)
    return nb


def last_output(nb: object) -> str:
    """The text of the last code cell's result (or printed output)."""
    cells = [c for c in nb.cells if c.cell_type == "code"]  # type: ignore[attr-defined]
    for output in cells[-1].outputs:
        if output.output_type == "execute_result":
            return str(output.data.get("text/plain", ""))
    return "".join(o.get("text", "") for o in cells[-1].outputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", default=str(HERE / "quickstart.ipynb"))
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep what it wrote")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)

    from nbclient.exceptions import CellExecutionError

    notebook = Path(args.notebook).resolve()
    with tempfile.TemporaryDirectory(prefix="jupyter-executor-demo-") as tmp:
        workdir = Path(args.keep).resolve() if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            nb = run(notebook, workdir, args.timeout)
        except CellExecutionError as exc:
            print(f"{notebook.name}: a cell failed\n{exc}", file=sys.stderr)
            return 1
    print(f"{notebook.name}: every cell ran. The final %jobs list:\n")
    print(last_output(nb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
