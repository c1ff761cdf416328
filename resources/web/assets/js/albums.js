// Albums: the list (#/albums: covers, names, how many items, who they are shared with), opening one (the
// grid, scoped to it: #/album/ID), and for its owner or an administrator renaming, sharing and deleting.

import { mayChange } from "./account.js";
import { api, SignedOut } from "./api.js";
import { newAlbum, renameAlbum, shareAlbum } from "./albumdialogs.js";
import { $, el, icon, toast } from "./dom.js";
import { openDialog } from "./dialogs.js";

let albums = null; // the last list, or null until loaded
let loading = null;
let ticket = 0;
let shown = null; // the album the grid is scoped to
let goTo = () => {};

export const albumList = () => albums || [];
export const albumById = (id) => albumList().find((album) => album.id === id) || null;

/** `navigate(hash)` moves the page (the app owns the history). */
export function initAlbums(navigate) {
  goTo = navigate;
  $("album-new").addEventListener("click", async () => {
    const album = await newAlbum();
    if (album) goTo(`#/album/${album.id}`);
  });
  $("album-share").addEventListener("click", () => shown && shareAlbum(shown).then(refreshAlbums));
  $("album-rename").addEventListener("click", () => shown && renameAlbum(shown).then(refreshAlbums));
  $("album-delete").addEventListener("click", () => shown && deleteAlbum(shown));
}

/** Fetch the list again (an album changed) and redraw what shows it. */
export function refreshAlbums() {
  const mine = ++ticket;
  loading = api("/api/albums").then(({ albums: list }) => {
    if (mine !== ticket) return albums;
    albums = list;
    if (!$("albums-view").hidden) drawList();
    if (shown) showHeader(shown.id);
    return albums;
  }).catch((error) => {
    if (mine === ticket && !(error instanceof SignedOut) && !$("albums-view").hidden) {
      $("albums-list").replaceChildren(el("li", { class: "album-error" }, `Couldn't load your albums. ${error.message}`));
    }
    return albums;
  }).finally(() => {
    if (mine === ticket) {
      loading = null;
      $("albums-list").removeAttribute("aria-busy");
    }
  });
  return loading;
}

/** The albums view. */
export async function showAlbums() {
  if (albums) drawList();
  else $("albums-list").setAttribute("aria-busy", "true");
  await refreshAlbums();
}

/** Forget them all (on sign-out). */
export function clearAlbums() {
  ticket += 1;
  albums = null;
  shown = null;
  $("albums-list").replaceChildren();
  $("albums-empty").hidden = true;
}

function drawList() {
  const list = albumList();
  $("albums-list").replaceChildren(...list.map(card));
  $("albums-empty").hidden = list.length > 0;
}

function card(album) {
  const cover = album.cover_id
    ? el("img", { class: "album-cover", alt: "", src: `/api/media/thumbnail/${album.cover_id}`, loading: "lazy",
      width: 300, height: 300 })
    : el("span", { class: "album-cover empty-cover", "aria-hidden": "true" }, icon("album"));
  const n = album.item_count || 0;
  const facts = [`${n.toLocaleString()} item${n === 1 ? "" : "s"}`];
  if (!album.is_owner) facts.push(`from ${album.owner}`);
  else if (album.shared_with && album.shared_with.length) facts.push(`shared with ${album.shared_with.join(", ")}`);
  return el("li", { class: "album-card", "data-id": album.id },
    el("a", { class: "album-link", href: `#/album/${album.id}` }, cover,
      el("span", { class: "album-name" }, album.name)),
    el("p", { class: "album-facts" }, facts.join(" · ")));
}

// --- one album, shown in the grid ------------------------------------------------------------------------

/** The grid is now scoped to album `id` (or to none): show its name and, to whoever may, its tools. */
export async function showAlbum(id) {
  shown = id ? albumById(id) || { id, name: "", is_owner: false } : null;
  if (!id) return null;
  if (!albums || !albumById(id)) await (loading || refreshAlbums());
  if (!shown || shown.id !== id) return null;
  return showHeader(id);
}

function showHeader(id) {
  const album = albumById(id);
  if (!album) return null;
  shown = album;
  $("gallery-title").textContent = album.name;
  if (!$("gallery-view").hidden && $("viewer").hidden) document.title = `${album.name} · Vault`;
  $("album-tools").hidden = !mayChange(album);
  return album;
}

async function deleteAlbum(album) {
  const done = await openDialog({
    title: `Delete “${album.name}”?`,
    description: "The album goes for everyone it is shared with. Its photos and videos stay in the library.",
    submitLabel: "Delete album", danger: true,
    submit: () => api(`/api/albums/${album.id}`, { method: "DELETE" }).then(() => true),
  });
  if (!done) return;
  toast(`Deleted the album “${album.name}”.`);
  await refreshAlbums();
  goTo("#/albums");
}
