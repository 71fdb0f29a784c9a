// Saved segments: the list, saving the rule as a new segment, saving changes to the open one
// (name and rule), renaming it, and for the open one its size history, its members'
// engagement (analytics) and its recent membership changes (the newest 20, newest first).

import { RequestFailed, graphql, messages } from "./builder-api.js";
import { barChart, sizeChart } from "./builder-charts.js";
import { formatNumber, h } from "./builder-dom.js";
import { sameJSON } from "./builder-rule.js";

const LIST = "query BuilderSegments { segments(first: 50) { edges { node { id name updatedAt } } } }";
const LOAD = "query BuilderSegment($id: ID!) { segment(id: $id) { id name rule } }";
const DETAILS = `query BuilderSegmentDetails($id: ID!, $asOf: DateTime) { segment(id: $id) { id name
  sizeHistory(last: 100) { at size source }
  analytics(withinDays: 30, asOf: $asOf) { withinDays from to members received opens clicks conversions
    openers clickers converters openRate clickRate clickToOpenRate conversionRate }
  changes(last: 20) { edges { node { contactId change at cause } } } } }`;
const CREATE = "mutation BuilderCreate($name: String!, $rule: RuleInput!) { createSegment(name: $name, rule: $rule) { id name } }";
const UPDATE = `mutation BuilderUpdate($id: ID!, $name: String, $rule: RuleInput) {
  updateSegment(id: $id, name: $name, rule: $rule) { id name } }`;

export class SavedSegments {
  // page: {sending() -> {rule, entries}: the rule now and its nodes' paths, rule() -> the rule
  // now, asOf(), placeErrors(errors, entries) -> unplaced errors, opened(segment),
  // segmentChanged(segment), banner(message)}
  constructor(page) {
    this.page = page;
    this.current = null;  // {id, name, rule} of the open saved segment, `rule` as saved
    this.fromLink = false;  // the editor holds a link's rule, not the open segment's saved one
    this.writing = false;  // a save or rename is under way: the controls wait for its answer
    this.asked = { open: 0, details: 0 };  // as the page's `asked`: only the latest answer is drawn
    this.el = (id) => document.getElementById(id);
    this.el("save-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.write(() => this.create());
    });
    this.el("save-update").addEventListener("click", () => this.write(() => this.update(true)));
    this.el("rename").addEventListener("click", () => this.write(() => this.update(false)));
    this.el("refresh-list").addEventListener("click", () => this.run(() => this.list()));
  }

  async run(action) {
    const status = this.el("saved-status");
    status.textContent = "Working…";
    try {
      status.textContent = (await action()) || "";
    } catch (error) {
      status.textContent = error.message;
      if (!(error instanceof RequestFailed)) throw error;
    }
  }

  // A write, one at a time: a second click (or Enter) while one is under way does nothing,
  // so a segment is never created twice.
  async write(action) {
    if (this.writing) return;
    this.writing = true;
    this.controls();
    try {
      await this.run(action);
    } finally {
      this.writing = false;
      this.controls();
    }
  }

  controls() {
    this.el("save-new").disabled = this.writing;
    this.el("save-update").disabled = this.el("rename").disabled = this.writing || !this.current;
  }

  name() {
    const name = this.el("segment-name").value.trim();
    if (!name) throw new RequestFailed("Give the segment a name first.");
    return name;
  }

  async create() {
    const sent = this.page.sending();
    const answer = await this.mutate(CREATE, { name: this.name(), rule: sent.rule }, "createSegment", sent.entries);
    this.show({ ...answer, rule: sent.rule });
    await this.list();
    return `Saved as “${answer.name}”.`;
  }

  async update(withRule) {
    const { id, name, rule } = this.current;
    const sent = this.page.sending();
    const variables = { id, name: this.name() };
    if (withRule) {
      if (this.fromLink && !sameJSON(sent.rule, rule) && !window.confirm(
        `The rule here came from a link and differs from the saved rule of “${name}”. Replace the saved rule with it?`)) {
        return "Not saved: the saved rule is kept.";
      }
      variables.rule = sent.rule;
    }
    const answer = await this.mutate(UPDATE, variables, "updateSegment", sent.entries);
    this.show({ ...answer, rule: withRule ? sent.rule : rule });
    await this.list();
    return withRule ? `Saved the changes to “${answer.name}”.` : `Renamed to “${answer.name}”.`;
  }

  // Errors are placed on the nodes as they were when the rule was sent (`entries`).
  async mutate(query, variables, field, entries) {
    const { data, errors } = await graphql(query, variables);
    const unplaced = this.page.placeErrors(errors, entries);
    if (!data || !data[field]) {
      throw new RequestFailed(unplaced.length ? messages(unplaced)
        : "Not saved: see the errors on the rule.");
    }
    return data[field];
  }

  async list() {
    const { data, errors } = await graphql(LIST);
    if (errors.length) throw new RequestFailed(messages(errors));
    const items = data.segments.edges.map(({ node }) => h("li", {},
      h("button", { type: "button", class: "link", "data-segment-id": node.id, onclick: () => this.run(() => this.open(node.id)) },
        node.name),
      h("span", { class: "muted" }, ` changed ${node.updatedAt.slice(0, 10)}`)));
    this.el("segment-list").replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, "No saved segments yet.")]));
    return "";
  }

  // Open a saved segment: its rule goes into the editor.
  async open(id) {
    const segment = await this.load(id);
    return segment ? this.opened(segment) : "";
  }

  opened(segment) {
    this.page.opened(segment);
    this.show(segment);
    return `Opened “${segment.name}”.`;
  }

  // A link's open segment. Without a rule of its own the link opens the saved one; with one,
  // that rule stays in the editor (it may hold unsaved changes), marked as differing from
  // the saved rule when it does, and saving it over the saved one asks first: a link alone
  // cannot make one click overwrite a segment.
  async reopen(id, linkRule) {
    const segment = await this.load(id);
    if (!segment) return "";
    if (!linkRule) return this.opened(segment);
    this.show(segment, !sameJSON(this.page.rule(), segment.rule));
    return "";
  }

  // The saved segment `id`, or null when another was asked for meanwhile (its answer wins).
  async load(id) {
    const my = ++this.asked.open;
    const { data, errors } = await graphql(LOAD, { id });
    if (!data || !data.segment) throw new RequestFailed(messages(errors) || `No segment ${id}.`);
    return my === this.asked.open ? data.segment : null;
  }

  // Make `segment` ({id, name, rule}) the open one, or none (null), and draw its details.
  show(segment, fromLink = false) {
    if (!segment || !this.current || segment.id !== this.current.id) this.el("segment-details").replaceChildren();
    this.current = segment;
    this.fromLink = fromLink;
    this.controls();
    if (segment) this.el("segment-name").value = segment.name;
    this.ruleChanged();
    this.page.segmentChanged(segment);
    this.details().catch((error) => this.page.banner(error.message));
  }

  // Says whether the rule in the editor is the open segment's saved one.
  ruleChanged() {
    const line = this.el("current-segment");
    if (!this.current) {
      line.textContent = "Not saved yet.";
      return;
    }
    const { id, name, rule } = this.current;
    const changed = !sameJSON(this.page.rule(), rule);
    line.textContent = `Open: “${name}” (${id})${!changed ? "" : this.fromLink
      ? " — unsaved changes: the link's rule differs from the saved one" : " — unsaved changes"}`;
    line.classList.toggle("unsaved", changed);
  }

  // The key is gone: nothing shown that needed it stays (the list, the open one's details).
  clear() {
    this.asked.open += 1;
    this.asked.details += 1;
    this.el("segment-list").replaceChildren();
    this.el("segment-details").replaceChildren();
    this.el("segment-details").hidden = true;
    this.el("saved-status").textContent = "";
  }

  async details() {
    const my = ++this.asked.details;
    this.page.banner("");
    const box = this.el("segment-details");
    box.hidden = !this.current;
    if (!this.current) return;
    const { data, errors } = await graphql(DETAILS, { id: this.current.id, asOf: this.page.asOf() });
    if (my !== this.asked.details) return;
    if (!data || !data.segment) throw new RequestFailed(messages(errors));
    const { sizeHistory, analytics: a, changes } = data.segment;
    const percent = (rate) => (rate === null ? "–" : `${(rate * 100).toFixed(1)}%`);
    const counts = [["received", a.received], ["opens", a.opens], ["clicks", a.clicks], ["conversions", a.conversions]];
    const rates = [["open rate", a.openRate], ["click rate", a.clickRate], ["click-to-open", a.clickToOpenRate],
      ["conversion rate", a.conversionRate]];
    box.replaceChildren(
      h("h3", {}, "Size history"),
      sizeChart(sizeHistory.map((p) => ({ at: new Date(p.at), size: p.size, source: p.source }))),
      h("h3", {}, `Engagement of its ${formatNumber(a.members)} members, ${a.from} to ${a.to}`),
      barChart("Events", counts.map(([label, value]) => ({ label, value, text: formatNumber(value) }))),
      barChart("Rates", rates.map(([label, rate]) => ({ label, value: rate || 0, text: percent(rate) })), 1),
      h("h3", {}, "Recent changes"),
      changes.edges.length ? h("table", { class: "changes" },
        h("thead", {}, h("tr", {}, ["When", "Contact", "Change", "Cause"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, changes.edges.toReversed().map(({ node }) => h("tr", {},
          h("td", {}, node.at.replace("T", " ").slice(0, 19)), h("td", {}, node.contactId),
          h("td", {}, node.change), h("td", {}, node.cause)))))
        : h("p", { class: "muted" }, "No changes logged."));
  }
}
