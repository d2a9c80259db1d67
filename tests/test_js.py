"""The front end's own tests (``node --test js/test/``) and the bundles shipped in ``static/``.

Node is optional: the unit tests of the JS logic run when ``node`` is on PATH. The check that
``jupyter_executor/static`` was rebuilt from ``js/`` needs only Python (``js/build.py``).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "js"


def _build_module():
    spec = importlib.util.spec_from_file_location("_js_build", JS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_static_bundles_match_the_js_sources() -> None:
    stale = _build_module().stale()
    assert not stale, f"rebuild with `python js/build.py`: {[str(p) for p in stale]}"


def test_widgets_load_the_shipped_bundles() -> None:
    from jupyter_executor import widget

    static = REPO / "jupyter_executor" / "static"
    # each view model carries only the loader; the bundles and CSS sit in one library model each
    loader = (static / "loader.js").read_text(encoding="utf-8")
    for view in (widget.Dashboard, widget.JobView):
        assert view.class_traits()["_esm"].default_value == loader
    assert not hasattr(widget.JobView, "_css")
    for kind, name in (
        (widget._DashboardLibrary, "dashboard"),
        (widget._JobViewLibrary, "jobview"),
    ):
        lib = widget._library(kind)
        assert lib._code == (static / f"{name}.js").read_text(encoding="utf-8")
        assert str(kind._css) == (static / f"{name}.css").read_text(encoding="utf-8")
        assert widget._library(kind) is lib  # once per kernel


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.timeout(120)
def test_node_unit_tests() -> None:
    proc = subprocess.run(
        ["node", "--test", "test/"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    summary = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("# "))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in summary, summary


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
