// Making elements. Attributes are set one by one (never `style`: the page's policy allows no
// inline style; the style sheet and classes do the styling), `on<event>` adds a listener,
// and `value` / `checked` / `selected` set the property.

const PROPERTIES = new Set(["value", "checked", "selected", "disabled", "hidden"]);

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (PROPERTIES.has(name)) el[name] = value;
    else el.setAttribute(name, value);
  }
  el.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return el;
}

export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
}

let lastId = 0;

// An id unique in the page, to tie labels and help texts to their controls.
export function uid(prefix) {
  return `${prefix}-${++lastId}`;
}

export function formatNumber(n) {
  return new Intl.NumberFormat("en-US").format(n);
}
