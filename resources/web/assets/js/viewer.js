// The full-screen viewer: full-size photos (zoom, swipe, arrow keys) and videos (player.js), with
// next/previous through the grid's current list.

import { mayDownload } from "./account.js";
import { addToAlbum } from "./albumdialogs.js";
import { api } from "./api.js";
import { dialogOpen } from "./dialogs.js";
import { $, el, typingInto } from "./dom.js";
import { holdItems, paintViewerHeart, toggleFavorite } from "./favorites.js";
import { duration, itemDate, longDate } from "./format.js";
import * as gallery from "./gallery.js";
import { Player } from "./player.js";
import { Zoom } from "./zoom.js";

const streamUrl = (item) => `/api/media/stream/${item.id}`;

let current = null; // the item shown
let player = null;
let zoom = null;
let resize = null;
let showing = 0; // bumps on every change, so a slow lookup can't show a stale item
let requestClose = () => {};
let navigated = () => {};

export const isOpen = () => !$("viewer").hidden;
export const shownId = () => (current ? current.id : null);

/**
 * @param {{requestClose: () => void, navigated: (id: string) => void}} hooks  requestClose asks the app to
 *   close (it owns the history); navigated(id) tells it the viewer moved to another item.
 */
export function initViewer(hooks) {
  ({ requestClose, navigated } = hooks);
  $("viewer-close").addEventListener("click", () => requestClose());
  $("viewer-prev").addEventListener("click", () => step(-1));
  $("viewer-next").addEventListener("click", () => step(1));
  $("zoom-in").addEventListener("click", () => zoom && zoom.zoomIn());
  $("zoom-out").addEventListener("click", () => zoom && zoom.zoomOut());
  $("viewer-favorite").addEventListener("click", () => current && toggleFavorite(current.id));
  $("viewer-add").addEventListener("click", () => current && addToAlbum([current.id]));
  $("viewer-download").addEventListener("click", freshDownload);
  holdItems((id) => (current && current.id === id ? [current] : []));
  document.addEventListener("keydown", onKey);
  // Chromium's own video controls toggle playback on the Space *keyup*: the keydown already did it.
  document.addEventListener("keyup", (event) => {
    if (isOpen() && player && event.key === " " && !(event.target instanceof HTMLButtonElement)
        && !typingInto(event.target)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, { capture: true });
}

/** Open the item with this id (from the grid, or looked up: a shared link or a reload). */
export async function openViewer(id) {
  if (current && current.id === id && isOpen()) return;
  const ticket = ++showing;
  let item = gallery.items()[gallery.indexOf(id)];
  if (!item) {
    try {
      item = await api(`/api/media/${encodeURIComponent(id)}`);
    } catch (error) {
      if (ticket === showing && error.code === "MEDIA_001") requestClose();
      return;
    }
  }
  if (ticket === showing) show(item);
}

/** Close and forget the item (save=false when signed out: nothing may be sent any more). */
export function closeViewer({ save = true } = {}) {
  showing += 1;
  teardown({ save });
  const id = current ? current.id : null;
  current = null;
  $("viewer").hidden = true;
  $("viewer").classList.remove("chrome-hidden");
  $("viewer-title").textContent = "";
  $("viewer-meta").textContent = "";
  $("viewer-download").hidden = true;
  $("viewer-download").removeAttribute("href"); // no item's address stays in a closed (or signed-out) page
  $("app-view").inert = false;
  document.documentElement.classList.remove("viewer-open");
  return id;
}

function teardown({ save = true } = {}) {
  if (player) player.destroy({ save });
  player = null;
  if (zoom) zoom.destroy();
  zoom = null;
  if (resize) resize.disconnect();
  resize = null;
  const stage = $("stage");
  for (const img of stage.querySelectorAll("img")) img.removeAttribute("src");
  stage.replaceChildren();
  stage.className = "stage";
  $("zoom-tools").hidden = true;
}

function show(item) {
  const wasOpen = isOpen();
  teardown();
  current = item;
  const viewer = $("viewer");
  viewer.hidden = false;
  $("app-view").inert = true;
  document.documentElement.classList.add("viewer-open");
  $("viewer-title").textContent = item.original_name;
  paintViewerHeart($("viewer-favorite"), item);
  const download = $("viewer-download");
  download.href = `/api/media/${encodeURIComponent(item.id)}/download`;
  download.hidden = !mayDownload() || item.status === "converting";
  const index = gallery.indexOf(item.id);
  const date = itemDate(item, "taken_at");
  const facts = [longDate(date), item.width && item.height ? `${item.width} × ${item.height}` : ""];
  if (item.type === "video") facts.push(duration(item.duration));
  if (item.status === "converting") facts.push("Still converting");
  if (index >= 0 && gallery.total()) facts.push(`${index + 1} of ${gallery.total().toLocaleString()}`);
  $("viewer-meta").textContent = facts.filter(Boolean).join(" · ");
  $("viewer-prev").disabled = index <= 0;
  $("viewer-next").disabled = index < 0 || (index >= gallery.items().length - 1 && !gallery.hasMore());
  document.title = `${item.original_name} · Vault`;
  if (item.type === "video") showVideo(item);
  else showPhoto(item, index);
  if (!wasOpen || !viewer.contains(document.activeElement) || document.activeElement === document.body) {
    (item.type === "video" ? player.video : $("viewer-close")).focus({ preventScroll: true });
  }
}

function showPhoto(item, index) {
  const stage = $("stage");
  stage.classList.add("photo");
  const frame = el("div", { class: "frame" });
  const placeholder = el("img", { class: "placeholder", alt: "", "aria-hidden": "true", draggable: "false" });
  const img = el("img", { class: "photo", alt: item.original_name, decoding: "async", draggable: "false" });
  img.addEventListener("load", () => frame.classList.add("ready"), { once: true });
  img.addEventListener("error", () => {
    // the access cookie may have lapsed: check the session (signs out if over), then try once more
    if (img.dataset.retried) return;
    img.dataset.retried = "1";
    api("/api/auth/me").then(() => { if (img.isConnected) img.src = streamUrl(item); }).catch(() => {});
  });
  placeholder.src = gallery.thumbnailUrl(item);
  img.src = streamUrl(item);
  frame.append(placeholder, img);
  stage.replaceChildren(frame);
  const fit = () => {
    const width = item.width || img.naturalWidth || 1;
    const height = item.height || img.naturalHeight || 1;
    const scale = Math.min(stage.clientWidth / width, stage.clientHeight / height, 1);
    frame.style.width = `${Math.round(width * scale)}px`;
    frame.style.height = `${Math.round(height * scale)}px`;
  };
  fit();
  resize = new ResizeObserver(() => {
    fit();
    if (zoom) zoom.apply(false);
  });
  resize.observe(stage);
  zoom = new Zoom(stage, frame, {
    onSwipe: (direction) => step(direction),
    onDismiss: () => requestClose(),
    onTap: () => $("viewer").classList.toggle("chrome-hidden"),
    onChange: (scale) => {
      $("zoom-out").disabled = scale <= 1;
      $("zoom-in").disabled = zoom ? scale >= zoom.maxScale() - 0.01 : false;
    },
  });
  zoom.apply(false);
  $("zoom-tools").hidden = false;
  // Warm the cache for the neighbours, so next/previous is instant.
  for (const neighbour of [gallery.items()[index + 1], gallery.items()[index - 1]]) {
    if (index >= 0 && neighbour && neighbour.type === "image") new Image().src = streamUrl(neighbour);
  }
}

function showVideo(item) {
  const stage = $("stage");
  stage.classList.add("video");
  player = new Player(stage, item);
  const mine = player;
  player.start().catch((error) => {
    if (player === mine && error.code !== "AUTH_004" && error.status !== 401) {
      mine.fail(`This video couldn't be opened. ${error.message}`);
    }
  });
}

/**
 * The download is the browser's own (a plain link: its progress, a phone's Files app), so it carries only
 * the cookies: check the session first (refreshing a lapsed access token, or signing out), then follow it.
 */
function freshDownload(event) {
  const link = event.currentTarget;
  if (link.dataset.checked) {
    delete link.dataset.checked;
    return;
  }
  event.preventDefault();
  api("/api/auth/me").then(() => {
    link.dataset.checked = "1";
    link.click();
  }).catch(() => {});
}

/** Go to the next (+1) or previous (-1) item, loading another page of the grid when needed. */
async function step(direction) {
  if (!current) return;
  const from = current.id;
  let index = gallery.indexOf(from);
  if (index < 0) return;
  if (direction > 0 && index >= gallery.items().length - 1 && gallery.hasMore()) {
    await gallery.loadMore();
    if (!current || current.id !== from) return;
    index = gallery.indexOf(from);
  }
  const next = gallery.items()[index + direction];
  if (!next) return;
  showing += 1;
  show(next);
  navigated(next.id);
}

function onKey(event) {
  if (!isOpen() || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (dialogOpen()) return; // the dialog over the viewer has the keyboard (its Escape closes just it)
  const key = event.key;
  if (key === "Escape") {
    event.preventDefault();
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {}); // first Esc: out of fullscreen
    else requestClose();
    return;
  }
  $("viewer").classList.remove("chrome-hidden");
  if (typingInto(event.target)) return; // the quality menu has the keyboard
  if (key === "PageDown" || key === "PageUp") {
    event.preventDefault();
    step(key === "PageDown" ? 1 : -1);
    return;
  }
  if (player) {
    const onButton = event.target instanceof HTMLButtonElement && (key === " " || key === "Enter");
    if (!onButton && player.key(event)) event.preventDefault();
    return;
  }
  if (!zoom) return;
  const actions = {
    ArrowLeft: () => step(-1),
    ArrowRight: () => step(1),
    "+": () => zoom.zoomIn(),
    "=": () => zoom.zoomIn(),
    "-": () => zoom.zoomOut(),
    _: () => zoom.zoomOut(),
    0: () => zoom.reset(),
  };
  if (actions[key]) {
    event.preventDefault();
    actions[key]();
  }
}
