from __future__ import annotations

import pytest

from jupyter_executor._graph import Graph
from jupyter_executor.errors import DependencyCycle, UnknownDependency


def test_add_and_dependents() -> None:
    g = Graph()
    g.add({"a": [], "b": ["a"], "c": ["a", "b"]})
    assert set(g.dependents("a")) == {"b", "c"}
    assert g.requires("c") == ("a", "b")
    assert "b" in g and len(g) == 3


def test_unknown_dependency_names_both_jobs() -> None:
    g = Graph()
    with pytest.raises(UnknownDependency, match="'b' requires 'nope'"):
        g.add({"b": ["nope"]})
    assert len(g) == 0  # all or nothing


def test_cycle_in_a_batch_is_refused_with_its_path() -> None:
    g = Graph()
    g.add({"x": []})
    with pytest.raises(DependencyCycle, match=r"a -> b -> c -> a"):
        g.add({"a": ["b"], "b": ["c"], "c": ["a", "x"]})
    assert "a" not in g


def test_replacing_a_node_can_close_a_cycle() -> None:
    g = Graph()
    g.add({"a": [], "b": ["a"]})
    with pytest.raises(DependencyCycle):
        g.add({"a": ["b"]}, replacing={"a"})
    g.add({"a": []}, replacing={"a"})
    assert set(g.dependents("a")) == {"b"}


def test_long_chain_is_linear_and_remove_drops_edges() -> None:
    g = Graph()
    n = 20_000
    g.add({f"j{i}": ([f"j{i - 1}"] if i else []) for i in range(n)})  # dependents first works too
    for i in range(n, n + 2000):
        g.add({f"j{i}": [f"j{i - 1}"]})
    assert set(g.dependents("j0")) == {"j1"}
    g.remove("j1")
    assert not g.dependents("j0")


def test_a_batch_in_dependency_order_is_checked_for_cycles_too() -> None:
    # Such a batch (what the engine hands over) passes with one pass; anything else is walked.
    g = Graph()
    g.add({"a": [], "b": ["a"], "c": ["b"]})
    assert set(g.dependents("b")) == {"c"}
    with pytest.raises(DependencyCycle, match=r"d -> d"):
        g.add({"d": ["c", "d"]})
    with pytest.raises(DependencyCycle, match=r"e -> f -> e"):
        g.add({"e": ["c", "f"], "f": ["e"]})
    assert "d" not in g and "e" not in g


def test_dependents_grow_from_one_to_many_and_shrink_back() -> None:
    # One dependent is kept without a set (a chain's every node); the second makes a set.
    g = Graph()
    g.add({"a": [], "b": ["a"]})
    assert list(g.dependents("a")) == ["b"]
    g.add({"b2": ["a", "a"]})  # a requirement named twice is one edge
    g.add({"c": ["a"]})
    assert set(g.dependents("a")) == {"b", "b2", "c"}
    g.remove("b2")
    g.remove("c")
    assert list(g.dependents("a")) == ["b"]
    g.add({"b": ["a"]}, replacing={"b"})  # the replaced node's edge goes, the new one comes
    assert list(g.dependents("a")) == ["b"]
    g.add({"b": []}, replacing={"b"})
    assert not g.dependents("a")
    g.add({"x": ["a"]})
    g.remove("a")  # its dependents keep their names; its own edges (none) go
    assert list(g.dependents("a")) == ["x"]
    g.remove("x")
    assert not g.dependents("a") and "a" not in g


def test_a_batch_out_of_order_is_checked_for_unknown_names_and_cycles() -> None:
    g = Graph()
    with pytest.raises(UnknownDependency, match="'c' requires 'zz'"):
        g.add({"b": ["a"], "a": [], "c": ["zz"]})  # (b before a: not in dependency order)
    assert len(g) == 0
    g.add({"b": ("a",), "a": (), "c": ["b", "a", "b"]})
    assert g.requires("c") == ("b", "a")
    assert set(g.dependents("a")) == {"b", "c"}
    with pytest.raises(DependencyCycle, match=r"x -> y -> x"):
        g.add({"x": ["y"], "y": ["x", "c"]})
    with pytest.raises(DependencyCycle, match=r"z -> z"):
        g.add({"z": ("z",)})
    assert "x" not in g and "z" not in g
