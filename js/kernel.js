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
 * A view was drawn: tell the kernel (it counts open views), or grey it out when its kernel is
 * gone. Returns what anywidget calls when the view is removed.
 * @param {any} model
 * @param {import("./store.js").Store} store
 * @param {{id: string, markGone: () => void, destroy: () => void}} view
 * @returns {() => void}
 */
export function attachView(model, store, view) {
  if (store.gone) view.markGone();
  else safeSend(model, { k: "view", open: true, id: view.id });
  return () => {
    view.destroy();
    if (!store.gone) safeSend(model, { k: "view", open: false, id: view.id });
  };
}
