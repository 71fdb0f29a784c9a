// The segment builder: wires the key, the rule tree, the live count, explanations and saved
// segments together. The rule being edited is always in the URL fragment
// (`#rule=<URL-encoded JSON>`, with `asOf` and the open `segment` when set), so a link
// reopens it; the fragment never carries the key.

import { RequestFailed, graphql, keepKey, storedKey } from "./builder-api.js";
import { formatNumber } from "./builder-dom.js";
import { fromRule, group, locate, toRule, withPaths } from "./builder-rule.js";
import { INTROSPECTION, schemaModel } from "./builder-schema.js";
import { SavedSegments } from "./builder-saved.js";
import { TreeEditor, problems } from "./builder-tree.js";

const DEBOUNCE_MS = 300;
const PREVIEW = `query BuilderPreview($rule: RuleInput!, $asOf: DateTime) {
  segmentPreview(rule: $rule, asOf: $asOf) { count breakdown { path kind count } } }`;
const EXPLAIN = `query BuilderExplain($contactId: ID!, $rule: RuleInput!, $asOf: DateTime) {
  explainMembership(contactId: $contactId, rule: $rule, asOf: $asOf) {
    contactId member nodes { path kind matched values { label value needed } } } }`;

const $ = (id) => document.getElementById(id);
let tree = null;
let saved = null;
let segmentId = null;  // the open saved segment's, for the fragment
let explainId = "";  // the contact being explained
let asked = 0;  // numbers the rule's versions: an answer about an older one is dropped
let timer = null;
let detailsTimer = null;  // the open segment's analytics follow "As of", debounced too

function banner(message) {
  $("banner-text").textContent = message;
  $("banner").hidden = !message;
}

function asOf() {
  return $("as-of").value.trim() || null;
}

// --- the URL fragment ---

function readFragment() {
  const found = new Map();
  for (const part of window.location.hash.replace(/^#/, "").split("&")) {
    const at = part.indexOf("=");
    if (at > 0) found.set(part.slice(0, at), decodeURIComponent(part.slice(at + 1)));
  }
  return found;
}

function writeFragment() {
  const parts = [`rule=${encodeURIComponent(JSON.stringify(toRule(tree.root)))}`];
  if (asOf()) parts.push(`asOf=${encodeURIComponent(asOf())}`);
  if (segmentId) parts.push(`segment=${encodeURIComponent(segmentId)}`);
  window.history.replaceState(null, "", `#${parts.join("&")}`);
}

function restore() {
  const fragment = readFragment();
  if (fragment.has("asOf")) $("as-of").value = fragment.get("asOf");
  let root = group("all");
  if (fragment.has("rule")) {
    try {
      root = fromRule(JSON.parse(fragment.get("rule")));
    } catch (error) {
      banner(`The link's rule cannot be read: ${error.message}`);
    }
  }
  tree.set(root);
  if (fragment.has("segment")) saved.run(() => saved.reopen(fragment.get("segment")));
  else if (saved.current) saved.show(null);
}

// --- counting, explaining, errors ---

function ruleChanged() {
  writeFragment();
  const my = ++asked;
  clearTimeout(timer);
  tree.showCounts(tree.counts, true);
  const notes = problems(tree.root, tree.model);
  tree.showNotes(notes);
  if (notes.size) {
    showCount(null, "Complete the rule to count it (see the notes on the rule).");
    return;
  }
  $("count-status").textContent = "Counting…";
  timer = setTimeout(() => refresh(my), DEBOUNCE_MS);
}

function showCount(count, status) {
  $("segment-count").textContent = count === null ? "—" : formatNumber(count);
  $("segment-count").dataset.count = count === null ? "" : String(count);
  $("count-status").textContent = status;
}

async function refresh(my) {
  const entries = withPaths(tree.root);
  const variables = { rule: toRule(tree.root), asOf: asOf() };
  try {
    const { data, errors } = await graphql(PREVIEW, variables);
    if (my !== asked) return;
    const unplaced = placeErrors(errors, entries);
    banner(unplaced.map((error) => error.message).join("; "));
    if (data && data.segmentPreview) {
      const byPath = new Map(entries.map((entry) => [entry.path, entry.node.id]));
      tree.showCounts(new Map(data.segmentPreview.breakdown.map((node) => [byPath.get(node.path), node.count])), false);
      showCount(data.segmentPreview.count, "");
    } else {
      showCount(null, "The rule has errors (shown on the rule).");
    }
    if (explainId) await explain(my, entries, variables);
  } catch (error) {
    if (!(error instanceof RequestFailed)) throw error;
    if (my === asked) {
      banner(error.message);
      showCount(null, "");
    }
  }
}

// The path an error names (INVALID_RULE, CONDITION_FAILED: `all[1].any[1].leadScore.tier`,
// "" for the whole rule), or null for an error about no place in the rule.
function errorPath(error) {
  const path = (error.extensions || {}).rulePath;
  return typeof path === "string" ? path : null;
}

// Show errors on the nodes (and fields) their paths name; return the others.
function placeErrors(errors, entries = withPaths(tree.root)) {
  const placed = errors.map((error) => {
    const path = errorPath(error);
    const where = path === null ? null : locate(entries, path);
    const message = path && error.message.startsWith(`${path}: `) ? error.message.slice(path.length + 2) : error.message;
    return { error, node: where && where.node, rest: where ? where.rest : "", message };
  });
  return tree.showErrors(placed).map((item) => item.error);
}

async function explain(my, entries, variables) {
  $("explain-status").textContent = `Explaining ${explainId}…`;
  const { data, errors } = await graphql(EXPLAIN, { ...variables, contactId: explainId });
  if (my !== asked) return;
  if (!data || !data.explainMembership) {
    tree.showExplanation(null);
    $("explain-status").textContent = errors.map((error) => error.message).join("; ");
    return;
  }
  const { member, nodes, contactId } = data.explainMembership;
  const byPath = new Map(entries.map((entry) => [entry.path, entry.node.id]));
  tree.showExplanation(new Map(nodes.map((node) => [byPath.get(node.path), node])));
  $("explain-status").textContent = `Contact ${contactId} ${member ? "is" : "is not"} in the segment: `
    + "each node of the rule shows whether it matches, with the values that decided it.";
}

// --- start ---

async function start() {
  banner("");
  $("key-status").textContent = "Key set.";
  if (tree) {  // another key for the page already built
    ruleChanged();
    saved.run(() => saved.list());
    return;
  }
  let model;
  try {
    const { data, errors } = await graphql(INTROSPECTION);
    if (errors.length) throw new RequestFailed(errors.map((error) => error.message).join("; "));
    model = schemaModel(data);
  } catch (error) {
    banner(error.message);
    $("key-status").textContent = "";
    return;
  }
  $("workspace").hidden = false;
  tree = new TreeEditor($("tree"), model, ruleChanged);
  saved = new SavedSegments({
    rule: () => toRule(tree.root),
    asOf,
    placeErrors: (errors) => placeErrors(errors),
    banner,
    opened(segment) {
      tree.set(fromRule(segment.rule));
      ruleChanged();
    },
    segmentChanged(segment) {
      segmentId = segment ? segment.id : null;
      writeFragment();
    },
  });
  restore();
  ruleChanged();
  saved.run(() => saved.list());
}

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    $("api-key").value = "";
    if (!key) return;
    keepKey(key);
    start();
  });
  $("forget-key").addEventListener("click", () => {
    keepKey("");
    $("key-status").textContent = "Key forgotten.";
  });
  $("as-of").addEventListener("input", () => {
    if (!tree) return;
    ruleChanged();
    clearTimeout(detailsTimer);
    detailsTimer = setTimeout(() => saved.details().catch((error) => banner(error.message)), DEBOUNCE_MS);
  });
  $("banner-close").addEventListener("click", () => banner(""));
  $("fold-all").addEventListener("click", () => tree && tree.foldAll(true));
  $("unfold-all").addEventListener("click", () => tree && tree.foldAll(false));
  $("explain-form").addEventListener("submit", (event) => {
    event.preventDefault();
    explainId = $("explain-id").value.trim();
    if (!explainId) $("explain-status").textContent = "";
    if (tree) {
      tree.showExplanation(null);
      ruleChanged();
    }
  });
  $("explain-clear").addEventListener("click", () => {
    explainId = "";
    $("explain-id").value = "";
    $("explain-status").textContent = "";
    if (tree) tree.showExplanation(null);
  });
  window.addEventListener("hashchange", () => {
    if (!tree) return;
    restore();
    ruleChanged();
  });
  if (storedKey()) start();
  else $("api-key").focus();
}

wire();
