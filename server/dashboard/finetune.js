// Fine-tune: pick a model, upload the training (and validation) file, set options, create the job.

import { api, uploadFile, waitForProcessing } from "./api.js";
import { h } from "./dom.js";

// A file input that uploads as soon as a file is chosen and shows progress, then validation.
function fileField(id, label) {
  const state = h("div", { class: "upload-state", id: `${id}-state` });
  const progress = h("progress", { max: 1, value: 0, hidden: true });
  const field = { result: null };
  const input = h("input", {
    type: "file", id: `${id}-file`, accept: ".jsonl",
    onchange: () => {
      const file = input.files[0];
      field.result = file ? send(file) : null;
      field.result?.catch(() => {});  // shown in the field; create() reports it again
    },
  });
  const show = (text, bad = false) => { state.textContent = text; state.className = `upload-state${bad ? " bad" : ""}`; };

  async function send(file) {
    progress.hidden = false;
    show(`Uploading ${file.name}…`);
    try {
      const uploaded = await uploadFile(file, "fine-tune", (fraction) => { progress.value = fraction; });
      progress.value = 1;
      const done = await waitForProcessing(uploaded.id, (current) => {
        if (current.status === "uploaded") show(`${current.filename}: uploaded, validating…`);
      });
      if (done.status === "error") show(`${done.filename} failed validation:\n${done.status_details}`, true);
      else show(`${done.filename}: ready (${done.id})${done.status_details ? ` — ${done.status_details}` : ""}`);
      return done;
    } catch (error) {
      show(error.message, true);
      throw error;
    } finally {
      progress.hidden = true;
    }
  }

  field.element = h("label", { class: "field" }, h("span", {}, label), input, progress, state);
  return field;
}

function number(id, label, attributes) {
  return h("label", { class: "field" }, h("span", {}, label),
    h("input", { type: "number", id, placeholder: "auto", ...attributes }));
}

function hyperparameters(form) {
  const values = {};
  const read = (id, parse) => {
    const raw = form.querySelector(`#${id}`).value.trim();
    if (raw !== "") values[id.replaceAll("-", "_")] = parse(raw);
  };
  read("batch-size", Number);
  read("learning-rate", Number);
  read("n-epochs", Number);
  values.lora = form.querySelector("#lora").checked;
  if (values.lora) read("lora-r", Number);
  return values;
}

export async function fineTunePage(view, { go, showError }) {
  const models = (await api("GET", "/models")).data.filter((model) => model.fine_tuning);
  const training = fileField("training", "Training file (JSONL)");
  const validation = fileField("validation", "Validation file (JSONL, optional)");
  const advanced = h("div", { id: "advanced", class: "grid", hidden: true },
    number("batch-size", "Batch size", { min: 1, max: 256 }),
    number("learning-rate", "Learning rate", { step: "any", min: 0 }),
    number("n-epochs", "Epochs", { min: 1, max: 50 }),
    h("label", { class: "field" }, h("span", {}, "LoRA"),
      h("span", {}, h("input", { type: "checkbox", id: "lora", checked: true }), " train a LoRA adapter")),
    number("lora-r", "LoRA rank", { min: 1, max: 512, placeholder: "8" }));
  const toggle = h("button", {
    type: "button", class: "link", id: "toggle-advanced",
    onclick: () => {
      advanced.hidden = !advanced.hidden;
      toggle.textContent = advanced.hidden ? "Show advanced options" : "Hide advanced options";
    },
  }, "Show advanced options");
  const create = h("button", { type: "submit", class: "primary", id: "create-job" }, "Create job");
  const note = h("span", { class: "muted", id: "create-note" });
  const form = h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      create.disabled = true;
      try {
        if (!training.result) throw new Error("Choose a training file first.");
        note.textContent = "Waiting for the files to finish validating…";
        const [train, valid] = await Promise.all([training.result, validation.result]);
        for (const file of [train, valid]) {
          if (file && file.status === "error") throw new Error(`${file.filename} failed validation:\n${file.status_details}`);
        }
        note.textContent = "Creating the job…";
        const job = await api("POST", "/fine_tuning/jobs", {
          model: form.querySelector("#model").value,
          training_file: train.id,
          validation_file: valid ? valid.id : undefined,
          hyperparameters: hyperparameters(form),
        });
        go(`#/jobs/${job.id}`);
      } catch (error) {
        note.textContent = "";
        showError(error);
      } finally {
        create.disabled = false;
      }
    },
  },
  h("label", { class: "field" }, h("span", {}, "Model"),
    h("select", { id: "model" }, models.map((model) => h("option", { value: model.id }, model.id)))),
  training.element, validation.element, h("p", {}, toggle), advanced,
  h("div", { class: "actions" }, create, note));
  view.replaceChildren(h("h1", {}, "Fine-tune a model"), form);
}
