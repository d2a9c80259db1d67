// A view and its kernel: telling the kernel a view opened or closed, and what every view (the
// dashboard, a job view) does when its kernel is gone. One place, so the two views cannot drift
// apart (the browser tests check both after a kernel restart).
import { setText } from "./dom.js";
import { goneText, safeSend } from "./store.js";

/**
 * Grey a view out for good: its clock stopped, the `je-stale` class and `data-kernel="gone"` on
 * its root, why and as of when in its notice, its buttons disabled.
 * @param {{root: HTMLElement, goneEl: HTMLElement, ticker?: any}} view
 * @param {import("./store.js").Gone} gone
 * @param {Iterable<Element>} buttons
 */
export function showGone(view, gone, buttons) {
  clearInterval(view.ticker);
  view.root.classList.add("je-stale");
  view.root.dataset.kernel = "gone";
  setText(view.goneEl, goneText(gone));
  view.goneEl.hidden = false;
  for (const b of buttons) /** @type {HTMLButtonElement} */ (b).disabled = true;
}

/**
 * The class `@jupyter-widgets/base` (JupyterLab, Notebook 7) puts on a view's element, before
 * the view renders, when its model has no live comm: a model restored from a saved notebook's
 * widget state, whose kernel is not the page's (no kernel, or a new one). Such a model's
 * `send` drops every message without a word, so its buttons could only fail silently.
 */
export const DISCONNECTED = "jupyter-widgets-disconnected";

/**
 * A view was drawn: tell the kernel (it counts open views), or grey it out when its kernel is
 * gone (also when the view's model has no kernel behind it: see DISCONNECTED; its rows are
 * then as of the saved state). Returns what anywidget calls when the view is removed.
 * @param {any} model
 * @param {import("./store.js").Store} store
 * @param {{id: string, markGone: () => void, destroy: () => void}} view
 * @param {{classList: {contains: (c: string) => boolean}}} [el]  the element anywidget drew the view in
 * @returns {() => void}
 */
export function attachView(model, store, view, el) {
  if (!store.gone && el?.classList.contains(DISCONNECTED)) store.markGone("no kernel", store.t);
  if (store.gone) view.markGone();
  else safeSend(model, { k: "view", open: true, id: view.id });
  return () => {
    view.destroy();
    if (!store.gone) safeSend(model, { k: "view", open: false, id: view.id });
  };
}

/** What a view says of an action the kernel will only read once its running cell ends. */
export const QUEUED_TEXT = "queued until the kernel is idle";

/**
 * Whether a message sent now waits for the running cell: the kernel is busy and this front end
 * does not send widget messages over a kernel subshell (JupyterLab >= 4.4 with ipykernel >= 7
 * does by default, `commsOverSubshells`; Notebook 7 and older front ends do not), so the
 * kernel reads it only when its main shell is free.
 * @param {any} kernel  the widget manager's kernel connection, or undefined
 * @returns {boolean}
 */
export function actionWaits(kernel) {
  if (!kernel || kernel.status !== "busy") return false;
  const mode = kernel.commsOverSubshells;
  const subshells = Boolean(kernel.supportsSubshells) && typeof mode === "string" && mode !== "disabled";
  return !subshells;
}

/**
 * Say on `noteEl` that an action just sent waits for the running cell, until the kernel is idle
 * again (or `ms` passed: a kernel that never says idle must not keep the note for ever).
 * @param {any} manager  the widget manager (its `kernel`), or undefined
 * @param {HTMLElement} noteEl
 * @param {number} [ms]
 */
export function noteQueued(manager, noteEl, ms = 120_000) {
  let kernel;
  try {
    kernel = manager?.kernel;
  } catch {
    return;
  }
  if (!actionWaits(kernel)) return;
  noteEl.textContent = QUEUED_TEXT;
  noteEl.hidden = false;
  const signal = kernel.statusChanged;
  const done = () => {
    noteEl.hidden = true;
    clearTimeout(timer);
    try {
      signal?.disconnect?.(onStatus);
    } catch {
      // a disposed connection's signal is already cleared
    }
  };
  const onStatus = (/** @type {any} */ _sender, /** @type {string} */ status) => {
    if (status !== "busy") done();
  };
  const timer = setTimeout(done, ms);
  signal?.connect?.(onStatus);
}
