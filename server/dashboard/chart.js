// Line charts of a metric per step, in training and in validation, drawn as SVG: the loss of every job,
// and a reinforcement job's reward (whose validation curve starts at step 0, before training).

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 900, HEIGHT = 240, PAD = { left: 48, right: 12, top: 10, bottom: 26 };

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

export const LOSS = { train: "train_loss", valid: "valid_loss", name: "loss" };
export const REWARD = { train: "train_mean_reward", valid: "valid_mean_reward", name: "mean reward" };

export function metricChart(points, metric) {
  const series = {
    train: points.filter((p) => p[metric.train] !== undefined).map((p) => [p.step, p[metric.train]]),
    valid: points.filter((p) => p[metric.valid] !== undefined).map((p) => [p.step, p[metric.valid]]),
  };
  const start = points.find((p) => p[`${metric.valid}_start`] !== undefined);
  if (start) series.valid.unshift([0, start[`${metric.valid}_start`]]);
  const all = [...series.train, ...series.valid];
  if (all.length === 0) {
    return h("p", { class: "muted" }, `The ${metric.name} appears here once training has taken a step.`);
  }
  const steps = all.map(([step]) => step), losses = all.map(([, loss]) => loss);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps, Math.min(...steps) + 1)];
  const spread = Math.max(Math.max(...losses) - Math.min(...losses), 0.01);
  const [y0, y1] = [Math.min(...losses) - 0.1 * spread, Math.max(...losses) + 0.1 * spread];
  const x = (step) => PAD.left + ((step - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
  const y = (loss) => HEIGHT - PAD.bottom - ((loss - y0) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": `${metric.name} per step` });
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
    h("span", { style: "color: var(--accent)" }, `— training ${metric.name}`),
    series.valid.length ? h("span", { style: "color: var(--warn)" }, `— validation ${metric.name}`) : null));
}
