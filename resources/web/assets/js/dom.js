// Small DOM helpers and the icon set (inline SVG built here, so the HTML needs no inline markup or styles).

export const $ = (id) => document.getElementById(id);

/** Create an element: el("a", { class: "tile", href }, child, "text"). Attributes only, no inline styles. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
// 24×24 outline icons, drawn with the current text colour.
const ICONS = {
  close: ["M6 6l12 12", "M18 6L6 18"],
  prev: ["M15 5l-7 7 7 7"],
  next: ["M9 5l7 7-7 7"],
  back: ["M19 12H5", "M11 18l-6-6 6-6"],
  search: ["M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 1 0 0-13z", "M20 20l-4.8-4.8"],
  "zoom-in": ["M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 1 0 0-13z", "M20 20l-4.8-4.8", "M10.5 8v5", "M8 10.5h5"],
  "zoom-out": ["M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 1 0 0-13z", "M20 20l-4.8-4.8", "M8 10.5h5"],
  photo: ["M5 4h14a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z", "M3 16l5-5 4 4 3-3 6 6",
    "M15.5 8.5h.01"],
  video: ["M4 6h11a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2z", "M17 10.5l5-3v9l-5-3"],
  play: { fill: "M8 5.5v13a1 1 0 0 0 1.5.9l10-6.5a1 1 0 0 0 0-1.7l-10-6.6A1 1 0 0 0 8 5.5z" },
  devices: ["M4 5h13a1 1 0 0 1 1 1v1", "M3 5v10h9", "M1.5 18h10.5", "M15 10h6a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1h-6a1 1 0 0 1-1-1v-8a1 1 0 0 1 1-1z"],
  phone: ["M8 2.5h8a1.5 1.5 0 0 1 1.5 1.5v16a1.5 1.5 0 0 1-1.5 1.5H8A1.5 1.5 0 0 1 6.5 20V4A1.5 1.5 0 0 1 8 2.5z",
    "M11 18.5h2"],
  tablet: ["M6 2.5h12a2 2 0 0 1 2 2v15a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2v-15a2 2 0 0 1 2-2z", "M11 18.5h2"],
  desktop: ["M4 4h16a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1z", "M8 20h8", "M12 16v4"],
  signout: ["M9 20H5a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1h4", "M16 16l4-4-4-4", "M20 12H9"],
  eye: ["M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12z", "M12 9a3 3 0 1 0 0 6 3 3 0 1 0 0-6z"],
  "eye-off": ["M2 12s3.5-7 10-7c2 0 3.7.6 5.1 1.6M22 12s-3.5 7-10 7c-2 0-3.7-.6-5.1-1.6",
    "M9.9 14.1a3 3 0 0 1 4.2-4.2", "M3 3l18 18"],
  alert: ["M12 3l10 18H2z", "M12 10v4", "M12 17.5h.01"],
  heart: ["M12 20s-7.2-4.4-8.9-9C2 7.9 3.9 4.5 7.2 4.5c2 0 3.4 1.1 4.8 2.9 1.4-1.8 2.8-2.9 4.8-2.9 3.3 0 5.2 3.4 4.1 6.5-1.7 4.6-8.9 9-8.9 9z"],
  plus: ["M12 5v14", "M5 12h14"],
  album: ["M5 8h14a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V9a1 1 0 0 1 1-1z", "M7 5h10", "M4 17l4-4 3 3 3-3 6 5"],
  share: ["M4 13v6a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-6", "M16 7l-4-4-4 4", "M12 3v12"],
  check: ["M5 12.5l4.5 4.5L19 7.5"],
  download: ["M12 4v11", "M7 10l5 5 5-5", "M5 20h14"],
  upload: ["M7 18a4 4 0 0 1-.6-8A5.5 5.5 0 0 1 17 8.6 4 4 0 0 1 17.5 18", "M12 12v8", "M9 15l3-3 3 3"],
  pause: ["M9 6v12", "M15 6v12"],
};

/** An SVG icon, hidden from assistive technology (the control carrying it has the label). */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", `icon icon-${name}`);
  const shape = ICONS[name] || [];
  const paths = Array.isArray(shape) ? shape : [shape.fill];
  for (const d of paths) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    if (!Array.isArray(shape)) path.setAttribute("class", "filled");
    svg.append(path);
  }
  return svg;
}

/** Put the icon named by data-icon="…" at the start of every such element under `root`. */
export function installIcons(root = document) {
  for (const node of root.querySelectorAll("[data-icon]")) {
    if (!node.querySelector(":scope > svg.icon")) node.prepend(icon(node.dataset.icon));
  }
}

let toastTimer = null;

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(message, { error = false, ms = 4000 } = {}) {
  const box = $("toast");
  box.textContent = message;
  box.classList.toggle("error", error);
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, ms);
}

export function clearToast() {
  clearTimeout(toastTimer);
  $("toast").hidden = true;
  $("toast").textContent = "";
}

export const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

/** Is the event's target a text field or menu that owns the keyboard? */
export function typingInto(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
}
