// badge.js draws with a Document; these check what it decides, with a minimal stand-in document
// (fakedom.js) instead of a DOM library.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rowBadge, rowBadgeKey, urlLink } from "../badge.js";
import { fakeDocument } from "./fakedom.js";

const doc = fakeDocument;

test("rowBadge: a restarting job is pending with its own label and class", () => {
  const [b, ...rest] = rowBadge(doc, { status: "pending", restarts: 2, error: "ValueError: x" });
  assert.equal(b.textContent, "restarting (2)");
  assert.match(b.className, /\bje-s-pending\b/);
  assert.match(b.className, /\bje-restarting\b/);
  assert.equal(b.attributes.title, "ValueError: x"); // why it restarts
  assert.equal(rest.length, 0);
});

test("rowBadge: a plain status, and a finished job's restart note", () => {
  const [plain, ...none] = rowBadge(doc, { status: "pending" });
  assert.equal(plain.textContent, "pending");
  assert.doesNotMatch(plain.className, /je-restarting/);
  assert.equal(none.length, 0);
  const [failed, note] = rowBadge(doc, { status: "failed", restarts: 2 });
  assert.equal(failed.textContent, "failed");
  assert.equal(note.textContent, "restarted 2×");
});

test("rowBadgeKey changes when the badge must be redrawn, not otherwise", () => {
  const a = rowBadgeKey({ status: "pending", restarts: 1 });
  assert.notEqual(a, rowBadgeKey({ status: "pending", restarts: 2 }));
  assert.notEqual(a, rowBadgeKey({ status: "running", restarts: 1 }));
  assert.equal(a, rowBadgeKey({ status: "pending", restarts: 1, progress: 0.5 }));
});

test("urlLink: a new-tab link for http(s) URLs, nothing for others", () => {
  const a = urlLink(doc, "http://127.0.0.1:8000/");
  assert.ok(a);
  assert.equal(a.tagName, "A");
  assert.equal(a.attributes.href, "http://127.0.0.1:8000/");
  assert.equal(a.attributes.target, "_blank");
  assert.equal(a.attributes.rel, "noopener");
  assert.equal(a.textContent, "http://127.0.0.1:8000/");
  assert.equal(urlLink(doc, "https://example.org/app/", true).textContent, "example.org/app");
  assert.equal(urlLink(doc, "https://example.org/app/", true).attributes.href, "https://example.org/app/");
  assert.equal(urlLink(doc, "javascript:alert(1)"), null);
  assert.equal(urlLink(doc, null), null);
});
