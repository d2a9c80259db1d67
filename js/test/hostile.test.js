// The views against hostile data from the kernel: what a job's name, error, output or displays
// hold may run no script in the page and show no escape-sequence noise. The views are drawn for
// real (render() of the dashboard and the job view) into a small DOM stand-in whose innerHTML
// parses HTML like a browser's fragment parser does, for the tags used here.
import { test } from "node:test";
import assert from "node:assert/strict";
import dashboard from "../dashboard.js";
import jobview from "../jobview.js";
import { formatClock } from "../format.js";
import { renderMime } from "../mime.js";

// ---- a DOM stand-in ------------------------------------------------------------------------

const VOID = new Set(["img", "br", "hr", "input", "meta", "base", "link", "source", "embed", "col", "wbr"]);
const RAW = new Set(["script", "style", "textarea", "title"]);

class Text {
  /** @param {string} data */
  constructor(data) {
    this.data = data;
    this.parent = null;
  }
  get textContent() {
    return this.data;
  }
  remove() {
    this.parent?._drop(this);
  }
}

class Node {
  constructor(doc) {
    this.ownerDocument = doc;
    /** @type {Array<El | Text>} */
    this.childNodes = [];
    this.parent = null;
  }
  get children() {
    return this.childNodes.filter((c) => c instanceof El);
  }
  /** @param {...any} nodes */
  append(...nodes) {
    for (const n of nodes) {
      if (n instanceof Fragment) this.append(...n.childNodes);
      else {
        const node = typeof n === "string" || typeof n === "number" ? new Text(String(n)) : n;
        node.parent?._drop(node);
        node.parent = this;
        this.childNodes.push(node);
      }
    }
  }
  /** @param {...any} nodes */
  replaceChildren(...nodes) {
    for (const c of this.childNodes) c.parent = null;
    this.childNodes = [];
    this.append(...nodes);
  }
  _drop(node) {
    this.childNodes = this.childNodes.filter((c) => c !== node);
    node.parent = null;
  }
  get textContent() {
    return this.childNodes.map((c) => c.textContent).join("");
  }
  set textContent(t) {
    this.replaceChildren(...(t === "" ? [] : [String(t)]));
  }
  /** Every element below, in document order (template contents included). @returns {El[]} */
  all() {
    return this.children.flatMap((c) => [c, ...c.all(), ...(c.content ? c.content.all() : [])]);
  }
}

class Fragment extends Node {}

class El extends Node {
  /** @param {any} doc @param {string} tag */
  constructor(doc, tag) {
    super(doc);
    this.localName = tag;
    this.tagName = tag.toUpperCase();
    /** @type {Map<string, string>} */
    this.attrs = new Map();
    this.dataset = {};
    this.style = { setProperty() {} };
    this.hidden = false;
    this.title = "";
    this.scrollTop = 0;
    this.scrollHeight = 0;
    this.offsetHeight = 0;
    this.clientHeight = 0;
    if (tag === "template") this.content = new Fragment(doc);
    const classes = new Set();
    this.classList = {
      add: (/** @type {string} */ c) => classes.add(c),
      contains: (/** @type {string} */ c) => classes.has(c),
      toggle: (/** @type {string} */ c, /** @type {boolean} */ on) => (on ? classes.add(c) : classes.delete(c)),
    };
  }
  set className(v) {
    this.setAttribute("class", v);
  }
  get className() {
    return this.getAttribute("class") ?? "";
  }
  setAttribute(k, v) {
    this.attrs.set(k, String(v));
  }
  getAttribute(k) {
    return this.attrs.get(k) ?? null;
  }
  removeAttribute(k) {
    this.attrs.delete(k);
  }
  getAttributeNames() {
    return [...this.attrs.keys()];
  }
  /** @param {string} type @param {(e: any) => void} fn */
  addEventListener(type, fn) {
    this.listeners ??= {};
    (this.listeners[type] ??= []).push(fn);
  }
  getBoundingClientRect() {
    return { width: 0, height: 0 };
  }
  querySelectorAll() {
    return [];
  }
  remove() {
    this.parent?._drop(this);
  }
  /** @param {string} html */
  set innerHTML(html) {
    this.replaceChildren();
    parseInto(this.content ?? this, html);
  }
}

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
/** @param {string} s */
const decode = (s) =>
  s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e) =>
    e[0] === "#" ? String.fromCodePoint(e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : ENTITIES[e.toLowerCase()] ?? m,
  );

/**
 * Parse HTML into `root` as a browser would for well-formed input: elements, attributes (quoted,
 * unquoted or bare, names lower-cased), raw-text elements, void and self-closed elements, and
 * a <template>'s children in its content.
 * @param {Node} root
 * @param {string} html
 */
function parseInto(root, html) {
  const doc = root.ownerDocument;
  /** @type {Array<{el: Node, into: Node}>} the open elements, and where their children go */
  const stack = [{ el: root, into: root }];
  const TAG = /<!--[\s\S]*?-->|<\/([a-zA-Z][\w-]*)\s*>|<([a-zA-Z][\w-]*)((?:\s+[^\s=/>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?)*)\s*(\/?)>/g;
  const ATTR = /([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  let last = 0;
  for (let m; (m = TAG.exec(html)); ) {
    const top = stack[stack.length - 1].into;
    if (m.index > last) top.append(decode(html.slice(last, m.index)));
    last = TAG.lastIndex;
    if (m[1]) {
      const name = m[1].toLowerCase();
      const i = stack.findLastIndex(({ el }) => el instanceof El && el.localName === name);
      if (i > 0) stack.length = i;
      continue;
    }
    if (!m[2]) continue; // a comment
    const name = m[2].toLowerCase();
    const el = new El(doc, name);
    for (const a of m[3].matchAll(ATTR)) el.setAttribute(a[1].toLowerCase(), decode(a[2] ?? a[3] ?? a[4] ?? ""));
    top.append(el);
    if (RAW.has(name)) {
      const end = html.toLowerCase().indexOf(`</${name}`, last);
      const stop = end < 0 ? html.length : end;
      el.append(html.slice(last, stop));
      TAG.lastIndex = last = stop;
    } else if (!VOID.has(name) && !m[4]) stack.push({ el, into: el.content ?? el });
  }
  if (last < html.length) stack[stack.length - 1].into.append(decode(html.slice(last)));
}

function makeDocument() {
  /** @type {any} */
  const doc = {
    createElement: (/** @type {string} */ tag) => new El(doc, tag),
    createElementNS: (/** @type {string} */ _ns, /** @type {string} */ tag) => new El(doc, tag),
    createTextNode: (/** @type {string} */ t) => new Text(t),
    createDocumentFragment: () => new Fragment(doc),
    defaultView: null,
  };
  return doc;
}

/**
 * Draw a view (the dashboard or a job view) of a model whose initial state is `init`.
 * @returns {{el: El, cleanup: () => void, emit: (msg: any) => void}}
 */
function draw(view, init) {
  const doc = makeDocument();
  const el = new El(doc, "div");
  const handlers = new Set();
  const state = { _uid: `hostile-${Math.random()}`, _init: init };
  const model = {
    get: (/** @type {string} */ k) => state[k],
    send() {},
    on: (/** @type {string} */ _n, /** @type {any} */ cb) => handlers.add(cb),
    off: (/** @type {string} */ _n, /** @type {any} */ cb) => handlers.delete(cb),
  };
  const stop = view.initialize({ model });
  const unrender = view.render({ model, el });
  return {
    el,
    cleanup: () => {
      unrender();
      stop();
    },
    emit: (msg) => {
      for (const cb of handlers) cb(msg, []);
    },
  };
}

const COLS = ["name", "status", "started", "duration", "error", "cancel_reason", "result", "last_line"];
/** @param {Record<string, any>[]} rows @param {any[]} [displays] */
const snap = (rows, displays) => ({
  k: "snap",
  seq: 0,
  t: 1_700_000_000,
  cols: COLS,
  data: rows.map((r) => COLS.map((c) => r[c] ?? null)),
  ...(displays ? { displays } : {}),
});

/** Every way the HTML a job displayed could run script in the page, found in `root`. */
function scriptRisks(root) {
  const risks = [];
  for (const el of root.all()) {
    const tag = el.localName.toLowerCase();
    if (["script", "object", "embed", "base", "meta"].includes(tag)) risks.push(`<${tag}>`);
    if (tag === "iframe" && el.getAttribute("sandbox") !== "allow-scripts allow-popups") risks.push("unsandboxed iframe");
    for (const name of el.getAttributeNames()) {
      const value = el.getAttribute(name).replace(/[\u0000-\u0020]/g, "").toLowerCase();
      if (name.startsWith("on")) risks.push(`${tag} ${name}`);
      if (value.includes("javascript:")) risks.push(`${tag} ${name}=${value}`);
    }
  }
  return risks;
}

// ---- the tests -------------------------------------------------------------------------------

const HOSTILE_HTML =
  '<b>kept</b><img src=x onerror="alert(1)"><iframe srcdoc="&lt;script&gt;parent.alert(1)&lt;/script&gt;"></iframe>' +
  '<svg><animate onbegin="alert(2)" attributeName="x" dur="1s"/>' +
  '<a><animate attributeName="href" values="0;javascript:alert(3)" dur="1s"/><text>svg link</text></a></svg>' +
  '<a href=" java&#x09;script:alert(4)">link</a><details open ontoggle="alert(5)"><summary>s</summary></details>' +
  '<base href="https://elsewhere.example/"><meta http-equiv="refresh" content="0;url=https://elsewhere.example/">' +
  '<template><img src=x onerror="alert(6)"></template><object data="/files/page.html"></object>' +
  '<table class="df"><tr><td title="a&lt;b">1</td></tr></table>';

test("a job's HTML display runs no script in the page, and keeps its harmless markup", { timeout: 10_000 }, () => {
  const doc = makeDocument();
  const box = /** @type {El} */ (/** @type {unknown} */ (renderMime(doc, { "text/html": HOSTILE_HTML })));
  assert.deepEqual(scriptRisks(box), []);
  const tags = box.all().map((e) => e.localName);
  for (const kept of ["b", "img", "iframe", "svg", "a", "details", "table", "td"]) assert.ok(tags.includes(kept), kept);
  assert.equal(box.all().find((e) => e.localName === "td")?.getAttribute("title"), "a<b");
  assert.match(box.textContent, /kept.*svg link.*link/);
});

test("the job view draws a hostile HTML display with no way to run script", { timeout: 10_000 }, () => {
  const view = draw(jobview, snap([{ name: "j", status: "running", started: 1_700_000_000 }], [{ data: { "text/html": HOSTILE_HTML } }]));
  try {
    const displays = view.el.all().find((e) => e.className === "je-jv-displays");
    assert.ok(displays && displays.children.length === 1);
    assert.deepEqual(scriptRisks(view.el), []);
    // and a display added by a patch goes the same way
    view.emit({ k: "patch", seq: 1, t: 1_700_000_001, rows: [], displays: { drop: 0, add: [{ data: { "text/html": '<img src=x onerror="alert(7)">' } }] } });
    assert.equal(displays.children.length, 2);
    assert.deepEqual(scriptRisks(view.el), []);
  } finally {
    view.cleanup();
  }
});

const RED = "\x1b[0;31m";
const OFF = "\x1b[0m";

test("coloured errors, cancel reasons and results show no escape noise in the dashboard", { timeout: 10_000 }, () => {
  const view = draw(
    dashboard,
    snap([
      { name: "f", status: "failed", error: `RuntimeError: ${RED}build failed${OFF}` },
      { name: "c", status: "cancelled", cancel_reason: `${RED}stopped${OFF} by user` },
      { name: "d", status: "done", result: `${RED}Result${OFF}(1)` },
    ]),
  );
  try {
    const cells = view.el.all().filter((e) => e.className === "je-cell je-c-result");
    assert.deepEqual(
      cells.map((c) => [c.textContent, c.title]),
      [
        ["RuntimeError: build failed", "RuntimeError: build failed"],
        ["stopped by user", "stopped by user"],
        ["Result(1)", "Result(1)"],
      ],
    );
    const titles = view.el.all().filter((e) => e.className.startsWith("je-badge")).map((b) => b.getAttribute("title"));
    assert.deepEqual(titles, ["RuntimeError: build failed", "stopped by user", null]);
  } finally {
    view.cleanup();
  }
});

test("a job view shows a coloured error, cancel reason or result without escape noise", { timeout: 10_000 }, () => {
  for (const [row, expected] of [
    [{ name: "f", status: "failed", error: `RuntimeError: ${RED}build failed${OFF}` }, "RuntimeError: build failed"],
    [{ name: "c", status: "cancelled", cancel_reason: `${RED}stopped${OFF} by user` }, "stopped by user"],
    [{ name: "d", status: "done", result: `${RED}Result${OFF}(1)` }, "Result(1)"],
  ]) {
    const view = draw(jobview, snap([row]));
    try {
      const result = view.el.all().find((e) => e.className === "je-jv-result");
      assert.equal(result?.textContent, expected);
    } finally {
      view.cleanup();
    }
  }
});

test("a time beyond what a Date holds shows nothing, not NaN", { timeout: 10_000 }, () => {
  for (const epoch of [1e20, -1e300, 8.64e12 + 1]) assert.equal(formatClock(epoch, 1_700_000_000), "");
  assert.notEqual(formatClock(8.64e12, 1_700_000_000), "");
  const view = draw(dashboard, snap([{ name: "far", status: "done", started: 1e20, duration: 1 }]));
  try {
    const started = view.el.all().find((e) => e.className === "je-cell je-c-started");
    assert.equal(started?.textContent, "");
  } finally {
    view.cleanup();
  }
});

test("numbers where text is expected are shown, and the rows after them still drawn", { timeout: 10_000 }, () => {
  const view = draw(
    dashboard,
    snap([
      { name: "n", status: "done", result: 42, last_line: 7 },
      { name: "e", status: "failed", error: 500 },
      { name: "after", status: "done", result: "ok" },
    ]),
  );
  try {
    const text = (/** @type {string} */ cls) => view.el.all().filter((e) => e.className === cls).map((c) => c.textContent);
    assert.deepEqual(text("je-cell je-c-result"), ["42", "500", "ok"]);
    assert.deepEqual(text("je-cell je-c-last_line"), ["7", "", ""]);
    assert.equal(view.el.all().find((e) => e.className === "je-foot")?.textContent, "3 jobs");
  } finally {
    view.cleanup();
  }
  const jv = draw(jobview, snap([{ name: "j", status: "running", started: 1_700_000_000 }]));
  try {
    jv.emit({ k: "patch", seq: 1, t: 1_700_000_001, rows: [{ name: "j", status: "failed", error: 500, tail: 12345, traceback: 6 }] });
    const find = (/** @type {string} */ cls) => jv.el.all().find((e) => e.className === cls)?.textContent;
    assert.equal(find("je-pre je-jv-tail"), "12345");
    assert.equal(find("je-jv-result"), "6");
    assert.equal(jv.el.all().find((e) => e.className === "je-jobview")?.dataset.status, "failed");
  } finally {
    jv.cleanup();
  }
});

test("bidi controls in a job's name stay in the name", { timeout: 10_000 }, () => {
  // A name ending in U+202E (right-to-left override) reversed what followed it in its cell
  // and in its tooltip ("name: description").
  const name = "evil\u202e";
  const cols = ["name", "status", "description"];
  const view = draw(dashboard, { k: "snap", seq: 0, t: 1_700_000_000, cols, data: [[name, "running", "train()"]] });
  try {
    const span = view.el.all().find((e) => e.className === "je-name");
    assert.equal(span?.getAttribute("dir"), "auto");
    const cell = view.el.all().find((e) => e.title && e.title.endsWith(": train()"));
    assert.equal(cell?.title, "\u2068evil\u202e\u2069: train()");
  } finally {
    view.cleanup();
  }
  const jv = draw(jobview, snap([{ name, status: "running" }]));
  try {
    const el = jv.el.all().find((e) => e.className === "je-jv-name");
    assert.equal(el?.getAttribute("dir"), "auto");
    assert.equal(el?.textContent, name);
  } finally {
    jv.cleanup();
  }
});

test("a form in a job's HTML display cannot navigate the page away", { timeout: 10_000 }, () => {
  // Submitting it (a button, Enter in a field) reloaded or left the notebook page.
  const doc = makeDocument();
  const box = renderMime(doc, { "text/html": '<form action="/elsewhere"><input name="q"><button formaction="/other">go</button></form>' });
  const form = box.all().find((e) => e.localName === "form");
  assert.ok(form, "the form is kept, with its fields");
  let prevented = 0;
  for (const fn of form.listeners?.submit ?? []) fn({ preventDefault: () => prevented++ });
  assert.equal(prevented, 1);
  assert.ok(box.all().some((e) => e.localName === "input"));
});
