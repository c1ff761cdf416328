// Hearts: each person's own favorites. One heart beside every tile and one in the viewer; all the hearts
// for an item change together, and the item objects the page holds learn the new value.

import { api, SignedOut } from "./api.js";
import { el, icon, toast } from "./dom.js";

const label = (item) => `Favorite: ${item.original_name}`;

/** The heart for a tile (aria-pressed says whether the item is a favorite). */
export function heartButton(item) {
  const button = el("button", { type: "button", class: "heart", "data-id": item.id }, icon("heart"));
  paint(button, item.id, Boolean(item.favorite), label(item));
  button.addEventListener("click", () => toggleFavorite(item.id));
  return button;
}

function paint(button, id, on, name) {
  button.dataset.id = id;
  button.setAttribute("aria-pressed", String(on));
  button.setAttribute("aria-label", name);
  button.title = on ? "Remove from favorites" : "Add to favorites";
}

/** Point the viewer's heart at `item`. */
export function paintViewerHeart(button, item) {
  paint(button, item.id, Boolean(item.favorite), "Favorite");
}

const holders = new Set(); // functions returning the item objects the page holds for an id

/** `find(id)` returns the item objects to update when an item's heart changes. */
export function holdItems(find) {
  holders.add(find);
}

/** Flip an item's heart (PUT or DELETE /api/media/ID/favorite) and show the answer everywhere. */
export async function toggleFavorite(id) {
  const buttons = () => document.querySelectorAll(`.heart[data-id="${CSS.escape(id)}"]`);
  const first = buttons()[0];
  const on = !(first && first.getAttribute("aria-pressed") === "true");
  try {
    const result = await api(`/api/media/${encodeURIComponent(id)}/favorite`, { method: on ? "PUT" : "DELETE" });
    const now = result && typeof result.favorite === "boolean" ? result.favorite : on;
    for (const find of holders) for (const item of find(id)) item.favorite = now;
    for (const button of buttons()) {
      button.setAttribute("aria-pressed", String(now));
      button.title = now ? "Remove from favorites" : "Add to favorites";
    }
  } catch (error) {
    if (!(error instanceof SignedOut)) toast(`Couldn't change the favorite. ${error.message}`, { error: true });
  }
}
