// A job's page: its state, events and loss as they arrive, checkpoints to download, controls, and a
// chat box once the fine-tuned model exists.

import { api, download, sleep } from "./api.js";
import { LOSS, REWARD, metricChart } from "./chart.js";
import { h, status, time } from "./dom.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const POLL_MS = 1000;

// Events come newest first; fetch until one already seen, so a poll costs one page.
async function newEvents(jobId, seen) {
  const fresh = [];
  let after = null;
  for (;;) {
    const page = await api("GET",
      `/fine_tuning/jobs/${jobId}/events?order=desc&limit=100${after ? `&after=${after}` : ""}`);
    for (const event of page.data) {
      if (seen.has(event.id)) return fresh;
      seen.add(event.id);
      fresh.push(event);
    }
    if (!page.has_more) return fresh;
    after = page.last_id;
  }
}

function info(job) {
  const steps = job.total_steps ? `${job.trained_steps} of ${job.total_steps}` : `${job.trained_steps}`;
  const rows = [
    ["ID", job.id], ["Status", status(job.status)], ["Model", job.model],
    ["Created", time(job.created_at)], ["Trained tokens", job.trained_tokens ?? "—"], ["Steps", steps],
    ["Estimated finish", time(job.estimated_finish)], ["Fine-tuned model", job.fine_tuned_model ?? "—"],
  ];
  const list = h("dl", { class: "grid", id: "job-info" },
    rows.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", { "data-field": name }, value))));
  return job.error
    ? [list, h("p", { class: "upload-state bad", id: "job-error" }, `${job.error.code}: ${job.error.message}`)]
    : [list];
}

function chatBox(model, showError) {
  const log = h("div", { class: "chat-log", id: "chat-log" });
  const input = h("textarea", { id: "chat-input", rows: 2, style: "width: 100%", placeholder: "Ask the fine-tuned model…" });
  const send = h("button", { type: "submit", class: "primary", id: "chat-send" }, "Send");
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const question = input.value.trim();
      if (!question) return;
      send.disabled = true;
      log.append(h("p", {}, h("b", {}, "You: "), question));
      try {
        const answer = await api("POST", "/chat/completions", {
          model, messages: [{ role: "user", content: question }], max_tokens: 64, temperature: 0,
        });
        log.append(h("p", { class: "answer" }, h("b", {}, "Model: "), answer.choices[0].message.content || "(empty)"));
        input.value = "";
      } catch (error) {
        showError(error);
      } finally {
        send.disabled = false;
      }
    },
  }, input, h("div", { class: "actions", style: "margin-top: 6px" }, send));
  return h("section", { class: "card", id: "chat" }, h("h2", {}, `Chat with ${model}`), log, form);
}

export async function jobPage(view, { id, showError, alive }) {
  const parts = {
    info: h("section", { class: "card" }), actions: h("div", { class: "actions", id: "job-actions" }),
    chart: h("section", { class: "card", id: "loss" }), reward: h("section", { class: "card", id: "reward" }),
    events: h("div", { class: "events", id: "events" }),
    checkpoints: h("section", { class: "card", id: "checkpoints" }),
  };
  let chat = null;
  view.replaceChildren(
    h("h1", {}, "Fine-tuning job"), parts.info, parts.reward, parts.chart,
    h("section", { class: "card" }, h("h2", {}, "Events"), parts.events), parts.checkpoints);
  const seen = new Set(), events = [], filenames = new Map();

  const act = (label, verb, className) => h("button", {
    class: className, id: `job-${verb}`,
    onclick: async () => {
      try { await api("POST", `/fine_tuning/jobs/${id}/${verb}`); await refresh(); } catch (error) { showError(error); }
    },
  }, label);

  async function checkpointRows() {
    const checkpoints = (await api("GET", `/fine_tuning/jobs/${id}/checkpoints?order=desc&limit=100`)).data;
    if (checkpoints.length === 0) return [h("p", { class: "muted" }, "No checkpoints yet.")];
    const rows = [];
    for (const checkpoint of checkpoints) {
      const buttons = [];
      for (const fileId of checkpoint.result_files) {
        if (!filenames.has(fileId)) filenames.set(fileId, (await api("GET", `/files/${fileId}`)).filename);
        const name = filenames.get(fileId);
        buttons.push(h("button", {
          class: "download", "data-file": fileId,
          onclick: () => download(fileId, name).catch(showError),
        }, `⤓ ${name}`));
      }
      rows.push(h("tr", {}, h("td", {}, `step ${checkpoint.step_number}`),
        h("td", {}, checkpoint.fine_tuned_model_checkpoint), h("td", { class: "actions" }, buttons)));
    }
    return [h("table", {}, h("tbody", {}, rows))];
  }

  async function refresh() {
    const job = await api("GET", `/fine_tuning/jobs/${id}`);
    events.unshift(...await newEvents(id, seen));
    const active = !TERMINAL.includes(job.status);
    parts.actions.replaceChildren(...[
      active && act("Cancel", "cancel", "danger"),
      ["queued", "running"].includes(job.status) && act("Pause", "pause"),
      job.status === "paused" && act("Resume", "resume"),
    ].filter(Boolean));
    parts.info.replaceChildren(...info(job), parts.actions);
    const points = events.filter((event) => event.type === "metrics" && event.data).map((event) => event.data).reverse();
    parts.chart.replaceChildren(h("h2", {}, "Loss"), metricChart(points, LOSS));
    // A reinforcement job's reward, what its grader gives the model's answers: the curve its training raises.
    parts.reward.hidden = job.method?.type !== "reinforcement";
    if (!parts.reward.hidden) parts.reward.replaceChildren(h("h2", {}, "Reward"), metricChart(points, REWARD));
    parts.events.replaceChildren(...events.map((event) => h("div", { class: event.level },
      h("span", { class: "muted" }, `${time(event.created_at)}  `), event.message)));
    parts.checkpoints.replaceChildren(h("h2", {}, "Checkpoints"), ...await checkpointRows());
    if (job.status === "succeeded" && job.fine_tuned_model && !chat) {
      chat = chatBox(job.fine_tuned_model, showError);
      view.append(chat);
    }
    return active;
  }

  while (alive()) {
    let active = true;
    try {
      active = await refresh();
    } catch (error) {
      showError(error);
    }
    if (!active) return;
    await sleep(POLL_MS);
  }
}
