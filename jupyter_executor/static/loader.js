// js/loader.js, compacted by js/build.py: do not edit.
const CACHE = Symbol.for("jupyter-executor.bundles");
const RETRY_MS = 50;
const GIVE_UP_MS = 30000;
function load(code) {
const cache = (globalThis[CACHE] ??= new Map());
let mod = cache.get(code);
if (!mod) {
const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
mod = import(/* webpackIgnore: true */ url).then((m) => (URL.revokeObjectURL(url), m.default));
cache.set(code, mod);
}
return mod;
}
async function libraryCode(model) {
const id = model.get("_lib");
const t0 = Date.now();
for (;;) {
try {
const lib = await model.widget_manager.get_model(id);
const code = lib?.get("_code");
if (code) return code;
} catch {
}
if (Date.now() - t0 > GIVE_UP_MS) throw new Error(`jupyter_executor: no library model ${id}`);
await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
}
}
export default async () => {
let entry;
let cleanup;
let disposed = false;
return {
initialize(/** @type {any} */ ctx) {
entry = libraryCode(ctx.model)
.then(load)
.then(async (lib) => {
if (!disposed) cleanup = await lib.initialize?.(ctx);
return lib;
});
entry.catch((e) => console.error(e));
return () => {
disposed = true;
entry?.then(() => typeof cleanup === "function" && cleanup()).catch(() => {});
};
},
async render(/** @type {any} */ ctx) {
const lib = await entry;
return lib.render(ctx);
},
};
};
