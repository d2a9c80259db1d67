"""Which module may import which: the arrows of the engine split (issue 10) point one way."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import jupyter_executor
from jupyter_executor import Engine

PACKAGE = Path(jupyter_executor.__file__).parent

#: The engine and its rooms: the core, which never imports a view, IPython or widgets.
CORE = (
    "engine.py", "_scheduler.py", "_loop.py", "_slots.py", "_events.py", "_policies.py",
    "_make.py", "_reattach.py", "_registry.py", "_converge.py", "_webapp.py", "_clusters.py",
    "_listing.py", "_jobsview.py", "_protocols.py", "_clock.py", "_lifetime.py", "_gates.py",
    "_waiting.py", "_intake.py",
)  # fmt: skip

#: What the core must not import, at any level (TYPE_CHECKING and inside functions too).
VIEWS = ("widget", "_ipython", "magics", "_publisher", "IPython", "ipywidgets", "anywidget")


def _imported(path: Path) -> set[str]:
    """Every module name ``path`` imports, relative ones as written (``.widget`` -> widget)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names)
    return {part for name in names for part in (name, name.split(".")[0], name.split(".")[-1])}


@pytest.mark.parametrize("module", CORE)
def test_the_core_never_imports_a_view(module: str) -> None:
    found = _imported(PACKAGE / module) & set(VIEWS)
    assert not found, f"{module} imports {sorted(found)}"


@pytest.mark.parametrize("module", [m for m in CORE if m != "engine.py"])
def test_the_rooms_never_import_the_facade(module: str) -> None:
    # engine.py -> rooms, never back (not even for typing): job.engine gets _as_engine.
    assert "engine" not in _imported(PACKAGE / module), f"{module} imports engine.py"


@pytest.mark.parametrize("path", sorted((PACKAGE / "backends").glob("*.py")), ids=lambda p: p.name)
def test_backends_see_the_engine_only_through_the_protocol(path: Path) -> None:
    source = path.read_text()
    assert "engine" not in _imported(path), f"backends/{path.name} imports the engine"
    assert "engine._" not in source, f"backends/{path.name} reaches into the engine"


def test_engine_widget_still_builds_the_dashboard(tmp_path: Path) -> None:
    pytest.importorskip("anywidget")
    from jupyter_executor.widget import Dashboard

    with Engine(folder=tmp_path, history=False) as engine:
        view = engine.widget()
        try:
            assert isinstance(view, Dashboard)
        finally:
            view.close()


def test_the_facade_and_every_core_class_stay_readable() -> None:
    # Issue 10: engine.py at most 600 lines, and no class of the package over 600 lines (a room
    # that grows past it holds two concerns and splits by who owns the state).
    assert len((PACKAGE / "engine.py").read_text().splitlines()) <= 600
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE))
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                assert size <= 600, f"{module}: class {node.name} has {size} lines"


#: Who may write a job's cancel request: the job itself (its defaults) and the scheduler. A
#: backend that gives up on a run says why through ``BackendHost.give_up``; the dask backend
#: still amends the reason of a task it cannot stop (to do: the same); every other room goes
#: through the scheduler.
CANCEL_WRITERS = ("job.py", "_runstate.py", "_scheduler.py", "backends/dask.py")


def test_only_the_scheduler_writes_the_cancel_request() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if str(path.relative_to(PACKAGE)) in CANCEL_WRITERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and node.attr in ("cancel_reason", "cancel_requested")  # of job.runstate
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.attr}")
    assert not found, found


def test_only_the_scheduler_changes_a_status() -> None:
    # One writer of the run state: the scheduler (_scheduler.py, and _intake.py, where a
    # submission's jobs become pending); the other rooms call Scheduler._move. A job changes
    # its own status only when it was never submitted (Job.cancel before submit).
    # _status.set_status is the one place that writes job.status (and Job.__init__ sets it).
    callers, writers = set(), set()
    for path in PACKAGE.rglob("*.py"):
        module = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Name) and node.id == "set_status") or (
                isinstance(node, ast.Attribute)
                and node.attr in ("set_status", "_set_status")
                and isinstance(node.ctx, ast.Load)
            ):
                callers.add(module)
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "status"
                and isinstance(node.ctx, ast.Store)
            ):
                writers.add(module)
    assert callers <= {"_status.py", "job.py", "_intake.py", "_scheduler.py"}, sorted(callers)
    assert writers <= {"_status.py", "job.py"}, sorted(writers)


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "store").glob("*.py")), ids=lambda p: f"store/{p.name}"
)
def test_the_store_never_imports_the_job(path: Path) -> None:
    # The history takes JobSnapshots (typed through _snapshot/_protocols): store -> job closed
    # the import circle job -> engine -> store -> job (issue 10).
    found = _imported(path) & {"job", "engine"}
    assert not found, f"store/{path.name} imports {sorted(found)}"


def test_the_snapshot_never_imports_the_job_or_the_engine() -> None:
    # Not even under TYPE_CHECKING or in a function: it reads a job through
    # _protocols.SnapshotSource, so every room may import it without closing a circle.
    found = _imported(PACKAGE / "_snapshot.py") & {"job", "engine"}
    assert not found, f"_snapshot.py imports {sorted(found)}"


@pytest.mark.parametrize("module", ["job.py", "_durable.py", "_detached.py", "_snapshot.py"])
def test_the_job_and_what_it_uses_never_import_the_facade(module: str) -> None:
    # engine.py imports these; each sees the engine through a Protocol (job.JobHost,
    # _durable.DurableHost, _detached.DetachHost), so the engine is in no import circle.
    assert "engine" not in _imported(PACKAGE / module), f"{module} imports engine.py"


def _reaches_tool() -> ModuleType:
    """tools/reaches.py, the measure of issue 10 (a dev script, not part of the package)."""
    path = Path(__file__).resolve().parents[1] / "tools" / "reaches.py"
    spec = importlib.util.spec_from_file_location("_reaches_tool", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_at_all() -> None:
    # Counting imports under TYPE_CHECKING and inside functions: the job model and what it
    # imports (_capture, _conditions, _options, _outputs, _context) never import job.py back.
    _, _, cycles, _ = _reaches_tool().measure(PACKAGE)
    assert cycles == [], cycles


#: What tools/reaches.py counted when issue 10's run state record landed (204 before it): a
#: private name of another module read or written (``job._life``, ``from .x import _y``).
#: Most of the rest are other objects' markers (``_jupyter_executor_original``), the stdlib's
#: (``os._exit``, argparse's, an enum's ``_value_``) and the process backend's boot strings.
MAX_REACHES = 21


def test_cross_module_private_reaches_stay_few() -> None:
    reaches, _, _, modules = _reaches_tool().measure(PACKAGE)
    listed = [f"{modules[m].name}:{line} {name}" for m, line, name in sorted(reaches)]
    assert len(reaches) <= MAX_REACHES, "\n".join(listed)


def _complexity(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """McCabe's number as radon counts it (``radon cc``), nested functions left out."""
    total = 1
    todo: list[ast.AST] = list(function.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Assert):
            total += 1  # radon does not look inside an assert
            continue
        if isinstance(node, (ast.If, ast.IfExp)):
            total += 1
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            total += 1 + bool(node.orelse)
        elif isinstance(node, ast.Try):
            total += len(node.handlers) + bool(node.orelse)
        elif isinstance(node, ast.BoolOp):
            total += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            total += 1 + len(node.ifs)
        elif isinstance(node, ast.Match):
            total += len(node.cases)
        todo.extend(ast.iter_child_nodes(node))
    return total


#: The core and the job model: no function over cyclomatic complexity 15 (issue 10).
SIMPLE = (
    *CORE, "job.py", "_jobinfo.py", "_lifecycle.py", "_runstate.py", "_status.py",
    "_snapshot.py", "_context.py", "_outputs.py", "backends/_base.py", "backends/thread.py",
)  # fmt: skip


@pytest.mark.parametrize("module", SIMPLE)
def test_no_function_of_the_core_is_too_complex(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    found = {
        f"{node.name}:{node.lineno}": _complexity(node)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    assert {k: v for k, v in found.items() if v > 15} == {}


def test_the_job_class_stays_readable() -> None:
    # Job held its run state and its info row itself (630 lines): they live in _runstate and
    # _jobinfo now.
    tree = ast.parse((PACKAGE / "job.py").read_text())
    sizes = {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    assert sizes["Job"] <= 540, sizes
