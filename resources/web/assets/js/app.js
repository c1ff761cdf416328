// Vault's gallery: starts the page, switches between sign-in, the library (#/, #/favorites, #/album/ID),
// the albums (#/albums), the viewer (#/view/ID) and "My devices" (#/devices), keeps them up to date as the
// library changes (live.js), and makes sure nothing stays on screen once the session is over.

import { setCurrentUser } from "./account.js";
import { clearAlbums, initAlbums, refreshAlbums, showAlbum, showAlbums } from "./albums.js";
import { api, forgetTokens, onSignedOut, startSessionClock, stopSessionClock } from "./api.js";
import { hideSignIn, initSignIn, NETWORK_REFUSED, showSignIn, signedOutMessage, signOut } from "./auth.js";
import { clearDevices, initDevices, setUser, showDevices } from "./devices.js";
import { closeDialogs, dialogOpen } from "./dialogs.js";
import { $, clearToast, installIcons, toast, typingInto } from "./dom.js";
import * as gallery from "./gallery.js";
import { startLive, stopLive } from "./live.js";
import { clearPassword, initPassword } from "./password.js";
import { loadHls } from "./player.js";
import * as selection from "./selection.js";
import { forgetShared, noteShareArrival, registerShareWorker } from "./shared.js";
import { initUploads, setUploader, stopUploads } from "./uploads.js";
import { closeViewer, initViewer, isOpen, openViewer, shownId } from "./viewer.js";

const channel = "BroadcastChannel" in window ? new BroadcastChannel("vault") : null;
let signedIn = false;
let lastRoute = null;

// --- routes ----------------------------------------------------------------------------------------------

const VIEWS = { devices: "devices-view", albums: "albums-view" }; // any other route shows the grid
const TITLES = { grid: "Photos and videos", favorites: "Favorites" };

function parseRoute() {
  const path = location.hash.replace(/^#\/?/, "");
  const view = /^view\/([0-9a-f]{32})$/.exec(path);
  if (view) return { name: "view", id: view[1] };
  const album = /^album\/([0-9a-f]{32})$/.exec(path);
  if (album) return { name: "album", album: album[1] };
  return { name: ["devices", "albums", "favorites"].includes(path) ? path : "grid" };
}

/** Scope the grid to the route (the viewer keeps the grid it was opened from); true if that changed. */
function scopeGrid({ name, album }) {
  if (name === "view" || name in VIEWS) return false;
  const changed = gallery.setScope({ album: album || null, favorite: name === "favorites" });
  if (changed) selection.stop();
  const title = $("gallery-title");
  title.className = name === "grid" ? "sr-only" : "";
  if (name !== "album") title.textContent = TITLES[name] || TITLES.grid;
  else if (changed) title.textContent = "";
  $("scope-back").hidden = name !== "album";
  $("album-tools").hidden = true;
  showAlbum(name === "album" ? album : null).then((shown) => {
    if (name === "album" && !shown && parseRoute().album === album) {
      toast("That album isn't there any more, or isn't shared with you.");
      go("#/albums", { push: false });
    }
  });
  return changed;
}

function route() {
  if (!signedIn) return;
  const key = location.hash || "#/";
  if (key === lastRoute) return;
  lastRoute = key;
  const where = parseRoute();
  const { name, id } = where;
  showView(name);
  const changed = scopeGrid(where);
  if (name === "view") {
    openViewer(id);
    return;
  }
  if (isOpen()) restoreFocus(closeViewer());
  if (name === "devices") {
    document.title = "My devices · Vault";
    showDevices();
    $("devices-title").focus();
  } else if (name === "albums") {
    document.title = "Albums · Vault";
    showAlbums();
    $("albums-title").focus();
  } else {
    document.title = name === "favorites" ? "Favorites · Vault" : "Vault";
    if (changed) {
      gallery.reload();
      if (name !== "grid") $("gallery-title").focus();
    } else {
      gallery.fill(); // in case the grid was hidden while it should have been filling
    }
  }
}

function showView(name) {
  for (const [route, view] of Object.entries(VIEWS)) $(view).hidden = name !== route;
  if (name !== "view") $("gallery-view").hidden = name in VIEWS;
  const current = { grid: "nav-all", favorites: "nav-favorites", albums: "nav-albums", album: "nav-albums",
    devices: "devices-link" }[name];
  for (const link of ["nav-all", "nav-favorites", "nav-albums", "devices-link"]) {
    if (name === "view") break;
    if (link === current) $(link).setAttribute("aria-current", "page");
    else $(link).removeAttribute("aria-current");
  }
}

function go(hash, { push = true, state = null } = {}) {
  history[push ? "pushState" : "replaceState"](state, "", hash);
  route();
}

function restoreFocus(id) {
  const tile = id && gallery.tileFor(id);
  if (tile) {
    tile.focus({ preventScroll: true });
    tile.scrollIntoView({ block: "nearest" });
  }
}

function closeRequested() {
  if (history.state && history.state.viewer) history.back(); // undo the entry opening it pushed
  else go("#/", { push: false });
}

// --- signed in / signed out ------------------------------------------------------------------------------

async function enterApp(user) {
  signedIn = true;
  lastRoute = null;
  hideSignIn();
  $("boot").hidden = true;
  $("app-view").hidden = false;
  $("skip-link").hidden = false;
  showView(parseRoute().name);
  setUser(user);
  setCurrentUser(user);
  setUploader(user);
  startSessionClock();
  startLive(liveHandlers);
  scopeGrid(parseRoute());
  await gallery.reload();
  route();
  // With videos in sight, fetch the player in the background so the first one starts quickly.
  setTimeout(() => {
    if (signedIn && gallery.items().some((item) => item.type === "video")) loadHls().catch(() => {});
  }, 1500);
}

/** Back to sign-in, leaving no picture, video, name or timer behind. */
function leaveApp(message, kind = "info") {
  signedIn = false;
  lastRoute = null;
  stopSessionClock();
  stopLive();
  stopUploads();
  closeDialogs();
  selection.stop();
  closeViewer({ save: false });
  gallery.clearGallery();
  gallery.resetFilters();
  clearDevices();
  clearAlbums();
  clearPassword();
  setCurrentUser(null);
  clearToast();
  $("app-view").hidden = true;
  $("skip-link").hidden = true;
  $("boot").hidden = true;
  if (location.hash) history.replaceState(null, "", location.pathname);
  showSignIn(message, kind);
}

onSignedOut((error) => {
  if (!signedIn) return; // already at sign-in (or still starting: start() reports it)
  forgetTokens();
  leaveApp(signedOutMessage(error), error.code === "SEC_001" ? "error" : "info");
  if (channel) channel.postMessage({ type: "signed-out" });
});

if (channel) {
  channel.addEventListener("message", ({ data }) => {
    if (data.type === "signed-out" && signedIn) {
      leaveApp(data.how === "signout" ? "You signed out in another window." : "You were signed out.");
    } else if (data.type === "signed-in" && !signedIn) {
      start();
    }
  });
}

// --- wiring ----------------------------------------------------------------------------------------------

function wire() {
  installIcons();
  initSignIn(async (user) => {
    await enterApp(user);
    if (channel) channel.postMessage({ type: "signed-in" });
  });
  gallery.initGallery((item, link) => {
    if (selection.isSelecting()) selection.toggle(item.id, link);
    else go(`#/view/${item.id}`, { state: { viewer: true } });
  });
  selection.initSelection();
  initAlbums((hash) => go(hash));
  initPassword(() => showDevices());
  initViewer({
    requestClose: closeRequested,
    navigated: (id) => {
      history.replaceState(history.state, "", `#/view/${id}`);
      lastRoute = location.hash;
    },
  });
  initDevices();
  initUploads();
  $("signout-button").addEventListener("click", async () => {
    const button = $("signout-button");
    button.disabled = true;
    closeViewer(); // saves the playback position first
    await signOut();
    forgetShared(); // what was shared but not yet sent is not handed to whoever signs in next
    button.disabled = false;
    leaveApp("You signed out. Sign in again whenever you like.");
    if (channel) channel.postMessage({ type: "signed-out", how: "signout" });
  });
  $("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    const first = $("grid").querySelector(".tile");
    (first || $("grid")).focus();
  });
  window.addEventListener("popstate", route);
  window.addEventListener("hashchange", route);
  window.addEventListener("pageshow", (event) => {
    // Back from another site restores this page from memory: make sure its session is still alive.
    if (event.persisted && signedIn) api("/api/auth/me").catch(() => {});
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && signedIn && !isOpen() && !dialogOpen() && !typingInto(event.target)
        && !$("gallery-view").hidden) {
      event.preventDefault();
      $("search").focus();
    }
  });
}

// --- live updates ----------------------------------------------------------------------------------------

const SESSION_ENDED = {
  idle_timeout: "You were signed out after a period of inactivity. Sign in again to continue.",
  expired: "You were signed out because your session expired. Sign in again to continue.",
  account_expired: "This account has expired. Ask the person who runs Vault to extend it.",
  password_changed: "You were signed out because your password was changed. Sign in with the new one.",
};
const converting = new Set(); // ids being looked up after news of a conversion the grid doesn't show yet

function reloadShown() {
  const { name } = parseRoute();
  if (name === "albums") showAlbums();
  else refreshAlbums();
  if (!(name in VIEWS)) gallery.reload();
}

const liveHandlers = {
  item_added: ({ id, item }) => { if (item) gallery.upsert({ ...item, id: item.id || id }); },
  item_deleted: ({ id }) => {
    gallery.remove(id);
    if (isOpen() && shownId() === id) {
      closeRequested();
      toast("That photo or video was deleted.");
    }
  },
  item_converting: ({ id, progress }) => {
    if (gallery.progress(id, progress) || converting.has(id)) return;
    converting.add(id);
    api(`/api/media/${encodeURIComponent(id)}`).then(({ position: _position, ...item }) => gallery.upsert(item))
      .catch(() => {}).finally(() => converting.delete(id));
  },
  album_changed: ({ id }) => {
    refreshAlbums();
    // The album on screen changed, or (for a guest, who sees only shared albums) the whole library may have.
    const { name, album } = parseRoute();
    const guest = document.body.classList.contains("guest");
    if ((name === "album" && album === id) || (guest && (name === "grid" || name === "favorites"))) {
      gallery.reload();
    }
  },
  session_ended: ({ reason }) => {
    if (!signedIn) return;
    forgetTokens();
    leaveApp(SESSION_ENDED[reason] || signedOutMessage({ code: "AUTH_004", message: "" }));
    if (channel) channel.postMessage({ type: "signed-out" });
  },
  resync: () => { if (signedIn) reloadShown(); },
};

function startMessage(error) {
  if (error.code === "SEC_001") return [NETWORK_REFUSED, "error"];
  if (error.code === "NETWORK") return ["Vault can't be reached. Check that this device is on your home network.",
    "error"];
  if (error.code === "AUTH_004") return [signedOutMessage(error), "info"];
  return ["", "info"];
}

async function start() {
  let user;
  try {
    ({ user } = await api("/api/auth/me"));
  } catch (error) {
    $("boot").hidden = true;
    if (!signedIn) showSignIn(...startMessage(error));
    return;
  }
  await enterApp(user);
}

wire();
noteShareArrival();
registerShareWorker();
start();
