import { test } from "node:test";
import assert from "node:assert/strict";
import { layoutGraph, NODE_W } from "../graph.js";

const row = (name, requires = [], status = "done") => ({ name, requires, status, _v: 1, _i: 0 });

test("jobs are placed right of what they require", () => {
  const g = layoutGraph([row("load"), row("clean", ["load"]), row("fit", ["clean"]), row("plot", ["fit", "load"])]);
  const x = Object.fromEntries(g.nodes.map((n) => [n.name, n.layer]));
  assert.deepEqual(x, { load: 0, clean: 1, fit: 2, plot: 3 });
  assert.equal(g.edges.length, 4);
  assert.ok(g.width >= 4 * NODE_W);
  assert.equal(g.omitted, 0);
});

test("requirements outside the rows are ignored, cycles terminate", () => {
  const g = layoutGraph([row("a", ["b"]), row("b", ["a"]), row("c", ["missing"])]);
  assert.equal(g.nodes.length, 3);
  assert.ok(g.edges.every((e) => e.from !== "missing"));
});

test("fan-in layers are ordered by the position of their requirements", () => {
  const g = layoutGraph([row("r1"), row("r2"), row("x2", ["r2"]), row("x1", ["r1"])]);
  const layer1 = g.nodes.filter((n) => n.layer === 1).sort((a, b) => a.y - b.y).map((n) => n.name);
  assert.deepEqual(layer1, ["x1", "x2"]);
});

test("maxNodes bounds the drawing and reports the rest", () => {
  const rows = Array.from({ length: 500 }, (_, i) => row(`j${i}`, i ? [`j${i - 1}`] : []));
  const g = layoutGraph(rows, { maxNodes: 150 });
  assert.equal(g.nodes.length, 150);
  assert.equal(g.omitted, 350);
});
