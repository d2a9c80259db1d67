import { test } from "node:test";
import assert from "node:assert/strict";
import { EndWatch, finishNotice, notifyEnd, PERMISSION_MARK, sayEnds } from "../notify.js";

const NOW = 1_000_000;
const row = (over) => ({ name: "train", notify: true, status: "done", duration: 75, finished: NOW - 60, ...over });

test("finishNotice: an end seen by the view, with name, status and duration", () => {
  assert.deepEqual(finishNotice("running", row({}), NOW), {
    title: "Job train done",
    body: "done in 1m 15s",
    tag: `je-train-${NOW - 60}`,
  });
  assert.equal(finishNotice("pending", row({ status: "failed", duration: 0.5 }), NOW)?.body, "failed in 0.50 s");
});

test("finishNotice: silent without notify, before the end, after a reload, twice", () => {
  assert.equal(finishNotice("running", row({ notify: false }), NOW), null);
  assert.equal(finishNotice("pending", row({ status: "running" }), NOW), null);
  assert.equal(finishNotice(undefined, row({}), NOW), null); // drawn a minute after its end
  assert.equal(finishNotice("done", row({}), NOW), null);
  // ended a moment before its view was first drawn: still said
  assert.equal(finishNotice(undefined, row({ finished: NOW - 1 }), NOW)?.title, "Job train done");
});

function fakeWindow(permission, answer) {
  const sent = [];
  let asked = 0;
  class FakeNotification {
    static permission = permission;
    static requestPermission() {
      asked++;
      return new Promise((resolve) =>
        setTimeout(() => {
          FakeNotification.permission = answer;
          resolve(answer);
        }, 5),
      );
    }
    constructor(title, options) {
      sent.push({ title, ...options });
    }
  }
  return { win: { Notification: FakeNotification, document: { title: "nb.ipynb" } }, sent, asked: () => asked };
}

test("notifyEnd sends at once when granted, once per end", () => {
  const { win, sent } = fakeWindow("granted");
  const notice = { title: "Job a done", body: "done in 1.00 s", tag: "je-a-1" };
  notifyEnd(win, notice);
  notifyEnd(win, notice); // a second view of the same job
  assert.deepEqual(sent, [{ title: "Job a done", body: "done in 1.00 s", tag: "je-a-1" }]);
});

test("notifyEnd marks the title while permission is pending, then sends", async () => {
  const { win, sent, asked } = fakeWindow("default", "granted");
  notifyEnd(win, { title: "Job b failed", body: "failed in 2.00 s", tag: "je-b-1" });
  assert.equal(win.document.title, PERMISSION_MARK + "nb.ipynb");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(asked(), 1);
  assert.equal(win.document.title, "nb.ipynb");
  assert.equal(sent.length, 1);
});

test("notifyEnd sends nothing when denied, and survives a window without the API", async () => {
  const { win, sent } = fakeWindow("default", "denied");
  notifyEnd(win, { title: "Job c done", body: "done", tag: "je-c-1" });
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(sent, []);
  assert.equal(win.document.title, "nb.ipynb");
  notifyEnd({ document: { title: "x" } }, { title: "t", body: "b", tag: "je-d-1" });
});

test("EndWatch: many rows (the dashboard), each end told once, permission asked once", () => {
  const watch = new EndWatch();
  const first = watch.update(
    [
      row({ name: "a", status: "running" }),
      row({ name: "b", status: "pending" }),
      row({ name: "quiet", notify: false, status: "running" }),
      row({ name: "old", status: "done" }), // ended a minute before the view was drawn
    ],
    NOW,
  );
  assert.deepEqual(first, { notices: [], ask: true });
  assert.deepEqual(watch.update([row({ name: "b", status: "running" })], NOW), { notices: [], ask: false });
  const ends = watch.update(
    [row({ name: "a", status: "done", finished: NOW - 1 }), row({ name: "quiet", notify: false, status: "done" })],
    NOW,
  );
  assert.deepEqual(ends.notices.map((n) => n.title), ["Job a done"]);
  assert.deepEqual(watch.update([row({ name: "a", status: "done", finished: NOW - 1 })], NOW).notices, []);
  // an earlier kernel's run never notifies; a forgotten row coming back is new
  assert.deepEqual(watch.update([row({ name: "e", earlier: "x", finished: NOW - 1 })], NOW).notices, []);
  watch.forget("b");
  assert.deepEqual(
    watch.update([row({ name: "b", status: "failed", finished: NOW - 1 })], NOW).notices.map((n) => n.title),
    ["Job b failed"],
  );
});

test("sayEnds sends what EndWatch found", () => {
  const { win, sent } = fakeWindow("granted");
  const watch = new EndWatch();
  sayEnds(watch, win, [row({ name: "r1", status: "running" })], NOW);
  sayEnds(watch, win, [row({ name: "r1", status: "done", finished: NOW - 0.5, duration: 2 })], NOW);
  assert.deepEqual(sent, [{ title: "Job r1 done", body: "done in 2.00 s", tag: `je-r1-${NOW - 0.5}` }]);
});

test("an end is told once per page, also by another copy of the module (the other bundle)", async () => {
  const { win, sent } = fakeWindow("granted");
  const notice = { title: "Job twice done", body: "done", tag: "je-twice-1" };
  notifyEnd(win, notice);
  const copy = await import(`../notify.js?copy=${Date.now()}`); // a second instance, as a second bundle is
  copy.notifyEnd(win, notice);
  assert.equal(sent.length, 1);
});

test("notifyEnd survives a Notification constructor that throws (Chrome on Android)", () => {
  class Throwing {
    static permission = "granted";
    static requestPermission() {
      return Promise.resolve("granted");
    }
    constructor() {
      throw new TypeError("Failed to construct 'Notification': Illegal constructor");
    }
  }
  const win = { Notification: Throwing, document: { title: "nb.ipynb" } };
  assert.doesNotThrow(() => notifyEnd(win, { title: "Job e done", body: "done in 1.00 s", tag: "je-android-1" }));
});
