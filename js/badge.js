// The status badge and the progress bar, identical in the dashboard and in the job view.
import { h } from "./dom.js";
import { formatPercent, restartNote, safeUrl, statusLabel } from "./format.js";
import { stripAnsi } from "./ansi.js";

/**
 * A coloured status badge; "running" carries a spinner (pure CSS, no timer).
 * @param {Document} doc
 * @param {string} status
 * @param {string} [title]  tooltip, e.g. the cancel reason
 * @param {string} [label]  text instead of the status, e.g. "restarting (2)"
 * @returns {HTMLElement}
 */
export function badge(doc, status, title, label) {
  const text = label || status || "?";
  // "restarting (2)" is a pending job: it keeps the pending class (and counts and filters as
  // pending) and gets a colour of its own so a crash loop stands out.
  const extra = !label || label === status ? "" : label === "scheduled" ? ".je-scheduled" : ".je-restarting";
  return h(doc, `span.je-badge.je-s-${status || "unknown"}${extra}`, { title: title || null }, [
    status === "running" ? h(doc, "span.je-spinner", { "aria-hidden": "true" }) : null,
    text,
  ]);
}

/**
 * The badge of a row ("restarting (n)" for a pending job its restart policy restarted), followed by
 * a muted "restarted n×" once such a job finished. The tooltip is the cancel reason or last error.
 * @param {Document} doc
 * @param {Record<string, any>} row
 * @returns {Array<HTMLElement>}
 */
export function rowBadge(doc, row) {
  const label = statusLabel(row);
  const out = [badge(doc, row.status, stripAnsi(row.cancel_reason || row.error || ""), label)];
  const note = restartNote(row);
  if (note) out.push(h(doc, "span.je-muted.je-restart-note", { text: note }));
  return out;
}

/** What rowBadge draws, as a string: redraw the badge only when it changes. @param {Record<string, any>} row */
export function rowBadgeKey(row) {
  return `${row.status}|${statusLabel(row)}|${restartNote(row)}|${row.cancel_reason || row.error || ""}`;
}

/**
 * A link to a job's URL opening in a new tab, or null when it is not an http(s) URL. The text is
 * set as text, never as HTML.
 * @param {Document} doc
 * @param {unknown} url
 * @param {boolean} [short]  show "host:port/path" (a table cell) instead of the whole URL
 * @returns {HTMLElement | null}
 */
export function urlLink(doc, url, short = false) {
  const href = safeUrl(url);
  if (!href) return null;
  const text = short ? href.replace(/^https?:\/\//, "").replace(/\/$/, "") : href;
  return h(doc, "a.je-url", { href, target: "_blank", rel: "noopener", title: `open ${href} in a new tab`, text });
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
