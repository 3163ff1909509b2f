// The dashboard's only way to the server: the public /v1 API, with the key kept in this browser.

const KEY = "gxft.apiKey";
// Sent until a key is saved: a server without GXFT_API_KEYS takes any key, so the dashboard works at
// once; one with keys answers 401, and the page asks for a key.
const NO_KEY = "none";

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY) || "";
}

export function saveApiKey(key) {
  localStorage.setItem(KEY, key.trim());
}

function authorization() {
  return `Bearer ${apiKey() || NO_KEY}`;
}

function headers(extra = {}) {
  return { Authorization: authorization(), ...extra };
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error && body.error.message) message = body.error.message;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(message, response.status);
}

export async function api(method, path, body) {
  let response;
  try {
    response = await fetch(`/v1${path}`, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(`The server cannot be reached (${error.message}).`);
  }
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function download(fileId, filename) {
  const response = await fetch(`/v1/files/${fileId}/content`, { headers: headers() });
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// fetch() cannot report upload progress; XMLHttpRequest can.
export function uploadFile(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/files");
    request.setRequestHeader("Authorization", authorization());
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    request.onerror = () => reject(new ApiError("The upload was interrupted."));
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { /* reported below */ }
      if (request.status === 200 && body) resolve(body);
      else reject(new ApiError(body?.error?.message || `Upload failed: ${request.status}`, request.status));
    };
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    request.send(form);
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Waits for a fine-tune file's validation, so that a "file not ready yet" error never reaches the user.
export async function waitForProcessing(fileId, onStatus) {
  for (;;) {
    const file = await api("GET", `/files/${fileId}`);
    onStatus(file);
    if (file.status !== "uploaded") return file;
    await sleep(300);
  }
}
