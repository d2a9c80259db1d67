"""Count cross-module private reaches and import cycles in a package (issue 10's measures).

Usage::

    python tools/reaches.py [PACKAGE_DIR] [--top N] [--list]

A *reach* is ``x._name`` (one leading underscore, not a dunder) in module M where ``x`` is not
``self`` / ``cls`` and M does not itself define ``_name`` (as a function, class, module global,
``self._name = ...``, a class attribute or a ``__slots__`` entry); ``from .m import _name``
counts too. ``self._name`` where ``_name`` is defined only in another module of the package
(a room reading state another room owns through a shared ``self``) is counted apart, as
*self-reaches*: they do not cross an object boundary but they do cross a file.

An *import cycle* is a strongly connected component of more than one module in the graph of
imports between the package's modules, counting imports under ``if TYPE_CHECKING:`` and inside
functions (an import that is not an error still says which module knows which).
"""

from __future__ import annotations

import argparse
import ast
import collections
import sys
from collections.abc import Iterator
from pathlib import Path


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _modules(root: Path) -> dict[str, Path]:
    package = root.name
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    assert package in found or found, f"no modules under {root}"
    return found


def _defined(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "__slots__":
                    for elt in ast.walk(node.value):
                        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                            names.add(elt.value)
    return {n for n in names if _is_private(n)}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str, path: Path, tree: ast.AST, known: set[str]) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub  # from . import _capture: the module itself
                elif target in known:
                    yield target


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.append(member)
                        if member == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


Reach = tuple[str, int, str]  # module, line, attribute


def measure(root: Path) -> tuple[list[Reach], list[Reach], list[list[str]], dict[str, Path]]:
    """``(reaches, self_reaches, cycles, modules)`` of the package at ``root``."""
    modules = _modules(root)
    trees = {m: ast.parse(p.read_text(), str(p)) for m, p in modules.items()}
    defined = {m: _defined(t) for m, t in trees.items()}
    everywhere = set().union(*defined.values())
    reaches: list[Reach] = []
    self_reaches: list[Reach] = []
    for module, tree in trees.items():
        own = defined[module]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                if node.attr in own:
                    continue
                value = node.value
                if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                    if node.attr in everywhere:
                        self_reaches.append((module, node.lineno, node.attr))
                    continue
                if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "super":
                    continue
                reaches.append((module, node.lineno, node.attr))
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if _is_private(alias.name) and not alias.name.startswith("_version"):
                        target = _resolve(module, modules[module].name == "__init__.py", node)
                        if f"{target}.{alias.name}" not in modules:
                            reaches.append((module, node.lineno, alias.name))
    graph = {m: set(_imports(m, modules[m], trees[m], set(modules))) - {m} for m in modules}
    return reaches, self_reaches, _sccs(graph), modules


def main(argv: list[str] | None = None) -> int:
    """Print the counts; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="jupyter_executor")
    parser.add_argument("--top", type=int, default=15, help="most frequent reaches to show")
    parser.add_argument("--list", action="store_true", help="every reach, file:line")
    args = parser.parse_args(argv)
    reaches, self_reaches, cycles, modules = measure(Path(args.package).resolve())

    print(f"cross-module private reaches: {len(reaches)}")
    by_module = collections.Counter(m for m, _, _ in reaches)
    print(
        "  by module:", ", ".join(f"{m.split('.', 1)[-1]} {n}" for m, n in by_module.most_common())
    )
    by_name = collections.Counter(a for _, _, a in reaches)
    print("  by name:  ", ", ".join(f"{a} {n}" for a, n in by_name.most_common(args.top)))
    print(f"self-reaches into another module's state (mixin rooms): {len(self_reaches)}")
    by_name = collections.Counter(a for _, _, a in self_reaches)
    print("  by name:  ", ", ".join(f"{a} {n}" for a, n in by_name.most_common(args.top)))
    print(f"import cycles (TYPE_CHECKING and function-level imports counted): {len(cycles)}")
    for comp in cycles:
        print(f"  {len(comp)} modules: " + " ".join(c.split(".", 1)[-1] for c in comp))
    if args.list:
        for module, line, attr in sorted(reaches):
            print(f"{modules[module]}:{line}: {attr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
