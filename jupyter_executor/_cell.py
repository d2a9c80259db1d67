"""Turn the body of a ``%%job`` cell into something the engine can run.

The steps, each a function here so it can be tested without a kernel:

1. :func:`analyse` transforms the cell with IPython (``!cmd``, ``%magic`` and ``?`` become
   ordinary Python), parses it, splits the last expression off as the job's *result*, and finds
   the global names the cell *reads* and *assigns* (scope-aware: a function's locals or a
   comprehension's variables are not the notebook's).
2. Thread and async jobs run the compiled cell directly in the user's namespace
   (:func:`run_cell`, :func:`arun_cell`); a cell with top-level ``await`` compiles to a coroutine.
3. Process and dask jobs cannot share the namespace. :func:`pack_namespace` pickles (with
   cloudpickle) the names the cell reads, once, when the job starts — after its requirements
   are done — and names the variable that cannot be pickled. :func:`run_shipped` (in
   :mod:`._cell_task`, self-contained: process workers import it by reference, the dask backend
   ships it by value to workers that may lack jupyter_executor) runs the cell on that copy and
   sends back ``(result, assigned names)`` pickled; :func:`unpack_outcome` reads it in the
   kernel, where the assigned names are written back into the namespace.

Caveats: shipped variables are copies (a list mutated in a process job is not mutated in the
notebook unless the cell assigns it); variables shipped together keep their shared references,
variables sent back too.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import symtable
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ._cell_task import (  # one pickling of shipped values, kernel and worker
    ShipError,
    _culprit,
    _dumps,
    run_shipped,
)
from ._cell_task import compile_cell as _compile
from .job import Job

__all__ = [
    "CellCode",
    "CellError",
    "CellJob",
    "ShipError",
    "analyse",
    "arun_cell",
    "pack_namespace",
    "run_cell",
    "run_shipped",
    "shipped_names",
    "unpack_outcome",
]

_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

# Names IPython puts in every namespace; never shipped (the worker has no shell history).
_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "_ih", "_oh", "_dh", "_"})


class CellError(ValueError):
    """The cell cannot become a job (empty, or not valid Python); the message is one line."""


@dataclass(frozen=True)
class CellCode:
    """A cell, analysed and ready to compile.

    Attributes
    ----------
    raw : str
        The cell as the user wrote it.
    source : str
        The cell after IPython's transformation (plain Python).
    filename : str
        The name the code is compiled under (IPython caches it so tracebacks show the lines).
    reads : tuple of str
        Global names the cell may read before assigning them (what a process job ships).
    assigns : tuple of str
        Global names the cell binds (what a process job sends back).
    is_async : bool
        The cell has top-level ``await`` / ``async for`` / ``async with``.
    has_result : bool
        The cell ends with an expression, whose value becomes the job's result.
    description : str
        The first line of code, for listings.
    flags : int
        Compiler flags (``__future__`` imports in force in the shell, top-level await).
    """

    raw: str
    source: str
    filename: str
    reads: tuple[str, ...]
    assigns: tuple[str, ...]
    is_async: bool
    has_result: bool
    description: str
    flags: int = 0

    @functools.cached_property
    def code(self) -> tuple[Any, Any]:
        """``(body_code, result_code_or_None)``, compiled once."""
        return _compile(self.source, self.filename, self.flags)


def analyse(
    raw: str,
    *,
    transform: Callable[[str], str] | None = None,
    filename: str = "<job cell>",
    flags: int = 0,
) -> CellCode:
    """Analyse a ``%%job`` cell body.

    Parameters
    ----------
    raw : str
        The cell body as written (IPython syntax allowed).
    transform : callable, optional
        ``shell.transform_cell``; IPython's default transformer when not given.
    filename : str
        Name to compile under (use ``shell.compile.cache(...)`` for tracebacks with source).
    flags : int
        Extra compiler flags, e.g. ``shell.compile.flags``.

    Returns
    -------
    CellCode

    Raises
    ------
    CellError
        The cell has no code or is not valid Python; the message is one line.

    Examples
    --------
    >>> cell = analyse("y = x + 1\\nprint(y)\\ny * 2")
    >>> cell.reads, cell.assigns, cell.has_result
    (('print', 'x'), ('y',), True)
    """
    if transform is None:
        from IPython.core.inputtransformer2 import TransformerManager

        transform = TransformerManager().transform_cell  # type: ignore[no-untyped-call]
    source = transform(raw)
    try:
        tree = ast.parse(source, filename)
        # The parser accepts what only the compiler refuses (`return` or `break` at top level,
        # `nonlocal x`, `from __future__ import braces`): both must accept the cell
        reads, assigns = _names(source, tree)
        is_async = _is_async(source, filename, flags)
    except SyntaxError as exc:
        line = f" (line {exc.lineno})" if exc.lineno is not None else ""
        msg = f"the cell is not valid Python: {exc.msg}{line}"
        raise CellError(msg) from exc
    except (RecursionError, MemoryError) as exc:  # the compiler's, on `x = 1+1+...` 100k deep
        msg = f"the cell is nested too deeply to compile ({type(exc).__name__})"
        raise CellError(msg) from None
    if not tree.body:
        msg = "the cell is empty: write the code to run in the background below the magic line"
        raise CellError(msg)
    return CellCode(
        raw=raw,
        source=source,
        filename=filename,
        reads=tuple(sorted(reads)),
        assigns=tuple(sorted(assigns)),
        is_async=is_async,
        has_result=isinstance(tree.body[-1], ast.Expr),
        description=_first_line(raw),
        flags=flags,
    )


def _first_line(raw: str) -> str:
    for line in raw.splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            return text[:120]
    return ""


def _is_async(source: str, filename: str, flags: int) -> bool:
    code = compile(source, filename, "exec", flags | _TOP_LEVEL_AWAIT, dont_inherit=True)
    return bool(code.co_flags & inspect.CO_COROUTINE)


# -- names ------------------------------------------------------------------------------------


def _names(source: str, tree: ast.Module) -> tuple[set[str], set[str]]:
    """Global names read (possibly before assignment) and assigned by the cell."""
    table = symtable.symtable(source, "<cell>", "exec")
    reads: set[str] = set()
    assigns: set[str] = set()
    for sym in table.get_symbols():
        name = sym.get_name()
        if sym.is_referenced():
            reads.add(name)
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace():
            assigns.add(name)
    _nested_globals(table, reads, assigns)
    # symtable counts `x += 1` and `del x` as assignments only; both need x to exist already
    for node in _module_scope_nodes(tree):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            reads.add(node.target.id)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Del):
            reads.add(node.id)
    return _read_before_assigned(tree, reads, assigns), assigns


def _nested_globals(table: symtable.SymbolTable, reads: set[str], assigns: set[str]) -> None:
    for child in table.get_children():
        for sym in child.get_symbols():
            if not sym.is_global():
                continue
            name = sym.get_name()
            if sym.is_referenced():
                reads.add(name)
            if sym.is_declared_global() and sym.is_assigned():
                # `global x; x += 1` and friends: the name is written and usually read first
                assigns.add(name)
                reads.add(name)
        _nested_globals(child, reads, assigns)


def _module_scope_nodes(tree: ast.Module) -> list[ast.AST]:
    """Nodes evaluated in the module's own scope (not inside function or class bodies)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo.extend(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                todo.extend(node.bases)
                todo.extend(k.value for k in node.keywords)
            else:
                todo.extend(d for d in node.args.defaults)
                todo.extend(d for d in node.args.kw_defaults if d is not None)
        elif isinstance(node, ast.Lambda):
            todo.extend(node.args.defaults)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            todo.append(node.generators[0].iter)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return out


def _bound_at_top(stmt: ast.stmt) -> set[str]:
    bound: set[str] = set()
    for node in _module_scope_nodes(ast.Module(body=[stmt], type_ignores=[])):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound


def _read_before_assigned(tree: ast.Module, reads: set[str], assigns: set[str]) -> set[str]:
    """Drop names the cell binds at top level in a statement before any statement using them.

    ``x = 1`` then ``print(x)`` does not need the notebook's ``x``; shipping it anyway would fail
    for no reason when the old ``x`` cannot be pickled. Granularity is one top-level statement,
    and any mention inside a nested function counts as a use: when in doubt, ship.
    """
    candidates = reads & assigns
    if not candidates:
        return reads
    first_bound: dict[str, int] = {}
    first_used: dict[str, int] = {}
    for i, stmt in enumerate(tree.body):
        for name in _bound_at_top(stmt) & candidates:
            first_bound.setdefault(name, i)
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and node.id in candidates:
                if not isinstance(node.ctx, ast.Store) or isinstance(stmt, ast.AugAssign):
                    first_used.setdefault(node.id, i)
            elif (
                isinstance(node, ast.AugAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id in candidates
            ):
                first_used.setdefault(node.target.id, i)
    keep = set(reads)
    for name in candidates:
        if name in first_bound and first_used.get(name, len(tree.body)) > first_bound[name]:
            keep.discard(name)
    return keep


# -- running in the user's namespace ------------------------------------------------------------


def run_cell(
    cell: CellCode, globals_: dict[str, Any], locals_: Mapping[str, Any] | None = None
) -> Any:
    """Execute ``cell`` in the given namespace and return its last expression's value.

    A cell with top-level ``await`` gets its own event loop (``asyncio.run``) in the calling
    thread; the async backend should use :func:`arun_cell` instead.
    """
    if cell.is_async:
        return asyncio.run(arun_cell(cell, globals_, locals_))
    body, result = cell.code
    exec(body, globals_, locals_)  # the whole point: run the user's cell
    if result is None:
        return None
    return eval(result, globals_, locals_)


async def arun_cell(
    cell: CellCode, globals_: dict[str, Any], locals_: Mapping[str, Any] | None = None
) -> Any:
    """Execute ``cell`` as a coroutine in the given namespace; return its last expression."""
    body, result = cell.code
    value = eval(body, globals_, locals_)
    if inspect.iscoroutine(value):
        await value
    if result is None:
        return None
    value = eval(result, globals_, locals_)
    if inspect.iscoroutine(value):
        value = await value
    return value


# -- shipping to another process -----------------------------------------------------------------


def shipped_names(
    cell: CellCode, namespace: Mapping[str, Any], hidden: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The variables of ``namespace`` that ``cell`` reads (IPython's own names excluded)."""
    hidden = hidden or {}
    out: dict[str, Any] = {}
    for name in cell.reads:
        if name not in namespace or name in _IPYTHON_NAMES or name.startswith("__"):
            continue
        value = namespace[name]
        if name in hidden and hidden[name] is value:
            continue  # put there by IPython, not by the user
        out[name] = value
    return out


def pack_namespace(values: Mapping[str, Any]) -> bytes:
    """Pickle ``values`` together; on failure name the variable that cannot be pickled.

    Raises
    ------
    ShipError
        ``variable 'lock' cannot be pickled (TypeError: cannot pickle '_thread.lock' object)``
    """
    try:
        return _dumps(dict(values))
    except Exception as exc:
        found = _culprit(values)
        if found is None:
            msg = f"the cell's variables cannot be pickled ({type(exc).__name__}: {exc})"
            raise ShipError(msg) from exc
        name, err = found
        msg = f"variable {name!r} cannot be pickled ({type(err).__name__}: {err})"
        raise ShipError(msg) from err


def unpack_outcome(data: bytes, namespace: MutableMapping[str, Any] | None = None) -> Any:
    """Read :func:`run_shipped`'s answer; write the assigned names into ``namespace``."""
    import cloudpickle

    value, back, deleted = cloudpickle.loads(data)
    if namespace is not None:
        namespace.update(back)
        for name in deleted:
            namespace.pop(name, None)
    return value


# -- the job -------------------------------------------------------------------------------------

_SHIPPED_BACKENDS = ("process", "dask")


class _NamespaceSnapshot:
    """An argument that becomes the shipped variables when it is pickled.

    The process and dask backends pickle a job's arguments when the attempt starts — after its
    requirements are done — so the variables are read then, not when the cell was submitted
    (with ``--requires load``, ``df`` exists only once ``load`` is done).
    """

    def __init__(self, job: CellJob) -> None:
        self._job = job

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        import cloudpickle

        job = self._job
        values = shipped_names(job.cell, job.namespace, job.hidden)
        return cloudpickle.loads, (pack_namespace(values),)


def _describe_cell(cell: CellCode) -> str:
    return cell.description or "(cell)"


class CellJob(Job):
    """A ``%%job`` cell as a job (kind ``"cell"``).

    Parameters
    ----------
    cell : CellCode
        The analysed cell.
    namespace : dict
        The notebook's namespace (``shell.user_ns``): thread and async jobs run in it, process
        and dask jobs read their inputs from it and write their outputs back to it.
    hidden : dict, optional
        ``shell.user_ns_hidden``: names IPython put in the namespace, never shipped.
    backend : str
        ``"thread"``, ``"async"``, ``"process"`` or ``"dask"``.
    **options
        ``name``, ``requires``, ``retries``, ``timeout``, ``forever``: as for :class:`Job`.
    """

    def __init__(
        self,
        cell: CellCode,
        namespace: dict[str, Any],
        *,
        hidden: Mapping[str, Any] | None = None,
        backend: str = "thread",
        **options: Any,
    ) -> None:
        self.cell = cell
        self.namespace = namespace
        self.hidden = hidden or {}
        args: tuple[Any, ...] = ()
        target: Any
        if backend == "thread":
            target = functools.partial(run_cell, cell, namespace)
        elif backend == "async":
            target = functools.partial(arun_cell, cell, namespace)
        elif backend in _SHIPPED_BACKENDS:
            target = run_shipped
            args = (cell.source, cell.filename, _NamespaceSnapshot(self), cell.assigns, cell.flags)
        else:
            msg = f"a cell runs on the thread, async, process or dask backend, not {backend!r}"
            raise ValueError(msg)
        requires = options.pop("requires", ())
        super().__init__(target, args=args, backend=backend, **options)
        self.kind = "cell"
        if requires:
            self.requires(requires)

    def describe(self) -> str:
        """The first line of the cell."""
        return _describe_cell(self.cell)

    @property
    def source(self) -> str:
        """The whole cell as written: what the history records (and resuming compares)."""
        return self.cell.raw

    def default_name(self) -> str:
        """Cells without a name are called ``cell``, ``cell-2``, ..."""
        return "cell"

    def _on_result(self, value: Any) -> Any:
        """(kernel) The attempt returned ``value``: write shipped names back, give the result."""
        if self.backend in _SHIPPED_BACKENDS and isinstance(value, bytes):
            return unpack_outcome(value, self.namespace)
        return value
