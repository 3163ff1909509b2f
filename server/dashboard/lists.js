// The jobs and files lists, newest first, a page at a time.

import { api, sleep } from "./api.js";
import { h, status, time } from "./dom.js";

const PAGE = 20;

// Keeps the current page fresh while it is shown; "Next" and "First" move through the cursor pages.
async function pagedTable(view, { title, path, columns, alive, showError }) {
  const cursors = [null];  // the `after` of each page shown so far
  const body = h("tbody");
  const next = h("button", { id: "next-page", onclick: () => move(+1) }, "Next page");
  const first = h("button", { id: "first-page", onclick: () => move(-cursors.length + 1) }, "First page");
  let page = null;

  async function move(by) {
    if (by > 0) cursors.push(page.last_id);
    else cursors.length = Math.max(1, cursors.length + by);
    await load();
  }

  async function load() {
    const after = cursors[cursors.length - 1];
    page = await api("GET", `${path}${path.includes("?") ? "&" : "?"}limit=${PAGE}${after ? `&after=${after}` : ""}`);
    body.replaceChildren(...(page.data.length ? page.data.map((item) => h("tr", { "data-id": item.id },
      columns.map(([, cell]) => h("td", {}, cell(item)))))
      : [h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing here yet."))]));
    next.disabled = !page.has_more;
    first.disabled = cursors.length === 1;
  }

  view.replaceChildren(h("h1", {}, title), h("section", { class: "card" },
    h("table", {}, h("thead", {}, h("tr", {}, columns.map(([name]) => h("th", {}, name)))), body),
    h("div", { class: "pager" }, first, next)));
  while (alive()) {
    try { await load(); } catch (error) { showError(error); }
    await sleep(2000);
  }
}

export function jobsPage(view, context) {
  return pagedTable(view, {
    ...context, title: "Fine-tuning jobs", path: "/fine_tuning/jobs",
    columns: [
      ["Job", (job) => h("a", { href: `#/jobs/${job.id}` }, job.id)],
      ["Status", (job) => status(job.status)],
      ["Model", (job) => job.model],
      ["Steps", (job) => (job.total_steps ? `${job.trained_steps} / ${job.total_steps}` : "—")],
      ["Created", (job) => time(job.created_at)],
    ],
  });
}

export function filesPage(view, context) {
  return pagedTable(view, {
    ...context, title: "Files", path: "/files?order=desc",
    columns: [
      ["File", (file) => file.filename],
      ["ID", (file) => file.id],
      ["Purpose", (file) => file.purpose],
      ["Status", (file) => status(file.status)],
      ["Bytes", (file) => file.bytes.toLocaleString()],
      ["Created", (file) => time(file.created_at)],
      ["Details", (file) => file.status_details ?? ""],
    ],
  });
}
