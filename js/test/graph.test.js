import { test } from "node:test";
import assert from "node:assert/strict";
import { layoutGraph, MIN_SCALE, NODE_W, renderGraph } from "../graph.js";
import { fakeDocument } from "./fakedom.js";

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

/**
 * Edge crossings of a layout: two edges between the same two layers cross when their ends are
 * in opposite orders.
 * @param {ReturnType<typeof layoutGraph>} g
 */
function crossings(g) {
  const at = new Map(g.nodes.map((n) => [n.name, n]));
  const spans = g.edges.map((e) => ({ a: at.get(e.from), b: at.get(e.to) }));
  let count = 0;
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const [p, q] = [spans[i], spans[j]];
      if (p.a.layer !== q.a.layer || p.b.layer !== q.b.layer) continue;
      if ((p.a.y - q.a.y) * (p.b.y - q.b.y) < 0) count++;
    }
  }
  return count;
}

test("the roots are ordered by their dependents too (a sweep up)", () => {
  // Listed a, b, c: m needs a and c, n needs b. A sweep down alone leaves c -> m crossing
  // b -> n; moving c up beside a removes it.
  const g = layoutGraph([row("a"), row("b"), row("c"), row("m", ["a", "c"]), row("n", ["b"])]);
  assert.equal(crossings(g), 0);
  const roots = g.nodes.filter((n) => n.layer === 0).sort((p, q) => p.y - q.y).map((n) => n.name);
  assert.deepEqual(roots, ["a", "c", "b"]);
});

test("a diamond pipeline in scrambled order is drawn without crossings", () => {
  const g = layoutGraph([
    row("load-b"),
    row("load-a"),
    row("clean-a", ["load-a"]),
    row("clean-b", ["load-b"]),
    row("fit-a", ["clean-a"]),
    row("fit-b", ["clean-b"]),
    row("report", ["fit-a", "fit-b"]),
  ]);
  assert.equal(crossings(g), 0);
});

// renderGraph draws with a Document: the stand-in of fakedom.js.
const svgDoc = fakeDocument;

test("every edge ends in an arrowhead of its own drawing", () => {
  const g = layoutGraph([row("a"), row("b", ["a"]), row("c", ["a", "b"])]);
  const svg = /** @type {any} */ (renderGraph(svgDoc, g));
  const [marker] = svg.all("marker");
  assert.ok(marker, "no arrowhead marker");
  assert.equal(marker.attributes.orient, "auto");
  const edges = svg.all("path").filter((p) => p.attributes.class === "je-edge");
  assert.equal(edges.length, 3);
  for (const e of edges) assert.equal(e.attributes["marker-end"], `url(#${marker.attributes.id})`);
  // a second drawing (another dashboard in the page) has another id: ids are document-wide
  const [other] = /** @type {any} */ (renderGraph(svgDoc, g)).all("marker");
  assert.notEqual(other.attributes.id, marker.attributes.id);
});

test("the drawing fits its pane's width, down to MIN_SCALE of its size", () => {
  const rows = Array.from({ length: 12 }, (_, i) => row(`step-${i}`, i ? [`step-${i - 1}`] : []));
  const g = layoutGraph(rows);
  const svg = /** @type {any} */ (renderGraph(svgDoc, g));
  assert.equal(svg.attributes.viewBox, `0 0 ${g.width} ${g.height}`);
  const style = Object.fromEntries(
    svg.attributes.style.split(";").map((d) => d.split(":").map((s) => s.trim())),
  );
  assert.deepEqual(style, {
    width: "100%",
    "max-width": `${g.width}px`,
    "min-width": `${Math.round(g.width * MIN_SCALE)}px`,
    height: "auto",
  });
});
