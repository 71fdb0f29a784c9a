// Charts as SVG, sized by attributes (the policy allows no inline style). Each is an image
// with a text alternative; the numbers are also in its <title>s for pointer users.

import { formatNumber, svg } from "./builder-dom.js";

// The bar beside a node: its count against the largest count of the rule's nodes.
export function nodeBar(count, largest) {
  const width = 120;
  const filled = largest > 0 ? Math.max(count > 0 ? 2 : 0, Math.round((width * count) / largest)) : 0;
  return svg("svg", { class: "node-bar", width, height: 12, viewBox: `0 0 ${width} 12`, "aria-hidden": "true" },
    svg("rect", { class: "bar-back", x: 0, y: 1, width, height: 10, rx: 2 }),
    svg("rect", { class: "bar-fill", x: 0, y: 1, width: filled, height: 10, rx: 2 }));
}

// A line of sizes over time: points [{at: Date, size}], oldest first.
export function sizeChart(points) {
  const width = 340, height = 140, left = 44, right = 8, top = 10, bottom = 24;
  const label = points.length
    ? `Size history: ${points.length} sizes from ${formatNumber(points[0].size)} to ${formatNumber(points[points.length - 1].size)}`
    : "Size history: none recorded yet";
  const chart = svg("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  if (!points.length) {
    chart.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-note" },
      "No sizes yet: a snapshot or `segmentql record-sizes` records one"));
    return chart;
  }
  const times = points.map((p) => p.at.getTime());
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  const top1 = Math.max(...points.map((p) => p.size), 1);
  const x = (t) => left + (t1 === t0 ? (width - left - right) / 2 : ((t - t0) / (t1 - t0)) * (width - left - right));
  const y = (v) => top + (1 - v / top1) * (height - top - bottom);
  chart.append(
    svg("line", { class: "axis", x1: left, y1: y(0), x2: width - right, y2: y(0) }),
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: y(0) }),
    svg("text", { x: left - 4, y: top + 8, "text-anchor": "end", class: "tick" }, formatNumber(top1)),
    svg("text", { x: left - 4, y: y(0), "text-anchor": "end", class: "tick" }, "0"),
    svg("text", { x: left, y: height - 6, class: "tick" }, day(points[0].at)),
    svg("text", { x: width - right, y: height - 6, "text-anchor": "end", class: "tick" }, day(points[points.length - 1].at)),
    svg("polyline", { class: "line", points: points.map((p) => `${x(p.at.getTime())},${y(p.size)}`).join(" ") }),
    ...points.map((p) => svg("circle", { class: "dot", cx: x(p.at.getTime()), cy: y(p.size), r: 3 },
      svg("title", {}, `${p.at.toISOString()}: ${formatNumber(p.size)} (${p.source})`))));
  return chart;
}

// Horizontal bars: [{label, value, text}], scaled to the largest value (or to `max`).
export function barChart(title, bars, max = null) {
  const width = 340, row = 20, labelWidth = 110, valueWidth = 56;
  const largest = max !== null ? max : Math.max(...bars.map((bar) => bar.value), 1);
  const room = width - labelWidth - valueWidth;
  const height = bars.length * row + 4;
  const text = `${title}: ${bars.map((bar) => `${bar.label} ${bar.text}`).join(", ")}`;
  return svg("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": text },
    bars.map((bar, i) => {
      const w = largest > 0 ? Math.round((room * bar.value) / largest) : 0;
      return svg("g", {},
        svg("text", { x: 0, y: i * row + 14, class: "tick" }, bar.label),
        svg("rect", { class: "bar-fill", x: labelWidth, y: i * row + 4, width: Math.max(w, bar.value > 0 ? 2 : 0), height: 12, rx: 2 }),
        svg("text", { x: width, y: i * row + 14, "text-anchor": "end", class: "tick" }, bar.text),
        svg("title", {}, `${bar.label}: ${bar.text}`));
    }));
}

function day(date) {
  return date.toISOString().slice(0, 10);
}
