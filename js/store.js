// The model-level copy of the kernel's job rows. One Store per widget model, fed by every custom
// message from the kernel (anywidget calls `initialize` once per model before any view, and queues
// comm messages until it ran, so no patch is missed); views render from it and listen for changes.
//
// Protocol (kernel -> browser), see jupyter_executor/_publisher.py:
//   {k: "snap", seq, t, cols: [...], data: [[...], ...], displays?: [bundle, ...]}   full table,
//       packed as one buffer of JSON: the `_init` state, or {k: "snap", packed: true} + buffer
//   {k: "patch", seq, t, rows: [{name, ...changed fields}], removed: [name], displays?: {drop, add}}
//   {k: "log", name, text, truncated}                                               reply to "show log"
// (browser -> kernel): {k: "sync"} asks for a "snap"; {k: "view", open: bool, id} counts views.

/**
 * @typedef {Record<string, any> & {name: string, _v: number, _i: number}} Row
 * @typedef {{full: boolean, names: Set<string>, added: boolean, removed: boolean, displays: boolean}} Change
 * @typedef {{data: Record<string, any>, metadata?: Record<string, any>}} Display
 * @typedef {{reason: string, at: number}} Gone  why the kernel is gone, and as of when the rows
 *   are known (epoch s: when it went, or the time of a saved state)
 */

/**
 * A packed message (a buffer of UTF-8 JSON, as _publisher.pack makes it) as an object; strings
 * are parsed and objects passed through.
 * @param {unknown} value
 * @returns {any}
 */
export function unpack(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value ? JSON.parse(value) : null;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    return JSON.parse(new TextDecoder().decode(/** @type {ArrayBuffer} */ (value)));
  }
  return value;
}

/**
 * Rows of a columnar snapshot as objects.
 * @param {string[]} cols
 * @param {any[][]} data
 * @returns {Record<string, any>[]}
 */
export function decodeRows(cols, data) {
  const out = new Array(data.length);
  for (let r = 0; r < data.length; r++) {
    const values = data[r];
    /** @type {Record<string, any>} */
    const row = {};
    for (let c = 0; c < cols.length; c++) row[cols[c]] = values[c];
    out[r] = row;
  }
  return out;
}

export class Store {
  /**
   * @param {((msg: object) => void) | null} send  sends a message to the kernel
   * @param {{now?: () => number, syncEvery?: number}} [options]  `now` is the browser clock in s
   */
  constructor(send, options = {}) {
    /** @type {Map<string, Row>} */
    this.rows = new Map();
    /** @type {Display[]} */
    this.displays = [];
    /** Sequence number of the last message applied (-1: none yet). */
    this.seq = -1;
    /** Kernel clock minus browser clock, in seconds: durations tick on the kernel's clock. */
    this.offset = 0;
    /** @type {number | null} kernel time (epoch s) of the last message applied: the "as of"
     * of a state restored from a saved notebook */
    this.t = null;
    /** Incremented on every change; lets views skip work. */
    this.version = 0;
    this._send = send;
    this._clock = options.now ?? (() => Date.now() / 1000);
    this._syncEvery = options.syncEvery ?? 2;
    this._lastSync = -Infinity;
    this._nextIndex = 0;
    /** Last row version given out: a row's `_v` only ever grows, also across snapshots, so a
     * view that compares the version it drew never skips a row a snapshot replaced. */
    this._rev = 0;
    /** @type {Set<(change: Change | {log: any} | {gone: Gone}) => void>} */
    this._listeners = new Set();
    /** @type {Gone | null} set once the kernel is gone (see markGone) */
    this.gone = null;
  }

  /**
   * The kernel that fed this Store went away (restarted, died, shut down): what the rows show
   * is only the last known state. Idempotent; listeners get `{gone}` once.
   * @param {string} reason  "kernel restarted" or "no kernel"
   * @param {number | null} [at]  as of when the rows are known (epoch s); default: now
   */
  markGone(reason, at = null) {
    if (this.gone) return;
    this.gone = { reason, at: at ?? this._clock() };
    this._emit({ gone: this.gone });
  }

  /** Current time on the kernel's clock (epoch seconds). */
  now() {
    return this._clock() + this.offset;
  }

  /**
   * @param {(change: Change | {log: any} | {gone: Gone}) => void} fn
   * @returns {() => void} unsubscribe
   */
  subscribe(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  /** @param {Change | {log: any} | {gone: Gone}} change */
  _emit(change) {
    this.version++;
    for (const fn of [...this._listeners]) fn(change);
  }

  /** Ask the kernel for a full snapshot, at most once every `syncEvery` seconds. */
  requestSync() {
    const now = this._clock();
    if (now - this._lastSync < this._syncEvery) return false;
    this._lastSync = now;
    this._send?.({ k: "sync" });
    return true;
  }

  /** @param {number | undefined} t  kernel time of a message */
  _setClock(t) {
    if (typeof t !== "number") return;
    this.offset = t - this._clock();
    this.t = t;
  }

  /**
   * Apply one message from the kernel.
   * @param {any} msg
   * @param {unknown[]} [buffers]  binary buffers of the message (a packed snapshot)
   * @returns {boolean} whether the message was for the store
   */
  handle(msg, buffers) {
    if (msg && msg.packed && buffers && buffers.length) msg = unpack(buffers[0]);
    if (!msg || typeof msg !== "object") return false;
    if (msg.k === "snap") this._snapshot(msg);
    else if (msg.k === "patch") this._patch(msg);
    else if (msg.k === "log") this._emit({ log: msg });
    else return false;
    return true;
  }

  /** @param {any} msg */
  _snapshot(msg) {
    this.rows.clear();
    this._nextIndex = 0;
    for (const fields of decodeRows(msg.cols ?? [], msg.data ?? [])) this._insert(fields);
    if (Array.isArray(msg.displays)) this.displays = this._adopt(msg.displays);
    this.seq = msg.seq ?? 0;
    this._setClock(msg.t);
    const names = new Set(this.rows.keys());
    this._emit({ full: true, names, added: true, removed: true, displays: true });
  }

  /**
   * A full list of displays (a snapshot, a reset), with the displays we already have kept as
   * the objects we have. A view keeps what it drew by identity, and a snapshot (sent again on
   * any sync) carries copies: drawn anew, a plotly figure would blank and redraw, a widget's
   * view would be made again.
   * @param {any[]} list
   * @returns {any[]}
   */
  _adopt(list) {
    /** @type {Map<string, any[]>} */
    const had = new Map();
    for (const old of this.displays) {
      const key = displayKey(old);
      const same = had.get(key);
      if (same) same.push(old);
      else had.set(key, [old]);
    }
    return list.map((disp) => had.get(displayKey(disp))?.shift() ?? disp);
  }

  /** @param {Record<string, any>} fields */
  _insert(fields) {
    const row = /** @type {Row} */ ({ ...fields, _v: ++this._rev, _i: this._nextIndex++ });
    this.rows.set(row.name, row);
    return row;
  }

  /** @param {any} msg */
  _patch(msg) {
    // A gap means patches were lost (e.g. the publisher was paused while no view was open): the
    // fields of a patch are relative to what the kernel sent before, so ask for a snapshot.
    // Applying the patch anyway keeps the rows it names current in the meantime.
    if (this.seq >= 0 && msg.seq !== this.seq + 1) this.requestSync();
    this.seq = msg.seq;
    this._setClock(msg.t);
    const names = new Set();
    let added = false;
    let removed = false;
    for (const fields of msg.rows ?? []) {
      const row = this.rows.get(fields.name);
      if (row) {
        Object.assign(row, fields);
        row._v = ++this._rev;
      } else {
        // A partial row we never saw in full: keep it, and ask for the full picture.
        if (!("status" in fields)) this.requestSync();
        this._insert(fields);
        added = true;
      }
      names.add(fields.name);
    }
    for (const name of msg.removed ?? []) {
      if (this.rows.delete(name)) {
        removed = true;
        names.add(name);
      }
    }
    let displays = false;
    const d = msg.displays;
    if (d && typeof d === "object") {
      if (Array.isArray(d.reset)) this.displays = this._adopt(d.reset);
      else this.displays = this.displays.slice(d.drop ?? 0).concat(d.add ?? []);
      displays = true;
    }
    this._emit({ full: false, names, added, removed, displays });
  }
}

/** @type {WeakMap<object, string>} */
const displayKeys = new WeakMap();

/**
 * What a display shows, as text: equal for a display and its copy in a later snapshot.
 * Computed once per display object.
 * @param {any} disp
 * @returns {string}
 */
function displayKey(disp) {
  if (disp === null || typeof disp !== "object") return String(disp);
  let key = displayKeys.get(disp);
  if (key === undefined) {
    try {
      key = JSON.stringify(disp);
    } catch {
      key = `unkeyed:${Math.random()}`; // (cannot be compared: never taken for another)
    }
    displayKeys.set(disp, key);
  }
  return key;
}

/** One Store per widget model, keyed by the model's `_uid` trait (the model proxies anywidget hands
 * to `initialize` and `render` are different objects for the same model). */
const STORES = new Map();

/**
 * The Store of a model, created from its `_init` snapshot on first use.
 * @param {any} model  anywidget model proxy
 * @returns {Store}
 */
export function modelStore(model) {
  const uid = model.get("_uid");
  let store = STORES.get(uid);
  if (!store) {
    store = new Store((msg) => safeSend(model, msg));
    store.handle(unpack(model.get("_init")));
    STORES.set(uid, store);
  }
  return store;
}

/**
 * anywidget `initialize`: feed the model's Store with every message, views or not.
 *
 * A fresh Store each time: a model made again for the same widget (the notebook closed and
 * reopened in the same page) must not inherit a Store bound to the old model's dead comm.
 * @param {{model: any}} ctx
 * @returns {() => void} cleanup
 */
export function initializeStore({ model }) {
  STORES.delete(model.get("_uid"));
  const store = modelStore(model);
  const onMsg = (/** @type {any} */ msg, /** @type {unknown[]} */ buffers) => store.handle(msg, buffers);
  model.on("msg:custom", onMsg);
  const unwatch = watchKernel(model.widget_manager, store);
  return () => {
    unwatch();
    model.off("msg:custom", onMsg);
    STORES.delete(model.get("_uid"));
  };
}

/** Kernel statuses after which this kernel's widgets are dead (their comms are gone). */
const GONE_STATUSES = /** @type {Record<string, string>} */ ({
  restarting: "kernel restarted",
  autorestarting: "kernel restarted",
  dead: "no kernel",
});
const KERNEL_CHECK_MS = 500;

/**
 * Mark the Store gone when the kernel that feeds it restarts, dies or is shut down.
 *
 * The widget manager of JupyterLab and Notebook 7 (`@jupyter-widgets/jupyterlab-manager`, which
 * anywidget hands over as `model.widget_manager`) knows the notebook's kernel connection: its
 * `statusChanged` signal reports "restarting" (a restart keeps the same connection object and
 * passes through that status only briefly), and a check every 500 ms catches a kernel that was
 * shut down, disposed or replaced (another kernel chosen) without such a status.
 * A front end whose manager has no `kernel` gives nothing to watch; `safeSend` failing then
 * still marks the Store gone.
 * @param {any} manager  the widget manager, or undefined
 * @param {Store} store
 * @returns {() => void} stop watching
 */
export function watchKernel(manager, store) {
  /** @returns {any} */
  const current = () => {
    try {
      return manager?.kernel;
    } catch {
      return undefined;
    }
  };
  const kernel = current();
  if (!kernel || typeof kernel !== "object") return () => {};
  const onStatus = (/** @type {any} */ _sender, /** @type {string} */ status) => {
    const reason = GONE_STATUSES[status];
    if (reason) store.markGone(reason);
  };
  const signal = kernel.statusChanged;
  signal?.connect?.(onStatus);
  const check = () => {
    if (store.gone) return stop();
    const now = current();
    if (now !== kernel) store.markGone(now ? "kernel restarted" : "no kernel");
    else if (kernel.isDisposed || kernel.status === "dead") store.markGone("no kernel");
    else if (GONE_STATUSES[kernel.status]) store.markGone(GONE_STATUSES[kernel.status]);
  };
  const timer = setInterval(check, KERNEL_CHECK_MS);
  const stop = () => {
    clearInterval(timer);
    try {
      signal?.disconnect?.(onStatus);
    } catch {
      // a disposed connection's signal is already cleared
    }
  };
  return stop;
}

/**
 * Send to the kernel, ignoring a closed comm (a view can outlive its model by a tick).
 * @param {any} model
 * @param {object} msg
 */
export function safeSend(model, msg) {
  try {
    model.send(msg);
  } catch (err) {
    console.debug("[jupyter_executor] message not sent", err);
    // No button may fail silently: a comm that cannot send means the kernel is gone.
    STORES.get(model.get("_uid"))?.markGone("no kernel");
  }
}

/**
 * The "last known state" note of a view whose kernel is gone.
 * @param {Gone} gone
 * @returns {string}
 */
export function goneText(gone) {
  const d = new Date(gone.at * 1000);
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${gone.reason} \u2014 last known state as of ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

let viewCounter = 0;

/** A page-unique id for a view, so the kernel can count open views. */
export function newViewId() {
  viewCounter += 1;
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${viewCounter}`;
}
