// The album dialogs: a new album, renaming one, sharing one with other accounts (GET /api/accounts lists
// them), and adding items to an album (from the viewer, or a selection in the grid).

import { mayChange } from "./account.js";
import { api } from "./api.js";
import { el, toast } from "./dom.js";
import { openDialog, textField } from "./dialogs.js";

const plural = (n, one) => `${n.toLocaleString()} ${one}${n === 1 ? "" : "s"}`;

/** Check a name typed into a dialog; throws (the dialog shows it) when it is empty. */
function nameFrom(form) {
  const input = form.querySelector("input[name='name']");
  const name = input.value.trim();
  input.setAttribute("aria-invalid", String(!name));
  if (!name) throw new Error("Give the album a name.");
  return name;
}

/** Ask for a name and create the album; resolves to it (or null). */
export function newAlbum() {
  return openDialog({
    title: "New album",
    body: textField("Album name", { name: "name", maxlength: 200, required: true }),
    submitLabel: "Create album",
    submit: async (form) => {
      const album = await api("/api/albums", { method: "POST", body: { name: nameFrom(form) } });
      toast(`Created the album “${album.name}”.`);
      return album;
    },
  });
}

export function renameAlbum(album) {
  const field = textField("Album name", { name: "name", maxlength: 200, required: true, value: album.name });
  return openDialog({
    title: "Rename album",
    body: field,
    submitLabel: "Rename",
    submit: async (form) => api(`/api/albums/${album.id}`, { method: "PATCH", body: { name: nameFrom(form) } }),
  });
}

/** Share with, or stop sharing with, each account: every checkbox acts at once. */
export async function shareAlbum(album) {
  const listed = await api("/api/accounts"); // {"accounts": [...]}, or the bare list
  const accounts = (Array.isArray(listed) ? listed : listed.accounts) || [];
  const shared = new Set((album.shared_with || []).map((name) => name.toLowerCase()));
  const status = el("p", { class: "dialog-status", role: "status" });
  const rows = accounts.map((account) => {
    const box = el("input", { type: "checkbox", value: account.username,
      checked: shared.has(account.username.toLowerCase()) });
    box.addEventListener("change", async () => {
      box.disabled = true;
      const name = account.username;
      try {
        if (box.checked) {
          await api(`/api/albums/${album.id}/shares`, { method: "POST", body: { username: name } });
        } else {
          await api(`/api/albums/${album.id}/shares/${encodeURIComponent(name)}`, { method: "DELETE" });
        }
        status.textContent = box.checked ? `Shared with ${name}.` : `No longer shared with ${name}.`;
      } catch (error) {
        box.checked = !box.checked;
        status.textContent = `Couldn't change sharing with ${name}. ${error.message}`;
      } finally {
        box.disabled = false;
      }
    });
    return el("li", {}, el("label", { class: "check" }, box, el("span", {}, account.username),
      el("span", { class: "role" }, account.role)));
  });
  const body = accounts.length
    ? el("fieldset", { class: "choices" }, el("legend", {}, "Share with"), el("ul", { class: "choice-list" }, rows))
    : el("p", {}, "There is nobody else to share with yet. An administrator adds accounts in Vault's Users tab.");
  await openDialog({ title: `Share “${album.name}”`, body: [body, status],
    description: "Guests see only the albums shared with them; family members see the whole library." });
}

/** Add items (ids) to an album chosen, or made, here. */
export async function addToAlbum(ids) {
  const { albums } = await api("/api/albums");
  const mine = albums.filter(mayChange);
  const choices = mine.map((album, index) => el("li", {}, el("label", { class: "check" },
    el("input", { type: "radio", name: "album", value: album.id, checked: index === 0 }),
    el("span", {}, album.name), el("span", { class: "role" }, plural(album.item_count || 0, "item")))));
  const fresh = el("input", { type: "radio", name: "album", value: "", checked: mine.length === 0 });
  const name = textField("New album's name", { name: "name", maxlength: 200 });
  name.querySelector("input").addEventListener("input", () => { fresh.checked = true; });
  choices.push(el("li", {}, el("label", { class: "check" }, fresh, el("span", {}, "A new album")), name));
  const what = ids.length === 1 ? "this item" : plural(ids.length, "item");
  return openDialog({
    title: `Add ${what} to an album`,
    body: el("fieldset", { class: "choices" }, el("legend", {}, "Album"), el("ul", { class: "choice-list" }, choices)),
    submitLabel: "Add",
    submit: async (form) => {
      let id = form.querySelector("input[name='album']:checked")?.value;
      let title = mine.find((album) => album.id === id)?.name;
      if (!id) {
        const album = await api("/api/albums", { method: "POST", body: { name: nameFrom(form) } });
        [id, title] = [album.id, album.name];
      }
      await api(`/api/albums/${id}/items`, { method: "POST", body: { media_ids: ids } });
      toast(`Added ${what} to “${title}”.`);
      return id;
    },
  });
}
