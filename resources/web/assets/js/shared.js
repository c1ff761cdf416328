// Photos and videos shared to Vault from the phone's Share sheet (Android). /share-worker.js keeps them in
// Cache Storage and opens the gallery with ?shared=N; once someone who may upload is signed in, they go to
// the upload panel like picked files. Each stays in the inbox until all its bytes have reached Vault, so a
// reload finds it again and tus continues from the offset Vault holds.

import { toast } from "./dom.js";

const WORKER = "/share-worker.js";
const SCOPE = "/share";
const INBOX = "vault-shared";

/** Install the share worker (needs a trusted certificate; without it sharing is unavailable, not broken). */
export function registerShareWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register(WORKER, { scope: SCOPE, updateViaCache: "none" }).catch(() => {});
}

/** Read what the share worker put in the address, then take it out of the address bar. */
export function noteShareArrival() {
  const params = new URLSearchParams(location.search);
  if (!params.has("shared")) return;
  const outcome = params.get("shared");
  history.replaceState(history.state, "", location.pathname + location.hash);
  if (outcome === "failed") {
    toast("What you shared couldn't be kept on this device (is its storage full?). Try the Upload button.",
      { error: true, ms: 8000 });
  } else if (outcome === "lost") {
    toast("Vault wasn't ready for sharing on this device yet. Share again now, or use the Upload button.",
      { error: true, ms: 8000 });
  }
}

async function inbox() {
  return "caches" in window ? caches.open(INBOX) : null;
}

/** The files waiting in the inbox, oldest first: [{key, file}]. */
export async function sharedFiles() {
  const box = await inbox().catch(() => null);
  if (!box) return [];
  const waiting = [];
  for (const request of await box.keys()) {
    const response = await box.match(request);
    if (!response) continue;
    const name = decodeURIComponent(response.headers.get("X-File-Name") || "Shared%20file");
    const lastModified = Number(response.headers.get("X-Last-Modified")) || Date.now();
    const blob = await response.blob();
    // Same name, type, size and date as when shared: tus finds its earlier upload by these after a reload.
    const file = new File([blob], name, { type: blob.type, lastModified });
    waiting.push({ key: request.url, file });
  }
  return waiting;
}

/** Drop one shared file from the inbox (sent, or cancelled); `key` undefined: every one. */
export async function forgetShared(key) {
  const box = await inbox().catch(() => null);
  if (!box) return;
  const keys = key ? [key] : await box.keys();
  await Promise.all(keys.map((each) => box.delete(each))).catch(() => {});
}
