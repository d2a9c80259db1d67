"""Shipping a task to dask by value must not change how anything else is pickled."""

from __future__ import annotations

import pickle

import pytest

pytest.importorskip("distributed")


@pytest.mark.timeout(60)
def test_shipping_a_cell_to_dask_leaves_other_pickling_by_reference() -> None:
    import cloudpickle

    from jupyter_executor import _cell_task
    from jupyter_executor.backends import dask as backend

    shipped = pickle.loads(pickle.dumps(backend._RUN_CELL))  # what distributed does with a task
    assert shipped is not _cell_task.run_shipped  # it travelled by value
    # A process job's cell pickles the same function by reference afterwards: by value it would
    # copy the module's globals (a lock once: "cannot pickle '_thread.lock' object").
    assert pickle.loads(cloudpickle.dumps(_cell_task.run_shipped)) is _cell_task.run_shipped
