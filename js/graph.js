// The dependency view: jobs as boxes in columns by depth (a job sits right of everything it
// requires), edges from requirement to dependent, coloured by status. Our own small layered layout;
// a graph library would weigh more than the whole dashboard.

/** @typedef {import("./store.js").Row} Row */

/**
 * @typedef {object} GraphLayout
 * @property {{name: string, status: string, x: number, y: number, layer: number}[]} nodes
 * @property {{from: string, to: string, path: string}[]} edges
 * @property {number} width
 * @property {number} height
 * @property {number} omitted  rows not drawn because of `maxNodes`
 */

export const NODE_W = 132;
export const NODE_H = 24;
const GAP_X = 56;
const GAP_Y = 10;
const PAD = 8;

/**
 * Layered layout of the jobs and their `requires` edges. Requirements outside `rows` are ignored;
 * a cycle (which the engine refuses anyway) cannot loop forever.
 * @param {Row[]} rows  in display order
 * @param {{maxNodes?: number}} [opts]
 * @returns {GraphLayout}
 */
export function layoutGraph(rows, { maxNodes = 150 } = {}) {
  const shown = rows.slice(0, maxNodes);
  const byName = new Map(shown.map((r) => [r.name, r]));
  /** @type {Map<string, number>} */
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (/** @type {string} */ name) => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (visiting.has(name)) return 0; // cycle guard
    visiting.add(name);
    let d = 0;
    for (const req of byName.get(name)?.requires ?? []) {
      if (byName.has(req)) d = Math.max(d, depthOf(req) + 1);
    }
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  /** @type {string[][]} */
  const layers = [];
  for (const row of shown) {
    const d = depthOf(row.name);
    (layers[d] ??= []).push(row.name);
  }
  // One barycentre sweep: order each layer by the mean position of its requirements, which removes
  // most crossings of the usual fan-in/fan-out pipelines.
  /** @type {Map<string, number>} */
  const pos = new Map();
  layers.forEach((layer, li) => {
    if (li > 0) {
      const bary = new Map(
        layer.map((name, i) => {
          const reqs = (byName.get(name)?.requires ?? []).filter((r) => pos.has(r));
          const b = reqs.length ? reqs.reduce((s, r) => s + (pos.get(r) ?? 0), 0) / reqs.length : i;
          return [name, b];
        }),
      );
      layer.sort((a, b) => (bary.get(a) ?? 0) - (bary.get(b) ?? 0));
    }
    layer.forEach((name, i) => pos.set(name, i));
  });
  const nodes = [];
  const at = new Map();
  layers.forEach((layer, li) => {
    layer.forEach((name, i) => {
      const node = {
        name,
        status: byName.get(name)?.status ?? "",
        x: PAD + li * (NODE_W + GAP_X),
        y: PAD + i * (NODE_H + GAP_Y),
        layer: li,
      };
      nodes.push(node);
      at.set(name, node);
    });
  });
  const edges = [];
  for (const node of nodes) {
    for (const req of byName.get(node.name)?.requires ?? []) {
      const src = at.get(req);
      if (!src) continue;
      const x1 = src.x + NODE_W;
      const y1 = src.y + NODE_H / 2;
      const x2 = node.x;
      const y2 = node.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      edges.push({ from: req, to: node.name, path: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` });
    }
  }
  const maxRows = Math.max(0, ...layers.map((l) => l.length));
  return {
    nodes,
    edges,
    width: PAD * 2 + Math.max(0, layers.length * (NODE_W + GAP_X) - GAP_X),
    height: PAD * 2 + Math.max(0, maxRows * (NODE_H + GAP_Y) - GAP_Y),
    omitted: rows.length - shown.length,
  };
}

const SVG = "http://www.w3.org/2000/svg";

/**
 * Draw a layout as SVG. Clicking a node calls `onPick(name)`.
 * @param {Document} doc
 * @param {GraphLayout} layout
 * @param {(name: string) => void} [onPick]
 * @returns {SVGSVGElement}
 */
export function renderGraph(doc, layout, onPick) {
  const svg = /** @type {SVGSVGElement} */ (doc.createElementNS(SVG, "svg"));
  svg.setAttribute("class", "je-graph-svg");
  svg.setAttribute("width", String(layout.width));
  svg.setAttribute("height", String(layout.height));
  svg.setAttribute("viewBox", `0 0 ${layout.width} ${layout.height}`);
  const el = (/** @type {string} */ tag, /** @type {Record<string, string | number>} */ attrs) => {
    const e = doc.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  for (const edge of layout.edges) svg.append(el("path", { d: edge.path, class: "je-edge" }));
  for (const node of layout.nodes) {
    const g = el("g", { class: `je-node je-s-${node.status}`, transform: `translate(${node.x},${node.y})` });
    g.setAttribute("data-name", node.name);
    const title = doc.createElementNS(SVG, "title");
    title.textContent = `${node.name} (${node.status})`;
    const label = el("text", { x: 8, y: NODE_H / 2 + 4 });
    label.textContent = node.name.length > 17 ? `${node.name.slice(0, 16)}…` : node.name;
    g.append(title, el("rect", { width: NODE_W, height: NODE_H, rx: 5 }), label);
    if (onPick) {
      // Reachable by keyboard too: Tab to a node, Enter or Space opens its row.
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      g.setAttribute("aria-label", `${node.name}, ${node.status}: show its row`);
      g.addEventListener("click", () => onPick(node.name));
      g.addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => {
        if (e.key !== "Enter" && e.key !== " ") return;
        e.preventDefault();
        onPick(node.name);
      });
    }
    svg.append(g);
  }
  return svg;
}
