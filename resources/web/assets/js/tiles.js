// One grid cell: the tile (a link opening the item: its thumbnail, or for a video still converting a
// placeholder saying how far it is) and, beside it, the heart that marks it a favorite. The heart is not
// inside the link: a control within a control is unreachable for assistive technology.

import { api } from "./api.js";
import { el, icon, reducedMotion } from "./dom.js";
import { heartButton } from "./favorites.js";
import { duration } from "./format.js";
import { wirePreview } from "./previews.js";

export const thumbnailUrl = (item) => `/api/media/thumbnail/${item.id}`;
export const posterUrl = (item) => `/api/media/poster/${item.id}`;

/** What a tile shows at rest: video thumbnails are animated, so reduced motion gets the still poster. */
export const restingUrl = (item) => (item.type === "video" && reducedMotion.matches ? posterUrl(item)
  : thumbnailUrl(item));

export const percent = (item) => Math.max(0, Math.min(99, Math.floor((item.progress || 0) * 100)));

/** The cell for `item`; `activate(id, link)` runs on a plain click (or Enter) on its tile. */
export function cell(item, activate) {
  return el("div", { class: "cell", "data-id": item.id }, tile(item, activate), heartButton(item));
}

/** The tile link alone (a converting video's becomes an ordinary one in place when it is ready). */
export function tile(item, activate) {
  const link = el("a", { class: "tile", href: `#/view/${item.id}`, "data-id": item.id, "data-type": item.type,
    draggable: "false" });
  if (item.status === "converting") convertingTile(link, item);
  else pictureTile(link, item);
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (link.dataset.suppressClick) {
      delete link.dataset.suppressClick;
      return;
    }
    activate(item.id, link);
  });
  return link;
}

function pictureTile(link, item) {
  const img = el("img", { class: "thumb", alt: item.original_name, loading: "lazy", decoding: "async",
    width: 300, height: 300, draggable: "false" });
  img.addEventListener("load", () => link.classList.add("loaded"), { once: true });
  img.addEventListener("error", () => imageFailed(img));
  img.src = restingUrl(item);
  link.append(img);
  if (item.type === "video") {
    link.append(el("span", { class: "badge" }, icon("play"), el("span", { class: "sr-only" }, "Video, "),
      duration(item.duration)));
    wirePreview(link, item);
  }
}

/** A thumbnail failed: most likely the access cookie lapsed; check the session, then try once more. */
function imageFailed(img) {
  if (img.dataset.retried) return;
  img.dataset.retried = "1";
  api("/api/auth/me").then(() => {
    const src = img.getAttribute("src");
    if (img.isConnected && src) img.setAttribute("src", src); // the same URL again: a fresh request
  }).catch(() => {});
}

/** No pictures exist before the commit: a placeholder, the name for screen readers, and how far it is. */
function convertingTile(link, item) {
  link.classList.add("converting");
  const meter = el("progress", { class: "meter", max: 100, value: percent(item), "aria-hidden": "true" });
  link.append(
    el("span", { class: "placeholder-icon", "aria-hidden": "true" }, icon("video")),
    el("span", { class: "converting-label" }, el("span", { class: "sr-only" }, `${item.original_name}, `),
      el("span", { class: "percent" }, `Converting ${percent(item)}%`)),
    meter,
  );
}

/** Show a converting tile's new progress. */
export function showProgress(link, item) {
  const label = link.querySelector(".percent");
  if (label) label.textContent = `Converting ${percent(item)}%`;
  const meter = link.querySelector("progress");
  if (meter) meter.value = percent(item);
}
