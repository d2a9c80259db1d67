import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeRows, goneText, Store, watchKernel } from "../store.js";

const COLS = ["name", "status", "started", "duration"];
const snap = (seq, data, t = 1000) => ({ k: "snap", seq, t, cols: COLS, data });

function makeStore(clock = { t: 0 }) {
  const sent = [];
  const store = new Store((m) => sent.push(m), { now: () => clock.t });
  return { store, sent, clock };
}

test("decodeRows turns columns into objects", () => {
  assert.deepEqual(decodeRows(["a", "b"], [[1, 2], [3, null]]), [{ a: 1, b: 2 }, { a: 3, b: null }]);
});

test("a snapshot replaces everything and sets the clock offset", () => {
  const { store, clock } = makeStore({ t: 400 });
  const changes = [];
  store.subscribe((c) => changes.push(c));
  store.handle(snap(3, [["a", "running", 990, null], ["b", "pending", null, null]]));
  assert.equal(store.rows.size, 2);
  assert.equal(store.seq, 3);
  assert.equal(store.offset, 600); // kernel clock 1000, browser clock 400
  clock.t = 410;
  assert.equal(store.now(), 1010);
  assert.equal(changes[0].full, true);
  store.handle(snap(4, [["c", "done", 1, 2]]));
  assert.deepEqual([...store.rows.keys()], ["c"]);
  assert.equal(store.t, 1000); // the kernel time of the state shown
});

test("gone as of the saved state's time, or now", () => {
  const { store, clock } = makeStore({ t: 5000 });
  store.handle(snap(0, [["a", "done", 1, 2]], 1234.5));
  store.markGone("no kernel", store.t);
  assert.deepEqual(store.gone, { reason: "no kernel", at: 1234.5 });
  const other = makeStore(clock).store;
  other.markGone("kernel restarted");
  assert.deepEqual(other.gone, { reason: "kernel restarted", at: 5000 });
});

test("patches merge changed fields, add and remove rows, bump versions", () => {
  const { store, sent } = makeStore();
  store.handle(snap(0, [["a", "pending", null, null], ["b", "pending", null, null]]));
  const changes = [];
  store.subscribe((c) => changes.push(c));
  const v = store.rows.get("a")._v;
  store.handle({ k: "patch", seq: 1, t: 1001, rows: [{ name: "a", status: "running", started: 1000.5 }] });
  const a = store.rows.get("a");
  assert.ok(a._v > v);
  assert.deepEqual(a, { name: "a", status: "running", started: 1000.5, duration: null, _v: a._v, _i: 0 });
  assert.deepEqual([...changes[0].names], ["a"]);
  assert.equal(changes[0].added, false);
  store.handle({ k: "patch", seq: 2, t: 1002, rows: [{ name: "c", status: "pending" }], removed: ["b"] });
  assert.deepEqual([...store.rows.keys()], ["a", "c"]);
  assert.equal(changes[1].added, true);
  assert.equal(changes[1].removed, true);
  assert.deepEqual(sent, []); // in sequence: no sync asked
});

test("a snapshot never reuses a row version a view may have drawn", () => {
  // A view skips a row whose version it drew; were versions reset to 1 by a snapshot, the
  // fresh state sent after a reload (same name, new status) would never be drawn.
  const { store } = makeStore();
  store.handle(snap(0, [["a", "running", 1000, null]]));
  const drawn = store.rows.get("a")._v;
  store.handle(snap(1, [["a", "done", 1000, 2]]));
  assert.equal(store.rows.get("a").status, "done");
  assert.notEqual(store.rows.get("a")._v, drawn);
  assert.ok(store.rows.get("a")._v > drawn);
});

test("a gap in sequence numbers asks for a snapshot, at most once per interval", () => {
  const clock = { t: 0 };
  const { store, sent } = makeStore(clock);
  store.handle(snap(0, []));
  store.handle({ k: "patch", seq: 5, t: 0, rows: [{ name: "x", status: "running" }] });
  assert.deepEqual(sent, [{ k: "sync" }]);
  assert.equal(store.rows.get("x").status, "running"); // applied anyway
  store.handle({ k: "patch", seq: 9, t: 0, rows: [] });
  assert.equal(sent.length, 1); // debounced
  clock.t = 5;
  store.handle({ k: "patch", seq: 20, t: 5, rows: [] });
  assert.equal(sent.length, 2);
});

test("a partial row for an unknown job asks for a snapshot", () => {
  const { store, sent } = makeStore();
  store.handle(snap(0, []));
  store.handle({ k: "patch", seq: 1, t: 0, rows: [{ name: "ghost", last_line: "hi" }] });
  assert.deepEqual(sent, [{ k: "sync" }]);
});

test("display lists: snapshot, append, drop oldest, reset; kept objects keep identity", () => {
  const { store } = makeStore();
  const d1 = { data: { "text/plain": "1" } };
  store.handle({ ...snap(0, [["j", "running", 1, null]]), displays: [d1] });
  const first = store.displays[0];
  const d2 = { data: { "text/plain": "2" } };
  store.handle({ k: "patch", seq: 1, t: 0, rows: [], displays: { drop: 0, add: [d2] } });
  assert.equal(store.displays.length, 2);
  assert.equal(store.displays[0], first);
  store.handle({ k: "patch", seq: 2, t: 0, rows: [], displays: { drop: 1, add: [] } });
  assert.deepEqual(store.displays, [d2]);
  store.handle({ k: "patch", seq: 3, t: 0, rows: [], displays: { reset: [d1] } });
  assert.deepEqual(store.displays, [d1]);
});

test("a snapshot's copies of the displays we have are kept as the objects we have", () => {
  // A view keeps the elements of the displays it drew by identity: a sync (a snapshot with
  // copies of them) must not make it draw them anew (a plotly figure blanked and redrew).
  const { store } = makeStore();
  const d1 = { data: { "application/vnd.plotly.v1+json": { data: [{ type: "bar" }] } }, metadata: {} };
  const d2 = { data: { "text/plain": "2" } };
  store.handle({ ...snap(0, [["j", "running", 1, null]]), displays: [d1, d2] });
  const [first, second] = store.displays;
  const copies = JSON.parse(JSON.stringify([d1, d2]));
  const d3 = { data: { "text/plain": "3" } };
  store.handle({ ...snap(1, [["j", "running", 1, null]]), displays: [...copies, d3] });
  assert.equal(store.displays[0], first);
  assert.equal(store.displays[1], second);
  assert.equal(store.displays[2], d3);
  // the oldest dropped, and a reset with a copy: the same again
  store.handle({ k: "patch", seq: 2, t: 0, rows: [], displays: { reset: JSON.parse(JSON.stringify([d2, d3])) } });
  assert.equal(store.displays[0], second);
  assert.equal(store.displays[1], d3);
  // a display shown twice is two objects, each kept once
  store.handle({ ...snap(3, []), displays: [d3, JSON.parse(JSON.stringify(d3))] });
  assert.equal(store.displays[0], d3);
  assert.notEqual(store.displays[1], d3);
});

test("log replies are passed to listeners, unknown messages are not consumed", () => {
  const { store } = makeStore();
  const seen = [];
  store.subscribe((c) => seen.push(c));
  assert.equal(store.handle({ k: "log", name: "a", text: "x" }), true);
  assert.deepEqual(seen, [{ log: { k: "log", name: "a", text: "x" } }]);
  assert.equal(store.handle({ k: "nope" }), false);
  assert.equal(store.handle(null), false);
});

test("packed snapshots (a buffer of JSON) are unpacked: _init state and custom messages", async () => {
  const { unpack } = await import("../store.js");
  const msg = snap(7, [["a", "done", 1, 2]]);
  const bytes = new TextEncoder().encode(JSON.stringify(msg));
  assert.deepEqual(unpack(bytes), msg);
  assert.deepEqual(unpack(new DataView(bytes.buffer)), msg); // what ipywidgets hands over
  assert.deepEqual(unpack(bytes.buffer), msg);
  assert.deepEqual(unpack(JSON.stringify(msg)), msg);
  assert.equal(unpack(""), null);
  assert.equal(unpack(msg), msg);
  const { store } = makeStore();
  assert.equal(store.handle({ k: "snap", packed: true }, [new DataView(bytes.buffer)]), true);
  assert.equal(store.seq, 7);
  assert.deepEqual([...store.rows.keys()], ["a"]);
});

/** A kernel connection as JupyterLab's widget manager exposes it: a status and a Lumino-like signal. */
function fakeKernel() {
  const slots = new Set();
  return {
    status: "idle",
    isDisposed: false,
    statusChanged: { connect: (f) => slots.add(f), disconnect: (f) => slots.delete(f) },
    set(status) {
      this.status = status;
      for (const f of [...slots]) f(this, status);
    },
    slots,
  };
}

test("a restarting kernel marks the store gone at once, with the time", () => {
  const { store, clock } = makeStore({ t: 1_700_000_000 });
  const kernel = fakeKernel();
  const changes = [];
  store.subscribe((c) => changes.push(c));
  const stop = watchKernel({ kernel }, store);
  kernel.set("busy");
  assert.equal(store.gone, null);
  kernel.set("restarting");
  assert.deepEqual(store.gone, { reason: "kernel restarted", at: clock.t });
  kernel.set("idle"); // the new kernel: still gone, this store's comm is dead
  assert.equal(store.gone.reason, "kernel restarted");
  assert.equal(changes.filter((c) => "gone" in c).length, 1);
  assert.match(goneText(store.gone), /^kernel restarted — last known state as of \d\d:\d\d:\d\d$/);
  stop();
  assert.equal(kernel.slots.size, 0);
});

test("a kernel shut down or replaced without a status is caught by the check", async () => {
  const { store } = makeStore();
  const manager = { kernel: fakeKernel() };
  const stop = watchKernel(manager, store);
  manager.kernel = null; // the session's kernel was shut down
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(store.gone?.reason, "no kernel");
  stop();
});

test("without a kernel to watch nothing is marked", () => {
  const { store } = makeStore();
  watchKernel(undefined, store)();
  watchKernel({}, store)();
  assert.equal(store.gone, null);
});
