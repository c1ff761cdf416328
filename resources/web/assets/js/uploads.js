// Adding photos and videos from this browser: the Upload button (members and admins with the upload right),
// the picker, drag and drop on desktops, and a panel with one row per file.
//
// Files go to /api/uploads over tus 1.0.0 (the vendored tus-js-client, loaded on first use) in chunks, so a
// dropped connection, a pause or a reload costs at most the chunk in flight. The client remembers each
// unfinished upload's URL in localStorage under the file's fingerprint (name, type, size, date): after a
// reload the panel lists them, and choosing the same file again continues where it stopped. Once every byte
// is there, the row asks Vault every two seconds what became of it (queued, converting, added, a duplicate,
// or why it failed); the new tile itself arrives through the live events like any other. Files shared from
// Android's Share sheet arrive the same way, through the share inbox (shared.js).

import { api, ApiError, ensureFresh, markActivity, refresh, SignedOut } from "./api.js";
import { $, el, toast } from "./dom.js";
import { forgetShared, sharedFiles } from "./shared.js";
import { panelChanged, renderRow, renderUnfinished } from "./uploadpanel.js";

const TUS_SCRIPT = "/assets/vendor/tus.min.js";
const ENDPOINT = "/api/uploads";
const CHUNK_BYTES = 8 * 1024 * 1024;
// Files sent at once; the rest wait their turn. More would only share the same line, and each unfinished
// upload holds a place at Vault (an account may hold 100), so a whole camera roll at once is fine.
const PARALLEL = 3;
const POLL_MS = 2000;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10_000, 20_000, 30_000, 60_000];
const STORAGE_PREFIX = "tus::";
const SETTLED = new Set(["added", "duplicate", "failed"]);

let tusLoading = null;
let allowed = false;
let nextRow = 0;
const rows = new Map(); // row id -> row (see addFile)

/** Load the vendored tus client once, on first use. */
function loadTus() {
  if (window.tus) return Promise.resolve(window.tus);
  if (!tusLoading) {
    tusLoading = new Promise((resolve, reject) => {
      const script = el("script", { src: TUS_SCRIPT, async: true });
      script.addEventListener("load", () => resolve(window.tus));
      script.addEventListener("error", () => {
        tusLoading = null;
        script.remove();
        reject(new Error("The uploader failed to load. Check your connection and try again."));
      });
      document.head.append(script);
    });
  }
  return tusLoading;
}

/** May this person add files? Members and admins, unless an admin turned uploads off for them. */
export function setUploader(user) {
  allowed = Boolean(user) && user.role !== "guest" && user.can_upload !== false;
  $("upload-button").hidden = !allowed;
  if (allowed) takeShared().finally(showUnfinished);
  else if (user) refuseShared();
}

/** Files shared from the phone's Share sheet join the panel (see shared.js). */
async function takeShared() {
  const waiting = await sharedFiles().catch(() => []);
  const queued = new Set([...rows.values()].map((row) => row.sharedKey));
  const fresh = waiting.filter(({ key }) => !queued.has(key));
  if (!allowed || !fresh.length) return;
  for (const { key, file } of fresh) addFile(file, key);
  openPanel();
}

async function refuseShared() {
  if (!(await sharedFiles().catch(() => [])).length) return;
  await forgetShared();
  toast("This account can't add photos or videos, so what was shared to Vault wasn't sent.",
    { error: true, ms: 8000 });
}

/** Signed out: stop every transfer (each can resume later from where it stopped) and clear the panel. */
export function stopUploads() {
  allowed = false;
  for (const row of rows.values()) forget(row);
  rows.clear();
  $("upload-list").replaceChildren();
  $("upload-panel").hidden = true;
  $("upload-button").hidden = true;
  $("drop-zone").hidden = true;
}

/** Every row currently in the panel, for its summary line. */
export const allRows = () => [...rows.values()];

export function initUploads() {
  const input = $("upload-input");
  $("upload-button").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = ""; // choosing the same file again (to continue it) must fire "change" again
  });
  $("upload-close").addEventListener("click", closePanel);
  $("upload-toggle").addEventListener("click", () => {
    const button = $("upload-toggle");
    const expanded = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(expanded));
    button.setAttribute("aria-label", expanded ? "Hide upload details" : "Show upload details");
    $("upload-list").hidden = !expanded;
  });
  wireDragAndDrop();
  // Back online (Wi-Fi returned, the VPN reconnected): carry on with what stopped for want of a network.
  window.addEventListener("online", () => {
    for (const row of rows.values()) if (row.stalled) actions.resume(row);
  });
}

// --- drag and drop ---------------------------------------------------------------------------------------

function carriesFiles(event) {
  return allowed && event.dataTransfer && [...event.dataTransfer.types].includes("Files");
}

function wireDragAndDrop() {
  const zone = $("drop-zone");
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    zone.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) zone.hidden = true; // left the window, not just one element
  });
  document.addEventListener("drop", (event) => {
    zone.hidden = true;
    if (!carriesFiles(event)) return;
    event.preventDefault();
    addFiles([...event.dataTransfer.files]);
  });
}

// --- rows --------------------------------------------------------------------------------------------------

/** Photos and videos only; an unknown type (some browsers know no HEIC) goes through: Vault decides. */
const isMedia = (file) => !file.type || /^(image|video)\//.test(file.type);

export function addFiles(files) {
  if (!allowed || !files.length) return;
  const refused = files.filter((file) => !isMedia(file));
  if (refused.length) {
    toast(`${refused.map((file) => file.name).join(", ")}: only photos and videos can be added.`,
      { error: true, ms: 6000 });
  }
  const media = files.filter(isMedia);
  for (const file of media) addFile(file);
  if (media.length) openPanel();
}

/** `sharedKey`: the file's place in the share inbox, cleared once Vault has all of it. */
function addFile(file, sharedKey = null) {
  const row = { id: `upload-${++nextRow}`, file, name: file.name, size: file.size, sent: 0, state: "waiting",
    upload: null, url: null, timer: null, message: "", mediaId: null, sharedKey };
  rows.set(row.id, row);
  renderRow(row, actions);
  startNext();
}

/** Start waiting files, oldest first, while fewer than PARALLEL are being sent. */
function startNext() {
  let sending = allRows().filter((row) => row.state === "starting" || row.state === "uploading").length;
  for (const row of allRows()) {
    if (sending >= PARALLEL) return;
    if (row.state !== "waiting") continue;
    sending += 1;
    if (row.upload) { // resumed after a pause: carry on with its own upload
      update(row, "uploading", "");
      row.upload.start();
    } else {
      update(row, "starting");
      start(row);
    }
  }
}

const actions = {
  pause(row) {
    if (row.state !== "uploading" || !row.upload) return;
    row.upload.abort();
    update(row, "paused");
  },
  resume(row) {
    if (row.state !== "paused" || !row.upload) return;
    row.stalled = false;
    update(row, "waiting", ""); // straight on when a place is free
  },
  cancel(row) {
    // Still sending: stop and delete what Vault holds of it. Already sent: only the row goes.
    if (row.upload && !row.url) row.upload.abort(true).catch(() => {});
    remove(row);
  },
  dismiss: remove,
};

function update(row, state, message = row.message) {
  row.state = state;
  row.message = message;
  renderRow(row, actions);
  if (state !== "starting" && state !== "uploading") startNext(); // a place may have come free
}

function remove(row) {
  forget(row);
  if (row.sharedKey) forgetShared(row.sharedKey);
  rows.delete(row.id);
  $(row.id)?.remove();
  panelChanged(allRows());
  startNext();
}

function forget(row) {
  clearTimeout(row.timer);
  row.timer = null;
  if (row.upload && !row.url) row.upload.abort().catch(() => {});
}

// --- sending -----------------------------------------------------------------------------------------------

function errorMessage(error) {
  const response = error && error.originalResponse;
  if (response) {
    try {
      const body = JSON.parse(response.getBody() || "{}");
      if (body.error && body.error.message) return body.error.message;
    } catch { /* not Vault's error shape: fall through */ }
    if (response.getStatus() === 413) return "This file is larger than Vault accepts.";
    if (response.getStatus() === 403) return "This account can't add photos or videos.";
  }
  if (!navigator.onLine) return "This device is offline. Choose Resume when it's back.";
  return "The upload stopped: Vault can't be reached. Choose Resume to try again.";
}

async function start(row) {
  let tus;
  try {
    tus = await loadTus();
  } catch (error) {
    update(row, "failed", error.message);
    return;
  }
  if (!rows.has(row.id)) return; // cancelled meanwhile
  row.upload = new tus.Upload(row.file, {
    endpoint: ENDPOINT,
    chunkSize: CHUNK_BYTES,
    retryDelays: RETRY_DELAYS,
    metadata: { filename: row.name, filetype: row.file.type || "application/octet-stream" },
    removeFingerprintOnSuccess: true,
    // The session's cookies authorise every request; refresh them first when they are about to lapse.
    onBeforeRequest: () => ensureFresh(),
    onShouldRetry: (error, attempt, options) => {
      const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
      if (status === 401 && attempt === 0) {
        refresh().catch(() => {}); // a session that is over signs the page out from there
        return true;
      }
      return (status === 0 || status >= 500 || status === 409 || status === 423) && navigator.onLine
        && options.retryDelays !== null;
    },
    onProgress: (sent) => {
      row.sent = sent;
      markActivity(); // sending is using the page: keep the session alive while it lasts
      if (row.state === "uploading") renderRow(row, actions);
    },
    onSuccess: () => {
      row.url = row.upload.url;
      row.sent = row.size;
      if (row.sharedKey) forgetShared(row.sharedKey);
      update(row, "processing", "Sent. Waiting for its turn…");
      poll(row);
    },
    onError: (error) => {
      row.stalled = !error.originalResponse || error.originalResponse.getStatus() === 0; // no answer at all
      update(row, "paused", errorMessage(error));
    },
  });
  const previous = await row.upload.findPreviousUploads().catch(() => []);
  if (previous.length) {
    const latest = previous.sort((a, b) => (Date.parse(b.creationTime) || 0) - (Date.parse(a.creationTime) || 0))[0];
    row.upload.resumeFromPreviousUpload(latest);
    document.querySelector(`[data-storage-key="${CSS.escape(latest.urlStorageKey)}"]`)?.remove();
  }
  if (!rows.has(row.id)) return;
  update(row, "uploading", "");
  row.upload.start();
}

// --- after the last byte: what Vault made of it ------------------------------------------------------------

const VERDICT = {
  uploading: "Sent. Waiting for its turn…",
  queued: "Sent. Waiting for its turn…",
  converting: "Converting…",
  added: "Added",
  duplicate: "Already in your library",
};

async function poll(row) {
  row.timer = null;
  if (!rows.has(row.id)) return;
  let status;
  try {
    status = await api(new URL(row.url, location.href).pathname);
  } catch (error) {
    if (error instanceof SignedOut || !rows.has(row.id)) return;
    if (error instanceof ApiError && error.status === 404) {
      update(row, "failed", "Vault no longer knows this upload.");
      return;
    }
    row.timer = setTimeout(() => poll(row), POLL_MS); // a blip: ask again
    return;
  }
  if (!rows.has(row.id)) return;
  row.mediaId = status.media_id || null;
  if (status.status === "failed") update(row, "failed", status.error || "Vault couldn't add this file.");
  else if (SETTLED.has(status.status)) update(row, "done", VERDICT[status.status]);
  else {
    update(row, "processing", VERDICT[status.status] || VERDICT.queued);
    row.timer = setTimeout(() => poll(row), POLL_MS);
  }
}

// --- the panel ----------------------------------------------------------------------------------------------

function openPanel() {
  $("upload-panel").hidden = false;
  panelChanged(allRows());
}

function closePanel() {
  for (const row of allRows()) if (row.state === "done" || row.state === "failed") remove(row);
  for (const node of $("upload-list").querySelectorAll(".upload-unfinished")) node.remove();
  if (!rows.size) $("upload-panel").hidden = true;
  $("upload-button").focus();
}

/** Uploads a reload (or a closed tab) left unfinished: listed so their files can be chosen again. */
async function showUnfinished() {
  let stored = [];
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (!key.startsWith(STORAGE_PREFIX)) continue;
      const entry = JSON.parse(localStorage.getItem(key) || "null");
      if (entry && entry.uploadUrl) stored.push({ ...entry, urlStorageKey: key });
    }
  } catch { stored = []; /* storage disabled: nothing can be resumed across reloads */ }
  for (const entry of stored) {
    const path = new URL(entry.uploadUrl, location.href).pathname;
    let sent = 0;
    try {
      const response = await fetch(path, { method: "HEAD", credentials: "same-origin", cache: "no-store",
        headers: { "Tus-Resumable": "1.0.0" } });
      if (response.status === 404 || response.status === 410) {
        localStorage.removeItem(entry.urlStorageKey); // expired and swept, or not this account's
        continue;
      }
      if (!response.ok) continue;
      sent = Number(response.headers.get("Upload-Offset")) || 0;
    } catch { continue; }
    if (sent >= entry.size) { // every byte arrived but the page never heard: nothing left to continue
      localStorage.removeItem(entry.urlStorageKey);
      continue;
    }
    if (!allowed || document.querySelector(`[data-storage-key="${CSS.escape(entry.urlStorageKey)}"]`)) continue;
    const metadata = entry.metadata || {};
    if ([...rows.values()].some((row) => row.name === metadata.filename && row.size === entry.size)) continue;
    renderUnfinished({ ...entry, sent, name: metadata.filename || "A file", type: metadata.filetype || "" }, {
      choose: () => $("upload-input").click(),
      discard: async (node) => {
        node.remove();
        localStorage.removeItem(entry.urlStorageKey);
        const tus = await loadTus().catch(() => null);
        if (tus) tus.Upload.terminate(entry.uploadUrl, { retryDelays: null }).catch(() => {});
        panelChanged(allRows());
      },
    });
    openPanel();
  }
}
