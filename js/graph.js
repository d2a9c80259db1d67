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
  // Crossing reduction by barycentres (Sugiyama): a sweep down orders each layer by the mean
  // position of its requirements, a sweep up orders each layer by the mean position of its
  // dependents (this is what moves the roots, which the sweep down cannot), and a last sweep
  // down settles the layers below. Three linear passes; more rarely helps the small pipelines
  // drawn here. A node with no neighbour in the reference layer keeps its place.
  /** @type {Map<string, string[]>} name -> its dependents among the shown rows */
  const dependents = new Map();
  for (const row of shown) {
    for (const req of row.requires ?? []) {
      if (byName.has(req)) (dependents.get(req) ?? dependents.set(req, []).get(req))?.push(row.name);
    }
  }
  /** @type {Map<string, number>} */
  const pos = new Map();
  layers.forEach((layer) => layer.forEach((name, i) => pos.set(name, i)));
  /**
   * @param {string[]} layer
   * @param {(name: string) => string[]} neighbours
   */
  const reorder = (layer, neighbours) => {
    const bary = new Map(
      layer.map((name, i) => {
        const ns = neighbours(name).filter((n) => pos.has(n));
        return [name, ns.length ? ns.reduce((s, n) => s + (pos.get(n) ?? 0), 0) / ns.length : i];
      }),
    );
    layer.sort((a, b) => (bary.get(a) ?? 0) - (bary.get(b) ?? 0)); // stable: ties keep their order
    layer.forEach((name, i) => pos.set(name, i));
  };
  const requirements = (/** @type {string} */ name) => byName.get(name)?.requires ?? [];
  const dependentsOf = (/** @type {string} */ name) => dependents.get(name) ?? [];
  for (let li = 1; li < layers.length; li++) reorder(layers[li] ?? [], requirements);
  for (let li = layers.length - 2; li >= 0; li--) reorder(layers[li] ?? [], dependentsOf);
  for (let li = 1; li < layers.length; li++) reorder(layers[li] ?? [], requirements);
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
/** Arrowhead size (px); edges end at the dependent's box, the tip on its border. */
const ARROW = 7;
/** The graph is scaled down to fit its pane's width, but not below this (labels stay readable): the pane scrolls instead. */
export const MIN_SCALE = 0.6;
// Marker ids are document-wide: each drawing gets its own, so two dashboards (or a redraw while
// the old svg is still in the page) never share one.
let markers = 0;

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
  // Fit the pane: as wide as the pane, never wider than the natural size nor narrower than
  // MIN_SCALE of it; the height follows the viewBox's aspect ratio.
  svg.setAttribute(
    "style",
    `width: 100%; max-width: ${layout.width}px; min-width: ${Math.round(layout.width * MIN_SCALE)}px; height: auto`,
  );
  const el = (/** @type {string} */ tag, /** @type {Record<string, string | number>} */ attrs) => {
    const e = doc.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  const arrow = `je-arrow-${++markers}`;
  const marker = el("marker", {
    id: arrow,
    viewBox: `0 0 ${ARROW} ${ARROW}`,
    markerWidth: ARROW,
    markerHeight: ARROW,
    markerUnits: "userSpaceOnUse",
    refX: ARROW, // the tip, not the base, sits on the path's end
    refY: ARROW / 2,
    orient: "auto",
  });
  marker.append(el("path", { d: `M0,0 L${ARROW},${ARROW / 2} L0,${ARROW} z`, class: "je-arrow" }));
  const defs = el("defs", {});
  defs.append(marker);
  svg.append(defs);
  for (const edge of layout.edges) {
    svg.append(el("path", { d: edge.path, class: "je-edge", "marker-end": `url(#${arrow})` }));
  }
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
