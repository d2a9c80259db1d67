// A minimal stand-in for the Document the drawing modules are given (tags, attributes, classes,
// children, text), enough to check what they decide without a DOM library.

export class FakeElement {
  /** @param {string} tag */
  constructor(tag) {
    this.tag = tag;
    this.tagName = tag.toUpperCase();
    this.className = "";
    /** @type {Record<string, string>} */
    this.attributes = {};
    /** @type {Array<FakeElement | {text: string}>} */
    this.children = [];
    this._text = "";
  }
  setAttribute(k, v) {
    this.attributes[k] = v;
  }
  addEventListener() {}
  append(...nodes) {
    this.children.push(...nodes);
  }
  set textContent(t) {
    this._text = t;
    this.children = [];
  }
  get textContent() {
    return this._text + this.children.map((c) => ("text" in c ? c.text : c.textContent)).join("");
  }
  /**
   * Every element below this one with this tag, in document order.
   * @param {string} tag
   * @returns {FakeElement[]}
   */
  all(tag) {
    return this.children.flatMap((c) =>
      c instanceof FakeElement ? [...(c.tag === tag ? [c] : []), ...c.all(tag)] : [],
    );
  }
}

/** A document whose elements (HTML or SVG) are FakeElements. */
export const fakeDocument = /** @type {any} */ ({
  createElement: (tag) => new FakeElement(tag),
  createElementNS: (_ns, tag) => new FakeElement(tag),
  createTextNode: (text) => ({ text }),
});
