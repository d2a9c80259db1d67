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
