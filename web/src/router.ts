/** The client's routes: the path is the state (confabd answers every one of them with index.html). */

export type Route =
  | { name: "rooms" }
  | { name: "chat"; room: number; admin: boolean }
  | { name: "log" }
  | { name: "notifications" }
  | { name: "profile" }
  | { name: "login" }
  | { name: "missing"; path: string };

export function parse(path: string): Route {
  const parts = path.split("/").filter((p) => p !== "");
  const [first, second, third] = parts;
  if (parts.length === 0 || (first === "rooms" && parts.length === 1)) return { name: "rooms" };
  if (first === "chat" && second !== undefined && /^[1-9][0-9]{0,15}$/.test(second)) {
    if (parts.length === 2) return { name: "chat", room: Number(second), admin: false };
    if (parts.length === 3 && third === "admin") return { name: "chat", room: Number(second), admin: true };
  }
  if (parts.length === 1 && (first === "log" || first === "notifications" || first === "profile" || first === "login")) {
    return { name: first };
  }
  return { name: "missing", path };
}

export function href(route: Route): string {
  switch (route.name) {
    case "rooms":
      return "/";
    case "chat":
      return `/chat/${route.room}${route.admin ? "/admin" : ""}`;
    case "missing":
      return route.path;
    default:
      return `/${route.name}`;
  }
}

type Listener = (route: Route) => void;
const listeners = new Set<Listener>();

export function current(): Route {
  return parse(location.pathname);
}

/** Goes to `path` (pushing it on the history unless `replace`). */
export function navigate(path: string, replace = false): void {
  if (path === location.pathname) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  for (const l of listeners) l(current());
}

export function onRoute(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

addEventListener("popstate", () => {
  for (const l of listeners) l(current());
});

/** An in-app link's click handler: client-side navigation, unless a modifier asks for a new tab. */
export function linkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.currentTarget as HTMLAnchorElement | null) ?? null;
  if (a === null) return;
  e.preventDefault();
  navigate(a.getAttribute("href") ?? "/");
}
