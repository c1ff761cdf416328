// Vault's gallery: sign-in, the library grid, the photo viewer and the HLS player.
// Authentication lives in HttpOnly cookies only: this script never sees or stores a token.

const $ = (id) => document.getElementById(id);
const REFRESH_EVERY_MS = 12 * 60 * 1000; // access tokens last 15 minutes
const PAGE = 60;
const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

const state = { items: [], page: 0, pages: 1, loading: false, type: "all", sort: "taken_at", q: "",
  index: -1, hls: null, saveTimer: null, refreshTimer: null, lastHeading: "" };

const MESSAGES = {
  AUTH_001: "Wrong name or password.",
  AUTH_004: "You were signed out. Please sign in again.",
  SEC_001: "Vault can only be reached from your home network or VPN.",
};

class SignedOut extends Error {}

// --- API -----------------------------------------------------------------------------------------------

async function call(path, { method = "GET", body, retry = true } = {}) {
  const response = await fetch(path, {
    method, credentials: "same-origin", cache: "no-store",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.ok) return response.status === 204 ? null : response.json();
  const error = (await response.json().catch(() => ({}))).error || { code: "SYSTEM_001", message: response.statusText };
  if (response.status === 401 && retry && path !== "/api/auth/refresh" && path !== "/api/auth/login") {
    if (await refresh()) return call(path, { method, body, retry: false });
    throw new SignedOut(MESSAGES.AUTH_004);
  }
  const failure = new Error(describe(error));
  failure.code = error.code;
  failure.status = response.status;
  throw failure;
}

function describe(error) {
  if (error.code === "AUTH_005" || (error.details && error.details.retry_after)) {
    const minutes = Math.max(1, Math.ceil((error.details.retry_after || 60) / 60));
    return `Too many attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
  }
  return MESSAGES[error.code] || error.message || "Something went wrong.";
}

async function refresh() {
  try {
    await call("/api/auth/refresh", { method: "POST", retry: false });
    return true;
  } catch {
    return false;
  }
}

function deviceName() {
  const ua = navigator.userAgent;
  const os = /iPhone/.test(ua) ? "iPhone" : /iPad/.test(ua) ? "iPad" : /Android/.test(ua) ? "Android"
    : /Mac OS X/.test(ua) ? "Mac" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "device";
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\//.test(ua) ? "Chrome"
    : /Safari\//.test(ua) ? "Safari" : "browser";
  const type = /iPhone|Android.*Mobile/.test(ua) ? "phone" : /iPad|Android/.test(ua) ? "tablet" : "desktop";
  return { device_name: `${browser} on ${os}`, device_type: type };
}

// --- signing in and out ----------------------------------------------------------------------------------

function showSignin(message) {
  wipeMedia();
  $("app").hidden = true;
  $("signin").hidden = false;
  const box = $("signin-message");
  box.textContent = message || "";
  box.hidden = !message;
  $("username").focus();
}

/** Remove every trace of media from the page: grid, viewer, player, pending timers. */
function wipeMedia() {
  closeViewer();
  $("grid").replaceChildren();
  $("devices").hidden = true;
  Object.assign(state, { items: [], page: 0, pages: 1, lastHeading: "" });
  clearInterval(state.refreshTimer);
}

async function signIn(event) {
  event.preventDefault();
  const button = $("signin-button");
  button.disabled = true;
  try {
    await call("/api/auth/login", { method: "POST", body: { username: $("username").value.trim(),
      password: $("password").value, ...deviceName() } });
    $("password").value = "";
    await showApp();
  } catch (error) {
    showSignin(error.message);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try { await call("/api/auth/logout", { method: "POST", retry: false }); } catch { /* signed out anyway */ }
  showSignin("");
}

function guard(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (error) {
      if (error instanceof SignedOut || error.status === 401) showSignin(MESSAGES.AUTH_004);
      else if (error.status === 403 && error.code === "SEC_001") showSignin(MESSAGES.SEC_001);
      else console.warn(error);
    }
  };
}

// --- the grid ------------------------------------------------------------------------------------------

const monthFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "long" });

function heading(item) {
  const when = new Date(state.sort === "taken_at" ? item.taken_at || item.created_at : item.created_at);
  return monthFormat.format(when);
}

function duration(seconds) {
  const s = Math.round(seconds || 0);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function tile(item, index) {
  const button = document.createElement("button");
  button.className = "tile";
  button.type = "button";
  button.dataset.index = index;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.alt = item.original_name;
  img.src = `/api/media/thumbnail/${item.id}`;
  button.append(img);
  if (item.type === "video") {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = `▶ ${duration(item.duration)}`;
    button.append(badge);
    button.setAttribute("aria-label", `Video ${item.original_name}, ${duration(item.duration)}`);
    const moving = () => { img.src = `/api/media/${reduceMotion.matches ? "poster" : "preview"}/${item.id}`; };
    const still = () => { img.src = `/api/media/thumbnail/${item.id}`; };
    button.addEventListener("pointerenter", moving);
    button.addEventListener("pointerleave", still);
    button.addEventListener("focus", moving);
    button.addEventListener("blur", still);
  }
  button.addEventListener("click", () => openViewer(index));
  return button;
}

async function loadMore() {
  if (state.loading || state.page >= state.pages) return;
  state.loading = true;
  try {
    const params = new URLSearchParams({ page: state.page + 1, limit: PAGE, sort: state.sort, order: "desc" });
    if (state.type !== "all") params.set("type", state.type);
    if (state.q) params.set("q", state.q);
    const data = await call(`/api/media/library?${params}`);
    state.page = data.pagination.page;
    state.pages = data.pagination.pages;
    const grid = $("grid");
    for (const item of data.items) {
      const label = heading(item);
      if (label !== state.lastHeading) {
        const h = document.createElement("h2");
        h.className = "heading";
        h.textContent = label;
        grid.append(h);
        state.lastHeading = label;
      }
      grid.append(tile(item, state.items.length));
      state.items.push(item);
    }
    $("empty").hidden = state.items.length > 0;
  } finally {
    state.loading = false;
  }
}

function reload() {
  $("grid").replaceChildren();
  Object.assign(state, { items: [], page: 0, pages: 1, lastHeading: "" });
  return guard(loadMore)();
}

async function showApp() {
  $("signin").hidden = true;
  $("app").hidden = false;
  clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(() => refresh().then((ok) => ok || showSignin(MESSAGES.AUTH_004)),
    REFRESH_EVERY_MS);
  await reload();
}

// --- viewer and player ---------------------------------------------------------------------------------

function savePosition() {
  const video = $("stage").querySelector("video");
  const item = state.items[state.index];
  if (!video || !item || !Number.isFinite(video.currentTime) || video.currentTime < 1) return;
  call(`/api/media/${item.id}/position`, { method: "PUT", body: { position: video.currentTime } })
    .catch(() => {});
}

function stopPlayer() {
  clearInterval(state.saveTimer);
  const video = $("stage").querySelector("video");
  if (video) {
    savePosition();
    video.pause();
  }
  if (state.hls) {
    state.hls.destroy();
    state.hls = null;
  }
  if (video) {
    video.removeAttribute("src");
    video.load();
  }
  $("quality").hidden = true;
  $("quality").replaceChildren();
}

function closeViewer() {
  stopPlayer();
  $("stage").replaceChildren();
  $("viewer").hidden = true;
  state.index = -1;
}

async function openViewer(index) {
  const item = state.items[index];
  if (!item) return;
  stopPlayer();
  state.index = index;
  $("viewer").hidden = false;
  $("viewer-title").textContent = item.original_name;
  $("viewer-prev").disabled = index === 0;
  $("viewer-next").disabled = index >= state.items.length - 1;
  const stage = $("stage");
  if (item.type === "image") {
    const img = document.createElement("img");
    img.alt = item.original_name;
    img.src = `/api/media/stream/${item.id}`;
    img.addEventListener("dblclick", () => img.classList.toggle("zoomed"));
    stage.replaceChildren(img);
  } else {
    await guard(playVideo)(item, stage);
  }
  $("viewer-close").focus();
}

async function playVideo(item, stage) {
  const details = await call(`/api/media/${item.id}`);
  const video = document.createElement("video");
  video.controls = true;
  video.playsInline = true;
  video.poster = `/api/media/poster/${item.id}`;
  video.setAttribute("aria-label", item.original_name);
  stage.replaceChildren(video);
  const source = `/api/media/stream/${item.id}`;
  const resume = () => {
    if (details.position > 1 && details.position < (item.duration || 0) - 2) video.currentTime = details.position;
    video.play().catch(() => {});
  };
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ startPosition: details.position > 1 ? details.position : -1 });
    state.hls = hls;
    hls.on(window.Hls.Events.MANIFEST_PARSED, (_event, data) => {
      // best first; values stay hls.js level indexes
      qualityMenu(data.levels.map((level, i) => ({ value: String(i), label: `${level.height}p` })).reverse());
      video.play().catch(() => {});
    });
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (data.response && data.response.code === 401) guard(() => call("/api/auth/me"))();
      else if (data.fatal) console.warn("playback error", data.details);
    });
    hls.loadSource(source);
    hls.attachMedia(video);
  } else {
    video.src = source; // Safari and iOS play HLS natively
    video.addEventListener("loadedmetadata", resume, { once: true });
  }
  video.addEventListener("pause", savePosition);
  state.saveTimer = setInterval(savePosition, 5000);
}

function qualityMenu(levels) {
  const select = $("quality");
  const options = [{ value: "-1", label: "Auto" }, ...levels].map(({ value, label }) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = label;
    return option;
  });
  select.replaceChildren(...options);
  select.hidden = levels.length < 2;
}

function step(delta) {
  const next = state.index + delta;
  if (next >= 0 && next < state.items.length) openViewer(next);
}

function onKey(event) {
  if (!$("devices").hidden && event.key === "Escape") { $("devices").hidden = true; return; }
  if ($("viewer").hidden) return;
  const video = $("stage").querySelector("video");
  const keys = {
    Escape: closeViewer,
    ArrowLeft: () => (video ? (video.currentTime -= 5) : step(-1)),
    ArrowRight: () => (video ? (video.currentTime += 5) : step(1)),
    " ": () => video && (video.paused ? video.play() : video.pause()),
    k: () => video && (video.paused ? video.play() : video.pause()),
    m: () => video && (video.muted = !video.muted),
    f: () => (document.fullscreenElement ? document.exitFullscreen() : $("stage").requestFullscreen()),
    PageUp: () => step(-1),
    PageDown: () => step(1),
  };
  if (keys[event.key] && event.target.tagName !== "SELECT") {
    event.preventDefault();
    keys[event.key]();
  }
}

function swipe() {
  let startX = null;
  $("stage").addEventListener("touchstart", (e) => { startX = e.touches.length === 1 ? e.touches[0].clientX : null; },
    { passive: true });
  $("stage").addEventListener("touchend", (e) => {
    if (startX === null || $("stage").querySelector("video")) return;
    const dx = e.changedTouches[0].clientX - startX;
    if (Math.abs(dx) > 60) step(dx < 0 ? 1 : -1);
  });
}

// --- devices -------------------------------------------------------------------------------------------

async function showDevices() {
  const { sessions } = await call("/api/sessions");
  const list = $("devices-list");
  list.replaceChildren(...sessions.map((s) => {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `${s.device_name || s.device_type || "Unknown device"}${s.current ? " (this device)" : ""}`;
    const small = document.createElement("small");
    small.textContent = `${s.ip_address} · last active ${new Date(s.last_activity_at).toLocaleString()}`;
    text.append(small);
    li.append(text);
    if (!s.current) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Sign out";
      button.addEventListener("click", guard(async () => {
        await call(`/api/sessions/${s.id}`, { method: "DELETE" });
        await showDevices();
      }));
      li.append(button);
    }
    return li;
  }));
  $("devices").hidden = false;
  $("devices-close").focus();
}

// --- start ---------------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout-button").addEventListener("click", signOut);
  $("devices-button").addEventListener("click", guard(showDevices));
  $("devices-close").addEventListener("click", () => { $("devices").hidden = true; });
  $("devices-others").addEventListener("click", guard(async () => {
    await call("/api/sessions", { method: "DELETE" });
    await showDevices();
  }));
  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer-prev").addEventListener("click", () => step(-1));
  $("viewer-next").addEventListener("click", () => step(1));
  $("quality").addEventListener("change", (e) => { if (state.hls) state.hls.currentLevel = Number(e.target.value); });
  for (const button of document.querySelectorAll(".filters button")) {
    button.addEventListener("click", () => {
      state.type = button.dataset.type;
      for (const b of document.querySelectorAll(".filters button")) b.setAttribute("aria-pressed", b === button);
      reload();
    });
  }
  $("sort").addEventListener("change", (e) => { state.sort = e.target.value; reload(); });
  let typing;
  $("search").addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = e.target.value.trim(); reload(); }, 300);
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("pagehide", savePosition);
  swipe();
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) guard(loadMore)();
  }, { rootMargin: "800px" }).observe($("sentinel"));
}

async function start() {
  wire();
  try {
    await call("/api/auth/me");
    await showApp();
  } catch (error) {
    showSignin(error instanceof SignedOut ? "" : error.status === 403 ? describe(error) : "");
  }
}

start();
