"""Pure dependency bookkeeping: who requires whom, unknown names and cycles.

No asyncio, no IPython, no job objects: names only, so that it can be tested on its own. The
engine keeps the run-time state (how many requirements of a job are still unfinished); this
module answers the structural questions at submit time, in time linear in the size of the
submission, not of the whole graph.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping

from .errors import DependencyCycle, UnknownDependency

__all__ = ["Graph"]

_EMPTY: frozenset[str] = frozenset()


class Graph:
    """A directed acyclic graph of job names (an edge goes from a job to what it requires)."""

    __slots__ = ("_dependents", "_requires")

    def __init__(self) -> None:
        self._requires: dict[str, tuple[str, ...]] = {}
        # A node's only dependent is kept as its name, not in a set of one: in a chain every
        # node has one, and a set each cost 216 bytes per job and one more object for every
        # full pass of the garbage collector to walk (issue 14). Two or more: a set.
        self._dependents: dict[str, str | set[str]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._requires

    def __len__(self) -> int:
        return len(self._requires)

    def requires(self, name: str) -> tuple[str, ...]:
        """The names ``name`` requires."""
        return self._requires.get(name, ())

    def dependents(self, name: str) -> Collection[str]:
        """The names that require ``name`` (directly)."""
        deps = self._dependents.get(name)
        if deps is None:
            return _EMPTY
        if isinstance(deps, str):
            return (deps,)
        return deps

    def add(
        self,
        batch: Mapping[str, Iterable[str]],
        *,
        replacing: Collection[str] = (),
        known: Container[str] | None = None,
    ) -> None:
        """Add a batch of nodes, all or nothing.

        Parameters
        ----------
        batch
            Maps each new name to the names it requires; these may be in the graph already or in
            the batch.
        replacing
            Names of the batch that replace nodes already in the graph (their edges are dropped
            and the nodes that required them now require the new node).
        known
            Names that exist besides the graph's nodes (the owner may keep nodes without edges
            out of the graph); by default only the graph's nodes.

        Raises
        ------
        UnknownDependency
            A required name is neither in the graph nor in the batch.
        DependencyCycle
            The batch would close a cycle; the message names the jobs on it.
        """
        new, ordered = self._checked(batch, known)
        if replacing or not ordered:  # (in dependency order, nothing replaced: no cycle)
            self._check_cycles(new, replacing)
        self._link(new, replacing)

    def _checked(
        self, batch: Mapping[str, Iterable[str]], known: Container[str] | None
    ) -> tuple[dict[str, tuple[str, ...]], bool]:
        """The batch with its requirements as tuples of distinct names, and False when a node
        requires one that comes later in the batch (or itself).

        One pass (issue 14) raises UnknownDependency for a requirement neither in the graph,
        the batch or ``known``, and tells whether the batch is in dependency order: each node
        requires only earlier ones or old nodes (how the engine hands them over), which closes
        no cycle unless a node is replaced (then the walk looks anyway).
        """
        new: dict[str, tuple[str, ...]] = {}
        requires = self._requires
        ordered = True
        for name, reqs in batch.items():
            if type(reqs) is not tuple or len(reqs) > 1:
                reqs = tuple(dict.fromkeys(reqs))
            for req in reqs:
                if req in new:
                    continue  # an earlier node of the batch
                if req in batch:
                    ordered = False  # a later node, or itself
                elif req not in requires and (known is None or req not in known):
                    msg = f"job {name!r} requires {req!r}, which is not a known job"
                    raise UnknownDependency(msg)
            new[name] = reqs
        return new, ordered

    def _link(self, new: Mapping[str, tuple[str, ...]], replacing: Collection[str]) -> None:
        """Put the checked batch in: the replaced nodes' edges out, the new edges in."""
        for name in replacing:
            for req in self._requires.get(name, ()):
                self._unlink(req, name)
        dependents = self._dependents
        for name, reqs in new.items():
            self._requires[name] = reqs
            for req in reqs:
                deps = dependents.get(req)
                if deps is None:
                    dependents[req] = name
                elif isinstance(deps, str):
                    if deps != name:
                        dependents[req] = {deps, name}
                else:
                    deps.add(name)

    def _unlink(self, req: str, name: str) -> None:
        """Drop the edge ``name`` -> ``req`` from ``req``'s dependents."""
        deps = self._dependents.get(req)
        if deps is None:
            return
        if isinstance(deps, str):
            if deps == name:
                del self._dependents[req]
            return
        deps.discard(name)
        if not deps:
            del self._dependents[req]

    def remove(self, name: str) -> None:
        """Forget ``name`` and its outgoing edges (its dependents keep their names)."""
        for req in self._requires.pop(name, ()):
            self._unlink(req, name)

    def _check_cycles(self, new: Mapping[str, tuple[str, ...]], replacing: Collection[str]) -> None:
        # Nodes already in the graph are acyclic and cannot reach a new node, except through a
        # name being replaced; so the walk stays inside the batch unless something is replaced.
        def edges(node: str) -> tuple[str, ...]:
            if node in new:
                return new[node]
            return self._requires.get(node, ()) if replacing else ()

        state: dict[str, int] = {}  # 1 = on the current path, 2 = explored
        for root in new:
            if state.get(root):
                continue
            path: list[str] = [root]
            stack: list[tuple[str, int]] = [(root, 0)]
            state[root] = 1
            while stack:
                node, i = stack[-1]
                reqs = edges(node)
                if i < len(reqs):
                    stack[-1] = (node, i + 1)
                    nxt = reqs[i]
                    mark = state.get(nxt, 0)
                    if mark == 1:
                        cycle = [*path[path.index(nxt) :], nxt]
                        msg = "dependency cycle: " + " -> ".join(cycle)
                        raise DependencyCycle(msg)
                    if mark == 0:
                        state[nxt] = 1
                        path.append(nxt)
                        stack.append((nxt, 0))
                else:
                    state[node] = 2
                    path.pop()
                    stack.pop()
