// The one way the page talks to Vault: same-origin fetch carrying the HttpOnly cookies, silent token
// refresh, and detection of a session that has ended.
//
// Tokens live only in the HttpOnly cookies Vault sets; this script never sees them. What it keeps (in
// localStorage, shared with other tabs) is just *when* the cookies were last issued and how long the access
// token lasts, so it can refresh a little before expiry, and only while someone is using the page: an
// unattended page lets its access token lapse, so the server's idle timeout still signs it out.

const CLOCK_KEY = "vault.tokenClock"; // {at: ms, ttl: ms}; a timestamp, never a token
const REFRESH_BEFORE_MS = 120_000; // refresh two minutes before the access token expires
const TICK_MS = 15_000;
const RETRY_FAILED_REFRESH_MS = 10_000;
const ACTIVITY_EVENTS = ["pointerdown", "keydown", "wheel", "touchstart", "scroll"];
const AUTH_ENDPOINT = /^\/api\/auth\/(login|refresh)(\?|$)/;

export class ApiError extends Error {
  constructor(status, error = {}) {
    super(error.message || (status ? `HTTP ${status}` : "Vault can't be reached"));
    this.status = status;
    this.code = error.code || (status ? "SYSTEM_001" : "NETWORK");
    this.details = error.details || {};
  }
}

/** The session is over (signed out, revoked, idle, expired) or this network is refused: back to sign-in. */
export class SignedOut extends ApiError {}

const signedOutHandlers = new Set();
let memoryClock = { at: 0, ttl: 900_000 };
let refreshing = null;
let lastRefreshFailure = 0;
let lastActivity = Date.now();
let ticker = null;

export function onSignedOut(handler) {
  signedOutHandlers.add(handler);
}

function signedOut(error) {
  const ended = error instanceof SignedOut ? error
    : new SignedOut(error.status, { code: error.code, message: error.message, details: error.details });
  for (const handler of signedOutHandlers) handler(ended);
  return ended;
}

// --- the token clock ---------------------------------------------------------------------------------

function readClock() {
  try {
    const saved = JSON.parse(localStorage.getItem(CLOCK_KEY) || "null");
    if (saved && Number.isFinite(saved.at) && Number.isFinite(saved.ttl)) memoryClock = saved;
  } catch { /* storage disabled: the in-memory clock is enough for this tab */ }
  return memoryClock;
}

/** Note that Vault just issued fresh cookies (sign-in or refresh) lasting `expiresIn` seconds. */
export function noteTokens(expiresIn) {
  memoryClock = { at: Date.now(), ttl: Math.max(60, Number(expiresIn) || 900) * 1000 };
  lastRefreshFailure = 0;
  try { localStorage.setItem(CLOCK_KEY, JSON.stringify(memoryClock)); } catch { /* see readClock */ }
}

export function forgetTokens() {
  memoryClock = { at: 0, ttl: 900_000 };
  try { localStorage.removeItem(CLOCK_KEY); } catch { /* see readClock */ }
}

function refreshDue(marginMs = REFRESH_BEFORE_MS) {
  const { at, ttl } = readClock();
  return !at || Date.now() >= at + ttl - marginMs;
}

// --- requests ------------------------------------------------------------------------------------------

async function send(path, { method = "GET", body, keepalive = false, signal } = {}) {
  const init = { method, credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
    keepalive, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { code: "NETWORK", message: "Vault can't be reached. Check your connection." });
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, (data && data.error) || { message: response.statusText });
    const retryAfter = Number(response.headers.get("Retry-After"));
    if (retryAfter && !error.details.retry_after) error.details.retry_after = retryAfter;
    throw error;
  }
  return data;
}

/**
 * Call the API. A 401 triggers one silent refresh and one retry; if the session is really over, every
 * onSignedOut handler runs and a SignedOut error is thrown. Sign-in and refresh errors go to the caller.
 */
export async function api(path, options = {}) {
  if (AUTH_ENDPOINT.test(path)) return send(path, options);
  if (refreshing) await refreshing.catch(() => {}); // never race a rotation with the old cookie
  try {
    return await send(path, options);
  } catch (error) {
    if (error.status === 403 && error.code === "SEC_001") throw signedOut(error);
    // A wrong password (changing it) is the asker's mistake, not a lapsed token: it goes to the caller.
    if (error.status !== 401 || error.code === "AUTH_001" || options.retry === false) throw error;
    await refresh(error);
  }
  try {
    return await send(path, options);
  } catch (error) {
    if (error.status === 401) throw signedOut(error);
    throw error;
  }
}

/**
 * Rotate the cookies (POST /api/auth/refresh). Concurrent callers share one request, and tabs take turns
 * (Web Locks): the refresh token changes on every use and presenting a used one ends the session.
 * `cause` is the 401 that prompted it: when it already said why the session ended, that reason is kept.
 */
export function refresh(cause = null) {
  if (refreshing) return refreshing;
  const asked = Date.now();
  const rotate = async () => {
    if (readClock().at > asked) return; // another tab rotated the shared cookies while we waited
    try {
      const data = await send("/api/auth/refresh", { method: "POST" });
      noteTokens(data.expires_in);
    } catch (error) {
      lastRefreshFailure = Date.now();
      if (error.status === 401) throw signedOut(cause && cause.code === "AUTH_004" ? cause : error);
      if (error.status === 403 && error.code === "SEC_001") throw signedOut(error);
      throw error;
    }
  };
  const locks = navigator.locks;
  refreshing = (locks ? locks.request("vault-token-refresh", rotate) : rotate()).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/**
 * For requests the page does not make itself (hls.js segments and keys): resolves once the cookies are
 * good for a while longer, refreshing first if needed. Never rejects; failures reach onSignedOut.
 */
export function ensureFresh() {
  if (refreshing) return refreshing.catch(() => {});
  if (refreshDue(30_000)) return refresh().catch(() => {});
  return Promise.resolve();
}

// --- keeping a used page signed in -------------------------------------------------------------------------

/** Someone is using the page (also called while a video plays). Checks the clock at most once a second. */
export function markActivity() {
  lastActivity = Date.now();
  if (checkTimer) return;
  checkTimer = setTimeout(() => {
    checkTimer = null;
    maybeRefresh();
  }, Math.max(0, lastCheck + 1000 - lastActivity));
}

let lastCheck = 0;
let checkTimer = null;

/** Refresh when due, if the page was used since the cookies were issued (so an idle page lapses). */
function maybeRefresh() {
  lastCheck = Date.now();
  if (!ticker || refreshing || !refreshDue() || lastActivity <= readClock().at) return;
  if (Date.now() - lastRefreshFailure < RETRY_FAILED_REFRESH_MS) return;
  refresh().catch(() => {});
}

function onVisible() {
  if (document.visibilityState === "visible") markActivity();
}

export function startSessionClock() {
  stopSessionClock();
  lastActivity = Date.now();
  ticker = setInterval(maybeRefresh, TICK_MS);
  for (const type of ACTIVITY_EVENTS) window.addEventListener(type, markActivity, { passive: true, capture: true });
  document.addEventListener("visibilitychange", onVisible);
}

export function stopSessionClock() {
  clearInterval(ticker);
  clearTimeout(checkTimer);
  ticker = null;
  checkTimer = null;
  for (const type of ACTIVITY_EVENTS) window.removeEventListener(type, markActivity, { capture: true });
  document.removeEventListener("visibilitychange", onVisible);
}
