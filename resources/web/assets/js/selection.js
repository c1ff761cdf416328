// Choosing several tiles at once, to add them to an album. "Select" turns the tiles into checkboxes (a
// click or Space ticks one); the bar says how many are chosen and offers "Add to album" and "Cancel".

import { addToAlbum } from "./albumdialogs.js";
import { $ } from "./dom.js";

const chosen = new Set();
let selecting = false;

export const isSelecting = () => selecting;

export function initSelection() {
  $("select-button").addEventListener("click", () => start());
  $("selection-cancel").addEventListener("click", () => stop());
  $("selection-add").addEventListener("click", async () => {
    if (!chosen.size) return;
    if (await addToAlbum([...chosen])) stop();
  });
  $("grid").addEventListener("keydown", (event) => {
    if (!selecting || event.key !== " " || !event.target.matches(".tile")) return;
    event.preventDefault();
    toggle(event.target.dataset.id, event.target);
  });
  new MutationObserver(markNew).observe($("grid"), { childList: true, subtree: true });
}

function start() {
  selecting = true;
  chosen.clear();
  $("gallery-view").classList.add("selecting");
  $("select-button").hidden = true;
  $("selection-bar").hidden = false;
  for (const link of $("grid").querySelectorAll(".tile")) mark(link);
  update();
  const first = $("grid").querySelector(".tile");
  if (first) first.focus();
}

/** Leave selection mode (also when the scope changes or the page signs out). */
export function stop() {
  if (!selecting) return;
  const focusBar = $("selection-bar").contains(document.activeElement);
  selecting = false;
  chosen.clear();
  $("gallery-view").classList.remove("selecting");
  $("select-button").hidden = false;
  $("selection-bar").hidden = true;
  for (const link of $("grid").querySelectorAll(".tile")) {
    link.removeAttribute("role");
    link.removeAttribute("aria-checked");
  }
  if (focusBar) $("select-button").focus();
}

/** A tile was clicked while selecting: tick or untick it. */
export function toggle(id, link) {
  if (chosen.has(id)) chosen.delete(id);
  else chosen.add(id);
  mark(link);
  update();
}

/** Tiles added while selecting (another page, a live update) become checkboxes too. */
export function markNew() {
  if (!selecting) return;
  for (const link of $("grid").querySelectorAll(".tile:not([role])")) mark(link);
}

function mark(link) {
  link.setAttribute("role", "checkbox");
  link.setAttribute("aria-checked", String(chosen.has(link.dataset.id)));
}

function update() {
  const n = chosen.size;
  $("selection-count").textContent = n ? `${n} selected` : "Choose photos and videos";
  $("selection-add").disabled = n === 0;
}
