// Live updates: one EventSource on /api/events while signed in. The server sends only what this person
// may see: items added, deleted or converting, albums changed, this session ended, and "resync" when the
// page fell too far behind. The stream is bound to the session (a token refresh does not end it); if the
// server refuses it, asking who we are either signs the page out or refreshes the cookies to retry.

import { api } from "./api.js";

const KINDS = ["item_added", "item_deleted", "item_converting", "album_changed", "session_ended", "resync"];
const RETRY_MS = 5000;

let source = null;
let retryTimer = null;
let handlers = {};
let dropped = false; // the connection broke: what happened meanwhile is unknown
let active = false;

/** Listen; `on` has one function per event kind (item_added(data), …), each given the event's data. */
export function startLive(on) {
  stopLive();
  handlers = on;
  active = true;
  connect();
}

export function stopLive() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (source) source.close();
  source = null;
  dropped = false;
  active = false;
}

function connect() {
  const stream = new EventSource("/api/events");
  source = stream;
  for (const kind of KINDS) {
    stream.addEventListener(kind, (event) => {
      if (source !== stream) return;
      let data = {};
      try { data = JSON.parse(event.data || "{}"); } catch { /* a kind without data */ }
      handlers[kind]?.(data);
    });
  }
  stream.addEventListener("open", () => {
    if (dropped && source === stream) handlers.resync?.({}); // back after a break: catch up
    dropped = false;
  });
  stream.addEventListener("error", () => {
    if (source !== stream) return;
    dropped = true;
    if (stream.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    // Refused (401: the access cookie lapsed, or the session is over): this signs out, or refreshes.
    source = null;
    api("/api/auth/me").then(() => {
      if (active && !source && !retryTimer) retryTimer = setTimeout(() => { retryTimer = null; connect(); }, RETRY_MS);
    }).catch(() => {});
  });
}
