"""Cell analysis: transformation, result splitting, names read and assigned, shipping."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jupyter_executor._cell import (
    CellError,
    ShipError,
    analyse,
    arun_cell,
    pack_namespace,
    run_cell,
    run_shipped,
    shipped_names,
    unpack_outcome,
)


def test_last_expression_is_the_result_and_assignments_land_in_the_namespace() -> None:
    ns: dict[str, object] = {"x": 20}
    cell = analyse("y = x + 1\nprint('ignored')\ny * 2")
    assert cell.has_result
    assert run_cell(cell, ns) == 42
    assert ns["y"] == 21


def test_a_cell_ending_with_a_statement_has_no_result() -> None:
    cell = analyse("z = 1")
    assert not cell.has_result
    ns: dict[str, object] = {}
    assert run_cell(cell, ns) is None
    assert ns["z"] == 1


def test_ipython_syntax_is_transformed_first() -> None:
    cell = analyse("!echo hi\nfiles = !ls\n%time 1\nlen(files)")
    assert "get_ipython().system('echo hi')" in cell.source
    assert "get_ipython" in cell.reads
    assert "files" in cell.assigns


def test_names_read_and_assigned_respect_scopes() -> None:
    cell = analyse(
        "import os\n"
        "from math import pi as PI\n"
        "def f(a):\n"
        "    local = a + offset\n"
        "    return local\n"
        "class C:\n"
        "    attr = base\n"
        "squares = [k * k for k in values]\n"
        "total += 1\n"
        "del old\n"
        "result = f(PI)\n"
    )
    assert set(cell.reads) >= {"offset", "base", "values", "total", "old"}
    assert not {"a", "local", "k", "attr"} & set(cell.reads)
    assert set(cell.assigns) == {"os", "PI", "f", "C", "squares", "total", "old", "result"}


def test_a_name_bound_before_it_is_used_is_not_shipped() -> None:
    cell = analyse("x = 1\nprint(x)\ny = y + 1")
    assert "x" not in cell.reads  # the notebook's x is not needed
    assert "y" in cell.reads  # read and assigned in the same statement: needed


def test_global_declared_in_a_function_is_assigned() -> None:
    cell = analyse("def bump():\n    global counter\n    counter += 1\nbump()")
    assert "counter" in cell.assigns
    assert "counter" in cell.reads


def test_top_level_await_makes_an_async_cell() -> None:
    cell = analyse("import asyncio\nawait asyncio.sleep(0)\nvalue = 3\nvalue + 1")
    assert cell.is_async
    ns: dict[str, object] = {}
    assert asyncio.run(arun_cell(cell, ns)) == 4
    assert ns["value"] == 3


def test_await_in_the_last_expression() -> None:
    cell = analyse("import asyncio\nasync def two():\n    return 2\nawait two()")
    assert cell.is_async
    assert run_cell(cell, {}) == 2  # in a plain thread: its own event loop


def test_async_for_and_async_with_at_top_level() -> None:
    cell = analyse(
        "import asyncio, contextlib\n"
        "async def gen():\n"
        "    yield 1\n"
        "    yield 2\n"
        "seen = []\n"
        "async for v in gen():\n"
        "    seen.append(v)\n"
        "@contextlib.asynccontextmanager\n"
        "async def ctx():\n"
        "    yield 5\n"
        "async with ctx() as five:\n"
        "    pass\n"
        "sum(seen) + five"
    )
    assert cell.is_async
    assert run_cell(cell, {}) == 8


@pytest.mark.parametrize("body", ["", "   \n\n", "# just a comment\n"])
def test_an_empty_cell_is_an_error(body: str) -> None:
    with pytest.raises(CellError, match="empty"):
        analyse(body)


def test_a_syntax_error_is_one_line() -> None:
    with pytest.raises(CellError, match=r"not valid Python: .* \(line 2\)") as info:
        analyse("x = 1\ny = (")
    assert "\n" not in str(info.value)


def test_tracebacks_point_into_the_cell() -> None:
    cell = analyse("a = 1\nraise ValueError('boom')", filename="<my cell>")
    with pytest.raises(ValueError, match="boom") as info:
        run_cell(cell, {})
    assert info.traceback[-1].frame.code.raw.co_filename == "<my cell>"


def test_shipping_round_trip_writes_assigned_names_back() -> None:
    ns: dict[str, object] = {"params": [1, 2, 3], "scale": 10}
    cell = analyse("def simulate(p):\n    return sum(p) * scale\nresult = simulate(params)\nresult")
    values = shipped_names(cell, ns)
    assert values == {"params": [1, 2, 3], "scale": 10}
    data = run_shipped(cell.source, cell.filename, pack_namespace(values), cell.assigns)
    assert unpack_outcome(data, ns) == 60
    assert ns["result"] == 60
    assert callable(ns["simulate"])


def test_ipython_names_are_not_shipped() -> None:
    def get_ipython() -> None:  # stands in for the shell's function
        return None

    ns = {"get_ipython": get_ipython, "In": [""], "Out": {}, "data": 1}
    cell = analyse("print(In, Out, data)\nget_ipython()")
    assert shipped_names(cell, ns, hidden={"get_ipython": get_ipython}) == {"data": 1}


def test_an_unpicklable_input_names_the_variable() -> None:
    ns = {"lock": threading.Lock(), "n": 1}
    cell = analyse("with lock:\n    n + 1")
    with pytest.raises(ShipError, match=r"^variable 'lock' cannot be pickled \(TypeError: .*lock"):
        pack_namespace(shipped_names(cell, ns))


def test_an_unpicklable_output_names_the_variable() -> None:
    cell = analyse("import threading\nguard = threading.Lock()\n1")
    with pytest.raises(ShipError, match="variable 'guard' cannot be sent back"):
        run_shipped(cell.source, cell.filename, pack_namespace({}), cell.assigns)


def test_deleted_names_are_deleted_back() -> None:
    ns: dict[str, object] = {"old": 1}
    cell = analyse("del old")
    data = run_shipped(cell.source, cell.filename, pack_namespace({"old": 1}), cell.assigns)
    unpack_outcome(data, ns)
    assert "old" not in ns
