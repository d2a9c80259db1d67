"""The public surface: what `import jupyter_executor` exports, and what it does not import."""

from __future__ import annotations

import subprocess
import sys

import jupyter_executor

EXPORTS = [
    "AbstractJob", "AfterAll", "AfterAny", "AfterJob", "AfterTime", "AllOf", "AnyOf", "Command",
    "CommandFailed", "Condition", "DependencyCycle", "DuplicateJobName", "Engine", "EngineEvent",
    "Flow", "FunctionCondition", "InvalidOption", "InvalidOptionType", "InvalidTransition", "Job",
    "JobCancelled", "JobInfo",
    "JobNotFinished", "JobTimeout", "JupyterExecutorError", "Launcher", "MissingOutputs",
    "NotebookError", "Status",
    "StoreError", "SubmitError", "UnknownDependency", "UnknownFlow", "UnsupportedPlatform",
    "WorkerCrashed",
    "__version__", "cancelled", "command", "current_job", "flow", "get_engine", "launcher",
    "load_ipython_extension", "progress", "unload_ipython_extension",
]  # fmt: skip


def test_export_list_is_pinned() -> None:
    assert jupyter_executor.__all__ == EXPORTS
    for name in EXPORTS:
        assert getattr(jupyter_executor, name) is not None


def test_errors_share_one_base() -> None:
    from jupyter_executor import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), jupyter_executor.JupyterExecutorError)


def test_the_core_imports_no_ipython_widgets_or_pandas() -> None:
    code = (
        "import sys, jupyter_executor\n"
        "from jupyter_executor import Engine\n"
        "with Engine(history=False) as e:\n"
        "    e.submit(print, 1); e.wait()\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'anywidget', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
