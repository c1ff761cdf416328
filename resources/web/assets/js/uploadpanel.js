// The uploads panel's rows: a file's name, a progress bar named after it, what is happening to it, and its
// buttons (pause or resume, cancel or remove). Each row is built once and then updated in place, so a button
// keeps keyboard focus while the bar moves; the summary line (a polite live region) changes only when a
// file's state does, so a screen reader hears "2 added" and not every percent.

import { $, el, icon } from "./dom.js";

const ACTIVE = new Set(["waiting", "starting", "uploading", "paused", "processing"]);
const units = ["bytes", "KB", "MB", "GB", "TB"];

/** 1536 → "1.5 KB". */
export function bytes(count) {
  let value = Math.max(0, Number(count) || 0);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

const percent = (sent, size) => (size ? Math.min(100, Math.floor((sent / size) * 100)) : 100);

function build(row, actions) {
  const toggle = el("button", { type: "button", class: "icon-button upload-toggle" });
  const close = el("button", { type: "button", class: "icon-button" }, icon("close"));
  toggle.addEventListener("click", () => (row.state === "paused" ? actions.resume(row) : actions.pause(row)));
  close.addEventListener("click", () => (ACTIVE.has(row.state) ? actions.cancel(row) : actions.dismiss(row)));
  const kind = row.file && row.file.type.startsWith("video/") ? "video" : "photo";
  const node = el("li", { id: row.id, class: "upload-row" },
    el("div", { class: "upload-head" },
      icon(kind),
      el("span", { class: "upload-name", title: row.name }, row.name),
      toggle, close),
    el("progress", { class: "upload-progress", max: 100, value: 0, "aria-label": `Upload of ${row.name}` }),
    el("p", { class: "upload-status" }));
  $("upload-list").append(node);
  return node;
}

/** Create or refresh the row for `row` ({id, name, size, sent, state, message, mediaId}). */
export function renderRow(row, actions) {
  const node = $(row.id) || build(row, actions);
  const changed = node.dataset.state !== row.state;
  node.dataset.state = row.state;
  const [toggle, close] = node.querySelectorAll(".upload-head button");
  const progress = node.querySelector("progress");
  const status = node.querySelector(".upload-status");
  const shown = percent(row.sent, row.size);

  progress.value = shown;
  progress.hidden = row.state === "done" || row.state === "failed";
  toggle.hidden = !(row.state === "uploading" || row.state === "paused");
  if (changed && !toggle.hidden) {
    const paused = row.state === "paused";
    toggle.replaceChildren(icon(paused ? "play" : "pause"));
    toggle.setAttribute("aria-label", `${paused ? "Resume" : "Pause"} ${row.name}`);
  }
  close.setAttribute("aria-label", ACTIVE.has(row.state) ? `Cancel ${row.name}` : `Remove ${row.name} from the list`);

  const sentText = `${bytes(row.sent)} of ${bytes(row.size)} (${shown}%)`;
  status.classList.toggle("error", row.state === "failed");
  if (row.state === "uploading") status.textContent = sentText;
  else if (row.state === "starting") status.textContent = "Starting…";
  else if (row.state === "waiting") status.textContent = row.sent ? `Waiting to go on · ${sentText}` : "Waiting…";
  else if (row.state === "paused") status.textContent = `${row.message || "Paused"} · ${sentText}`;
  else status.textContent = row.message;
  if (row.state === "done" && row.mediaId && !status.querySelector("a")) {
    status.append(" · ", el("a", { href: `#/view/${row.mediaId}` }, "Show"));
  }
  if (changed) panelChanged(null);
}

/** A row for an upload a reload left unfinished: choose the file again to continue, or discard it. */
export function renderUnfinished(entry, { choose, discard }) {
  const name = entry.name;
  const chooseButton = el("button", { type: "button", class: "button" }, "Choose it again");
  const discardButton = el("button", { type: "button", class: "icon-button", "aria-label": `Discard ${name}` },
    icon("close"));
  const node = el("li", { class: "upload-row upload-unfinished", "data-storage-key": entry.urlStorageKey },
    el("div", { class: "upload-head" }, icon(/^video\//.test(entry.type) ? "video" : "photo"),
      el("span", { class: "upload-name", title: name }, name),
      discardButton),
    el("progress", { class: "upload-progress", max: 100, value: percent(entry.sent, entry.size),
      "aria-label": `Upload of ${name}` }),
    el("p", { class: "upload-status" },
      `Stopped at ${bytes(entry.sent)} of ${bytes(entry.size)}. Choose the same file to continue.`),
    chooseButton);
  chooseButton.addEventListener("click", choose);
  discardButton.addEventListener("click", () => discard(node));
  $("upload-list").append(node);
}

/** Refresh the summary line and the close button from the rows' states (`rows` null: read them off the page). */
export function panelChanged(rows) {
  const states = rows ? rows.map((row) => row.state)
    : [...$("upload-list").querySelectorAll(".upload-row[data-state]")].map((node) => node.dataset.state);
  const count = (state) => states.filter((each) => each === state).length;
  const unfinished = $("upload-list").querySelectorAll(".upload-unfinished").length;
  const sending = count("uploading") + count("starting");
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  let summary;
  if (sending) {
    const waiting = count("waiting") ? `, ${count("waiting")} more waiting` : "";
    summary = `Sending ${plural(sending, "file", "files")}${waiting}…`;
  }
  else if (count("paused")) summary = `${plural(count("paused"), "upload", "uploads")} paused`;
  else if (count("processing")) summary = `Vault is adding ${plural(count("processing"), "file", "files")}…`;
  else if (states.length) {
    const done = [...$("upload-list").querySelectorAll(".upload-row[data-state='done'] .upload-status")]
      .map((node) => node.textContent);
    const added = done.filter((text) => text.startsWith("Added")).length;
    summary = [added && `${added} added`, done.length - added && `${done.length - added} already in your library`,
      count("failed") && `${count("failed")} failed`].filter(Boolean).join(", ") || "Done";
  } else summary = unfinished ? "Unfinished uploads" : "";
  $("upload-summary").textContent = summary;
  $("upload-close").hidden = states.some((state) => ACTIVE.has(state));
}
