"""Smoke test of an installed wheel or sdist, run by ``.ci/run package`` in a fresh venv.

Checks what a user gets from ``pip install jupyter_executor``: the package is imported from the
environment (not from a checkout), ships its license, type marker and front end, and works in a
real kernel: ``%load_ext jupyter_executor`` and one ``%%job`` whose result comes back.

Usage: ``python .ci/smoke.py ARTIFACT`` (the wheel or sdist that was installed).
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from jupyter_client.manager import start_new_kernel

CELL = "%%job smoke\nimport os\nprint('hello from', os.getpid())\n6 * 7"
CHECK = (
    "from jupyter_executor import get_engine\n"
    "engine = get_engine()\n"
    "assert engine.wait(timeout=60), engine.list()\n"
    "print('result', engine['smoke'].result(), engine['smoke'].tail())\n"
    "engine.shutdown()"
)


def check_artifact(artifact: Path) -> None:
    if artifact.suffix == ".whl":
        with zipfile.ZipFile(artifact) as wheel:
            names = wheel.namelist()
    else:
        with tarfile.open(artifact) as sdist:
            names = sdist.getnames()
    for needed in ("LICENSE", "py.typed", "static/dashboard.js", "static/jobview.js"):
        assert any(n.endswith(needed) for n in names), f"{artifact.name} lacks {needed}"


def check_installed() -> None:
    import jupyter_executor

    where = Path(jupyter_executor.__file__).resolve()
    assert "site-packages" in where.parts, f"imported from {where}, not from the environment"
    dist = metadata.distribution("jupyter_executor")
    license_expression = dist.metadata["License-Expression"]
    assert license_expression == "BSD-3-Clause", license_expression
    files = [str(f) for f in dist.files or ()]
    assert any(f.endswith("licenses/LICENSE") for f in files), files
    print(f"jupyter_executor {jupyter_executor.__version__} from {where.parent}")


def check_kernel() -> None:
    with tempfile.TemporaryDirectory() as cwd:
        km, kc = start_new_kernel(kernel_name="python3", cwd=cwd)
        try:
            out: list[str] = []

            def run(code: str) -> None:
                reply = kc.execute_interactive(
                    code, timeout=120, output_hook=lambda m: collect(m, out)
                )
                assert reply["content"]["status"] == "ok", (code, reply["content"], out)

            run("%load_ext jupyter_executor")
            run(CELL)
            run(CHECK)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=False)
    text = "".join(out)
    assert "result 42 hello from" in text, text
    print("kernel: %load_ext and one %%job ->", text.strip().splitlines()[-1])


def collect(msg: dict[str, Any], out: list[str]) -> None:
    content = msg["content"]
    assert isinstance(content, dict)
    if msg["msg_type"] == "stream":
        out.append(str(content["text"]))
    elif msg["msg_type"] == "error":
        out.append("\n".join(map(str, content["traceback"])))


if __name__ == "__main__":
    check_artifact(Path(sys.argv[1]))
    check_installed()
    check_kernel()
    print("smoke test passed:", Path(sys.argv[1]).name)
