// ANSI escape handling for job output and tracebacks: SGR colours become styled spans, every other
// escape sequence (cursor moves, OSC titles, ...) is dropped, so nothing leaks as "[0;31m" noise.

// One escape: CSI (ESC [ params final), OSC (ESC ] ... BEL | ESC \), a charset designation
// (ESC ( B), or a two-byte escape.
const ESCAPE = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[()*+][0-9A-Za-z]|[@-Z\\-_])/g;

/**
 * @typedef {object} Style
 * @property {number | string | null} fg  0..15 for the basic palette, a CSS colour otherwise
 * @property {number | string | null} bg
 * @property {boolean} bold
 * @property {boolean} dim
 * @property {boolean} italic
 * @property {boolean} underline
 */

/** @typedef {{text: string, style: Style}} Segment */

/** @returns {Style} */
function plain() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
}

/**
 * A colour of the xterm 256-colour cube as CSS, or the palette index when it is a basic colour.
 * @param {number} n
 * @returns {number | string}
 */
export function xterm256(n) {
  if (n < 16) return n;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  const i = n - 16;
  const level = (/** @type {number} */ c) => (c === 0 ? 0 : 55 + c * 40);
  return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
}

/**
 * Apply one SGR parameter list ("1;31", "38;5;208", "") to a style.
 * @param {Style} style
 * @param {string} params
 * @returns {Style}
 */
function applySgr(style, params) {
  const s = { ...style };
  const codes = params === "" ? [0] : params.split(/[;:]/).map((x) => (x === "" ? 0 : Number(x)));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(s, plain());
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = null;
    else if (c === 38 || c === 48) {
      const key = c === 38 ? "fg" : "bg";
      if (codes[i + 1] === 5 && i + 2 < codes.length) {
        s[key] = xterm256(codes[i + 2] & 255);
        i += 2;
      } else if (codes[i + 1] === 2 && i + 4 < codes.length) {
        const [r, g, b] = codes.slice(i + 2, i + 5).map((v) => Math.min(255, v));
        s[key] = `rgb(${r},${g},${b})`;
        i += 4;
      }
    }
  }
  return s;
}

/**
 * @param {Style} a
 * @param {Style} b
 */
function sameStyle(a, b) {
  return (
    a.fg === b.fg &&
    a.bg === b.bg &&
    a.bold === b.bold &&
    a.dim === b.dim &&
    a.italic === b.italic &&
    a.underline === b.underline
  );
}

/**
 * Split text with ANSI escapes into styled segments (adjacent equal styles merged).
 * @param {unknown} text
 * @returns {Segment[]}
 */
export function parseAnsi(text) {
  /** @type {Segment[]} */
  const out = [];
  let style = plain();
  let last = 0;
  const push = (/** @type {string} */ t) => {
    if (!t) return;
    const prev = out[out.length - 1];
    if (prev && sameStyle(prev.style, style)) prev.text += t;
    else out.push({ text: t, style });
  };
  // A number or another non-text value where text was expected is shown, never a TypeError that
  // stops the view's drawing.
  const str = String(text ?? "");
  for (const m of str.matchAll(ESCAPE)) {
    push(str.slice(last, m.index));
    last = (m.index ?? 0) + m[0].length;
    if (m[2] === "m") style = applySgr(style, m[1] ?? "");
  }
  push(str.slice(last));
  return out;
}

/**
 * The text without any escape sequence.
 * @param {unknown} text
 */
export function stripAnsi(text) {
  return String(text ?? "").replace(ESCAPE, "");
}

/**
 * Render ANSI text into `el` (replacing its content) as text nodes and spans.
 * @param {HTMLElement} el
 * @param {unknown} text
 */
export function renderAnsi(el, text) {
  const doc = el.ownerDocument;
  const frag = doc.createDocumentFragment();
  for (const { text: t, style } of parseAnsi(text)) {
    const styled =
      style.fg !== null || style.bg !== null || style.bold || style.dim || style.italic || style.underline;
    if (!styled) {
      frag.append(doc.createTextNode(t));
      continue;
    }
    const span = doc.createElement("span");
    span.textContent = t;
    const classes = [];
    if (typeof style.fg === "number") classes.push(`je-fg${style.fg}`);
    else if (style.fg) span.style.color = style.fg;
    if (typeof style.bg === "number") classes.push(`je-bg${style.bg}`);
    else if (style.bg) span.style.backgroundColor = style.bg;
    if (style.bold) classes.push("je-bold");
    if (style.dim) classes.push("je-dim");
    if (style.italic) classes.push("je-italic");
    if (style.underline) classes.push("je-underline");
    if (classes.length) span.className = classes.join(" ");
    frag.append(span);
  }
  el.replaceChildren(frag);
}
