// The segment builder: wires the key, the rule tree, the live count, explanations and saved
// segments together. The rule being edited is always in the URL fragment
// (`#rule=<URL-encoded JSON>`, with `asOf` and the open `segment` when set), so a link
// reopens it; the fragment never carries the key.

import { RequestFailed, graphql, keepKey, listen, messages, storedKey } from "./builder-api.js";
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
let building = null;  // the page being built (introspection): a second start waits for it
const notices = new Map();  // what the banner says, by who said it: each replaces only its own

// `source`: "link", "count", "key", "saved" or "rate". The banner is an alert: its text is
// written only when it changes, so an unchanged error is not announced again.
function banner(message, source = "key") {
  if (message) notices.set(source, message);
  else notices.delete(source);
  const text = [...notices.values()].join(" ");
  if ($("banner-text").textContent !== text) $("banner-text").textContent = text;
  $("banner").hidden = !text;
}

function setText(id, text) {
  if ($(id).textContent !== text) $(id).textContent = text;
}

function asOf() {
  return $("as-of").value.trim() || null;
}

// --- the URL fragment ---

// {found: name -> value, unreadable: name -> why}: a link cut short (`%7B%22all%2`) or
// mangled cannot be decoded, and must not stop the page.
function readFragment() {
  const found = new Map();
  const unreadable = new Map();
  for (const part of window.location.hash.replace(/^#/, "").split("&")) {
    const at = part.indexOf("=");
    if (at <= 0) continue;
    try {
      found.set(part.slice(0, at), decodeURIComponent(part.slice(at + 1)));
    } catch (error) {
      unreadable.set(part.slice(0, at), error.message);
    }
  }
  return { found, unreadable };
}

function writeFragment() {
  const parts = [`rule=${encodeURIComponent(JSON.stringify(toRule(tree.root)))}`];
  if (asOf()) parts.push(`asOf=${encodeURIComponent(asOf())}`);
  if (segmentId) parts.push(`segment=${encodeURIComponent(segmentId)}`);
  window.history.replaceState(null, "", `#${parts.join("&")}`);
}

function restore() {
  const { found: fragment, unreadable } = readFragment();
  const faults = [...unreadable].map(([name, why]) => `its ${name} cannot be decoded (${why})`);
  if (fragment.has("asOf")) $("as-of").value = fragment.get("asOf");
  let root = group("all");
  if (fragment.has("rule")) {
    try {
      root = fromRule(JSON.parse(fragment.get("rule")));
    } catch (error) {
      faults.push(`its rule cannot be read (${error.message})`);
    }
  }
  banner(faults.length ? `The link is cut short or malformed: ${faults.join("; ")}. `
    + "The rule here starts empty." : "", "link");
  tree.set(root);
  const linkRule = fragment.has("rule") || unreadable.has("rule");
  if (fragment.has("segment")) saved.run(() => saved.reopen(fragment.get("segment"), linkRule));
  else if (saved.current) saved.show(null);
}

// --- counting, explaining, errors ---

// While a count is under way the count's live region is busy (not announced); it speaks
// once, when the answer is drawn.
function ruleChanged() {
  writeFragment();
  saved.ruleChanged();
  const my = ++asked;
  clearTimeout(timer);
  tree.showCounts(tree.counts, true);
  const notes = problems(tree.root, tree.model);
  tree.showNotes(notes);
  if (notes.size) {
    showCount(null, "Complete the rule to count it (see the notes on the rule).");
    return;
  }
  $("count").setAttribute("aria-busy", "true");
  setText("count-status", "");
  timer = setTimeout(() => refresh(my), DEBOUNCE_MS);
}

function showCount(count, status) {
  setText("segment-count", count === null ? "—" : formatNumber(count));
  $("segment-count").dataset.count = count === null ? "" : String(count);
  setText("count-status", status);
  $("count").setAttribute("aria-busy", "false");
}

async function refresh(my) {
  const entries = withPaths(tree.root);
  const variables = { rule: toRule(tree.root), asOf: asOf() };
  try {
    const { data, errors } = await graphql(PREVIEW, variables);
    if (my !== asked) return;
    const unplaced = placeErrors(errors, entries);
    banner(messages(unplaced), "count");
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
      banner(error.message, "count");
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

// Show errors on the nodes (and fields) their paths name, among `entries` (the nodes' paths
// when the rule was sent); return the others.
function placeErrors(errors, entries) {
  const placed = errors.map((error) => {
    const path = errorPath(error);
    const where = path === null ? null : locate(entries, path);
    const message = path && error.message.startsWith(`${path}: `) ? error.message.slice(path.length + 2) : error.message;
    return { error, path, node: where && where.node, rest: where ? where.rest : "", message };
  });
  return tree.showErrors(placed).map((item) => item.error);
}

async function explain(my, entries, variables) {
  $("explain-status").textContent = `Explaining ${explainId}…`;
  const { data, errors } = await graphql(EXPLAIN, { ...variables, contactId: explainId });
  if (my !== asked) return;
  if (!data || !data.explainMembership) {
    tree.showExplanation(null);
    $("explain-status").textContent = messages(errors);
    return;
  }
  const { member, nodes, contactId } = data.explainMembership;
  const byPath = new Map(entries.map((entry) => [entry.path, entry.node.id]));
  tree.showExplanation(new Map(nodes.map((node) => [byPath.get(node.path), node])));
  $("explain-status").textContent = `Contact ${contactId} ${member ? "is" : "is not"} in the segment: `
    + "each node of the rule shows whether it matches, with the values that decided it.";
}

// --- the key ---

// Nothing that needed the key stays shown: counts, the explanation, the saved segments.
function forget(status) {
  setText("key-status", status);
  asked += 1;
  clearTimeout(timer);
  clearTimeout(detailsTimer);
  if (!tree) return;
  tree.showCounts(new Map(), false);
  tree.showExplanation(null);
  setText("explain-status", "");
  showCount(null, "");
  saved.clear();
}

// --- start ---

// Build the page once (a stored key and a typed one may both start it before introspection
// answers), then count and list with the key now kept.
async function start() {
  banner("", "key");
  setText("key-status", "Key set.");
  const mine = building || build();
  building = mine;
  if (!(await mine)) {
    if (building === mine) building = null;
    return;
  }
  ruleChanged();
  saved.run(() => saved.list());
  if (saved.current) saved.details().catch((error) => banner(error.message, "saved"));
}

async function build() {
  let model;
  try {
    const { data, errors } = await graphql(INTROSPECTION);
    if (errors.length) throw new RequestFailed(messages(errors));
    model = schemaModel(data);
  } catch (error) {
    banner(error.message, "key");
    if (storedKey()) setText("key-status", "");  // (a refused key is gone, and said so)
    return false;
  }
  $("workspace").hidden = false;
  tree = new TreeEditor($("tree"), model, ruleChanged, (text) => setText("rule-errors", text));
  saved = new SavedSegments({
    rule: () => toRule(tree.root),
    sending: () => ({ rule: toRule(tree.root), entries: withPaths(tree.root) }),
    asOf,
    placeErrors,
    banner: (message) => banner(message, "saved"),
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
  return true;
}

function wire() {
  listen({
    keyRefused: () => forget("The key was refused: type a valid one."),
    waiting: (seconds) => banner(seconds ? `Rate limited, retrying in ${seconds} s…` : "", "rate"),
  });
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
    forget("Key forgotten.");
  });
  $("as-of").addEventListener("input", () => {
    if (!tree) return;
    ruleChanged();
    clearTimeout(detailsTimer);
    detailsTimer = setTimeout(() => saved.details().catch((error) => banner(error.message, "saved")), DEBOUNCE_MS);
  });
  $("banner-close").addEventListener("click", () => {
    notices.clear();
    banner("");
  });
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
