"""Shipping a task to dask by value must not change how the process backend pickles."""

from __future__ import annotations

import pickle

import pytest

pytest.importorskip("distributed")


@pytest.mark.timeout(60)
def test_shipping_a_cell_to_dask_leaves_the_process_backend_pickling_by_reference() -> None:
    from jupyter_executor import _cell_task, _pickling
    from jupyter_executor.backends import dask as backend

    shipped = pickle.loads(pickle.dumps(backend._RUN_CELL))  # what distributed does with a task
    assert shipped is not _cell_task.run_shipped  # it travelled by value
    # A process job's cell pickles the same function by reference afterwards: by value it
    # copied the module's globals ("cannot pickle '_thread.lock' object", seen in CI).
    assert pickle.loads(_pickling.dumps(_cell_task.run_shipped)) is _cell_task.run_shipped
    # A user's function is still pickled by value (it may live in a notebook cell).
    ns: dict[str, object] = {}
    exec("def f():\n    return 42\n", ns)
    assert pickle.loads(_pickling.dumps(ns["f"]))() == 42
