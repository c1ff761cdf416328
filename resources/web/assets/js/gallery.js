// The library grid: pages of thumbnails under day and month headings, infinite scroll, the photo/video
// filter, sorting and search, within a scope (everything, my favorites, or one album). Tiles come and go
// live (live.js tells it): a new item slots in where the sort puts it, a deleted one leaves. A video still
// converting has a placeholder tile saying how far it is; it turns into the real tile once it is ready.

import { api, SignedOut } from "./api.js";
import { $, el, reducedMotion } from "./dom.js";
import { holdItems } from "./favorites.js";
import { dayKey, dayLabel, itemDate, monthKey, monthLabel } from "./format.js";
import { cell, restingUrl, showProgress, tile } from "./tiles.js";

export { posterUrl, thumbnailUrl } from "./tiles.js";

const PAGE_SIZE = 60;
const SCROLL_AHEAD_PX = 1200;
const CONVERTING_REFRESH_MS = 3000;

const state = {
  type: "all", sort: "taken_at", order: "desc", q: "", album: null, favorite: false,
  items: [], page: 0, pages: 1, total: 0,
  loading: null, generation: 0,
};
let activate = () => {};
let observer = null;
let convertingTimer = null;

// --- public -------------------------------------------------------------------------------------------

export const items = () => state.items;
export const hasMore = () => state.page < state.pages;
export const total = () => state.total;
export const scope = () => ({ album: state.album, favorite: state.favorite });
export const indexOf = (id) => state.items.findIndex((item) => item.id === id);
export const tileFor = (id) => $("grid").querySelector(`.tile[data-id="${CSS.escape(id)}"]`);
const cellFor = (id) => $("grid").querySelector(`.cell[data-id="${CSS.escape(id)}"]`);

/** `onActivate(item, link)` runs when a tile is clicked (open it, or select it while selecting). */
export function initGallery(onActivate) {
  activate = (id, link) => {
    const item = state.items[indexOf(id)];
    if (item) onActivate(item, link); // the freshest copy (a refresh may have replaced it)
  };
  holdItems((id) => state.items.filter((item) => item.id === id));
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
    for (const link of $("grid").querySelectorAll(".tile[data-type='video']:not(.converting)")) {
      const item = state.items[indexOf(link.dataset.id)];
      if (item) link.querySelector("img.thumb").src = restingUrl(item);
    }
  });
}

/** Show everything, my favorites or one album; true if that changed (the caller then reloads). */
export function setScope({ album = null, favorite = false } = {}) {
  if (state.album === album && state.favorite === favorite) return false;
  Object.assign(state, { album, favorite });
  return true;
}

/** Forget everything shown (on sign-out: no picture or name may stay in the page). */
export function clearGallery() {
  state.generation += 1;
  clearTimeout(convertingTimer);
  convertingTimer = null;
  Object.assign(state, { items: [], page: 0, pages: 1, total: 0, loading: null });
  for (const img of $("grid").querySelectorAll("img")) img.removeAttribute("src");
  $("grid").replaceChildren();
  $("count").textContent = "";
  $("empty").hidden = true;
  $("loading").hidden = true;
}

/** Reset filters to "all, newest taken first, no search, everything" (after signing out). */
export function resetFilters() {
  Object.assign(state, { type: "all", sort: "taken_at", order: "desc", q: "", album: null, favorite: false });
  $("search").value = "";
  $("sort").value = "taken_at:desc";
  for (const button of document.querySelectorAll(".segmented button")) {
    button.setAttribute("aria-pressed", String(button.dataset.type === "all"));
  }
}

/** Start over from page 1 with the current scope, filter, sort and search. */
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
  if (state.album) params.set("album", state.album);
  if (state.favorite) params.set("favorite", "true");
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
  $("grid").querySelectorAll(".skeleton").forEach((node) => node.remove());
  state.page = data.pagination.page;
  state.pages = data.pagination.pages;
  state.total = data.pagination.total;
  for (const item of data.items) {
    if (indexOf(item.id) < 0) state.items.push(item); // an item that arrived live may come again in a page
  }
  render();
  watchConverting();
  updateCount();
}

/** Lay the cells out under their headings again (existing cells are moved, not rebuilt: no reloads). */
function render() {
  const grid = $("grid");
  const focused = grid.contains(document.activeElement) ? document.activeElement : null;
  const cells = new Map([...grid.querySelectorAll(".cell")].map((node) => [node.dataset.id, node]));
  const nodes = [];
  let lastMonth = "";
  let lastDay = "";
  for (const item of state.items) {
    const date = itemDate(item, state.sort);
    if (date && monthKey(date) !== lastMonth) {
      lastMonth = monthKey(date);
      nodes.push(el("h2", { class: "month" }, monthLabel(date)));
    }
    if (date && dayKey(date) !== lastDay) {
      lastDay = dayKey(date);
      nodes.push(el("h3", { class: "day" }, dayLabel(date)));
    }
    nodes.push(cells.get(item.id) || cell(item, activate));
  }
  grid.replaceChildren(...nodes);
  if (focused && focused.isConnected) focused.focus({ preventScroll: true });
  if (state.total === 0) showEmptyLibrary();
  else $("empty").hidden = true;
}

function showEmptyLibrary() {
  const what = { all: "photos or videos", image: "photos", video: "videos" }[state.type];
  if (state.q) showEmpty(`Nothing called “${state.q}”`, `No ${what} have a name containing “${state.q}”.`);
  else if (state.favorite) showEmpty("No favorites yet", "Tap the heart on a photo or video to find it here.");
  else if (state.album) showEmpty(`No ${what} in this album yet`, "Select photos in the library to add them.");
  else showEmpty(`No ${what} yet`, "Photos appear here once converted; videos as soon as they start converting.");
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

// --- live changes -----------------------------------------------------------------------------------------

/** Would the current scope, filter and search list this item? (Albums change by album_changed instead.) */
function belongs(item) {
  if (state.album || (state.favorite && !item.favorite)) return false;
  if (state.type !== "all" && item.type !== state.type) return false;
  return !state.q || (item.original_name || "").toLowerCase().includes(state.q.toLowerCase());
}

function sortKey(item) {
  const date = itemDate(item, state.sort);
  return date ? date.getTime() : 0;
}

/** An item was added or changed: replace its tile, or slot it in where the sort puts it. */
export function upsert(item) {
  if (state.loading) { // a page on its way may or may not have it: decide once it is here
    state.loading.then(() => upsert(item));
    return;
  }
  const index = indexOf(item.id);
  if (index >= 0) {
    state.items[index] = { ...state.items[index], ...item };
    replaceTile(state.items[index]);
    return;
  }
  if (!belongs(item) || state.generation === 0) return;
  const key = sortKey(item);
  const after = (other) => (state.order === "desc" ? sortKey(other) < key : sortKey(other) > key);
  let at = state.items.findIndex(after);
  if (at < 0 && hasMore()) { // beyond what is loaded: a later page brings it
    state.total += 1;
    updateCount();
    return;
  }
  if (at < 0) at = state.items.length;
  state.items.splice(at, 0, item);
  state.total += 1;
  render();
  watchConverting();
  updateCount();
}

/** An item is gone: its tile goes, with any heading left with nothing under it. */
export function remove(id) {
  if (state.loading) state.loading.then(() => remove(id));
  const index = indexOf(id);
  if (index < 0) return;
  state.items.splice(index, 1);
  state.total = Math.max(0, state.total - 1);
  render();
  updateCount();
}

/** A converting video moved on; false if it is not in the grid. */
export function progress(id, value) {
  const item = state.items[indexOf(id)];
  const link = tileFor(id);
  if (!item || !link) return false;
  item.progress = value;
  showProgress(link, item);
  return true;
}

function replaceTile(item) {
  const old = tileFor(item.id);
  if (!old) return;
  if (item.status === "converting" && old.classList.contains("converting")) {
    showProgress(old, item);
    return;
  }
  const ready = tile(item, activate);
  const focused = document.activeElement === old;
  old.replaceWith(ready);
  if (focused) ready.focus({ preventScroll: true });
}

// --- videos still converting ---------------------------------------------------------------------------------

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
    await Promise.all(tiles.map((node) => refreshTile(node.dataset.id, generation)));
  }
  convertingTimer = null;
  if (generation === state.generation) watchConverting();
}

async function refreshTile(id, generation) {
  let fresh;
  try {
    fresh = await api(`/api/media/${encodeURIComponent(id)}`);
  } catch (error) {
    // Its conversion stopped (the item is gone; the video is converted again, as a new item).
    if (error.code === "MEDIA_001" && generation === state.generation) remove(id);
    return;
  }
  if (generation !== state.generation || !cellFor(id) || indexOf(id) < 0) return;
  const { position: _position, ...item } = fresh; // the listing's shape (the position is per viewer)
  upsert(item);
}
