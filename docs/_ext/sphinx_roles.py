"""A griffe extension: the reST bits of the docstrings become Markdown for mkdocstrings.

The package's numpy docstrings cross-reference with Sphinx roles (``:class:`Job```,
``:meth:`wait```), which Markdown would show as literal text. Each role becomes inline code,
linked to its entry in the API page when that entry is rendered there (a public, documented
name of ``jupyter_executor.__all__``, or a public, documented member of one); otherwise it
stays plain code, so the strict build never meets a link it cannot resolve.

A reST literal block is introduced by ``::`` at the end of a paragraph; the indented block after
it is already a Markdown code block, so the marker is dropped (``text::`` becomes ``text:``).

numpy style lets one entry of a Parameters section name several parameters (``name, label``);
griffe then gives all of them the type and default of the first. Such an entry is split into one
entry per name, each with the shared description, so each shows its own type and default.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj):`([^`]+)`")
_SECTIONS = {"Parameters", "Other Parameters", "Attributes"}
_GROUP = re.compile(r"^(?P<indent>[ \t]*)(?P<names>\*{0,2}\w+(?:, \*{0,2}\w+)+)[ \t]*$")
_LITERAL = re.compile(r"(?m)^([ \t]*)(.*?)::[ \t]*$(?=\n[ \t]*\n)")
_PACKAGE = "jupyter_executor"


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring of the package, once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != _PACKAGE:
            return
        exported = set(pkg.exports or ())
        for obj in _walk(pkg, set()):
            if obj.docstring is not None:
                owner = _owner(obj)
                text = _ROLE.sub(
                    lambda m, o=owner: _markdown(pkg, exported, m.group(1), o),
                    obj.docstring.value,
                )
                obj.docstring.value = _split_groups(_LITERAL.sub(_literal, text))


def _walk(obj: Any, seen: set[str]) -> Any:
    """Every object defined in the package (aliases skipped: their targets are walked)."""
    if obj.path in seen:
        return
    seen.add(obj.path)
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member, seen)


def _owner(obj: Any) -> str | None:
    """The public class a docstring belongs to (its relative references start there)."""
    while obj is not None and not obj.is_class:
        obj = obj.parent
    return obj.name if obj is not None else None


def _split_groups(text: str) -> str:
    """Split ``a, b`` entries (no type given) of parameter sections into one entry per name."""
    lines = text.split("\n")
    out: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
            section = line.strip()
        match = _GROUP.match(line) if section in _SECTIONS else None
        if match is None:
            out.append(line)
            i += 1
            continue
        indent = len(match.group("indent"))
        body: list[str] = []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            i -= 1  # blank lines after the entry belong to what follows
            body.pop()
        for name in match.group("names").split(", "):
            out.append(f"{match.group('indent')}{name}")
            out.extend(body)
    return "\n".join(out)


def _literal(match: re.Match[str]) -> str:
    """``Some text::`` -> ``Some text:``; a ``::`` alone on its line goes."""
    indent, text = match.group(1), match.group(2)
    return f"{indent}{text}:" if text.strip() else ""


def _markdown(pkg: griffe.Module, exported: set[str], text: str, owner: str | None) -> str:
    target = text.lstrip("~").lstrip(".").removeprefix(f"{_PACKAGE}.").removesuffix("()")
    shown = target.rsplit(".", 1)[-1] if text.startswith("~") else target
    candidates = [target]
    if owner is not None:
        candidates.append(f"{owner}.{target}")
    for candidate in candidates:
        if _rendered(pkg, exported, candidate):
            return f"[`{shown}`][{_PACKAGE}.{candidate}]"
    return f"`{shown}`"


def _rendered(pkg: griffe.Module, exported: set[str], path: str) -> bool:
    """Whether ``jupyter_executor.PATH`` has its own entry in the API page."""
    head, *rest = path.split(".")
    if head not in exported or head not in pkg.members:
        return False
    try:
        obj = pkg.members[head]
        for part in rest:
            if part.startswith("_"):
                return False
            obj = obj.members[part]
        return bool(obj.docstring)
    except (KeyError, griffe.AliasResolutionError):
        return False
