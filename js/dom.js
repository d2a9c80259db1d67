// Tiny DOM helpers shared by the dashboard and the job view.

/**
 * Create an element.
 * @param {Document} doc
 * @param {string} tag  tag name, optionally with classes: "div.a.b"
 * @param {Record<string, any> | null} [attrs]  attributes; `text` sets textContent, `on*` adds listeners
 * @param {Array<Node | string | null | undefined | false>} [children]
 * @returns {HTMLElement}
 */
export function h(doc, tag, attrs, children) {
  const [name, ...classes] = tag.split(".");
  const el = doc.createElement(name);
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") el.textContent = String(value);
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  if (children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      el.append(typeof child === "string" ? doc.createTextNode(child) : child);
    }
  }
  return el;
}

/**
 * Set an element's text only when it changed (avoids needless layout work at 10 updates/s).
 * @param {Element} el
 * @param {string} text
 */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
