// Saved segments: the list, saving the rule as a new segment, saving changes to the open one
// (name and rule), renaming it, and for the open one its size history, its members'
// engagement (analytics) and its recent membership changes (the newest 20, newest first).

import { RequestFailed, graphql } from "./builder-api.js";
import { barChart, sizeChart } from "./builder-charts.js";
import { formatNumber, h } from "./builder-dom.js";

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
  // page: {rule(), asOf(), placeErrors(errors) -> unplaced errors, opened(segment), banner(message)}
  constructor(page) {
    this.page = page;
    this.current = null;  // {id, name} of the open saved segment
    this.el = (id) => document.getElementById(id);
    this.el("save-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(() => this.create());
    });
    this.el("save-update").addEventListener("click", () => this.run(() => this.update(true)));
    this.el("rename").addEventListener("click", () => this.run(() => this.update(false)));
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

  name() {
    const name = this.el("segment-name").value.trim();
    if (!name) throw new RequestFailed("Give the segment a name first.");
    return name;
  }

  async create() {
    const answer = await this.mutate(CREATE, { name: this.name(), rule: this.page.rule() }, "createSegment");
    this.show(answer);
    await this.list();
    return `Saved as “${answer.name}”.`;
  }

  async update(withRule) {
    const variables = { id: this.current.id, name: this.name() };
    if (withRule) variables.rule = this.page.rule();
    const answer = await this.mutate(UPDATE, variables, "updateSegment");
    this.show(answer);
    await this.list();
    return withRule ? `Saved the changes to “${answer.name}”.` : `Renamed to “${answer.name}”.`;
  }

  async mutate(query, variables, field) {
    const { data, errors } = await graphql(query, variables);
    const unplaced = this.page.placeErrors(errors);
    if (!data || !data[field]) {
      throw new RequestFailed(unplaced.length ? unplaced.map((e) => e.message).join("; ")
        : "Not saved: see the errors on the rule.");
    }
    return data[field];
  }

  async list() {
    const { data, errors } = await graphql(LIST);
    if (errors.length) throw new RequestFailed(errors.map((e) => e.message).join("; "));
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
    this.page.opened(segment);
    this.show(segment);
    return `Opened “${segment.name}”.`;
  }

  // A link's open segment: the link's rule stays in the editor (it may hold unsaved changes).
  async reopen(id) {
    this.show(await this.load(id));
    return "";
  }

  async load(id) {
    const { data, errors } = await graphql(LOAD, { id });
    if (!data || !data.segment) throw new RequestFailed(errors.map((e) => e.message).join("; ") || `No segment ${id}.`);
    return data.segment;
  }

  // Make `segment` ({id, name}) the open one, or none (null), and draw its details.
  show(segment) {
    this.current = segment;
    this.el("save-update").disabled = this.el("rename").disabled = !segment;
    this.el("current-segment").textContent = segment ? `Open: “${segment.name}” (${segment.id})` : "Not saved yet.";
    if (segment) this.el("segment-name").value = segment.name;
    this.page.segmentChanged(segment);
    this.details().catch((error) => this.page.banner(error.message));
  }

  async details() {
    const box = this.el("segment-details");
    box.hidden = !this.current;
    if (!this.current) return;
    const { data, errors } = await graphql(DETAILS, { id: this.current.id, asOf: this.page.asOf() });
    if (!data || !data.segment) throw new RequestFailed(errors.map((e) => e.message).join("; "));
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
