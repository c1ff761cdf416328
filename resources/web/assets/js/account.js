// Who is signed in, and what their role lets them do. A guest sees the albums shared with them and
// nothing to manage: every control that creates, shares or changes albums carries class "manage", and a
// guest's page hides them all (the server refuses those requests anyway).

let user = null;

/** Someone signed in (or null: signed out). */
export function setCurrentUser(who) {
  user = who || null;
  document.body.classList.toggle("guest", Boolean(user) && user.role === "guest");
}

/** May I rename, delete, share or fill this album? Its owner or an administrator. */
export const mayChange = (album) => Boolean(user) && (album.is_owner || user.role === "admin");

/** May I download items to keep? Unless an administrator turned downloads off for this account. */
export const mayDownload = () => Boolean(user) && user.can_download !== false;
