// "Change password", under My devices: the current password and a new one. A new password the policy
// refuses lists the rules it misses; success signs every other device out (this one stays).

import { api, SignedOut } from "./api.js";
import { $, el, toast } from "./dom.js";

/** `changed()` runs after a change (the device list is shorter now). */
export function initPassword(changed) {
  const form = $("password-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const current = $("current-password");
    const fresh = $("new-password");
    clear();
    if (!current.value || !fresh.value) {
      show(!current.value ? "Enter your current password." : "Enter a new password.");
      (current.value ? fresh : current).setAttribute("aria-invalid", "true");
      (current.value ? fresh : current).focus();
      return;
    }
    const button = $("password-submit");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      const result = await api("/api/auth/password", { method: "POST",
        body: { current_password: current.value, new_password: fresh.value } });
      clearPassword();
      const n = (result && result.signed_out) || 0;
      toast(n ? `Password changed. ${n} other device${n === 1 ? " was" : "s were"} signed out.`
        : "Password changed.");
      changed();
    } catch (error) {
      if (error instanceof SignedOut) return;
      refused(error, current, fresh);
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}

function refused(error, current, fresh) {
  const unmet = Array.isArray(error.details.unmet) ? error.details.unmet : [];
  if (error.code === "AUTH_001") {
    show("Your current password is not right. Check it and try again.");
    current.setAttribute("aria-invalid", "true");
    current.select();
    current.focus();
  } else if (unmet.length) {
    show("The new password needs:");
    $("new-password-rules").replaceChildren(...unmet.map((rule) => el("li", {}, rule)));
    fresh.setAttribute("aria-invalid", "true");
    fresh.focus();
  } else if (error.status === 429) {
    show("Too many attempts. Wait a few minutes, then try again.");
  } else {
    show(`Couldn't change the password. ${error.message}`);
  }
}

function show(text) {
  $("password-text").textContent = text;
  $("password-message").hidden = !text;
}

function clear() {
  show("");
  $("new-password-rules").replaceChildren();
  for (const input of $("password-form").querySelectorAll("input")) input.removeAttribute("aria-invalid");
}

/** Empty the form (after a change, and on sign-out). */
export function clearPassword() {
  clear();
  $("current-password").value = "";
  $("new-password").value = "";
}
