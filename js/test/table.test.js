import { test } from "node:test";
import assert from "node:assert/strict";
import { countStatuses, matches, orderRows, parseQuery, sortValue } from "../table.js";

let i = 0;
const row = (name, extra = {}) => ({ name, status: "done", requires: [], _v: 1, _i: i++, ...extra });

test("parseQuery splits words and status filters", () => {
  const q = parseQuery("  Fetch status:running,failed is:done x ");
  assert.deepEqual([...q.statuses].sort(), ["done", "failed", "running"]);
  assert.deepEqual(q.terms, ["fetch", "x"]);
  assert.deepEqual(parseQuery(""), { statuses: new Set(), terms: [] });
});

test("matches: every word in the name (case-insensitive) or equal to the status", () => {
  const r = row("Fetch-Data-3", { status: "failed" });
  assert.ok(matches(r, parseQuery("fetch data")));
  assert.ok(matches(r, parseQuery("failed")));
  assert.ok(!matches(r, parseQuery("fetch model")));
  assert.ok(matches(r, parseQuery("status:failed")));
  assert.ok(!matches(r, parseQuery("status:done fetch")));
});

test("orderRows keeps submission order without a sort key", () => {
  const rows = [row("b"), row("a"), row("c")];
  assert.deepEqual(orderRows(rows.slice().reverse()).map((r) => r.name), ["b", "a", "c"]);
});

test("orderRows sorts names naturally, both directions, stable", () => {
  const rows = ["job-10", "job-2", "job-1", "Job-3"].map((n) => row(n));
  assert.deepEqual(orderRows(rows, { sortKey: "name" }).map((r) => r.name), ["job-1", "job-2", "Job-3", "job-10"]);
  assert.deepEqual(
    orderRows(rows, { sortKey: "name", sortDir: -1 }).map((r) => r.name),
    ["job-10", "Job-3", "job-2", "job-1"],
  );
});

test("status sorts by lifecycle order; nulls sort last in both directions", () => {
  const rows = [row("a", { status: "failed" }), row("b", { status: "pending" }), row("c", { status: "running" })];
  assert.deepEqual(orderRows(rows, { sortKey: "status" }).map((r) => r.name), ["b", "c", "a"]);
  const timed = [row("x", { started: null }), row("y", { started: 5 }), row("z", { started: 2 })];
  assert.deepEqual(orderRows(timed, { sortKey: "started" }).map((r) => r.name), ["z", "y", "x"]);
  assert.deepEqual(orderRows(timed, { sortKey: "started", sortDir: -1 }).map((r) => r.name), ["y", "z", "x"]);
});

test("duration of running jobs sorts by elapsed time at `now`", () => {
  const rows = [
    row("long", { status: "running", started: 0 }),
    row("short", { status: "done", duration: 5 }),
    row("mid", { status: "running", started: 90 }),
  ];
  assert.deepEqual(orderRows(rows, { sortKey: "duration", now: 100 }).map((r) => r.name), ["short", "mid", "long"]);
  assert.equal(sortValue(rows[0], "duration", 100), 100);
});

test("filter and sort compose", () => {
  const rows = [row("a2", { status: "failed" }), row("a1", { status: "failed" }), row("b1")];
  assert.deepEqual(
    orderRows(rows, { query: parseQuery("status:failed"), sortKey: "name" }).map((r) => r.name),
    ["a1", "a2"],
  );
});

test("countStatuses includes zeros and unknown statuses", () => {
  const c = countStatuses([row("a", { status: "running" }), row("b", { status: "running" }), row("c")]);
  assert.equal(c.running, 2);
  assert.equal(c.done, 1);
  assert.equal(c.failed, 0);
});

test("10,000 rows sort in well under a frame budget", () => {
  const rows = Array.from({ length: 10000 }, (_, k) => row(`job-${(k * 7919) % 10000}`, { started: k }));
  const t0 = performance.now();
  const out = orderRows(rows, { sortKey: "name" });
  const ms = performance.now() - t0;
  assert.equal(out[0].name, "job-0");
  assert.equal(out[9999].name, "job-9999");
  assert.ok(ms < 500, `sorting took ${ms} ms`);
});
