// Confab's service worker: keeps the web client's own files so that the
// page still opens when confabd cannot be reached, and then says so
// ("server unreachable") instead of the browser's error page. It never
// touches /ws, /api, /healthz or /readyz.
//
// - navigations: network first (the answer is kept as the page); when the
//   network fails, the kept page;
// - /assets/* (content-hashed, never change) and the icon: cache first,
//   kept on fetch;
// - on install, the page and the files it names are cached.
const CACHE = "confab-shell-v1";

const own = (url) =>
  url.origin === self.location.origin &&
  !url.pathname.startsWith("/api/") &&
  url.pathname !== "/ws" &&
  url.pathname !== "/healthz" &&
  url.pathname !== "/readyz";

async function cacheShell() {
  const cache = await caches.open(CACHE);
  const page = await fetch("/", { cache: "no-cache" });
  if (!page.ok) return;
  const html = await page.clone().text();
  await cache.put("/", page);
  const assets = [...html.matchAll(/(?:src|href)="(\/(?:assets\/[^"]+|favicon\.svg))"/g)].map((m) => m[1]);
  await cache.addAll(assets);
  // Assets of earlier builds are no longer named by the page.
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname;
    if (path !== "/" && !assets.includes(path)) await cache.delete(req);
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(cacheShell().catch(() => undefined).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (!own(url)) return;
  if (req.mode === "navigate") {
    event.respondWith(
      fetch(req)
        .then((resp) => {
          if (resp.ok) {
            const copy = resp.clone();
            event.waitUntil(caches.open(CACHE).then((c) => c.put("/", copy)));
          }
          return resp;
        })
        .catch(async () => (await caches.match("/")) ?? Response.error()),
    );
    return;
  }
  if (url.pathname.startsWith("/assets/") || url.pathname === "/favicon.svg") {
    event.respondWith(
      caches.match(req).then(
        (hit) =>
          hit ??
          fetch(req).then((resp) => {
            if (resp.ok) {
              const copy = resp.clone();
              event.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)));
            }
            return resp;
          }),
      ),
    );
  }
});
