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

/**
 * One display as an element. HTML comes from the user's own kernel, like any cell output; it is set
 * with innerHTML, which does not run <script>. SVG goes through an <img>, which runs nothing.
 * @param {Document} doc
 * @param {Record<string, any>} data
 * @param {Record<string, any>} [metadata]
 * @returns {HTMLElement}
 */
export function renderMime(doc, data, metadata = {}) {
  const mime = pickMime(data);
  const box = h(doc, "div.je-display", { "data-mime": mime ?? "none" });
  if (mime === "text/html") {
    box.innerHTML = data[mime];
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
