// Vault's gallery: starts the page, switches between sign-in, the library, the viewer and "My devices"
// (#/, #/view/ID, #/devices), and makes sure nothing stays on screen once the session is over.

import { api, forgetTokens, onSignedOut, startSessionClock, stopSessionClock } from "./api.js";
import { hideSignIn, initSignIn, NETWORK_REFUSED, showSignIn, signedOutMessage, signOut } from "./auth.js";
import { clearDevices, initDevices, setUser, showDevices } from "./devices.js";
import { $, clearToast, installIcons, typingInto } from "./dom.js";
import * as gallery from "./gallery.js";
import { loadHls } from "./player.js";
import { closeViewer, initViewer, isOpen, openViewer } from "./viewer.js";

const channel = "BroadcastChannel" in window ? new BroadcastChannel("vault") : null;
let signedIn = false;
let lastRoute = null;

// --- routes ----------------------------------------------------------------------------------------------

function parseRoute() {
  const path = location.hash.replace(/^#\/?/, "");
  const view = /^view\/([0-9a-f]{32})$/.exec(path);
  if (view) return { name: "view", id: view[1] };
  return { name: path === "devices" ? "devices" : "grid" };
}

function route() {
  if (!signedIn) return;
  const key = location.hash || "#/";
  if (key === lastRoute) return;
  lastRoute = key;
  const { name, id } = parseRoute();
  $("devices-view").hidden = name !== "devices";
  $("gallery-view").hidden = name === "devices";
  if (name === "devices") $("devices-link").setAttribute("aria-current", "page");
  else $("devices-link").removeAttribute("aria-current");
  if (name === "view") {
    openViewer(id);
    return;
  }
  if (isOpen()) restoreFocus(closeViewer());
  if (name === "devices") {
    document.title = "My devices · Vault";
    showDevices();
    $("devices-title").focus();
  } else {
    document.title = "Vault";
    gallery.fill(); // in case the grid was hidden while it should have been filling
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
  $("gallery-view").hidden = parseRoute().name === "devices";
  setUser(user);
  startSessionClock();
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
  closeViewer({ save: false });
  gallery.clearGallery();
  gallery.resetFilters();
  clearDevices();
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
  gallery.initGallery((item) => go(`#/view/${item.id}`, { state: { viewer: true } }));
  initViewer({
    requestClose: closeRequested,
    navigated: (id) => {
      history.replaceState(history.state, "", `#/view/${id}`);
      lastRoute = location.hash;
    },
  });
  initDevices();
  $("signout-button").addEventListener("click", async () => {
    const button = $("signout-button");
    button.disabled = true;
    closeViewer(); // saves the playback position first
    await signOut();
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
    if (event.key === "/" && signedIn && !isOpen() && !typingInto(event.target) && !$("gallery-view").hidden) {
      event.preventDefault();
      $("search").focus();
    }
  });
}

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
start();
