// Just enough of a DOM for node tests of code that builds elements (lib/dom.js's `el` and
// `svgEl`): attributes, children, text, classList and dataset. Installed on globalThis.

class FakeText {
  /** @param {string} text */
  constructor(text) {
    this.textContent = text;
  }
}

export class FakeElement {
  /** @param {string} tag */
  constructor(tag) {
    this.tagName = tag;
    /** @type {Map<string, string>} */
    this.attributes = new Map();
    /** @type {(FakeElement | FakeText)[]} */
    this.children = [];
    /** @type {Record<string, string>} */
    this.dataset = {};
    /** @type {Record<string, string>} */
    this.style = {};
    const classes = () => (this.attributes.get("class") || "").split(" ").filter(Boolean);
    const write = (/** @type {string[]} */ list) => this.attributes.set("class", list.join(" "));
    this.classList = {
      contains: (/** @type {string} */ c) => classes().includes(c),
      add: (/** @type {string[]} */ ...cs) => write([...new Set([...classes(), ...cs])]),
      remove: (/** @type {string[]} */ ...cs) => write(classes().filter((c) => !cs.includes(c))),
      toggle: (/** @type {string} */ c, /** @type {boolean} */ on) => {
        const want = on ?? !classes().includes(c);
        if (want) this.classList.add(c);
        else this.classList.remove(c);
        return want;
      },
    };
  }
  /** @param {string} k @param {string} v */
  setAttribute(k, v) {
    this.attributes.set(k, String(v));
  }
  /** @param {string} k */
  getAttribute(k) {
    return this.attributes.get(k) ?? null;
  }
  set className(v) {
    this.attributes.set("class", v);
  }
  /** @param {FakeElement} child */
  appendChild(child) {
    this.children.push(child);
    return child;
  }
  /** @param {(FakeElement | FakeText | string)[]} nodes */
  append(...nodes) {
    for (const n of nodes) this.children.push(typeof n === "string" ? new FakeText(n) : n);
  }
  get textContent() {
    return this.children.map((c) => c.textContent).join("");
  }
  set textContent(text) {
    this.children = [new FakeText(text)];
  }
  /** Every element below this one (depth first) that `pred` accepts. @param {(e: FakeElement) => boolean} pred */
  findAll(pred) {
    /** @type {FakeElement[]} */
    const out = [];
    const walk = (/** @type {FakeElement} */ e) => {
      for (const c of e.children) {
        if (c instanceof FakeElement) {
          if (pred(c)) out.push(c);
          walk(c);
        }
      }
    };
    walk(this);
    return out;
  }
  /** The elements below with a class. @param {string} cls */
  byClass(cls) {
    return this.findAll((e) => e.classList.contains(cls));
  }
}

/** @type {any} */ (globalThis).document = {
  createElement: (/** @type {string} */ tag) => new FakeElement(tag),
  createElementNS: (/** @type {string} */ _ns, /** @type {string} */ tag) => new FakeElement(tag),
  createTextNode: (/** @type {string} */ text) => new FakeText(text),
};
