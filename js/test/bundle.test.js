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
