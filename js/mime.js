// Rendering of the mimebundles a job displayed (`display(...)` inside the job), for the job view.
import { h } from "./dom.js";
import { renderAnsi } from "./ansi.js";

/** Preferred representations, richest first. */
export const MIME_ORDER = ["text/html", "image/svg+xml", "image/png", "image/jpeg", "text/plain"];

/**
 * The mime type we will render from a bundle, or null.
 * @param {Record<string, any>} data
 * @returns {string | null}
 */
export function pickMime(data) {
  if (!data || typeof data !== "object") return null;
  return MIME_ORDER.find((m) => typeof data[m] === "string") ?? null;
}

/** The bundle of a widget displayed by a job (an ipywidget: tqdm.auto's bar, a button...). */
export const WIDGET_MIME = "application/vnd.jupyter.widget-view+json";
const WIDGET_TRIES = 40;
const WIDGET_RETRY_MS = 50;

/** The widget views drawn in display boxes, to remove with them. @type {WeakMap<Element, any>} */
const WIDGET_VIEWS = new WeakMap();

/** Elements dropped from a display's HTML: they load code, or act on the whole page (a <base>
 * moves every relative URL of it, a <meta> refresh navigates it away). A nested <template> is
 * dropped with its content, which this walk would not reach. */
const DROPPED_TAGS = new Set(["script", "object", "embed", "applet", "base", "meta", "template", "frame", "frameset"]);
/** SVG animations, dropped when they animate a link (`values="0;javascript:..."` on `href`). */
const ANIMATIONS = new Set(["animate", "set", "animatemotion", "animatetransform"]);
/** A URL that runs code, once the C0 controls and spaces a browser ignores in it are removed. */
const SCRIPT_URL = /^(?:javascript|vbscript):/i;
/** What a display's iframe may do: run its own scripts (a folium map), in an origin of its own,
 * never the page's (no allow-same-origin): nothing in it can reach the notebook. */
const IFRAME_SANDBOX = "allow-scripts allow-popups";

/**
 * A display's HTML as inert nodes that cannot run script in the page. innerHTML does not run
 * <script>, but it does run event handlers (`<img src=x onerror=...>`), `javascript:` links and
 * an <iframe srcdoc>'s scripts in the page's origin; and a job's display also comes back from a
 * saved notebook's widget state, which the notebook's trust does not cover. Parsed in a
 * <template>, whose content loads and runs nothing, then cleaned before it joins the page.
 * @param {Document} doc
 * @param {string} html
 * @returns {DocumentFragment}
 */
export function sanitizeHtml(doc, html) {
  const tpl = /** @type {HTMLTemplateElement} */ (doc.createElement("template"));
  tpl.innerHTML = html;
  /** @param {Element} parent */
  const clean = (parent) => {
    for (const el of [...parent.children]) {
      const tag = el.localName.toLowerCase();
      const names = el.getAttributeNames();
      const animatesLink = ANIMATIONS.has(tag) && names.some((n) => /^attributename$/i.test(n) && /href$/i.test(el.getAttribute(n) ?? ""));
      if (DROPPED_TAGS.has(tag) || animatesLink) {
        el.remove();
        continue;
      }
      for (const name of names) {
        const value = (el.getAttribute(name) ?? "").replace(/[\u0000-\u0020]/g, "");
        if (/^on/i.test(name) || SCRIPT_URL.test(value)) el.removeAttribute(name);
      }
      if (tag === "iframe") el.setAttribute("sandbox", IFRAME_SANDBOX);
      // A form's submit would navigate (or reload) the whole notebook page away; its inputs
      // stay usable, for code of the display's own iframe or widgets to read.
      if (tag === "form") el.addEventListener("submit", (/** @type {Event} */ e) => e.preventDefault());
      clean(el);
    }
  };
  clean(/** @type {any} */ (tpl.content));
  return tpl.content;
}

/**
 * One display as an element. HTML comes from the user's own kernel, like any cell output, but
 * may run no script in the page (see sanitizeHtml). SVG goes through an <img>, which runs nothing.
 * A widget is drawn by the page's widget manager when one is given (see renderWidget).
 * @param {Document} doc
 * @param {Record<string, any>} data
 * @param {Record<string, any>} [metadata]
 * @param {any} [manager]  the widget manager (anywidget's `model.widget_manager`)
 * @returns {HTMLElement}
 */
export function renderMime(doc, data, metadata = {}, manager = undefined) {
  const ref = data?.[WIDGET_MIME];
  if (ref && typeof ref.model_id === "string" && typeof manager?.create_view === "function") {
    return renderWidget(doc, data, metadata, manager, ref.model_id);
  }
  const mime = pickMime(data);
  const box = h(doc, "div.je-display", { "data-mime": mime ?? "none" });
  if (mime === "text/html") {
    box.append(sanitizeHtml(doc, data[mime]));
  } else if (mime === "image/svg+xml") {
    box.append(h(doc, "img", { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(data[mime])}` }));
  } else if (mime === "image/png" || mime === "image/jpeg") {
    const meta = (metadata && metadata[mime]) || {};
    box.append(
      h(doc, "img", {
        src: `data:${mime};base64,${String(data[mime]).replace(/\s+/g, "")}`,
        width: meta.width ?? null,
        height: meta.height ?? null,
      }),
    );
  } else if (mime === "text/plain") {
    const pre = h(doc, "pre.je-pre");
    renderAnsi(pre, data[mime]);
    box.append(pre);
  } else {
    box.append(h(doc, "span.je-muted", { text: `[${Object.keys(data ?? {}).join(", ") || "empty"} display]` }));
  }
  return box;
}

/**
 * A widget a job displayed, as a live view of the kernel's model (a tqdm bar moves as the job
 * runs), drawn like a cell output's widget. Its other representations (tqdm's text bar) stand in
 * until the view is drawn, and for good when it cannot be: no such model in this page (a
 * notebook reopened without the widget state saved), or a front end without a manager.
 * @param {Document} doc
 * @param {Record<string, any>} data
 * @param {Record<string, any>} metadata
 * @param {any} manager
 * @param {string} id  the widget model's id
 * @returns {HTMLElement}
 */
function renderWidget(doc, data, metadata, manager, id) {
  const rest = { ...data };
  delete rest[WIDGET_MIME];
  const standIn = renderMime(doc, rest, metadata);
  const box = h(doc, "div.je-display.je-widget", { "data-mime": WIDGET_MIME, "data-state": "loading" }, [standIn]);
  (async () => {
    let model;
    // The model's comm_open comes before the job's display, but the manager may still be
    // creating it: ask again for a moment.
    for (let i = 0; !model && i < WIDGET_TRIES; i++) {
      try {
        model = await manager.get_model(id);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, WIDGET_RETRY_MS));
      }
    }
    if (!model) throw new Error(`no widget model ${id}`);
    const view = await manager.create_view(model, {});
    if (box.dataset.state === "removed") return view.remove?.();
    WIDGET_VIEWS.set(box, view);
    // What Lumino's Widget.attach does (the view's node joins the page between the two
    // messages), so that boxes lay out their children and the view hears it is displayed.
    const lumino = view.luminoWidget ?? view.pWidget;
    lumino?.processMessage?.({ type: "before-attach" });
    standIn.replaceWith(view.el);
    lumino?.processMessage?.({ type: "after-attach" });
    box.dataset.state = "drawn";
  })().catch((err) => {
    box.dataset.state = "fallback";
    console.debug("[jupyter_executor] widget not drawn, its text stands in", err);
  });
  return box;
}

/**
 * A display box leaves the view: remove the widget view drawn in it, if any.
 * @param {Element} box
 */
export function disposeDisplay(box) {
  const el = /** @type {HTMLElement} */ (box);
  if (el.dataset) el.dataset.state = "removed";
  const view = WIDGET_VIEWS.get(box);
  WIDGET_VIEWS.delete(box);
  try {
    view?.remove?.();
  } catch {
    // a view of a model already closed
  }
}
