// Android's Share sheet into Vault. The manifest's share_target makes an installed Vault a place to share
// photos and videos to: the phone opens /share with them as a form POST. This worker (scope /share only, so
// the gallery's own requests never pass through it) catches that POST in the browser, keeps the files in
// Cache Storage and opens the gallery, which sends them over tus like files picked with the Upload button
// (assets/js/shared.js). They stay there until every byte has reached Vault, so signing in first, a reload
// or a dropped connection loses nothing; Vault itself never receives the form.

const INBOX = "vault-shared";
const FIELD = "media"; // the manifest's share_target.params.files[0].name

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method === "POST" && url.pathname === "/share") event.respondWith(keep(event.request));
});

async function keep(request) {
  let kept = 0;
  try {
    const form = await request.formData();
    const inbox = await caches.open(INBOX);
    const stamp = Date.now();
    for (const file of form.getAll(FIELD)) {
      if (!(file instanceof File) || !file.size) continue;
      await inbox.put(`/shared/${stamp}-${kept}`, new Response(file, { headers: {
        "Content-Type": file.type || "application/octet-stream",
        "X-File-Name": encodeURIComponent(file.name || "Shared file"),
        "X-Last-Modified": String(file.lastModified || stamp),
      } }));
      kept += 1;
    }
  } catch {
    // Most likely the phone's storage is full: say so on the page rather than lose the share silently.
    return Response.redirect("/?shared=failed", 303);
  }
  return Response.redirect(`/?shared=${kept}`, 303);
}
