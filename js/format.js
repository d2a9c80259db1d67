// Formatting and the per-status rules shared by the dashboard, the job view and the HTML fallback
// (jupyter_executor/widget.py mirrors FINISHED and allowedActions: the kernel validates again).

/** Every status, in the order the header shows them. */
export const STATUSES = ["created", "pending", "running", "done", "failed", "cancelled"];

/** Statuses after which a job does not change unless rerun. */
export const FINISHED = new Set(["done", "failed", "cancelled"]);

/**
 * Human duration: "0.42 s", "12.3 s", "4m 05s", "2h 03m", "3d 04h".
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const pad = (/** @type {number} */ n) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${pad((s % 86400) / 3600)}h`;
}

/**
 * Wall-clock time of an epoch (seconds): "14:03:07", or "11-21 14:03" when not on the day of `now`.
 * @param {number | null | undefined} epoch
 * @param {number} [now]  epoch seconds, defaults to the current time
 * @returns {string}
 */
export function formatClock(epoch, now) {
  if (epoch === null || epoch === undefined || !Number.isFinite(epoch)) return "";
  const d = new Date(epoch * 1000);
  if (Number.isNaN(d.getTime())) return ""; // beyond the Date range (±8.64e12 s): "NaN-NaN NaN:N" else
  const ref = new Date((now ?? Date.now() / 1000) * 1000);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === ref.toDateString()) return time;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time.slice(0, 5)}`;
}

/**
 * The duration to show: the final one, or the time since start while running (ticks in the browser).
 * @param {{status?: string, started?: number | null, duration?: number | null}} row
 * @param {number} now  epoch seconds on the kernel's clock
 * @returns {number | null}
 */
export function durationOf(row, now) {
  // A run of an earlier kernel ticks no more: its last known duration, if any.
  if (row.status === "running" && !row.earlier && typeof row.started === "number") return Math.max(0, now - row.started);
  return typeof row.duration === "number" ? row.duration : null;
}

/**
 * Progress as "42%" (or "" when unknown).
 * @param {number | null | undefined} fraction
 */
export function formatPercent(fraction) {
  if (typeof fraction !== "number" || !Number.isFinite(fraction)) return "";
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
}

/**
 * Shorten text to at most `n` characters with an ellipsis.
 * @param {unknown} text  text (anything else is shown as String(value))
 * @param {number} n
 */
export function truncate(text, n) {
  if (text === null || text === undefined || text === "") return "";
  text = String(text); // a number where text was expected: shown, not a TypeError
  return text.length <= n ? text : `${text.slice(0, Math.max(0, n - 1))}…`;
}

/**
 * Which row actions make sense for a job; the kernel checks the same rules again.
 * @param {{status?: string}} row
 * @returns {Array<"cancel" | "rerun" | "log">}
 */
export function allowedActions(row) {
  if (row.earlier) return ["log"]; // a run of an earlier kernel: nothing left to act on
  const status = row.status ?? "";
  if (FINISHED.has(status)) return ["rerun", "log"];
  if (status === "created" || status === "pending" || status === "running") return ["cancel"];
  return [];
}

/**
 * How many times the job's restart policy restarted it (0 when unknown).
 * @param {{restarts?: number | null}} row
 * @returns {number}
 */
export function restartCount(row) {
  const n = row.restarts;
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/**
 * The badge text: the status, "restarting (n)" for a job its restart policy will run again, or
 * "scheduled" for a scheduled job waiting for its next run (when, the row's next_run, is shown
 * beside it). Such a job is "pending" between runs, and stays so for counts and filters.
 * @param {{status?: string, restarts?: number | null, next_run?: number | null}} row
 * @returns {string}
 */
export function statusLabel(row) {
  const status = row.status ?? "";
  if (status !== "pending") return status;
  const n = restartCount(row);
  if (n > 0) return `restarting (${n})`; // a crash loop says so first
  return typeof row.next_run === "number" ? "scheduled" : status;
}

/**
 * "next run 14:03:07" for a scheduled job waiting for its next run (local time of the browser;
 * a date is added when it is not today), or "".
 * @param {{status?: string, next_run?: number | null}} row
 * @param {number} [now]  epoch seconds
 * @returns {string}
 */
export function nextRunText(row, now) {
  if (row.status !== "pending" || typeof row.next_run !== "number") return "";
  const clock = formatClock(row.next_run, now);
  return clock ? `next run ${clock}` : "";
}

/**
 * "restarted 2×" for a finished job that its restart policy restarted, or "".
 * @param {{status?: string, restarts?: number | null}} row
 * @returns {string}
 */
export function restartNote(row) {
  const n = restartCount(row);
  return n > 0 && FINISHED.has(row.status ?? "") ? `restarted ${n}×` : "";
}

/**
 * The URL to link to, or null: only absolute http(s) URLs become links (a job's `url` comes from
 * the kernel, but a `javascript:` or `data:` link must never be clickable whatever sent it).
 * @param {unknown} url
 * @returns {string | null}
 */
export function safeUrl(url) {
  if (typeof url !== "string" || !url) return null;
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return null;
  return parsed.host ? parsed.href : null;
}
