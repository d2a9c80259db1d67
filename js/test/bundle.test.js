// The shipped bundles (jupyter_executor/static) load as modules and expose anywidget's entry points.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

for (const name of ["dashboard", "jobview"]) {
  test(`static/${name}.js exports initialize and render, and imports nothing`, async () => {
    const url = new URL(`../../jupyter_executor/static/${name}.js`, import.meta.url);
    const text = await readFile(url, "utf8");
    assert.ok(!/^\s*import\b/m.test(text), "a bundle must be self-contained");
    const mod = await import(`data:text/javascript;base64,${Buffer.from(text).toString("base64")}`);
    assert.equal(typeof mod.default.initialize, "function");
    assert.equal(typeof mod.default.render, "function");
  });
}

test("static/loader.js (every model's _esm) is small, self-contained and a widget factory", async () => {
  const url = new URL("../../jupyter_executor/static/loader.js", import.meta.url);
  const text = await readFile(url, "utf8");
  assert.ok(text.length < 2000, `${text.length} bytes`);
  assert.ok(!/^\s*import\b/m.test(text), "the loader must be self-contained");
  const mod = await import(`data:text/javascript;base64,${Buffer.from(text).toString("base64")}`);
  const widget = await mod.default();
  assert.equal(typeof widget.initialize, "function");
  assert.equal(typeof widget.render, "function");
});
