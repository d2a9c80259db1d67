import { test } from "node:test";
import assert from "node:assert/strict";
import { finishNotice, notifyEnd, PERMISSION_MARK } from "../notify.js";

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
