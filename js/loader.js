// The `_esm` of every job view and dashboard model: about 1 KB instead of a 30-50 KB bundle per
// model (a saved notebook stores each model's `_esm` in its widget state). The bundle lives once
// per kernel in a hidden library model (widget.py `_Library`: `_code`, and its `_css` that
// anywidget loads), whose id is this model's `_lib`; it is imported once per page and the
// calls are passed through. Self-contained: build.py copies it, it is not bundled.

const CACHE = Symbol.for("jupyter-executor.bundles");
const RETRY_MS = 50;
const GIVE_UP_MS = 30000;

/** The bundle's {initialize, render} for this code, imported once per page. */
function load(code) {
  /** @type {Map<string, Promise<any>>} */
  const cache = (globalThis[CACHE] ??= new Map());
  let mod = cache.get(code);
  if (!mod) {
    const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
    mod = import(/* webpackIgnore: true */ url).then((m) => (URL.revokeObjectURL(url), m.default));
    cache.set(code, mod);
  }
  return mod;
}

/**
 * The library model's code. Models restored from a saved notebook are created in any order, so
 * the library may not be registered yet: ask again until it is.
 */
async function libraryCode(model) {
  const id = model.get("_lib");
  const t0 = Date.now();
  for (;;) {
    try {
      const lib = await model.widget_manager.get_model(id);
      const code = lib?.get("_code");
      if (code) return code;
    } catch {
      // not registered yet
    }
    if (Date.now() - t0 > GIVE_UP_MS) throw new Error(`jupyter_executor: no library model ${id}`);
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

export default async () => {
  /** @type {Promise<any> | undefined} */
  let entry;
  /** @type {unknown} */
  let cleanup;
  let disposed = false;
  return {
    initialize(/** @type {any} */ ctx) {
      // Not awaited: anywidget gives a model 2 s to initialize, a restored library may take
      // longer; render waits for it instead.
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
