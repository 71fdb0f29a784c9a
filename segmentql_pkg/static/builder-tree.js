// The rule tree on the page: ALL / ANY / NOT groups holding conditions and groups, each
// node with its tools (move up, down, out of its group, wrap in a group, remove), its count
// bar, its explanation, its notes and its errors. Every control is a real button, select or
// input with a label, so the tree can be built from the keyboard alone; after a change the
// focus stays on the node that changed (after a removal: on the next node, else on its
// group's "condition to add").

import { formatNumber, h } from "./builder-dom.js";
import { clearFields, conditionForm, markField } from "./builder-form.js";
import { missing } from "./builder-schema.js";
import { condition, group, withPaths } from "./builder-rule.js";
import { nodeBar } from "./builder-charts.js";

const ADD_CHOICE = "> .node-body > .add-row .add-choice";
const KINDS = { all: "ALL of", any: "ANY of", not: "NOT (none of)" };

// Why a node cannot be sent yet (an empty group, a condition missing required values), by node.
export function problems(root, model) {
  const found = new Map();
  for (const { node } of withPaths(root)) {
    if (node.group && !node.children.length) found.set(node.id, "Empty group: add a condition or a group to it.");
    const known = !node.group && model.condition(node.field);
    const needed = known ? missing(model, { kind: "NON_NULL", ofType: known.type }, node.value) : [];
    if (needed.length) found.set(node.id, `To fill in: ${needed.join(", ")}.`);
  }
  return found;
}

export class TreeEditor {
  // `onChange()`: the rule changed; `announce(text)`: say it to a screen reader (the rule's
  // errors, once each time they change). What was drawn on the nodes last (counts, an
  // explanation, notes, errors) is kept by node id and drawn again when the tree is redrawn
  // (counts marked stale), so folding a form or moving a node loses none of it.
  constructor(container, model, onChange, announce) {
    Object.assign(this, { container, model, onChange, announce, root: group("all"), elements: new Map(),
      counts: new Map(), stale: false, explanation: null, notes: new Map(), errors: [], announced: "" });
  }

  set(root) {
    this.root = root;
    this.render();
  }

  render(focus = null) {
    this.elements = new Map();
    this.container.replaceChildren(h("ol", { class: "tree" }, this.nodeElement(this.root, "", null, null)));
    this.showCounts(this.counts, this.stale);
    this.showExplanation(this.explanation);
    this.showNotes(this.notes);
    this.drawErrors();
    if (focus) {
      const target = this.container.querySelector(`[data-node-id="${focus.id}"] ${focus.selector}`);
      if (target) target.focus();
    }
  }

  // `parent` and `grand` (its parent) are passed down: looking them up per node would make
  // drawing the tree quadratic.
  nodeElement(node, at, parent, grand) {
    const path = at ? `${at}.${node.group || node.field}` : node.group || node.field;
    const title = node.group ? this.kindSelect(node, path) : h("h3", { class: "node-title" }, node.field);
    const li = h("li", { class: `node ${node.group ? "group" : "condition"}`, "data-node-id": node.id, "data-node-path": path },
      h("div", { class: "node-head" }, title,
        h("span", { class: "node-status" }, h("span", { class: "node-count" }), h("span", { class: "node-match" })),
        h("span", { class: "node-tools" }, this.tools(node, parent, grand, path))),
      h("p", { class: "node-note" }),
      h("p", { class: "node-error" }),
      h("ul", { class: "observed" }),
      h("div", { class: "node-body" }, node.group ? this.groupBody(node, path, parent) : this.conditionBody(node)));
    this.elements.set(node.id, li);
    return li;
  }

  kindSelect(node, path) {
    const select = h("select", { class: "kind", "aria-label": `Group ${path}: match` },
      Object.entries(KINDS).map(([kind, text]) => h("option", { value: kind, disabled: kind === "not" && node.children.length > 1 }, text)));
    select.value = node.group;
    select.addEventListener("change", () => {
      node.group = select.value;
      this.changed({ id: node.id, selector: "> .node-head .kind" });
    });
    return select;
  }

  tools(node, parent, grand, path) {
    const siblings = parent ? parent.children : [];
    const index = siblings.indexOf(node);
    // `focus()` after `act()`: where the focus goes (by default it stays on the tool).
    const stay = (name) => () => ({ id: node.id, selector: `> .node-head [data-tool="${name}"]` });
    const tool = (name, text, label, enabled, act, focus = stay(name)) =>
      h("button", {
        type: "button", class: "tool", "data-tool": name, "aria-label": `${label} ${path}`, title: label, disabled: !enabled,
        onclick: () => {
          act();
          this.changed(focus());
        },
      }, text);
    const fold = node.group ? null : h("button", {
      type: "button", class: "tool", "data-tool": "fold", "aria-expanded": String(!node.folded),
      "aria-label": `Form of ${path}`, title: node.folded ? "Show the form" : "Fold the form to one line",
      onclick: () => {
        node.folded = !node.folded;
        this.render({ id: node.id, selector: '> .node-head [data-tool="fold"]' });
      },
    }, node.folded ? "▸" : "▾");
    return [
      fold,
      tool("up", "↑", "Move up", index > 0, () => siblings.splice(index - 1, 0, ...siblings.splice(index, 1))),
      tool("down", "↓", "Move down", parent && index < siblings.length - 1,
        () => siblings.splice(index + 1, 0, ...siblings.splice(index, 1))),
      tool("out", "⇤", "Move out of its group", grand && grand.group !== "not", () => {
        siblings.splice(index, 1);
        grand.children.splice(grand.children.indexOf(parent) + 1, 0, node);
      }),
      tool("wrap", "⊞", "Put in a new ALL group", true, () => {
        const wrapper = group("all", [node]);
        if (parent) siblings.splice(index, 1, wrapper);
        else this.root = wrapper;
      }),
      tool("remove", "✕", parent ? "Remove" : "Clear the rule", true, () => {
        if (parent) siblings.splice(index, 1);
        else this.root = group("all");
      }, () => {
        const next = siblings[index];
        if (next) return { id: next.id, selector: '> .node-head [data-tool="remove"]' };
        return { id: parent ? parent.id : this.root.id, selector: ADD_CHOICE };
      }),
    ];
  }

  groupBody(node, path, parent) {
    const full = node.group === "not" && node.children.length >= 1;
    const choice = h("select", { class: "add-choice", "aria-label": `Condition to add to ${path}`, disabled: full },
      this.model.conditions.map((field) => h("option", { value: field.name, title: field.description || "" }, field.name)));
    const add = (what, text, make) => h("button", {
      type: "button", class: "small", "data-add": what, disabled: full, "aria-label": `${text} to ${path}`,
      onclick: () => {
        const child = make();
        node.children.push(child);
        this.changed({ id: child.id, selector: child.group ? "> .node-head .kind" : "> .node-body :is(input, select)" });
      },
    }, text);
    return [
      h("ol", { class: "children" }, node.children.map((child, i) =>
        this.nodeElement(child, node.group === "not" ? path : `${path}[${i}]`, node, parent))),
      h("div", { class: "add-row" }, choice,
        add("condition", "Add condition", () => condition(choice.value, {})),
        add("all", "Add ALL group", () => group("all")),
        add("any", "Add ANY group", () => group("any")),
        add("not", "Add NOT group", () => group("not"))),
    ];
  }

  conditionBody(node) {
    const field = this.model.condition(node.field);
    if (!field) {
      return h("p", { class: "help" }, `This service has no condition "${node.field}"; its value: `,
        h("code", {}, JSON.stringify(node.value)));
    }
    const form = conditionForm(this.model, field.type, node.value, (value) => {
      node.value = value;
      this.onChange();
    });
    form.hidden = Boolean(node.folded);
    return [field.description ? h("p", { class: "help condition-help" }, field.description) : null,
      node.folded ? h("p", { class: "summary" }, summary(node.value)) : null, form];
  }

  // Fold (or unfold) every condition's form, to see the whole tree at once.
  foldAll(folded) {
    for (const { node } of withPaths(this.root)) if (!node.group) node.folded = folded;
    this.render();
  }

  changed(focus) {
    this.render(focus);
    this.onChange();
  }

  // --- what the service said about the nodes (by node id) ---

  showCounts(counts, stale) {
    Object.assign(this, { counts, stale });
    const largest = Math.max(0, ...counts.values());
    for (const [id, li] of this.elements) {
      const slot = li.querySelector(":scope > .node-head .node-count");
      li.classList.toggle("stale", stale);
      if (!counts.has(id)) {
        slot.replaceChildren();
        continue;
      }
      const count = counts.get(id);
      slot.replaceChildren(nodeBar(count, largest), h("span", { class: "count-text", "data-count": count }, formatNumber(count)));
      slot.setAttribute("title", `${formatNumber(count)} contacts match this node on its own`);
    }
  }

  showNotes(notes) {
    this.notes = notes;
    for (const [id, li] of this.elements) li.querySelector(":scope > .node-note").textContent = notes.get(id) || "";
  }

  // errors: [{node, rest, message, path}] placed on their node (and field); the others (their
  // node is gone, or none) are returned. The placed ones are announced when they changed.
  showErrors(errors) {
    const unplaced = errors.filter(({ node }) => !node || !this.elements.has(node.id));
    this.errors = errors.filter((error) => !unplaced.includes(error));
    this.drawErrors();
    const text = this.errors.length
      ? `The rule has ${this.errors.length === 1 ? "an error" : `${this.errors.length} errors`}: `
        + this.errors.map(({ path, message }) => (path ? `${path}: ${message}` : message)).join("; ")
      : "";
    if (text !== this.announced) {
      this.announced = text;
      this.announce(text);
    }
    return unplaced;
  }

  drawErrors() {
    for (const li of this.elements.values()) {
      li.classList.remove("has-error");
      li.querySelector(":scope > .node-error").textContent = "";
      const form = li.querySelector(":scope > .node-body > .condition-form");
      if (form) clearFields(form);
    }
    for (const { node, rest, message } of this.errors) {
      const li = this.elements.get(node.id);
      if (!li) continue;
      li.classList.add("has-error");
      li.querySelector(":scope > .node-error").textContent = message;
      const form = li.querySelector(":scope > .node-body > .condition-form");
      if (form && rest) markField(form, rest, message);
    }
  }

  // explanation: {matched: Map id -> {matched, values}} or null to clear.
  showExplanation(explanation) {
    this.explanation = explanation;
    for (const [id, li] of this.elements) {
      const mark = li.querySelector(":scope > .node-head .node-match");
      const observed = li.querySelector(":scope > .observed");
      const found = explanation && explanation.get(id);
      li.classList.toggle("matched", Boolean(found && found.matched));
      li.classList.toggle("unmatched", Boolean(found && !found.matched));
      mark.textContent = found ? (found.matched ? "✓ matches" : "✗ does not match") : "";
      observed.replaceChildren(...(found ? found.values : []).map((value) =>
        h("li", {}, `${value.label}: `, h("strong", {}, JSON.stringify(value.value)), ` (needs ${value.needed})`)));
    }
  }
}

// A folded condition's value on one line: `metric: OPENS · value: 3`.
function summary(value) {
  return Object.entries(value || {}).map(([name, given]) =>
    `${name}: ${typeof given === "object" ? JSON.stringify(given) : given}`).join(" · ") || "(nothing given yet)";
}
