// A condition's form, built from its input type alone (introspection): input objects become
// nested fieldsets (an optional one is switched on by a checkbox), enums selects, lists of
// enums checkbox groups, other lists items to add and remove, scalars inputs of their kind.
// Descriptions are help texts, defaults are hinted (not filled in: a value left empty is
// omitted, so the rule sent holds only what the user gave and the service applies defaults).
//
// Each part is a widget {el, value(), place(path, item)}: `value()` reads what the user
// entered now (undefined when nothing); `place` gives its fields the paths the service would
// name them by in the value sent now (`in[1]`: list items left empty are not sent, so they
// have none and those after them move up), and the number of the list item they are in to
// their labels ("from (item 2)"). The form calls `onChange` with the condition's value after
// every edit.

import { h, uid } from "./builder-dom.js";
import { isRequired, nullable, own } from "./builder-schema.js";

const NUMBERS = { Int: "1", Float: "any" };
// Scalars whose values are text by their specification: sent as typed. Any other scalar
// (JSON, a plugin's own) is sent as the JSON the text is when it is JSON (42, true, "007",
// {"a": 1}), else as the text: a plugin's numeric scalar gets a number, quotes keep a
// number-like text a string.
const TEXTS = new Set(["String", "ID", "DateTime", "Date"]);
const EXAMPLES = { DateTime: "e.g. 2026-11-28T12:00:00Z", Date: "e.g. 2026-11-28" };
const AS_JSON = 'JSON: 42, true, "text"';

export function conditionForm(model, type, value, onChange) {
  const named = model.types.get(nullable(type).name);
  const root = named && named.kind === "INPUT_OBJECT"
    ? objectWidget(model, named, value || {})
    : fieldWidget(model, { name: "value", description: null, defaultValue: null, type }, value);
  root.place("", "");
  const el = h("div", { class: "condition-form" }, root.el);
  let last = JSON.stringify(root.value());
  const changed = () => {
    root.place("", "");
    const now = root.value();
    if (JSON.stringify(now) !== last) {
      last = JSON.stringify(now);
      onChange(now);
    }
  };
  el.addEventListener("input", changed);
  el.addEventListener("change", changed);
  return el;
}

// Show `message` on the field at `path` (relative to the condition, e.g. `daysSinceSent.value`
// or `in[1]`), or on the nearest enclosing field shown; false when none is.
export function markField(form, path, message) {
  for (let at = path; at; at = at.replace(/(\.[^.[\]]*|\[\d+\])$/, "")) {
    const field = form.querySelector(`[data-field-path="${CSS.escape(at)}"]`);
    if (field) {
      field.classList.add("invalid");
      const control = field.querySelector("input, select");
      if (control) control.setAttribute("aria-invalid", "true");
      field.querySelector(".field-error").textContent = message;
      return true;
    }
    if (!/[.[]/.test(at)) break;
  }
  return false;
}

export function clearFields(form) {
  for (const field of form.querySelectorAll(".invalid")) {
    field.classList.remove("invalid");
    field.querySelector(".field-error").textContent = "";
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

// The path a field's element answers to (none: the field is not sent now).
function setPath(el, path) {
  if (path === null) el.removeAttribute("data-field-path");
  else el.dataset.fieldPath = path;
}

// A field's name as its label or legend shows it, with the number of the list item it is in.
function title(field) {
  const item = h("span", { class: "item-number" });
  return {
    parts: [field.name, item, isRequired(field) ? h("span", { class: "required" }, " (required)") : null],
    number(text) { item.textContent = text; },
  };
}

function objectWidget(model, type, value) {
  const fields = type.inputFields.map((field) => fieldWidget(model, field, own(value, field.name)));
  return {
    el: h("div", { class: "fields" }, fields.map((field) => field.el)),
    value() {
      const out = {};
      type.inputFields.forEach((field, i) => {
        const given = fields[i].value();
        if (given !== undefined) out[field.name] = given;
      });
      return out;
    },
    place(path, item) {
      type.inputFields.forEach((field, i) =>
        fields[i].place(path === null ? null : path ? `${path}.${field.name}` : field.name, item));
    },
  };
}

function fieldWidget(model, field, value) {
  const type = nullable(field.type);
  const named = type.kind === "LIST" ? null : model.types.get(type.name);
  if (type.kind === "LIST") return listField(model, field, type.ofType, value);
  if (named && named.kind === "INPUT_OBJECT") return objectField(model, field, named, value);
  const id = uid("f");
  const control = named && named.kind === "ENUM" ? enumSelect(field, named, value, id)
    : named && type.name === "Boolean" ? booleanSelect(field, value, id)
    : scalarInput(field, type.name, value, id);
  const help = helpText(field, id);
  if (help) control.el.setAttribute("aria-describedby", help.id);
  const name = title(field);
  const wrapper = h("div", { class: "field" }, h("label", { for: id }, name.parts), control.el, help,
    h("p", { class: "field-error" }));
  return {
    el: wrapper,
    value: control.value,
    place(path, item) {
      setPath(wrapper, path);
      name.number(item);
    },
  };
}

function helpText(field, id) {
  const parts = [field.description, field.defaultValue !== null ? `Default: ${field.defaultValue}.` : null]
    .filter(Boolean);
  return parts.length ? h("p", { class: "help", id: `${id}-help` }, parts.join(" ")) : null;
}

// The empty choice of a select: what leaving the field empty means.
function unset(field) {
  if (field.defaultValue !== null) return `default (${field.defaultValue})`;
  return isRequired(field) ? "— choose —" : "— not set —";
}

function enumSelect(field, type, value, id) {
  const known = type.enumValues.map((option) => option.name);
  const options = type.enumValues.map((option) => h("option", { value: option.name, title: option.description },
    option.description ? `${option.name} — ${option.description}` : option.name));
  if (value !== undefined && !known.includes(value)) {  // kept as given: the service says what is wrong with it
    options.push(h("option", { value: String(value) }, `${value} (not a ${type.name})`));
  }
  const el = h("select", { id }, h("option", { value: "" }, unset(field)), options);
  el.value = value === undefined ? "" : String(value);
  return { el, value: () => (el.value === "" ? undefined : el.value) };
}

function booleanSelect(field, value, id) {
  const el = h("select", { id }, h("option", { value: "" }, unset(field)),
    h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
  el.value = value === undefined ? "" : String(value);
  return { el, value: () => (el.value === "" ? undefined : el.value === "true") };
}

function scalarInput(field, scalar, value, id) {
  const example = TEXTS.has(scalar) || scalar in NUMBERS ? EXAMPLES[scalar] : AS_JSON;
  const attrs = { id, autocomplete: "off", placeholder: field.defaultValue !== null ? field.defaultValue : example };
  if (scalar in NUMBERS) Object.assign(attrs, { type: "number", step: NUMBERS[scalar] });
  const el = h("input", { type: "text", ...attrs, value: display(scalar, value) });
  return { el, value: () => read(scalar, el.value) };
}

function display(scalar, value) {
  if (value === undefined || value === null) return "";
  if (TEXTS.has(scalar) || scalar in NUMBERS) return String(value);
  return typeof value === "string" && parsed(value) === undefined ? value : JSON.stringify(value);
}

function read(scalar, text) {
  if (text.trim() === "") return undefined;
  if (scalar in NUMBERS) return Number(text);
  if (TEXTS.has(scalar)) return text;
  return parsed(text) === undefined ? text : parsed(text);
}

function parsed(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// A nested input object; an optional one counts only while its checkbox is on.
function objectField(model, field, type, value) {
  const inner = objectWidget(model, type, value || {});
  const optional = !isRequired(field);
  const toggle = optional ? h("input", { type: "checkbox", id: uid("t"), checked: value !== undefined }) : null;
  const help = helpText(field, uid("f"));
  const name = title(field);
  const legend = h("legend", {}, toggle ? h("label", { for: toggle.id }, toggle, " ", name.parts) : name.parts);
  const el = h("fieldset", { class: "field nested" }, legend, help, h("p", { class: "field-error" }), inner.el);
  if (toggle) {
    const show = () => { inner.el.hidden = !toggle.checked; };
    toggle.addEventListener("change", show);
    show();
  }
  return {
    el,
    value: () => (toggle && !toggle.checked ? undefined : inner.value()),
    place(path, item) {
      setPath(el, path);
      name.number(item);
      inner.place(path, item);
    },
  };
}

// A list of scalars or input objects: items to add and remove. An empty list is not sent
// (the default applies), unless the field's default is a non-empty list: then a checkbox
// sends an explicit empty list, so both "the default" and "none" can be said.
function listField(model, field, itemRef, value) {
  const itemType = model.types.get(nullable(itemRef).name);
  if (itemType && itemType.kind === "ENUM") return enumChecks(field, itemType, value);
  const isObject = itemType && itemType.kind === "INPUT_OBJECT";
  const items = [];  // widgets, in order
  const list = h("ol", { class: "items" });
  const add = h("button", { type: "button", class: "small" }, `Add ${field.name} item`);
  const none = hasItems(field.defaultValue)
    ? h("input", { type: "checkbox", id: uid("e"), checked: Array.isArray(value) && value.length === 0 }) : null;
  const name = title(field);
  const el = h("fieldset", { class: "field list" }, h("legend", {}, name.parts),
    helpText(field, uid("f")), h("p", { class: "field-error" }),
    none ? h("label", { for: none.id, class: "send-empty" }, none, " send an empty list (not the default)") : null,
    list, add);
  const item = { name: field.name, description: null, defaultValue: null, type: nullable(itemRef) };
  const edited = () => el.dispatchEvent(new Event("input", { bubbles: true }));
  const redraw = () => {
    list.replaceChildren(...items.map((widget, i) => {
      const remove = h("button", { type: "button", class: "small", "aria-label": `Remove ${field.name} item ${i + 1}` }, "Remove");
      remove.addEventListener("click", () => {
        items.splice(i, 1);
        redraw();
        edited();
        const next = list.children[i] || list.lastElementChild;
        (next ? next.querySelector("input, select") : add).focus();
      });
      return h("li", {}, widget.el, remove);
    }));
  };
  const push = (given) => {
    items.push(isObject ? objectWidget(model, itemType, given || {}) : fieldWidget(model, item, given));
  };
  (Array.isArray(value) ? value : isObject ? [] : [undefined]).forEach(push);
  add.addEventListener("click", () => {
    push(undefined);
    redraw();
    edited();
    const first = list.lastElementChild.querySelector("input, select");
    if (first) first.focus();
  });
  if (none) {
    const show = () => { list.hidden = add.hidden = none.checked; };
    none.addEventListener("change", show);
    show();
  }
  redraw();
  const sending = () => !(none && none.checked);
  return {
    el,
    value() {
      if (!sending()) return [];
      const given = items.map((widget) => widget.value()).filter((v) => v !== undefined);
      return given.length ? given : undefined;
    },
    place(path, number) {
      setPath(el, path);
      name.number(number);
      let sent = 0;
      items.forEach((widget, i) => {
        const at = path !== null && sending() && widget.value() !== undefined ? `${path}[${sent++}]` : null;
        widget.place(at, ` (item ${i + 1})`);
      });
    },
  };
}

// A GraphQL default (as introspection spells it) that is a list with items: `["a"]`, or one
// value, which a list type takes as a list of it.
function hasItems(defaultValue) {
  return defaultValue !== null && !["null", "[]"].includes(defaultValue.replace(/\s/g, ""));
}

// A list of enum values: one checkbox per value (a multi-select a keyboard can work).
function enumChecks(field, type, value) {
  const chosen = Array.isArray(value) ? value : [];
  const names = [...type.enumValues.map((option) => option.name), ...chosen.filter((v) =>
    !type.enumValues.some((option) => option.name === v))];
  const boxes = names.map((name) => h("input", { type: "checkbox", value: name, id: uid("c"), checked: chosen.includes(name) }));
  const name = title(field);
  const el = h("fieldset", { class: "field checks" }, h("legend", {}, name.parts),
    helpText(field, uid("f")), h("p", { class: "field-error" }),
    h("div", { class: "check-row" }, boxes.map((box) => h("label", { for: box.id }, box, ` ${box.value}`))));
  return {
    el,
    value() {
      const given = boxes.filter((box) => box.checked).map((box) => box.value);
      return given.length ? given : undefined;
    },
    place(path, item) {
      setPath(el, path);
      name.number(item);
    },
  };
}
