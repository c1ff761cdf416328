// Modal dialogs on the native <dialog> element: the browser keeps focus inside, makes the rest of the page
// inert and closes on Escape; this adds the form, an error line read out when it changes, a busy state,
// and focus back on whatever opened it.

import { SignedOut } from "./api.js";
import { el } from "./dom.js";

let serial = 0;

/** Is a dialog open? (Page-wide shortcuts leave the keyboard to it.) */
export const dialogOpen = () => Boolean(document.querySelector("dialog.dialog[open]"));

/**
 * Show a dialog; resolves with what `submit(form)` returned, or null if it was cancelled.
 * `submit` may throw: its message is shown and the dialog stays. Without `submitLabel`, only "Done".
 */
export function openDialog({ title, body = [], submitLabel = "", submit = async () => true, danger = false,
  cancelLabel = "Cancel", description = "" }) {
  const id = `dialog-${++serial}`;
  const opener = document.activeElement;
  const error = el("p", { class: "dialog-error", role: "alert", id: `${id}-error` });
  const buttons = [el("button", { type: "button", class: "button", value: "cancel" },
    submitLabel ? cancelLabel : "Done")];
  if (submitLabel) {
    buttons.push(el("button", { type: "submit", class: `button ${danger ? "danger" : "primary"}` }, submitLabel));
  }
  const form = el("form", { class: "dialog-form", method: "dialog", novalidate: true },
    el("h2", { id: `${id}-title`, class: "dialog-title" }, title),
    description ? el("p", { id: `${id}-text`, class: "dialog-text" }, description) : null,
    ...[body].flat(), error, el("div", { class: "dialog-actions" }, ...buttons));
  const dialog = el("dialog", { class: "dialog", "aria-labelledby": `${id}-title`,
    "aria-describedby": description ? `${id}-text` : null }, form);
  document.body.append(dialog);

  return new Promise((resolve) => {
    let result = null;
    const finish = () => {
      dialog.remove();
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus({ preventScroll: true });
      resolve(result);
    };
    dialog.addEventListener("close", finish, { once: true });
    buttons[0].addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      form.setAttribute("aria-busy", "true");
      for (const button of buttons) button.disabled = true;
      error.textContent = "";
      try {
        result = await submit(form);
        dialog.close();
      } catch (failure) {
        if (failure instanceof SignedOut) {
          dialog.close();
          return;
        }
        error.textContent = failure.message || "Something went wrong. Try again.";
        const wrong = form.querySelector("[aria-invalid='true']");
        if (wrong) wrong.focus();
      } finally {
        form.removeAttribute("aria-busy");
        for (const button of buttons) button.disabled = false;
      }
    });
    dialog.showModal();
    const first = form.querySelector("[autofocus], input:not([type=hidden]), select");
    (first || buttons[buttons.length - 1]).focus();
  });
}

/** Close every open dialog (on sign-out: nothing may stay on screen). */
export function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog.dialog")) dialog.close();
}

/** A labelled text field for a dialog. */
export function textField(label, attributes = {}) {
  const id = `field-${++serial}`;
  return el("div", { class: "field" }, el("label", { for: id }, label),
    el("input", { id, type: "text", autocomplete: "off", ...attributes }));
}
