// Video tiles play their animated preview on hover, keyboard focus or a long press (a touch that lifts
// without opening the video); with reduced motion they show the still poster instead.

import { el, reducedMotion } from "./dom.js";

const LONG_PRESS_MS = 400;
const posterUrl = (item) => `/api/media/poster/${item.id}`;
const previewUrl = (item) => `/api/media/preview/${item.id}`;

function showPreview(link, item) {
  if (link.querySelector("img.preview")) return;
  const moving = el("img", { class: "preview", alt: "", "aria-hidden": "true", decoding: "async",
    draggable: "false" });
  moving.addEventListener("load", () => moving.classList.add("ready"), { once: true });
  moving.src = reducedMotion.matches ? posterUrl(item) : previewUrl(item);
  link.append(moving);
}

function hidePreview(link) {
  const moving = link.querySelector("img.preview");
  if (moving) {
    moving.removeAttribute("src");
    moving.remove();
  }
}

/** Hover (mouse), keyboard focus or press-and-hold (touch) plays a video tile's animated preview. */
export function wirePreview(link, item) {
  let pressTimer = null;
  let start = null;
  link.addEventListener("pointerenter", (event) => {
    if (event.pointerType === "mouse") showPreview(link, item);
  });
  link.addEventListener("pointerleave", () => hidePreview(link));
  link.addEventListener("focus", () => {
    if (link.matches(":focus-visible")) showPreview(link, item);
  });
  link.addEventListener("blur", () => hidePreview(link));
  // Touch: press and hold to preview; lifting the finger stops it without opening the video.
  link.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse") return;
    start = { x: event.clientX, y: event.clientY };
    clearTimeout(pressTimer);
    pressTimer = setTimeout(() => {
      link.dataset.suppressClick = "1";
      showPreview(link, item);
    }, LONG_PRESS_MS);
  });
  link.addEventListener("pointermove", (event) => {
    if (start && Math.hypot(event.clientX - start.x, event.clientY - start.y) > 10) clearTimeout(pressTimer);
  });
  const release = () => {
    clearTimeout(pressTimer);
    start = null;
    if (link.dataset.suppressClick) {
      hidePreview(link);
      setTimeout(() => delete link.dataset.suppressClick, 400); // if no click follows (touch moved)
    }
  };
  link.addEventListener("pointerup", release);
  link.addEventListener("pointercancel", release);
  link.addEventListener("contextmenu", (event) => {
    if (link.dataset.suppressClick || start) event.preventDefault(); // no "save image" menu on long-press
  });
}
