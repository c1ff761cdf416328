// "My devices": this user's signed-in sessions; sign one out, or all the others.

import { api, SignedOut } from "./api.js";
import { $, el, icon, toast } from "./dom.js";
import { ago, longDate, parseDate } from "./format.js";

let loading = 0;

export function initDevices() {
  $("devices-others").addEventListener("click", async () => {
    const button = $("devices-others");
    button.disabled = true;
    try {
      const result = await api("/api/sessions", { method: "DELETE" });
      const n = result.ended || 0;
      toast(n ? `Signed out ${n} other device${n === 1 ? "" : "s"}.` : "No other devices were signed in.");
    } catch (error) {
      if (!(error instanceof SignedOut)) toast(`Couldn't sign the other devices out. ${error.message}`, { error: true });
    }
    await showDevices(); // also decides whether the button stays enabled
  });
}

export function setUser(user) {
  $("devices-user").textContent = user ? user.username : "";
}

export function clearDevices() {
  loading += 1;
  $("devices-list").replaceChildren();
  $("devices-user").textContent = "";
}

export async function showDevices() {
  const ticket = ++loading;
  const list = $("devices-list");
  list.setAttribute("aria-busy", "true");
  try {
    const { sessions } = await api("/api/sessions");
    if (ticket !== loading) return;
    sessions.sort((a, b) => (b.current - a.current) || (b.last_activity_at || "").localeCompare(a.last_activity_at || ""));
    list.replaceChildren(...sessions.map(row));
    $("devices-others").disabled = !sessions.some((s) => !s.current);
  } catch (error) {
    if (ticket === loading && !(error instanceof SignedOut)) {
      list.replaceChildren(el("li", { class: "device-error" }, `Couldn't load your devices. ${error.message}`));
      $("devices-others").disabled = false;
    }
  } finally {
    if (ticket === loading) list.removeAttribute("aria-busy");
  }
}

function row(session) {
  const type = ["phone", "tablet", "desktop"].includes(session.device_type) ? session.device_type : "desktop";
  const name = session.device_name || "Unknown device";
  const seen = parseDate(session.last_activity_at);
  const nameLine = el("p", { class: "device-name" }, name);
  if (session.current) nameLine.append(el("span", { class: "tag" }, "This device"));
  const when = el("time", { datetime: session.last_activity_at || "", title: longDate(seen) },
    session.current ? "active now" : `active ${ago(seen)}`);
  const facts = el("p", { class: "device-facts" }, session.ip_address ? `${session.ip_address} · ` : "", when);
  const item = el("li", { class: "device" }, el("span", { class: "device-icon" }, icon(type)),
    el("div", { class: "device-text" }, nameLine, facts));
  if (!session.current) {
    const button = el("button", { type: "button", class: "button" }, "Sign out");
    button.setAttribute("aria-label", `Sign out ${name}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api(`/api/sessions/${encodeURIComponent(session.id)}`, { method: "DELETE" });
        toast(`Signed out ${name}.`);
        await showDevices();
        $("devices-title").focus();
      } catch (error) {
        button.disabled = false;
        if (!(error instanceof SignedOut)) toast(`Couldn't sign that device out. ${error.message}`, { error: true });
      }
    });
    item.append(button);
  }
  return item;
}
