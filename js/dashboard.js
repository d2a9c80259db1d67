// The live dashboard: a virtualised table of every job of an engine, fed by the model's Store.
// The kernel sends coalesced diffs at most ~10 times a second; durations tick here, in the browser.
import { h, setText } from "./dom.js";
import { allowedActions, durationOf, formatClock, formatDuration, nextRunText, restartNote, statusLabel, STATUSES, truncate } from "./format.js";
import { renderAnsi, stripAnsi } from "./ansi.js";
import { progressBar, rowBadge, rowBadgeKey, urlLink } from "./badge.js";
import { initializeStore, modelStore, newViewId, safeSend } from "./store.js";
import { attachView, noteQueued, showGone } from "./kernel.js";
import { countStatuses, orderRows, parseQuery } from "./table.js";
import { makeLayout } from "./vlist.js";
import { layoutGraph, renderGraph } from "./graph.js";
import { EndWatch, sayEnds } from "./notify.js";

/** @typedef {import("./store.js").Row} Row */
/** @typedef {import("./store.js").Store} Store */

export const ROW_H = 28;
/** The height assumed for a detail panel until it is drawn and measured. */
export const DETAIL_H = 260;
const MAX_VIEW_H = 440;
const TICK_MS = 500;
const GRAPH_EVERY_MS = 1000;

/** Columns: key, header label, sort key (null: not sortable). */
export const COLUMNS = [
  ["name", "name", "name"],
  ["status", "status", "status"],
  ["backend", "backend", "backend"],
  ["requires", "requires", "requires"],
  ["started", "started", "started"],
  ["duration", "duration", "duration"],
  ["attempts", "tries", "attempts"],
  ["progress", "progress", "progress"],
  ["result", "result", "result"],
  ["last_line", "last output", "last_line"],
  ["actions", "", null],
];

/** The status column is never narrower than its header ("status" and a sort arrow), px. */
const STATUS_MIN_W = 64;

const ACTION_LABELS = { cancel: "cancel", rerun: "rerun", log: "log" };

/**
 * @typedef {object} RowEls
 * @property {HTMLElement} el
 * @property {Record<string, HTMLElement>} cells
 * @property {number} v  row version drawn
 * @property {string} status
 * @property {string} badge  what the status cell shows (rowBadgeKey)
 * @property {string} actions
 * @property {number} top
 */

class DashboardView {
  /**
   * @param {HTMLElement} el
   * @param {Store} store
   * @param {(msg: object) => void} send
   * @param {any} [widgets]  the page's widget manager (its kernel: is an action queued?)
   */
  constructor(el, store, send, widgets = undefined) {
    this.doc = el.ownerDocument;
    this.widgets = widgets;
    this.store = store;
    this.send = send;
    this.id = newViewId();
    /** @type {Row[]} */
    this.order = [];
    this.orderDirty = true;
    this.countsDirty = true;
    this.graphDirty = true;
    /** @type {Map<string, number>} badge kind -> its measured width (px), see sizeStatusColumn */
    this.badgeWidths = new Map();
    this.statusUnsized = false;
    this.query = parseQuery("");
    /** @type {string | null} */
    this.sortKey = null;
    /** @type {1 | -1} */
    this.sortDir = 1;
    /** @type {Set<string>} */
    this.expanded = new Set();
    /** @type {Map<string, RowEls>} */
    this.rendered = new Map();
    /** @type {Map<string, {el: HTMLElement, v: number, top: number}>} */
    this.details = new Map();
    /** @type {Map<string, number>} name -> measured height of its detail panel (px) */
    this.detailHeights = new Map();
    // A panel whose size changes without new data (the page got narrower: its text wraps
    // again) moves the rows below it: draw again.
    this.resized = typeof ResizeObserver === "function" ? new ResizeObserver(() => this.schedule()) : null;
    this.raf = 0;
    this.lastGraph = 0;
    this.graphTimer = 0;
    this.ends = new EndWatch();
    this.build(el);
    this.unsubscribe = store.subscribe((change) => this.onChange(change));
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  /** @param {HTMLElement} el */
  build(el) {
    const d = this.doc;
    this.countsEl = h(d, "div.je-counts");
    // Measures status badges off screen, to size the status column (sizeStatusColumn).
    this.probeEl = h(d, "div.je-cell.je-c-status.je-probe", { "aria-hidden": "true" });
    this.filterEl = /** @type {HTMLInputElement} */ (
      h(d, "input.je-filter", {
        type: "search",
        placeholder: "filter: name words, status:failed",
        "aria-label": "filter jobs",
        oninput: () => {
          this.query = parseQuery(this.filterEl.value);
          this.invalidate(true);
        },
      })
    );
    this.graphBtn = h(d, "button.je-btn.je-graph-toggle", {
      text: "graph",
      title: "show the dependency graph",
      onclick: () => this.toggleGraph(),
    });
    this.graphEl = h(d, "div.je-graph", { hidden: true });
    this.headEl = h(
      d,
      "div.je-grid.je-colhead",
      null,
      COLUMNS.map(([key, label, sort]) =>
        h(d, `div.je-cell.je-c-${key}${sort ? ".je-sortable" : ""}`, {
          "data-sort": sort,
          text: label,
          onclick: sort ? () => this.toggleSort(sort) : null,
          // a sortable header is a button for the keyboard too (Enter or Space sorts)
          tabindex: sort ? "0" : null,
          role: sort ? "button" : null,
          "aria-label": sort ? `sort by ${label}` : null,
          onkeydown: sort ? (/** @type {KeyboardEvent} */ e) => pressed(e) && this.toggleSort(sort) : null,
        }),
      ),
    );
    this.bodyEl = h(d, "div.je-body", {
      onclick: (/** @type {MouseEvent} */ e) => this.onBodyClick(e),
      // A focused row (Tab reaches each drawn row) opens and closes with Enter or Space; its
      // buttons are buttons already.
      onkeydown: (/** @type {KeyboardEvent} */ e) => {
        const target = /** @type {HTMLElement} */ (e.target);
        if (target.classList.contains("je-row") && pressed(e)) this.toggleExpand(target.dataset.name ?? "");
      },
    });
    this.scrollEl = h(d, "div.je-scroll", { onscroll: () => this.schedule() }, [this.headEl, this.bodyEl]);
    this.footEl = h(d, "div.je-foot");
    this.logTitle = h(d, "span.je-log-title");
    this.logPre = h(d, "pre.je-pre.je-log-pre");
    this.logEl = h(d, "div.je-log", { hidden: true }, [
      h(d, "div.je-log-head", null, [
        this.logTitle,
        h(d, "button.je-btn", { text: "close", onclick: () => (this.logEl.hidden = true) }),
      ]),
      this.logPre,
    ]);
    this.goneEl = h(d, "div.je-gone", { hidden: true, role: "status" });
    this.queuedEl = h(d, "span.je-queued", { hidden: true, role: "status" });
    this.root = h(d, "div.je-dash", null, [
      this.probeEl,
      this.goneEl,
      h(d, "div.je-head", null, [h(d, "span.je-title", { text: "jobs" }), this.countsEl, this.queuedEl, this.filterEl, this.graphBtn]),
      this.graphEl,
      this.scrollEl,
      this.footEl,
      this.logEl,
    ]);
    el.append(this.root);
    // Drawn before it was in the page (nothing can be measured yet): size the status column
    // when it gets a size.
    this.resized?.observe(this.root);
  }

  /** The kernel is gone: stop the clocks, grey out, disable the buttons, say so. */
  markGone() {
    const gone = this.store.gone;
    if (gone) showGone(this, gone, this.bodyEl.querySelectorAll("button[data-action]"));
  }

  /** @param {any} change */
  onChange(change) {
    if ("gone" in change) {
      this.markGone();
      return;
    }
    if ("log" in change) {
      this.showLog(change.log);
      return;
    }
    this.sayEnds(change.full ? this.store.rows.keys() : change.names);
    this.countsDirty = true;
    this.graphDirty = true;
    const filtering = this.sortKey !== null || this.query.statuses.size > 0 || this.query.terms.length > 0;
    if (change.full || change.added || change.removed || (filtering && change.names.size > 0)) {
      this.orderDirty = true;
    }
    if (change.removed) {
      for (const name of this.expanded) if (!this.store.rows.has(name)) this.expanded.delete(name);
      for (const name of this.detailHeights.keys()) if (!this.expanded.has(name)) this.detailHeights.delete(name);
    }
    this.schedule();
  }

  /**
   * The browser notification of the rows whose job asked for one, as a job view sends it (the
   * job may have no view, or it is scrolled away); a job shown in both is told once.
   * @param {Iterable<string>} names  rows that changed
   */
  sayEnds(names) {
    const win = this.doc.defaultView;
    if (!win || this.store.gone) return;
    /** @type {Row[]} */
    const rows = [];
    for (const name of names) {
      const row = this.store.rows.get(name);
      if (row) rows.push(row);
      else this.ends.forget(name);
    }
    sayEnds(this.ends, /** @type {Window & typeof globalThis} */ (win), rows, this.store.now());
  }

  /** @param {boolean} [reorder] */
  invalidate(reorder = false) {
    if (reorder) this.orderDirty = true;
    this.graphDirty = true;
    this.schedule();
  }

  schedule() {
    if (this.raf) return;
    const raf = globalThis.requestAnimationFrame ?? ((/** @type {() => void} */ f) => setTimeout(f, 16));
    this.raf = raf(() => {
      this.raf = 0;
      this.draw();
    });
  }

  draw() {
    this.drawOnce();
    // A detail panel is as high as its content: drawn, it may turn out higher or lower than
    // assumed; lay the rows out again at once (no frame where a panel covers the next row).
    if (this.measureDetails()) this.drawOnce();
  }

  /**
   * Note the height of every detail panel drawn.
   * @returns {boolean} whether one differs from what the layout assumed
   */
  measureDetails() {
    let changed = false;
    for (const [name, det] of this.details) {
      const height = det.el.offsetHeight;
      if (!height || height === this.detailHeights.get(name)) continue; // not laid out (no DOM)
      this.detailHeights.set(name, height);
      changed = true;
    }
    return changed;
  }

  drawOnce() {
    const now = this.store.now();
    if (this.orderDirty) {
      this.order = orderRows(this.store.rows.values(), {
        query: this.query,
        sortKey: this.sortKey,
        sortDir: this.sortDir,
        now,
      });
      this.orderDirty = false;
    }
    if (this.countsDirty || this.statusUnsized) {
      if (this.countsDirty) this.drawCounts();
      this.sizeStatusColumn();
      this.countsDirty = false;
    }
    const order = this.order;
    /** @type {number[]} */
    const expandedIdx = [];
    if (this.expanded.size) {
      order.forEach((row, i) => this.expanded.has(row.name) && expandedIdx.push(i));
    }
    const heights = this.detailHeights;
    const layout = makeLayout(order.length, expandedIdx, ROW_H, (i) => heights.get(order[i].name) ?? DETAIL_H);
    this.layout = layout;
    this.bodyEl.style.height = `${layout.total}px`;
    // Before the element is attached clientHeight is 0: draw a full viewport's worth anyway.
    const headH = this.headEl.offsetHeight || ROW_H;
    const viewH = this.scrollEl.clientHeight || MAX_VIEW_H;
    const scrollTop = Math.max(0, this.scrollEl.scrollTop - headH);
    const [start, end] = layout.range(scrollTop, viewH);
    const keep = new Set();
    for (let i = start; i < end; i++) {
      const row = order[i];
      keep.add(row.name);
      this.drawRow(row, layout.top(i), now);
      if (this.expanded.has(row.name)) this.drawDetail(row, layout.top(i) + ROW_H);
    }
    for (const [name, r] of this.rendered) {
      if (!keep.has(name)) {
        r.el.remove();
        this.rendered.delete(name);
      }
    }
    for (const [name, det] of this.details) {
      if (!keep.has(name) || !this.expanded.has(name)) {
        det.el.remove();
        this.resized?.unobserve(det.el);
        this.details.delete(name);
        // scrolled away, the panel keeps its height in the layout; closed, it has none
        if (!this.expanded.has(name)) heights.delete(name);
      }
    }
    const total = this.store.rows.size;
    setText(
      this.footEl,
      order.length === total ? `${total} job${total === 1 ? "" : "s"}` : `${order.length} of ${total} jobs shown`,
    );
    if (this.graphDirty && !this.graphEl.hidden) this.drawGraphSoon();
    this.root.dataset.rows = String(order.length);
  }

  /**
   * The status column is as wide as the widest badge of any row (all rows, not only the drawn
   * ones: the column must not jump while scrolling), so no badge is cut off and the other
   * columns get the rest. Each distinct badge is measured once, in a hidden probe cell.
   */
  sizeStatusColumn() {
    /** @type {Map<string, Row>} */
    const kinds = new Map();
    for (const row of this.store.rows.values()) {
      const key = `${row.status}|${statusLabel(row)}|${restartNote(row)}`;
      if (!kinds.has(key)) kinds.set(key, row);
    }
    let widest = 0;
    this.statusUnsized = false;
    for (const [key, row] of kinds) {
      let width = this.badgeWidths.get(key);
      if (width === undefined) {
        this.probeEl.replaceChildren(...rowBadge(this.doc, row));
        // fractional: a badge of 78.4 px in a cell of 88 would be cut (ellipsis); +1 for rounding
        width = this.probeEl.getBoundingClientRect().width;
        width = width > 0 ? Math.ceil(width) + 1 : 0;
        // 0: not laid out (not in the page yet, or hidden); measured again on the next resize
        if (width > 0) this.badgeWidths.set(key, width);
        else this.statusUnsized = true;
      }
      widest = Math.max(widest, width);
    }
    this.probeEl.replaceChildren();
    if (widest > 0) this.root.style.setProperty("--je-status-w", `${Math.max(STATUS_MIN_W, Math.ceil(widest))}px`);
  }

  drawCounts() {
    const counts = countStatuses(this.store.rows.values());
    const d = this.doc;
    const chips = STATUSES.filter((s) => counts[s] > 0 || s === "running" || s === "failed").map((s) =>
      h(
        d,
        `button.je-chip.je-s-${s}${this.query.statuses.has(s) ? ".je-active" : ""}`,
        {
          title: `show only ${s} jobs`,
          "data-status": s,
          onclick: () => this.filterStatus(s),
        },
        [`${s} `, h(d, "b", { text: String(counts[s]) })],
      ),
    );
    this.countsEl.replaceChildren(...chips);
  }

  /** @param {string} status */
  filterStatus(status) {
    const words = this.filterEl.value.split(/\s+/).filter((w) => w && !/^(status|is):/.test(w));
    if (!this.query.statuses.has(status)) words.push(`status:${status}`);
    this.filterEl.value = words.join(" ");
    this.query = parseQuery(this.filterEl.value);
    this.countsDirty = true;
    this.invalidate(true);
  }

  /** @param {string} key */
  toggleSort(key) {
    if (this.sortKey !== key) {
      this.sortKey = key;
      this.sortDir = 1;
    } else if (this.sortDir === 1) this.sortDir = -1;
    else this.sortKey = null;
    for (const cell of this.headEl.children) {
      const el = /** @type {HTMLElement} */ (cell);
      el.classList.toggle("je-asc", el.dataset.sort === this.sortKey && this.sortDir === 1);
      el.classList.toggle("je-desc", el.dataset.sort === this.sortKey && this.sortDir === -1);
    }
    this.invalidate(true);
  }

  /**
   * @param {Row} row
   * @param {number} top
   * @param {number} now
   */
  drawRow(row, top, now) {
    let r = this.rendered.get(row.name);
    if (!r) {
      const cells = Object.fromEntries(
        COLUMNS.map(([key]) => [key, h(this.doc, `div.je-cell.je-c-${key}`)]),
      );
      const el = h(this.doc, "div.je-grid.je-row", { "data-name": row.name, tabindex: "0" }, Object.values(cells));
      r = { el, cells, v: -1, status: "", badge: "", actions: "", top: -1 };
      this.rendered.set(row.name, r);
      this.bodyEl.append(el);
    }
    if (r.top !== top) {
      r.el.style.transform = `translateY(${top}px)`;
      r.top = top;
    }
    r.el.classList.toggle("je-open", this.expanded.has(row.name));
    r.el.setAttribute("aria-expanded", String(this.expanded.has(row.name)));
    if (r.v === row._v) return;
    r.v = row._v;
    const c = r.cells;
    const d = this.doc;
    r.el.dataset.status = row.status;
    r.status = row.status;
    const badgeKey = rowBadgeKey(row);
    if (r.badge !== badgeKey) {
      c.status.replaceChildren(...rowBadge(d, row));
      c.status.title = restartNote(row); // the note may be cut off in the column
      r.badge = badgeKey;
    }
    const name = c.name;
    name.replaceChildren(h(d, "span.je-caret", { "aria-hidden": "true" }), h(d, "span.je-name", { text: row.name, dir: "auto" }));
    if (row.forever) name.append(h(d, "span.je-forever", { title: "forever job: runs until cancelled", text: "∞" }));
    if (row.earlier) name.append(h(d, "span.je-earlier", { title: `run by an earlier kernel (engine ${row.earlier})`, text: "earlier kernel" }));
    // The name isolated (U+2068 ... U+2069): bidi controls in it must not reorder the rest.
    name.title = row.description ? `\u2068${row.name}\u2069: ${row.description}` : row.name;
    setText(c.backend, row.backend ?? "");
    c.backend.title = row.backend ?? "";
    const reqs = Array.isArray(row.requires) ? row.requires.join(", ") : "";
    setText(c.requires, reqs);
    c.requires.title = reqs;
    // A scheduled job waiting for its next run shows when, across the started and duration cells.
    const next = nextRunText(row, now);
    c.started.classList.toggle("je-next", Boolean(next));
    setText(c.started, next || formatClock(row.started, now));
    c.started.title = next && row.started ? `last run started ${formatClock(row.started, now)}` : "";
    setText(c.duration, formatDuration(durationOf(row, now)));
    setText(c.attempts, row.attempts ? String(row.attempts) : "");
    c.progress.replaceChildren(progressBar(d, row.progress, row.progress_text));
    c.progress.title = row.progress_text ?? ""; // tqdm's counts and rate: cut off in the column
    const failed = row.status === "failed" && row.error;
    // An error or a repr may carry colours (a CLI's message): their escapes are noise in a cell.
    const result = stripAnsi(failed ? row.error : row.status === "cancelled" ? row.cancel_reason ?? "" : row.result ?? "");
    const link = urlLink(d, row.url, true);
    if (link) {
      // A web app: its address, clickable, before whatever result it has.
      c.result.replaceChildren(link, ...(result ? [" ", truncate(result, 200)] : []));
    } else setText(c.result, truncate(result, 200));
    c.result.title = result;
    c.result.classList.toggle("je-error", Boolean(failed));
    const line = stripAnsi(row.last_line ?? "");
    setText(c.last_line, line);
    c.last_line.title = line;
    const actions = allowedActions(row).join(",");
    if (actions !== r.actions) {
      c.actions.replaceChildren(
        ...allowedActions(row).map((a) =>
          h(d, `button.je-btn.je-act.je-act-${a}`, { "data-action": a, text: ACTION_LABELS[a], title: `${a} ${row.name}`, disabled: Boolean(this.store.gone) }),
        ),
      );
      r.actions = actions;
    }
  }

  /**
   * @param {Row} row
   * @param {number} top
   */
  drawDetail(row, top) {
    let det = this.details.get(row.name);
    if (!det) {
      det = { el: h(this.doc, "div.je-detail", { "data-name": row.name }), v: -1, top: -1 };
      this.details.set(row.name, det);
      this.bodyEl.append(det.el);
      this.resized?.observe(det.el);
    }
    if (det.top !== top) {
      det.el.style.transform = `translateY(${top}px)`;
      det.top = top;
    }
    if (det.v === row._v) return;
    det.v = row._v;
    const d = this.doc;
    const parts = [];
    /** @type {HTMLElement[]} */
    const follow = [];
    if (row.traceback) {
      const tb = h(d, "pre.je-pre.je-traceback");
      renderAnsi(tb, row.traceback);
      parts.push(h(d, "div.je-detail-label", { text: "traceback" }), tb);
      follow.push(tb); // a long traceback shows its end: the error line
    }
    if (row.tail === undefined || row.tail === null) {
      parts.push(h(d, "div.je-muted", { text: "loading output…" }));
    } else {
      const pre = h(d, "pre.je-pre.je-tail");
      if (row.tail) renderAnsi(pre, row.tail);
      else pre.append(h(d, "span.je-muted", { text: "(no output)" }));
      parts.push(h(d, "div.je-detail-label", { text: "output (last lines)" }), pre);
      follow.push(pre); // follow the output like a terminal does
    }
    if (row.description) parts.unshift(h(d, "div.je-detail-desc", { text: `${row.kind ?? ""} ${row.description}`.trim() }));
    det.el.replaceChildren(...parts);
    for (const pre of follow) pre.scrollTop = pre.scrollHeight;
  }

  /** @param {MouseEvent} e */
  onBodyClick(e) {
    const target = /** @type {HTMLElement} */ (e.target);
    if (target.closest("a[href]")) return; // a job's URL: the browser opens it, the row stays as it is
    const button = /** @type {HTMLButtonElement | null} */ (target.closest("button[data-action]"));
    const rowEl = /** @type {HTMLElement | null} */ (target.closest(".je-row"));
    if (!rowEl) return;
    const name = rowEl.dataset.name ?? "";
    if (button) {
      if (this.store.gone) return; // disabled: nobody could act on it
      button.disabled = true; // re-enabled when the row is redrawn with the kernel's answer
      setTimeout(() => (button.disabled = false), 3000);
      this.send({ k: "action", action: button.dataset.action, name });
      noteQueued(this.widgets, this.queuedEl);
      return;
    }
    this.toggleExpand(name);
  }

  /** @param {string} name */
  toggleExpand(name) {
    const open = !this.expanded.has(name);
    if (open) this.expanded.add(name);
    else this.expanded.delete(name);
    if (!this.store.gone) this.send({ k: "expand", name, open, id: this.id });
    this.schedule();
  }

  /** Scroll to a job and expand it (from the graph). @param {string} name */
  reveal(name) {
    const i = this.order.findIndex((r) => r.name === name);
    if (i < 0) return;
    if (!this.expanded.has(name)) this.toggleExpand(name);
    this.draw(); // the layout with this row open
    this.scrollEl.scrollTop = this.layout?.top(i) ?? i * ROW_H;
  }

  toggleGraph() {
    this.graphEl.hidden = !this.graphEl.hidden;
    this.graphBtn.classList.toggle("je-active", !this.graphEl.hidden);
    if (!this.graphEl.hidden) this.drawGraph();
  }

  drawGraphSoon() {
    if (this.graphTimer) return;
    const wait = Math.max(0, this.lastGraph + GRAPH_EVERY_MS - Date.now());
    this.graphTimer = setTimeout(() => {
      this.graphTimer = 0;
      if (!this.graphEl.hidden) this.drawGraph();
    }, wait);
  }

  drawGraph() {
    this.lastGraph = Date.now();
    this.graphDirty = false;
    const layout = layoutGraph(this.order, { maxNodes: 150 });
    const note = layout.omitted
      ? h(this.doc, "div.je-muted", { text: `${layout.omitted} more jobs not drawn: filter to narrow the graph` })
      : null;
    this.graphEl.replaceChildren(renderGraph(this.doc, layout, (name) => this.reveal(name)), ...(note ? [note] : []));
  }

  /** @param {{name: string, text: string, truncated?: boolean}} msg */
  showLog(msg) {
    setText(this.logTitle, `log of ${msg.name}${msg.truncated ? " (last part)" : ""}`);
    renderAnsi(this.logPre, msg.text ?? "");
    this.logEl.hidden = false;
    this.logEl.dataset.name = msg.name;
  }

  /** Durations tick here: no message from the kernel is needed for that. */
  tick() {
    const now = this.store.now();
    for (const [name, r] of this.rendered) {
      if (r.status !== "running") continue;
      const row = this.store.rows.get(name);
      if (row && !row.earlier) setText(r.cells.duration, formatDuration(durationOf(row, now)));
    }
  }

  destroy() {
    this.unsubscribe();
    clearInterval(this.ticker);
    clearTimeout(this.graphTimer);
    this.resized?.disconnect();
    if (this.raf) (globalThis.cancelAnimationFrame ?? clearTimeout)(this.raf);
    this.root.remove();
  }
}

/**
 * Whether a key press activates what has the focus (Enter or Space, as on a button); the
 * page's own handling of that key (scrolling on Space) is prevented.
 * @param {KeyboardEvent} e
 */
function pressed(e) {
  if (e.key !== "Enter" && e.key !== " ") return false;
  e.preventDefault();
  return true;
}

/**
 * anywidget render: one view of the model's Store.
 * @param {{model: any, el: HTMLElement}} ctx
 */
function render({ model, el }) {
  const t0 = performance.now();
  const store = modelStore(model);
  const view = new DashboardView(el, store, (msg) => safeSend(model, msg), model.widget_manager);
  view.draw(); // synchronously: the first rows exist as soon as render returns
  view.sayEnds(store.rows.keys());
  view.root.dataset.firstDrawMs = (performance.now() - t0).toFixed(1);
  return attachView(model, store, view, el);
}

export default { initialize: initializeStore, render };
