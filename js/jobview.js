// The per-cell job view shown by `%%job`: name, status, ticking elapsed time, progress, the output
// tail, what the job displayed, then its result or traceback. Shares the Store, badge, format and
// ANSI code with the dashboard.
import { h, setText } from "./dom.js";
import { allowedActions, durationOf, formatDuration, nextRunText, truncate } from "./format.js";
import { renderAnsi, stripAnsi } from "./ansi.js";
import { progressBar, rowBadge, rowBadgeKey, urlLink } from "./badge.js";
import { initializeStore, modelStore, newViewId, safeSend } from "./store.js";
import { attachView, noteQueued, showGone } from "./kernel.js";
import { disposeDisplay, renderMime } from "./mime.js";
import { EndWatch, sayEnds } from "./notify.js";

/** @typedef {import("./store.js").Row} Row */
/** @typedef {import("./store.js").Store} Store */

const TICK_MS = 250;

class JobViewView {
  /**
   * @param {HTMLElement} el
   * @param {Store} store
   * @param {(msg: object) => void} send
   * @param {any} [widgets]  the page's widget manager: draws the widgets the job displays
   */
  constructor(el, store, send, widgets = undefined) {
    const d = el.ownerDocument;
    this.widgets = widgets;
    this.doc = d;
    this.store = store;
    this.send = send;
    this.id = newViewId();
    this.v = -1;
    this.badge = "";
    this.url = "";
    this.actions = "";
    this.ends = new EndWatch();
    /** @type {unknown[]} */
    this.shownDisplays = [];
    this.badgeEl = h(d, "span.je-jv-badge");
    this.nameEl = h(d, "span.je-jv-name", { dir: "auto" }); // isolated: a bidi control in a name stays in it
    this.descEl = h(d, "span.je-muted.je-jv-desc");
    this.timeEl = h(d, "span.je-jv-time");
    this.progressEl = h(d, "span.je-jv-progress");
    this.urlEl = h(d, "span.je-jv-url");
    this.actionsEl = h(d, "span.je-jv-actions", {
      onclick: (/** @type {MouseEvent} */ e) => {
        const b = /** @type {HTMLButtonElement | null} */ (/** @type {HTMLElement} */ (e.target).closest("button"));
        if (!b || !this.row || this.store.gone) return;
        b.disabled = true;
        setTimeout(() => (b.disabled = false), 3000);
        this.send({ k: "action", action: b.dataset.action, name: this.row.name });
        noteQueued(this.widgets, this.queuedEl);
      },
    });
    this.queuedEl = h(d, "span.je-queued", { hidden: true, role: "status" });
    this.tailEl = h(d, "pre.je-pre.je-jv-tail", { hidden: true });
    this.displaysEl = h(d, "div.je-jv-displays");
    this.resultEl = h(d, "div.je-jv-result");
    this.goneEl = h(d, "div.je-gone", { hidden: true, role: "status" });
    this.root = h(d, "div.je-jobview", null, [
      this.goneEl,
      h(d, "div.je-jv-head", null, [this.badgeEl, this.nameEl, this.timeEl, this.progressEl, this.urlEl, this.descEl, this.queuedEl, this.actionsEl]),
      this.tailEl,
      this.displaysEl,
      this.resultEl,
    ]);
    el.append(this.root);
    this.unsubscribe = store.subscribe((change) => {
      if ("gone" in change) this.markGone();
      else if (!("log" in change)) this.draw(change.displays);
    });
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  /** The kernel is gone: stop the clock, grey out, disable the buttons, say so. */
  markGone() {
    const gone = this.store.gone;
    if (gone) showGone(this, gone, this.actionsEl.querySelectorAll("button"));
  }

  /** @returns {Row | undefined} */
  get row() {
    return this.store.rows.values().next().value;
  }

  /** @param {boolean} [displays] */
  draw(displays = true) {
    const row = this.row;
    const d = this.doc;
    if (displays) this.drawDisplays();
    if (!row || row._v === this.v) return;
    this.v = row._v;
    this.sayEnd(row);
    this.root.dataset.status = row.status;
    this.root.dataset.name = row.name;
    const badgeKey = rowBadgeKey(row);
    if (badgeKey !== this.badge) {
      this.badgeEl.replaceChildren(...rowBadge(d, row));
      this.badge = badgeKey;
    }
    if ((row.url ?? "") !== this.url) {
      this.url = row.url ?? "";
      const link = urlLink(d, row.url);
      this.urlEl.replaceChildren(...(link ? [link] : []));
    }
    this.nameEl.replaceChildren(row.name);
    if (row.forever) this.nameEl.append(h(d, "span.je-forever", { title: "forever job", text: "∞" }));
    setText(this.descEl, truncate(`${row.backend ?? ""} · ${row.description ?? ""}`, 100));
    this.progressEl.replaceChildren(progressBar(d, row.progress, row.progress_text));
    this.tick();
    const actions = allowedActions(row).filter((a) => a !== "log");
    if (actions.join() !== this.actions) {
      this.actions = actions.join();
      this.actionsEl.replaceChildren(
        ...actions.map((a) =>
          h(d, `button.je-btn.je-act.je-act-${a}`, { "data-action": a, text: a, disabled: Boolean(this.store.gone) }),
        ),
      );
    }
    const tail = row.tail ?? "";
    this.tailEl.hidden = !tail;
    if (tail) {
      renderAnsi(this.tailEl, tail);
      this.tailEl.scrollTop = this.tailEl.scrollHeight;
    }
    const parts = [];
    if (row.status === "failed" && row.traceback) {
      const pre = h(d, "pre.je-pre.je-traceback");
      renderAnsi(pre, row.traceback);
      parts.push(pre);
    } else if (row.status === "failed" && row.error) {
      // An error or a repr may carry colours (a CLI's message), as a traceback does.
      const pre = h(d, "pre.je-pre.je-traceback");
      renderAnsi(pre, row.error);
      parts.push(pre);
    } else if (row.status === "cancelled") {
      parts.push(h(d, "div.je-muted", { text: stripAnsi(row.cancel_reason || "cancelled") }));
    } else if (row.status === "done" && row.result !== null && row.result !== undefined) {
      const pre = h(d, "pre.je-pre.je-result");
      renderAnsi(pre, row.result);
      parts.push(pre);
    }
    this.resultEl.replaceChildren(...parts);
  }

  /**
   * The browser notification of a job that asked for one: permission asked for when it is first
   * drawn unfinished, the notification sent when this view sees it end.
   * @param {Row} row
   */
  sayEnd(row) {
    const win = this.doc.defaultView;
    if (!win || this.store.gone) return;
    sayEnds(this.ends, /** @type {Window & typeof globalThis} */ (win), [row], this.store.now());
  }

  drawDisplays() {
    const displays = this.store.displays;
    // Displays only ever get appended (or the oldest dropped): keep the elements of those we have.
    const kids = [...this.displaysEl.children];
    const old = this.shownDisplays;
    let drop = 0;
    while (drop < old.length && !displays.includes(/** @type {any} */ (old[drop]))) drop++;
    for (let i = 0; i < drop; i++) {
      disposeDisplay(kids[i]);
      kids[i].remove();
    }
    const kept = old.slice(drop);
    const consistent = kept.every((x, i) => displays[i] === x);
    if (!consistent) {
      for (const kid of this.displaysEl.children) disposeDisplay(kid);
      this.displaysEl.replaceChildren();
      kept.length = 0;
    }
    for (const disp of displays.slice(kept.length)) {
      this.displaysEl.append(renderMime(this.doc, disp.data ?? {}, disp.metadata ?? {}, this.widgets));
    }
    this.shownDisplays = displays.slice();
  }

  tick() {
    const row = this.row;
    if (!row) return;
    const now = this.store.now();
    const next = nextRunText(row, now);
    const dur = durationOf(row, now);
    setText(this.timeEl, next || (dur === null ? "" : formatDuration(dur)));
  }

  destroy() {
    this.unsubscribe();
    clearInterval(this.ticker);
    for (const kid of this.displaysEl.children) disposeDisplay(kid);
    this.root.remove();
  }
}

/**
 * anywidget render.
 * @param {{model: any, el: HTMLElement}} ctx
 */
function render({ model, el }) {
  const store = modelStore(model);
  const view = new JobViewView(el, store, (msg) => safeSend(model, msg), model.widget_manager);
  view.draw(true);
  return attachView(model, store, view, el);
}

export default { initialize: initializeStore, render };
