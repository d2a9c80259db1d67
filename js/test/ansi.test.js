import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAnsi, stripAnsi, xterm256 } from "../ansi.js";

test("plain text is one unstyled segment", () => {
  const segs = parseAnsi("hello\nworld");
  assert.equal(segs.length, 1);
  assert.equal(segs[0].text, "hello\nworld");
  assert.equal(segs[0].style.fg, null);
});

test("basic and bright colours, bold and reset", () => {
  const segs = parseAnsi("a\x1b[31mred\x1b[1;92mbold green\x1b[0m plain");
  assert.deepEqual(
    segs.map((s) => [s.text, s.style.fg, s.style.bold]),
    [
      ["a", null, false],
      ["red", 1, false],
      ["bold green", 10, true],
      [" plain", null, false],
    ],
  );
});

test("256 colours and true colour become CSS colours", () => {
  const [seg] = parseAnsi("\x1b[38;5;208mx");
  assert.equal(seg.style.fg, "rgb(255,135,0)");
  const [seg2] = parseAnsi("\x1b[48;2;1;2;3mx");
  assert.equal(seg2.style.bg, "rgb(1,2,3)");
  assert.equal(xterm256(3), 3);
  assert.equal(xterm256(232), "rgb(8,8,8)");
});

test("an IPython traceback loses its escapes cleanly", () => {
  const tb =
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m\n" +
    "\x1b[0;31mValueError\x1b[0m                                Traceback (most recent call last)\n" +
    "Cell \x1b[0;32mIn[1], line 1\x1b[0m\n\x1b[0;31mValueError\x1b[0m: bad";
  const plain = stripAnsi(tb);
  assert.ok(!plain.includes("\x1b"));
  assert.ok(!plain.includes("[0;31m"));
  assert.ok(plain.endsWith("ValueError: bad"));
  assert.equal(parseAnsi(tb).map((s) => s.text).join(""), plain);
});

test("non-colour escapes (cursor moves, titles) are dropped, not shown", () => {
  assert.equal(stripAnsi("a\x1b[2Kb\x1b[1Ac\x1b]0;title\x07d\x1b(Be"), "abcde");
  assert.equal(parseAnsi("x\x1b[?25ly").map((s) => s.text).join(""), "xy");
});

test("an unterminated escape at the end does not throw", () => {
  assert.equal(stripAnsi("abc\x1b["), "abc\x1b[");
  assert.equal(stripAnsi("abc\x1b]0;t"), "abc");
});
