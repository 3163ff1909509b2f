// A line chart of training and validation loss per step, drawn as SVG.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 900, HEIGHT = 240, PAD = { left: 48, right: 12, top: 10, bottom: 26 };

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

export function lossChart(points) {
  const series = {
    train: points.filter((p) => p.train_loss !== undefined).map((p) => [p.step, p.train_loss]),
    valid: points.filter((p) => p.valid_loss !== undefined).map((p) => [p.step, p.valid_loss]),
  };
  const all = [...series.train, ...series.valid];
  if (all.length === 0) return h("p", { class: "muted" }, "The loss appears here once training has taken a step.");
  const steps = all.map(([step]) => step), losses = all.map(([, loss]) => loss);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps, Math.min(...steps) + 1)];
  const spread = Math.max(Math.max(...losses) - Math.min(...losses), 0.01);
  const [y0, y1] = [Math.min(...losses) - 0.1 * spread, Math.max(...losses) + 0.1 * spread];
  const x = (step) => PAD.left + ((step - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
  const y = (loss) => HEIGHT - PAD.bottom - ((loss - y0) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": "Loss per step" });
  for (const fraction of [0, 0.5, 1]) {
    const loss = y0 + fraction * (y1 - y0);
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(loss), y2: y(loss), stroke: "#e4e7ec" }));
    chart.append(svg("text", { x: 4, y: y(loss) + 4, "font-size": 11, fill: "#667085" }, loss.toFixed(2)));
  }
  chart.append(svg("text", { x: PAD.left, y: HEIGHT - 6, "font-size": 11, fill: "#667085" }, `step ${x0}`));
  chart.append(svg("text", { x: WIDTH - PAD.right - 60, y: HEIGHT - 6, "font-size": 11, fill: "#667085" }, `step ${x1}`));
  for (const [name, values] of Object.entries(series)) {
    if (values.length === 0) continue;
    chart.append(svg("polyline", {
      class: name, "data-series": name, fill: "none", "stroke-width": 2,
      points: values.map(([step, loss]) => `${x(step).toFixed(1)},${y(loss).toFixed(1)}`).join(" "),
    }));
  }
  return h("div", { class: "chart" }, chart, h("div", { class: "legend" },
    h("span", { style: "color: var(--accent)" }, "— training loss"),
    series.valid.length ? h("span", { style: "color: var(--warn)" }, "— validation loss") : null));
}
