// The sign-in page: the form, its error messages (wrong password, locked out, wrong network, signed out),
// naming this device for "My devices", and signing out.

import { api, forgetTokens, noteTokens } from "./api.js";
import { $, icon } from "./dom.js";
import { countdown } from "./format.js";

export const NETWORK_REFUSED = "Vault can only be used from your home network or its VPN. "
  + "Connect to your home Wi-Fi (or the VPN) and try again.";

let lockTimer = null;

/** "Chrome on Android" / "phone", from the user agent (Client Hints where the browser offers them). */
export function describeDevice(ua = navigator.userAgent, touchPoints = navigator.maxTouchPoints || 0) {
  const hints = navigator.userAgentData;
  const iPadOS = /Macintosh/.test(ua) && touchPoints > 1; // iPadOS asks for desktop sites by default
  const os = /iPhone|iPod/.test(ua) ? "iPhone"
    : /iPad/.test(ua) || iPadOS ? "iPad"
      : /Android/.test(ua) ? "Android"
        : /CrOS/.test(ua) ? "ChromeOS"
          : /Tizen|Web0S|webOS|SmartTV|SMART-TV|HbbTV|AFT[A-Z]|BRAVIA|GoogleTV|Android TV/.test(ua) ? "TV"
            : /Mac OS X|Macintosh/.test(ua) ? "Mac"
              : /Windows/.test(ua) ? "Windows"
                : /Linux|X11/.test(ua) ? "Linux" : "";
  const browser = /SamsungBrowser\//.test(ua) ? "Samsung Internet"
    : /EdgA?\/|EdgiOS\//.test(ua) ? "Edge"
      : /OPR\/|Opera/.test(ua) ? "Opera"
        : /Firefox\/|FxiOS\//.test(ua) ? "Firefox"
          : /CriOS\/|Chrome\/|Chromium\//.test(ua) ? "Chrome"
            : /Safari\//.test(ua) ? "Safari" : "Browser";
  const mobile = hints ? hints.mobile : /Mobi|iPhone|iPod/.test(ua);
  const type = /iPhone|iPod/.test(ua) ? "phone"
    : /iPad/.test(ua) || iPadOS || (/Android/.test(ua) && !/Mobile/.test(ua)) || /Tablet/.test(ua) ? "tablet"
      : mobile ? "phone" : "desktop";
  return { device_name: os ? `${browser} on ${os}` : browser, device_type: type };
}

// --- messages ----------------------------------------------------------------------------------------

/** What to tell someone whose session ended (error from api.js's SignedOut). */
export function signedOutMessage(error) {
  if (!error) return "";
  if (error.code === "SEC_001") return NETWORK_REFUSED;
  if (error.code === "NETWORK") return "";
  if (/inactiv|idle/i.test(error.message)) {
    return "You were signed out after a period of inactivity. Sign in again to continue.";
  }
  if (/expired/i.test(error.message) && error.code === "AUTH_004") {
    return "You were signed out because your session expired. Sign in again to continue.";
  }
  return "You were signed out: this device's session was ended, perhaps from another device. "
    + "Sign in again to continue.";
}

function showMessage(text, kind = "error") {
  const box = $("signin-message");
  box.replaceChildren();
  if (text) box.append(icon(kind === "info" ? "signout" : "alert"), document.createTextNode(text));
  box.className = `notice ${kind}`;
  box.hidden = !text;
}

function showLockout(seconds) {
  clearInterval(lockTimer);
  const until = Date.now() + seconds * 1000;
  const update = () => {
    const left = (until - Date.now()) / 1000;
    if (left <= 0) {
      clearInterval(lockTimer);
      showMessage("You can try signing in again now.", "info");
      return;
    }
    const text = `Too many attempts. Sign-in is locked; try again in ${countdown(left)}.`;
    const box = $("signin-message");
    if (box.hidden || !box.dataset.lock) {
      showMessage(text);
      box.dataset.lock = "1";
    } else {
      box.lastChild.textContent = text;
    }
  };
  update();
  lockTimer = setInterval(update, 1000);
}

function describeSignInError(error) {
  switch (error.code) {
    case "AUTH_001": return "Wrong name or password. Check them and try again.";
    case "SEC_001": return NETWORK_REFUSED;
    case "AUTH_004": return "This account can't sign in right now. Ask the person who runs Vault.";
    case "VALIDATION_001": return "Enter your name and password.";
    case "NETWORK": return "Vault can't be reached. Check that this device is on your home network.";
    default: return error.message || "Something went wrong. Try again.";
  }
}

// --- the page ----------------------------------------------------------------------------------------

/** Show the sign-in page, with `message` (e.g. "You were signed out") when there is one. */
export function showSignIn(message = "", kind = "info") {
  clearInterval(lockTimer);
  delete $("signin-message").dataset.lock;
  showMessage(message, kind);
  $("password").value = "";
  $("signin-view").hidden = false;
  document.title = "Sign in · Vault";
  ($("username").value ? $("password") : $("username")).focus();
}

export function hideSignIn() {
  clearInterval(lockTimer);
  $("signin-view").hidden = true;
}

/** Wire the form; `onSignedIn(user)` runs after a successful sign-in. */
export function initSignIn(onSignedIn) {
  const form = $("signin-form");
  const button = $("signin-button");
  const toggle = $("password-toggle");
  toggle.addEventListener("click", () => {
    const show = $("password").type === "password";
    $("password").type = show ? "text" : "password";
    toggle.setAttribute("aria-pressed", String(show));
    toggle.setAttribute("aria-label", show ? "Hide password" : "Show password");
    toggle.replaceChildren(icon(show ? "eye-off" : "eye"));
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("username").value.trim();
    const password = $("password").value;
    if (!username || !password) {
      showMessage(describeSignInError({ code: "VALIDATION_001" }));
      (username ? $("password") : $("username")).focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Signing in…";
    form.setAttribute("aria-busy", "true");
    try {
      const data = await api("/api/auth/login", { method: "POST",
        body: { username, password, ...describeDevice() } });
      noteTokens(data.expires_in);
      $("password").value = "";
      $("password").type = "password";
      showMessage("");
      await onSignedIn(data.user);
    } catch (error) {
      if (error.status === 429) {
        showLockout(Number(error.details.retry_after) || 60);
      } else {
        clearInterval(lockTimer);
        delete $("signin-message").dataset.lock;
        showMessage(describeSignInError(error));
      }
      $("password").select();
      $("password").focus();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
      form.removeAttribute("aria-busy");
    }
  });
}

/** Sign this device out (the server clears the cookies). Works even if the session already ended. */
export async function signOut() {
  try {
    await api("/api/auth/logout", { method: "POST" }); // an expired access token is refreshed first
  } catch { /* already signed out, or unreachable: the page forgets the session either way */ }
  forgetTokens();
}
