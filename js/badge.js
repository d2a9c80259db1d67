// The status badge and the progress bar, identical in the dashboard and in the job view.
import { h } from "./dom.js";
import { formatPercent } from "./format.js";

/**
 * A coloured status badge; "running" carries a spinner (pure CSS, no timer).
 * @param {Document} doc
 * @param {string} status
 * @param {string} [title]  tooltip, e.g. the cancel reason
 * @returns {HTMLElement}
 */
export function badge(doc, status, title) {
  return h(doc, `span.je-badge.je-s-${status || "unknown"}`, { title: title || null }, [
    status === "running" ? h(doc, "span.je-spinner", { "aria-hidden": "true" }) : null,
    status || "?",
  ]);
}

/**
 * A thin progress bar; `fraction` null means "no progress reported" and gives an empty span.
 * @param {Document} doc
 * @param {number | null | undefined} fraction  0..1
 * @param {string} [text]  progress text shown as tooltip
 * @returns {HTMLElement}
 */
export function progressBar(doc, fraction, text) {
  if (typeof fraction !== "number") return h(doc, "span.je-progress.je-empty");
  const pct = formatPercent(fraction);
  const title = text ? `${pct} ${text}` : pct;
  return h(doc, "span.je-progress", { title, role: "progressbar", "aria-valuenow": pct }, [
    h(doc, "span.je-progress-fill", { style: `width:${pct}` }),
    h(doc, "span.je-progress-text", { text: text ? `${pct} ${text}` : pct }),
  ]);
}
