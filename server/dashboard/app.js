// The dashboard's shell: the API key, the error banner, and a hash router over the pages.

import { apiKey, saveApiKey } from "./api.js";
import { h } from "./dom.js";
import { fineTunePage } from "./finetune.js";
import { jobPage } from "./job.js";
import { filesPage, jobsPage } from "./lists.js";

const view = document.getElementById("view");
const banner = document.getElementById("error");
let generation = 0;  // each navigation starts a new one; pages poll while theirs is current

function showError(error) {
  if (error.status === 401) {  // a server with keys, and none (or a wrong one) saved yet: ask, calmly
    view.replaceChildren(h("p", { class: "key-prompt", id: "key-prompt" },
      apiKey() ? "This key is not one of this server's. Enter another above; it is kept in this browser."
        : "This server asks for an API key. Enter yours above; it is kept in this browser."));
    keyInput.focus();
    return;
  }
  banner.textContent = error.message || String(error);
  banner.hidden = false;
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  const current = ++generation;
  banner.hidden = true;
  const context = { go, showError, alive: () => current === generation };
  const hash = location.hash || "#/";
  const job = hash.match(/^#\/jobs\/([\w-]+)$/);
  const [page, nav] = job ? [() => jobPage(view, { ...context, id: job[1] }), "jobs"]
    : hash === "#/jobs" ? [() => jobsPage(view, context), "jobs"]
    : hash === "#/files" ? [() => filesPage(view, context), "files"]
    : [() => fineTunePage(view, context), "finetune"];
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === nav);
  page().catch(showError);
}

const keyInput = document.getElementById("api-key");
keyInput.value = apiKey();
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  saveApiKey(keyInput.value);
  route();
});
window.addEventListener("hashchange", route);
route();
