// The library grid: pages of thumbnails under day and month headings, infinite scroll, the photo/video
// filter, sorting and search. Video tiles play their animated preview on hover or long-press. A video still
// converting has a placeholder tile saying how far it is ("Converting 42%"); it opens and plays like any
// other, and turns into the real tile once it is ready.

import { api, SignedOut } from "./api.js";
import { $, el, icon, reducedMotion } from "./dom.js";
import { dayKey, dayLabel, duration, itemDate, monthKey, monthLabel } from "./format.js";

const PAGE_SIZE = 60;
const LONG_PRESS_MS = 400;
const SCROLL_AHEAD_PX = 1200;
const CONVERTING_REFRESH_MS = 3000;

const state = {
  type: "all", sort: "taken_at", order: "desc", q: "",
  items: [], page: 0, pages: 1, total: 0,
  loading: null, generation: 0, lastMonth: "", lastDay: "",
};
let openItem = () => {};
let observer = null;
let convertingTimer = null;

export const thumbnailUrl = (item) => `/api/media/thumbnail/${item.id}`;
export const posterUrl = (item) => `/api/media/poster/${item.id}`;
export const previewUrl = (item) => `/api/media/preview/${item.id}`;

/** What a tile shows at rest: video thumbnails are animated, so reduced motion gets the still poster. */
const restingUrl = (item) => (item.type === "video" && reducedMotion.matches ? posterUrl(item) : thumbnailUrl(item));

// --- public -------------------------------------------------------------------------------------------

export const items = () => state.items;
export const hasMore = () => state.page < state.pages;
export const total = () => state.total;
export const indexOf = (id) => state.items.findIndex((item) => item.id === id);
export const tileFor = (id) => $("grid").querySelector(`.tile[data-id="${CSS.escape(id)}"]`);

/** `onOpen(item)` runs when a tile is activated. */
export function initGallery(onOpen) {
  openItem = onOpen;
  for (const button of document.querySelectorAll(".segmented button")) {
    button.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".segmented button")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      state.type = button.dataset.type;
      reload();
    });
  }
  $("sort").addEventListener("change", (event) => {
    [state.sort, state.order] = event.target.value.split(":");
    reload();
  });
  let typing = null;
  const search = $("search");
  const apply = () => {
    clearTimeout(typing);
    if (search.value.trim() !== state.q) {
      state.q = search.value.trim();
      reload();
    }
  };
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 250);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && search.value) {
      event.stopPropagation();
      search.value = "";
      apply();
    }
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
    search.blur();
  });
  $("empty-retry").addEventListener("click", () => {
    $("empty").hidden = true;
    if (state.items.length) fill();
    else reload();
  });
  observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) fill();
  }, { rootMargin: `0px 0px ${SCROLL_AHEAD_PX}px 0px` });
  observer.observe($("sentinel"));
  reducedMotion.addEventListener("change", () => {
    for (const tile of $("grid").querySelectorAll(".tile[data-type='video']:not(.converting)")) {
      const item = state.items[indexOf(tile.dataset.id)];
      if (item) tile.querySelector("img.thumb").src = restingUrl(item);
    }
  });
}

/** Forget everything shown (on sign-out: no picture or name may stay in the page). */
export function clearGallery() {
  state.generation += 1;
  clearTimeout(convertingTimer);
  convertingTimer = null;
  Object.assign(state, { items: [], page: 0, pages: 1, total: 0, loading: null, lastMonth: "", lastDay: "" });
  for (const img of $("grid").querySelectorAll("img")) img.removeAttribute("src");
  $("grid").replaceChildren();
  $("count").textContent = "";
  $("empty").hidden = true;
  $("loading").hidden = true;
}

/** Reset filters to "all, newest taken first, no search" (after signing out). */
export function resetFilters() {
  Object.assign(state, { type: "all", sort: "taken_at", order: "desc", q: "" });
  $("search").value = "";
  $("sort").value = "taken_at:desc";
  for (const button of document.querySelectorAll(".segmented button")) {
    button.setAttribute("aria-pressed", String(button.dataset.type === "all"));
  }
}

/** Start over from page 1 with the current filter, sort and search. */
export async function reload() {
  clearGallery();
  $("grid").setAttribute("aria-busy", "true");
  $("grid").append(...Array.from({ length: 12 }, () => el("div", { class: "tile skeleton", "aria-hidden": "true" })));
  await fill();
}

/** Load the next page; resolves to true if items were added. */
export function loadMore() {
  if (state.loading) return state.loading;
  if (!hasMore()) return Promise.resolve(false);
  const generation = state.generation;
  const params = new URLSearchParams({ page: String(state.page + 1), limit: String(PAGE_SIZE), sort: state.sort,
    order: state.order });
  if (state.type !== "all") params.set("type", state.type);
  if (state.q) params.set("q", state.q);
  $("loading").hidden = state.page === 0;
  state.loading = api(`/api/media/library?${params}`)
    .then((data) => {
      if (generation !== state.generation) return false; // the filter changed meanwhile
      append(data);
      return data.items.length > 0;
    })
    .catch((error) => {
      if (generation === state.generation && !(error instanceof SignedOut)) {
        $("grid").querySelectorAll(".skeleton").forEach((node) => node.remove());
        showEmpty("Couldn't load your library", error.message, true);
      }
      return false;
    })
    .finally(() => {
      if (generation === state.generation) {
        state.loading = null;
        $("loading").hidden = true;
        $("grid").removeAttribute("aria-busy");
      }
    });
  return state.loading;
}

/** Load pages until the bottom of the grid is out of sight (or there is nothing more). */
export async function fill() {
  const generation = state.generation;
  while (hasMore() && generation === state.generation && nearBottom()) {
    if (!(await loadMore())) break;
  }
}

function nearBottom() {
  return $("sentinel").getBoundingClientRect().top < window.innerHeight + SCROLL_AHEAD_PX
    && !$("gallery-view").hidden;
}

// --- rendering ------------------------------------------------------------------------------------------

function append(data) {
  const grid = $("grid");
  grid.querySelectorAll(".skeleton").forEach((node) => node.remove());
  state.page = data.pagination.page;
  state.pages = data.pagination.pages;
  state.total = data.pagination.total;
  const nodes = [];
  for (const item of data.items) {
    const date = itemDate(item, state.sort);
    if (date && monthKey(date) !== state.lastMonth) {
      state.lastMonth = monthKey(date);
      nodes.push(el("h2", { class: "month" }, monthLabel(date)));
    }
    if (date && dayKey(date) !== state.lastDay) {
      state.lastDay = dayKey(date);
      nodes.push(el("h3", { class: "day" }, dayLabel(date)));
    }
    nodes.push(tile(item));
    state.items.push(item);
  }
  grid.append(...nodes);
  watchConverting();
  updateCount();
  if (state.total === 0) {
    const what = { all: "photos or videos", image: "photos", video: "videos" }[state.type];
    if (state.q) showEmpty(`Nothing called “${state.q}”`, `No ${what} have a name containing “${state.q}”.`);
    else showEmpty(`No ${what} yet`, "Photos appear here once converted; videos as soon as they start converting.");
  } else {
    $("empty").hidden = true;
  }
}

function updateCount() {
  const noun = { all: ["item", "items"], image: ["photo", "photos"], video: ["video", "videos"] }[state.type];
  const n = state.total;
  $("count").textContent = n ? `${n.toLocaleString()} ${noun[n === 1 ? 0 : 1]}` : "";
}

function showEmpty(title, text, retry = false) {
  $("empty-title").textContent = title;
  $("empty-text").textContent = text;
  $("empty-retry").hidden = !retry;
  $("empty").hidden = false;
}

function tile(item) {
  const link = el("a", { class: "tile", href: `#/view/${item.id}`, "data-id": item.id, "data-type": item.type,
    draggable: "false" });
  if (item.status === "converting") convertingTile(link, item);
  else pictureTile(link, item);
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (link.dataset.suppressClick) {
      delete link.dataset.suppressClick;
      return;
    }
    openItem(state.items[indexOf(item.id)] || item); // the freshest copy (a refresh may have replaced it)
  });
  return link;
}

function pictureTile(link, item) {
  const img = el("img", { class: "thumb", alt: item.original_name, loading: "lazy", decoding: "async",
    width: 300, height: 300, draggable: "false" });
  img.addEventListener("load", () => link.classList.add("loaded"), { once: true });
  img.addEventListener("error", () => imageFailed(img));
  img.src = restingUrl(item);
  link.append(img);
  if (item.type === "video") {
    link.append(el("span", { class: "badge" }, icon("play"), el("span", { class: "sr-only" }, "Video, "),
      duration(item.duration)));
    wirePreview(link, item);
  }
}

/** A thumbnail failed: most likely the access cookie lapsed; check the session, then try once more. */
function imageFailed(img) {
  if (img.dataset.retried) return;
  img.dataset.retried = "1";
  api("/api/auth/me").then(() => {
    const src = img.getAttribute("src");
    if (img.isConnected && src) img.setAttribute("src", src); // the same URL again: a fresh request
  }).catch(() => {});
}

// --- videos still converting ---------------------------------------------------------------------------------

const percent = (item) => Math.max(0, Math.min(99, Math.floor((item.progress || 0) * 100)));

/** No pictures exist before the commit: a placeholder, the name for screen readers, and how far it is. */
function convertingTile(link, item) {
  link.classList.add("converting");
  const meter = el("progress", { class: "meter", max: 100, value: percent(item), "aria-hidden": "true" });
  link.append(
    el("span", { class: "placeholder-icon", "aria-hidden": "true" }, icon("video")),
    el("span", { class: "converting-label" }, el("span", { class: "sr-only" }, `${item.original_name}, `),
      el("span", { class: "percent" }, `Converting ${percent(item)}%`)),
    meter,
  );
}

/** While a converting tile is in the grid, refresh the ones on screen every few seconds. */
function watchConverting() {
  if (convertingTimer || !$("grid").querySelector(".tile.converting")) return;
  convertingTimer = setTimeout(refreshConverting, CONVERTING_REFRESH_MS);
}

async function refreshConverting() {
  const generation = state.generation;
  const onScreen = (node) => {
    const box = node.getBoundingClientRect();
    return box.bottom > 0 && box.top < window.innerHeight;
  };
  if (document.visibilityState === "visible" && !$("gallery-view").hidden) {
    const tiles = [...$("grid").querySelectorAll(".tile.converting")].filter(onScreen);
    await Promise.all(tiles.map((node) => refreshTile(node, generation)));
  }
  convertingTimer = null;
  if (generation === state.generation) watchConverting();
}

async function refreshTile(node, generation) {
  const id = node.dataset.id;
  let fresh;
  try {
    fresh = await api(`/api/media/${encodeURIComponent(id)}`);
  } catch (error) {
    // Its conversion stopped (the item is gone; the video is converted again, as a new item).
    if (error.code === "MEDIA_001" && generation === state.generation) removeTile(node);
    return;
  }
  const index = indexOf(id);
  if (generation !== state.generation || !node.isConnected || index < 0) return;
  const { position: _position, ...item } = fresh; // the listing's shape (the position is per viewer)
  state.items[index] = item;
  if (item.status === "converting") {
    node.querySelector(".percent").textContent = `Converting ${percent(item)}%`;
    node.querySelector("progress").value = percent(item);
    return;
  }
  const ready = tile(item);
  const focused = document.activeElement === node;
  node.replaceWith(ready);
  if (focused) ready.focus({ preventScroll: true });
}

function removeTile(node) {
  const index = indexOf(node.dataset.id);
  if (index >= 0) state.items.splice(index, 1);
  state.total = Math.max(0, state.total - 1);
  let above = node.previousElementSibling;
  node.remove();
  // Headings left with nothing under them go too (at the end, only when no later page can fill them).
  while (above && above.matches("h2, h3")) {
    const next = above.nextElementSibling;
    if (next ? !next.matches(above.matches("h3") ? "h2, h3" : "h2") : hasMore()) break;
    const higher = above.previousElementSibling;
    above.remove();
    above = higher;
  }
  updateCount();
}

// --- video previews ----------------------------------------------------------------------------------------

function showPreview(link, item) {
  if (link.querySelector("img.preview")) return;
  const moving = el("img", { class: "preview", alt: "", "aria-hidden": "true", decoding: "async",
    draggable: "false" });
  moving.addEventListener("load", () => moving.classList.add("ready"), { once: true });
  moving.src = reducedMotion.matches ? posterUrl(item) : previewUrl(item);
  link.append(moving);
}

function hidePreview(link) {
  const moving = link.querySelector("img.preview");
  if (moving) {
    moving.removeAttribute("src");
    moving.remove();
  }
}

function wirePreview(link, item) {
  let pressTimer = null;
  let start = null;
  link.addEventListener("pointerenter", (event) => {
    if (event.pointerType === "mouse") showPreview(link, item);
  });
  link.addEventListener("pointerleave", () => hidePreview(link));
  link.addEventListener("focus", () => {
    if (link.matches(":focus-visible")) showPreview(link, item);
  });
  link.addEventListener("blur", () => hidePreview(link));
  // Touch: press and hold to preview; lifting the finger stops it without opening the video.
  link.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse") return;
    start = { x: event.clientX, y: event.clientY };
    clearTimeout(pressTimer);
    pressTimer = setTimeout(() => {
      link.dataset.suppressClick = "1";
      showPreview(link, item);
    }, LONG_PRESS_MS);
  });
  link.addEventListener("pointermove", (event) => {
    if (start && Math.hypot(event.clientX - start.x, event.clientY - start.y) > 10) clearTimeout(pressTimer);
  });
  const release = () => {
    clearTimeout(pressTimer);
    start = null;
    if (link.dataset.suppressClick) {
      hidePreview(link);
      setTimeout(() => delete link.dataset.suppressClick, 400); // if no click follows (touch moved)
    }
  };
  link.addEventListener("pointerup", release);
  link.addEventListener("pointercancel", release);
  link.addEventListener("contextmenu", (event) => {
    if (link.dataset.suppressClick || start) event.preventDefault(); // no "save image" menu on long-press
  });
}
