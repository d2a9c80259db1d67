import { test } from "node:test";
import assert from "node:assert/strict";
import { lowerBound, makeLayout } from "../vlist.js";

test("lowerBound", () => {
  assert.equal(lowerBound([], 3), 0);
  assert.equal(lowerBound([1, 3, 5], 3), 1);
  assert.equal(lowerBound([1, 3, 5], 4), 2);
  assert.equal(lowerBound([1, 3, 5], 9), 3);
});

test("rows without details sit on a fixed grid", () => {
  const l = makeLayout(10000, [], 28, 260);
  assert.equal(l.total, 280000);
  assert.equal(l.top(100), 2800);
  assert.equal(l.indexAt(2800), 100);
  assert.equal(l.indexAt(2827), 100);
  assert.deepEqual(l.range(2800, 280, 0), [100, 111]);
  assert.deepEqual(l.range(0, 280, 8), [0, 19]);
  assert.deepEqual(l.range(280000, 280, 8), [9991, 10000]);
});

test("an expanded row pushes later rows down by the detail height", () => {
  const l = makeLayout(100, [2, 50], 28, 260);
  assert.equal(l.total, 100 * 28 + 2 * 260);
  assert.equal(l.top(2), 56);
  assert.equal(l.top(3), 3 * 28 + 260);
  assert.equal(l.indexAt(56 + 100), 2); // inside row 2's detail
  assert.equal(l.indexAt(3 * 28 + 260), 3);
  assert.equal(l.top(51), 51 * 28 + 520);
});

test("an empty list draws nothing", () => {
  const l = makeLayout(0, [], 28, 260);
  assert.equal(l.total, 0);
  assert.deepEqual(l.range(0, 400), [0, 0]);
});

test("detail panels of different heights (each measured): later rows sit right below each", () => {
  const heights = new Map([[2, 40], [50, 300]]);
  const l = makeLayout(100, [2, 50], 28, (i) => heights.get(i));
  assert.equal(l.total, 100 * 28 + 340);
  assert.equal(l.top(2), 56);
  assert.equal(l.top(3), 3 * 28 + 40);
  assert.equal(l.indexAt(56 + 28 + 39), 2); // still row 2's short detail
  assert.equal(l.indexAt(56 + 28 + 40), 3);
  assert.equal(l.top(51), 51 * 28 + 340);
  assert.equal(l.indexAt(51 * 28 + 40 + 299), 50); // inside row 50's tall detail
  assert.deepEqual(l.range(50 * 28 + 40, 100, 0), [50, 51]);
});
