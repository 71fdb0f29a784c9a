// A condition's form, built from its input type alone (introspection): input objects become
// nested fieldsets (an optional one is switched on by a checkbox), enums selects, lists of
// enums checkbox groups, other lists items to add and remove, scalars inputs of their kind.
// Descriptions are help texts, defaults are hinted (not filled in: a value left empty is
// omitted, so the rule sent holds only what the user gave and the service applies defaults).
//
// Each part is a widget {el, value()}: `value()` reads what the user entered now (undefined
// when nothing). The form calls `onChange` with the condition's value after every edit.

import { h, uid } from "./builder-dom.js";
import { isRequired, nullable } from "./builder-schema.js";

const NUMBERS = { Int: "1", Float: "any" };
const EXAMPLES = { DateTime: "e.g. 2026-11-28T12:00:00Z", Date: "e.g. 2026-11-28", JSON: "JSON: 42, true, \"text\"" };

export function conditionForm(model, type, value, onChange) {
  const named = model.types.get(nullable(type).name);
  const root = named && named.kind === "INPUT_OBJECT"
    ? objectWidget(model, named, value || {}, "")
    : fieldWidget(model, { name: "value", description: null, defaultValue: null, type }, value, "");
  const el = h("div", { class: "condition-form" }, root.el);
  let last = JSON.stringify(root.value());
  const changed = () => {
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

function objectWidget(model, type, value, path) {
  const fields = type.inputFields.map((field) =>
    fieldWidget(model, field, value[field.name], path ? `${path}.${field.name}` : field.name));
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
  };
}

function fieldWidget(model, field, value, path) {
  const type = nullable(field.type);
  const named = type.kind === "LIST" ? null : model.types.get(type.name);
  if (type.kind === "LIST") return listField(model, field, type.ofType, value, path);
  if (named && named.kind === "INPUT_OBJECT") return objectField(model, field, named, value, path);
  const id = uid("f");
  const control = named && named.kind === "ENUM" ? enumSelect(field, named, value, id)
    : named && type.name === "Boolean" ? booleanSelect(field, value, id)
    : scalarInput(field, type.name, value, id);
  const help = helpText(field, id);
  if (help) control.el.setAttribute("aria-describedby", help.id);
  const wrapper = h("div", { class: "field", "data-field-path": path },
    h("label", { for: id }, field.name, isRequired(field) ? h("span", { class: "required" }, " (required)") : null),
    control.el, help, h("p", { class: "field-error", role: "alert" }));
  return { el: wrapper, value: control.value };
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
  const attrs = { id, autocomplete: "off", placeholder: field.defaultValue !== null ? field.defaultValue : EXAMPLES[scalar] };
  if (scalar in NUMBERS) Object.assign(attrs, { type: "number", step: NUMBERS[scalar] });
  const el = h("input", { type: "text", ...attrs, value: display(scalar, value) });
  return { el, value: () => read(scalar, el.value) };
}

function display(scalar, value) {
  if (value === undefined || value === null) return "";
  if (scalar !== "JSON") return String(value);
  return typeof value === "string" && parsed(value) === undefined ? value : JSON.stringify(value);
}

function read(scalar, text) {
  if (text.trim() === "") return undefined;
  if (scalar in NUMBERS) return Number(text);
  if (scalar === "JSON") return parsed(text) === undefined ? text : parsed(text);
  return text;
}

function parsed(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// A nested input object; an optional one counts only while its checkbox is on.
function objectField(model, field, type, value, path) {
  const inner = objectWidget(model, type, value || {}, path);
  const optional = !isRequired(field);
  const toggle = optional ? h("input", { type: "checkbox", id: uid("t"), checked: value !== undefined }) : null;
  const help = helpText(field, uid("f"));
  const legend = h("legend", {}, toggle ? h("label", { for: toggle.id }, toggle, ` ${field.name}`) : field.name);
  const el = h("fieldset", { class: "field nested", "data-field-path": path }, legend, help,
    h("p", { class: "field-error", role: "alert" }), inner.el);
  if (toggle) {
    const show = () => { inner.el.hidden = !toggle.checked; };
    toggle.addEventListener("change", show);
    show();
  }
  return { el, value: () => (toggle && !toggle.checked ? undefined : inner.value()) };
}

function listField(model, field, itemRef, value, path) {
  const itemType = model.types.get(nullable(itemRef).name);
  if (itemType && itemType.kind === "ENUM") return enumChecks(field, itemType, value, path);
  const isObject = itemType && itemType.kind === "INPUT_OBJECT";
  const items = [];  // widgets, in order
  const list = h("ol", { class: "items" });
  const add = h("button", { type: "button", class: "small" }, `Add ${field.name} item`);
  const el = h("fieldset", { class: "field list", "data-field-path": path },
    h("legend", {}, field.name, isRequired(field) ? h("span", { class: "required" }, " (required)") : null),
    helpText(field, uid("f")), h("p", { class: "field-error", role: "alert" }), list, add);
  const item = { name: `${field.name} item`, description: null, defaultValue: null, type: nullable(itemRef) };
  const redraw = () => {
    list.replaceChildren(...items.map((widget, i) => {
      const remove = h("button", { type: "button", class: "small", "aria-label": `Remove ${field.name} item ${i + 1}` }, "Remove");
      remove.addEventListener("click", () => {
        items.splice(i, 1);
        redraw();
        el.dispatchEvent(new Event("input", { bubbles: true }));
        add.focus();
      });
      return h("li", {}, widget.el, remove);
    }));
  };
  const push = (given) => {
    const at = `${path}[${items.length}]`;
    items.push(isObject ? objectWidget(model, itemType, given || {}, at) : fieldWidget(model, item, given, at));
  };
  (Array.isArray(value) ? value : isObject ? [] : [undefined]).forEach(push);
  add.addEventListener("click", () => {
    push(undefined);
    redraw();
    el.dispatchEvent(new Event("input", { bubbles: true }));
    const first = list.lastElementChild.querySelector("input, select");
    if (first) first.focus();
  });
  redraw();
  return {
    el,
    value() {
      const given = items.map((widget) => widget.value()).filter((v) => v !== undefined);
      return given.length ? given : undefined;
    },
  };
}

// A list of enum values: one checkbox per value (a multi-select a keyboard can work).
function enumChecks(field, type, value, path) {
  const chosen = Array.isArray(value) ? value : [];
  const names = [...type.enumValues.map((option) => option.name), ...chosen.filter((v) =>
    !type.enumValues.some((option) => option.name === v))];
  const boxes = names.map((name) => h("input", { type: "checkbox", value: name, id: uid("c"), checked: chosen.includes(name) }));
  const el = h("fieldset", { class: "field checks", "data-field-path": path },
    h("legend", {}, field.name, isRequired(field) ? h("span", { class: "required" }, " (required)") : null),
    helpText(field, uid("f")), h("p", { class: "field-error", role: "alert" }),
    h("div", { class: "check-row" }, boxes.map((box) => h("label", { for: box.id }, box, ` ${box.value}`))));
  return {
    el,
    value() {
      const given = boxes.filter((box) => box.checked).map((box) => box.value);
      return given.length ? given : undefined;
    },
  };
}
