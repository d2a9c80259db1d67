// kernel.js: a view tells the kernel it opened and closed, and is greyed out when its kernel is
// gone; checked with minimal stand-ins for the DOM and the model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { actionWaits, attachView, DISCONNECTED, noteQueued, QUEUED_TEXT, showGone } from "../kernel.js";

function fakeElement() {
  return {
    textContent: "",
    hidden: true,
    disabled: false,
    dataset: /** @type {Record<string, string>} */ ({}),
    classes: new Set(),
    get classList() {
      return { add: (/** @type {string} */ c) => this.classes.add(c) };
    },
  };
}

test("a gone kernel greys the view, says why and as of when, and disables its buttons", () => {
  let ticks = 0;
  const ticker = setInterval(() => (ticks += 1), 1);
  const view = { root: fakeElement(), goneEl: fakeElement(), ticker };
  const buttons = [fakeElement(), fakeElement()];
  showGone(/** @type {any} */ (view), { reason: "kernel restarted", at: 1_800_000_000 }, /** @type {any} */ (buttons));
  assert.ok(view.root.classes.has("je-stale"));
  assert.equal(view.root.dataset.kernel, "gone");
  assert.equal(view.goneEl.hidden, false);
  assert.match(view.goneEl.textContent, /^kernel restarted — last known state as of \d\d:\d\d:\d\d$/);
  assert.deepEqual(buttons.map((b) => b.disabled), [true, true]);
  const before = ticks;
  return new Promise((resolve) => setTimeout(() => resolve(assert.equal(ticks, before)), 20)); // the clock stopped
});

test("a view says it opened and closed; with its kernel gone it is greyed out and says nothing", () => {
  /** @type {any[]} */
  const sent = [];
  const model = { send: (/** @type {any} */ m) => sent.push(m), get: () => "uid" };
  const events = /** @type {string[]} */ ([]);
  const view = { id: "v1", markGone: () => events.push("gone"), destroy: () => events.push("destroyed") };
  const live = /** @type {any} */ ({ gone: null });
  const detach = attachView(model, live, view);
  assert.deepEqual(sent, [{ k: "view", open: true, id: "v1" }]);
  detach();
  assert.deepEqual(sent.at(-1), { k: "view", open: false, id: "v1" });
  assert.deepEqual(events, ["destroyed"]);
  sent.length = 0;
  events.length = 0;
  const gone = /** @type {any} */ ({ gone: { reason: "no kernel", at: 0 } });
  attachView(model, gone, view)();
  assert.deepEqual(sent, []);
  assert.deepEqual(events, ["gone", "destroyed"]);
});

test("a view whose model has no live comm (restored from a saved notebook) is gone as of the saved state", () => {
  /** @type {any[]} */
  const sent = [];
  const model = { send: (/** @type {any} */ m) => sent.push(m), get: () => "uid" };
  /** @type {any} */
  let gone = null;
  const store = /** @type {any} */ ({
    gone: null,
    t: 1_700_000_000,
    markGone(/** @type {string} */ reason, /** @type {number} */ at) {
      gone = this.gone = { reason, at };
    },
  });
  const events = /** @type {string[]} */ ([]);
  const view = { id: "v1", markGone: () => events.push("gone"), destroy: () => events.push("destroyed") };
  const el = { classList: { contains: (/** @type {string} */ c) => c === DISCONNECTED } };
  attachView(model, store, view, el)();
  assert.deepEqual(gone, { reason: "no kernel", at: 1_700_000_000 });
  assert.deepEqual(events, ["gone", "destroyed"]);
  assert.deepEqual(sent, []); // nothing sent into a comm that does not exist
  // a connected view's element leaves a live store alone
  const live = /** @type {any} */ ({ gone: null, markGone: () => assert.fail("marked gone") });
  attachView(model, live, view, { classList: { contains: () => false } });
  assert.deepEqual(sent, [{ k: "view", open: true, id: "v1" }]);
});

test("an action waits for the running cell only when the kernel is busy and comms do not use a subshell", () => {
  assert.equal(actionWaits(undefined), false);
  assert.equal(actionWaits({ status: "idle" }), false);
  assert.equal(actionWaits({ status: "busy" }), true); // an older front end: no subshells
  assert.equal(actionWaits({ status: "busy", supportsSubshells: true, commsOverSubshells: "disabled" }), true);
  assert.equal(actionWaits({ status: "busy", supportsSubshells: false, commsOverSubshells: "perCommTarget" }), true);
  assert.equal(actionWaits({ status: "busy", supportsSubshells: true, commsOverSubshells: "perCommTarget" }), false);
});

test("the queued note shows while the kernel stays busy and goes when it is idle", () => {
  /** @type {((s: any, status: string) => void)[]} */
  const slots = [];
  const kernel = {
    status: "busy",
    statusChanged: { connect: (/** @type {any} */ f) => slots.push(f), disconnect: (/** @type {any} */ f) => slots.splice(slots.indexOf(f), 1) },
  };
  const note = fakeElement();
  noteQueued({ kernel }, /** @type {any} */ (note));
  assert.equal(note.hidden, false);
  assert.equal(note.textContent, QUEUED_TEXT);
  slots[0](kernel, "busy");
  assert.equal(note.hidden, false);
  slots[0](kernel, "idle");
  assert.equal(note.hidden, true);
  assert.equal(slots.length, 0);
  const quiet = fakeElement();
  noteQueued({ kernel: { ...kernel, status: "idle" } }, /** @type {any} */ (quiet));
  assert.equal(quiet.hidden, true);
});
