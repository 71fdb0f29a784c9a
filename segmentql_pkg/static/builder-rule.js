// The rule being edited, as a tree of nodes, and its JSON (the shape of RuleInput).
//
// A node is a group {id, group: "all" | "any" | "not", children} or a condition
// {id, field, value}; `id` is stable while the node lives, so the page can keep focus on it
// and match answers to it. A node's *path* is the one the service uses in breakdowns,
// explanations and errors: `any[1].all[0].engagement` (the group key or condition field,
// preceded by where the node sits: list positions in brackets, `not`'s child after a dot).

export const GROUPS = ["all", "any", "not"];
let lastId = 0;

export function group(kind, children = []) {
  return { id: ++lastId, group: kind, children };
}

export function condition(field, value = {}) {
  return { id: ++lastId, field, value };
}

// The editor tree of a rule (a link's or a saved segment's). Anything that is not a rule
// becomes an error the caller shows; the rule itself is kept exactly as given.
export function fromRule(rule) {
  if (rule === null || typeof rule !== "object" || Array.isArray(rule) || Object.keys(rule).length !== 1) {
    throw new Error("a rule is an object with exactly one key: `all`, `any`, `not` or a condition");
  }
  const [[key, value]] = Object.entries(rule);
  if (key === "all" || key === "any") {
    if (!Array.isArray(value)) throw new Error(`\`${key}\` holds a list of rules`);
    return group(key, value.map(fromRule));
  }
  if (key === "not") return group("not", [fromRule(value)]);
  return condition(key, value);
}

// The rule JSON of a tree (a `not` without its child gives `{not: null}`: see `problems`).
export function toRule(node) {
  if (node.group === "not") return { not: node.children.length ? toRule(node.children[0]) : null };
  if (node.group) return { [node.group]: node.children.map(toRule) };
  return { [node.field]: node.value };
}

// Every node with its path, root first (pre-order, as the service lists them).
export function withPaths(node, at = "") {
  const path = at ? `${at}.${node.group || node.field}` : node.group || node.field;
  const found = [{ node, path, at }];
  (node.children || []).forEach((child, i) => {
    found.push(...withPaths(child, node.group === "not" ? path : `${path}[${i}]`));
  });
  return found;
}

// The node a service path names among `entries` (of `withPaths`, taken when the rule was
// sent), and the rest of the path inside its condition (`tier` of `all[1].leadScore.tier`).
// A path may name the node itself or the place it sits (`all[1]`).
export function locate(entries, path) {
  let best = null;
  for (const entry of entries) {
    if (path === entry.path || path === entry.at) return { node: entry.node, rest: "" };
    const boundary = path.charAt(entry.path.length);
    if (path.startsWith(entry.path) && (boundary === "." || boundary === "[")
        && (!best || entry.path.length > best.path.length)) {
      best = entry;
    }
  }
  if (!best) return null;
  return { node: best.node, rest: path.slice(best.path.length).replace(/^\./, "") };
}

// Whether two JSON values are the same (objects compared key by key, in any order): a saved
// rule against the one in the editor.
export function sameJSON(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null
      || Array.isArray(a) !== Array.isArray(b)) {
    return false;
  }
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && sameJSON(a[key], b[key]));
}
