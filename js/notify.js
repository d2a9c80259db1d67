// A word when a job ends (issue 11): the job view of a job with `notify`, and the `%jobs`
// dashboard for each of its rows that has it, send a browser notification (Web Notification API)
// with its name, status and duration. Only an end seen while the view watches counts, or one a
// few seconds old when the view is first drawn (a short job may end before its view is drawn); a
// view drawn later (reload, reopen) stays silent. Both views go through EndWatch, so they cannot
// drift apart, and a job shown in both is told once (the notification's tag).
import { FINISHED, formatDuration } from "./format.js";

/** Shown before the page title while the browser asks whether notifications are allowed. */
export const PERMISSION_MARK = "(allow notifications?) ";

/** Seconds after its end that a job first drawn by a view still gets its notification. */
const FRESH_END_S = 5;

/**
 * The notification for a row that changed from `prev` (its status when last drawn, or undefined
 * when never drawn), or null when there is none to send.
 * @param {string | undefined} prev
 * @param {Record<string, any>} row
 * @param {number} now  the kernel's clock (epoch seconds), as the Store keeps it
 * @returns {{title: string, body: string, tag: string} | null}
 */
export function finishNotice(prev, row, now) {
  if (!row.notify || !FINISHED.has(row.status) || (prev !== undefined && FINISHED.has(prev))) return null;
  if (prev === undefined && !(typeof row.finished === "number" && now - row.finished < FRESH_END_S)) return null;
  const took = formatDuration(row.duration);
  const body = took ? `${row.status} in ${took}` : row.status;
  // The tag makes a second view of the same job replace, not repeat, the notification.
  return { title: `Job ${row.name} ${row.status}`, body, tag: `je-${row.name}-${row.finished ?? ""}` };
}

/** Ends already notified in this page (two views of one job say it once). Kept on the page's
 * global object: the job view and the dashboard are separate bundles, each with its own copy of
 * this module, and a job shown in both must still be told once. */
const NOTIFIED_KEY = Symbol.for("jupyter-executor.notified");
/** @type {Set<string>} */
const NOTIFIED = (/** @type {any} */ (globalThis)[NOTIFIED_KEY] ??= new Set());

/**
 * Ask for the permission (once per page) when a job that will notify is shown, marking the page
 * title while the answer is pending; then send `notice`, if any.
 * @param {Window & typeof globalThis} win
 * @param {{title: string, body: string, tag: string} | null} notice
 */
export function notifyEnd(win, notice) {
  const N = win.Notification;
  if (typeof N !== "function") return; // no Web Notification API (or an old WebView)
  if (notice) {
    if (NOTIFIED.has(notice.tag)) return;
    NOTIFIED.add(notice.tag);
  }
  const send = () => {
    if (!notice || N.permission !== "granted") return;
    try {
      new N(notice.title, { body: notice.body, tag: notice.tag });
    } catch {
      // Chrome on Android throws ("Illegal constructor": notifications come from a service
      // worker there): the view must still draw the job's end.
    }
  };
  if (N.permission !== "default") {
    send();
    return;
  }
  const doc = win.document;
  if (!doc.title.startsWith(PERMISSION_MARK)) doc.title = PERMISSION_MARK + doc.title;
  Promise.resolve(N.requestPermission())
    .catch(() => "denied")
    .then(() => {
      if (doc.title.startsWith(PERMISSION_MARK)) doc.title = doc.title.slice(PERMISSION_MARK.length);
      send();
    });
}

/**
 * What a view has seen of its rows' ends: the status each row had when last drawn, and whether
 * the permission was asked for. One per view (a job view has one row, the dashboard many).
 */
export class EndWatch {
  constructor() {
    /** @type {Map<string, string>} name -> status when last seen */
    this.last = new Map();
    this.asked = false;
  }

  /**
   * Note the current state of `rows`; what to tell the user about them.
   * @param {Iterable<Record<string, any>>} rows  the rows that changed (all of them at first)
   * @param {number} now  the kernel's clock (epoch seconds)
   * @returns {{notices: {title: string, body: string, tag: string}[], ask: boolean}}  the ends
   *   to notify, and whether to ask for the permission now (a notifying job not ended yet)
   */
  update(rows, now) {
    const notices = [];
    let ask = false;
    for (const row of rows) {
      const prev = this.last.get(row.name);
      this.last.set(row.name, row.status);
      if (!row.notify || row.earlier) continue; // an earlier kernel's run ended long ago
      const notice = finishNotice(prev, row, now);
      if (notice) notices.push(notice);
      else if (!this.asked && !FINISHED.has(row.status)) ask = this.asked = true;
    }
    return { notices, ask };
  }

  /** A row left the view: a row of that name coming back is new. @param {string} name */
  forget(name) {
    this.last.delete(name);
  }
}

/**
 * Note `rows` in `watch` and say what there is to say in `win`.
 * @param {EndWatch} watch
 * @param {Window & typeof globalThis} win
 * @param {Iterable<Record<string, any>>} rows
 * @param {number} now
 */
export function sayEnds(watch, win, rows, now) {
  const { notices, ask } = watch.update(rows, now);
  for (const notice of notices) notifyEnd(win, notice);
  if (ask && !notices.length) notifyEnd(win, null);
}
