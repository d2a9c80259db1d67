import { test } from "node:test";
import assert from "node:assert/strict";
import {
  allowedActions,
  durationOf,
  FINISHED,
  formatClock,
  formatDuration,
  formatPercent,
  nextRunText,
  restartCount,
  restartNote,
  safeUrl,
  STATUSES,
  statusLabel,
  truncate,
} from "../format.js";

test("formatDuration picks a readable unit", () => {
  assert.equal(formatDuration(null), "");
  assert.equal(formatDuration(undefined), "");
  assert.equal(formatDuration(Number.NaN), "");
  assert.equal(formatDuration(0.4213), "0.42 s");
  assert.equal(formatDuration(-1), "0.00 s");
  assert.equal(formatDuration(12.34), "12.3 s");
  assert.equal(formatDuration(245), "4m 05s");
  assert.equal(formatDuration(2 * 3600 + 3 * 60 + 59), "2h 03m");
  assert.equal(formatDuration(3 * 86400 + 4 * 3600), "3d 04h");
});

test("formatClock shows the time today and the date otherwise", () => {
  const now = new Date(2026, 10, 21, 15, 0, 0).getTime() / 1000;
  const today = new Date(2026, 10, 21, 14, 3, 7).getTime() / 1000;
  const before = new Date(2026, 10, 19, 9, 5, 0).getTime() / 1000;
  assert.equal(formatClock(today, now), "14:03:07");
  assert.equal(formatClock(before, now), "11-19 09:05");
  assert.equal(formatClock(null, now), "");
});

test("durationOf ticks while running and is final otherwise", () => {
  assert.equal(durationOf({ status: "running", started: 100, duration: null }, 112.5), 12.5);
  assert.equal(durationOf({ status: "done", started: 100, duration: 3 }, 200), 3);
  assert.equal(durationOf({ status: "pending", started: null, duration: null }, 200), null);
  // a clock skew must not show negative durations
  assert.equal(durationOf({ status: "running", started: 300 }, 200), 0);
});

test("formatPercent clamps and rounds", () => {
  assert.equal(formatPercent(0.424), "42%");
  assert.equal(formatPercent(1.7), "100%");
  assert.equal(formatPercent(-1), "0%");
  assert.equal(formatPercent(null), "");
});

test("truncate adds an ellipsis only when needed", () => {
  assert.equal(truncate("abc", 5), "abc");
  assert.equal(truncate("abcdef", 4), "abc…");
  assert.equal(truncate(null, 4), "");
});

test("allowedActions: cancel while active, rerun and log when finished", () => {
  for (const s of ["created", "pending", "running"]) assert.deepEqual(allowedActions({ status: s }), ["cancel"]);
  for (const s of FINISHED) assert.deepEqual(allowedActions({ status: s }), ["rerun", "log"]);
  assert.deepEqual(allowedActions({ status: "bogus" }), []);
  assert.deepEqual(STATUSES.filter((s) => !FINISHED.has(s)), ["created", "pending", "running"]);
});

test("statusLabel: a pending job that was restarted is 'restarting (n)'", () => {
  assert.equal(statusLabel({ status: "pending", restarts: 2 }), "restarting (2)");
  assert.equal(statusLabel({ status: "pending", restarts: 0 }), "pending");
  assert.equal(statusLabel({ status: "pending" }), "pending");
  // while it runs again, and once it gave up, the status is what it is
  assert.equal(statusLabel({ status: "running", restarts: 2 }), "running");
  assert.equal(statusLabel({ status: "failed", restarts: 2 }), "failed");
  assert.equal(statusLabel({ status: "pending", restarts: "2" }), "pending"); // not a number: ignored
  // a scheduled job between runs
  assert.equal(statusLabel({ status: "pending", next_run: 1_800_000_000 }), "scheduled");
  assert.equal(statusLabel({ status: "running", next_run: 1_800_000_000 }), "running");
  assert.equal(statusLabel({ status: "pending", next_run: 1_800_000_000, restarts: 1 }), "restarting (1)");
});

test("restartNote: a finished job says how often it was restarted", () => {
  assert.equal(restartNote({ status: "failed", restarts: 2 }), "restarted 2×");
  assert.equal(restartNote({ status: "done", restarts: 1 }), "restarted 1×");
  assert.equal(restartNote({ status: "cancelled", restarts: 3 }), "restarted 3×");
  assert.equal(restartNote({ status: "failed", restarts: 0 }), "");
  assert.equal(restartNote({ status: "pending", restarts: 2 }), ""); // the badge says it
  assert.equal(restartCount({ restarts: -1 }), 0);
  assert.equal(restartCount({ restarts: null }), 0);
});

test("nextRunText: only for a pending job with a next run, as local clock time", () => {
  const now = new Date(2026, 10, 21, 15, 0, 0).getTime() / 1000;
  const soon = new Date(2026, 10, 21, 15, 0, 30).getTime() / 1000;
  const tomorrow = new Date(2026, 10, 22, 9, 5, 0).getTime() / 1000;
  assert.equal(nextRunText({ status: "pending", next_run: soon }, now), "next run 15:00:30");
  assert.equal(nextRunText({ status: "pending", next_run: tomorrow }, now), "next run 11-22 09:05");
  assert.equal(nextRunText({ status: "running", next_run: soon }, now), ""); // its duration ticks
  assert.equal(nextRunText({ status: "pending", next_run: null }, now), "");
  assert.equal(nextRunText({ status: "pending" }, now), "");
});

test("safeUrl links only absolute http(s) URLs", () => {
  assert.equal(safeUrl("http://127.0.0.1:8000/"), "http://127.0.0.1:8000/");
  assert.equal(safeUrl("https://example.org/app?x=1#y"), "https://example.org/app?x=1#y");
  assert.equal(safeUrl("HTTP://Example.org"), "http://example.org/"); // normalised
  for (const bad of [
    "javascript:alert(1)",
    " javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "//example.org/",
    "/relative",
    "http://",
    "",
    null,
    undefined,
    42,
    { href: "http://x" },
  ]) {
    assert.equal(safeUrl(bad), null, String(bad));
  }
});
