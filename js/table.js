// Pure table logic of the dashboard: filter, sort, counts. No DOM, tested with `node --test`.
import { durationOf, STATUSES } from "./format.js";

/** @typedef {import("./store.js").Row} Row */

const STATUS_RANK = Object.fromEntries(STATUSES.map((s, i) => [s, i]));
const COLLATOR = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/**
 * @typedef {object} Query
 * @property {Set<string>} statuses  keep rows with one of these statuses (empty: all)
 * @property {string[]} terms  lower-case words that must each appear in the name (or equal the status)
 */

/**
 * Parse the filter box: words match the name (or the status); `status:x` / `is:x` (comma lists
 * allowed) keep only those statuses.
 * @param {string} text
 * @returns {Query}
 */
export function parseQuery(text) {
  const statuses = new Set();
  const terms = [];
  for (const word of (text ?? "").toLowerCase().split(/\s+/)) {
    if (!word) continue;
    const m = /^(?:status|is):(.*)$/.exec(word);
    if (m) for (const s of m[1].split(",")) s && statuses.add(s);
    else terms.push(word);
  }
  return { statuses, terms };
}

/**
 * @param {Row} row
 * @param {Query} query
 */
export function matches(row, query) {
  if (query.statuses.size && !query.statuses.has(row.status)) return false;
  if (!query.terms.length) return true;
  const name = String(row.name).toLowerCase();
  return query.terms.every((t) => name.includes(t) || row.status === t);
}

/** Columns that can be sorted, and how their values compare. */
export const SORT_KEYS = [
  "name",
  "status",
  "backend",
  "requires",
  "started",
  "duration",
  "attempts",
  "result",
  "last_line",
  "progress",
];

/**
 * The value a row sorts by (null sorts last whatever the direction).
 * @param {Row} row
 * @param {string} key
 * @param {number} now
 * @returns {string | number | null}
 */
export function sortValue(row, key, now) {
  switch (key) {
    case "status":
      return STATUS_RANK[row.status] ?? 99;
    case "duration":
      return durationOf(row, now);
    case "requires":
      return Array.isArray(row.requires) && row.requires.length ? row.requires.join(",") : null;
    case "started":
    case "attempts":
    case "progress":
      return typeof row[key] === "number" ? row[key] : null;
    default: {
      const v = row[key];
      return v === null || v === undefined || v === "" ? null : String(v);
    }
  }
}

/**
 * Filter and order rows. Without a sort key rows keep submission order.
 * @param {Iterable<Row>} rows
 * @param {{query?: Query, sortKey?: string | null, sortDir?: 1 | -1, now?: number}} opts
 * @returns {Row[]}
 */
export function orderRows(rows, { query, sortKey = null, sortDir = 1, now = Date.now() / 1000 } = {}) {
  const out = [];
  for (const row of rows) if (!query || matches(row, query)) out.push(row);
  if (!sortKey) {
    out.sort((a, b) => a._i - b._i);
    return out;
  }
  // Decorate once: sortValue is called n times, not n log n times.
  const keyed = out.map((row) => ({ row, v: sortValue(row, sortKey, now) }));
  keyed.sort((a, b) => {
    if (a.v === null || b.v === null) {
      if (a.v === b.v) return a.row._i - b.row._i;
      return a.v === null ? 1 : -1;
    }
    const c =
      typeof a.v === "number" && typeof b.v === "number"
        ? a.v - b.v
        : COLLATOR.compare(String(a.v), String(b.v));
    return c !== 0 ? c * sortDir : a.row._i - b.row._i;
  });
  return keyed.map((k) => k.row);
}

/**
 * Number of rows per status (every status present, zeros included).
 * @param {Iterable<Row>} rows
 * @returns {Record<string, number>}
 */
export function countStatuses(rows) {
  /** @type {Record<string, number>} */
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const row of rows) counts[row.status] = (counts[row.status] ?? 0) + 1;
  return counts;
}
