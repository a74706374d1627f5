/** The frame around every page: top bar (connection status, badge, account), sidebar, toasts. */

import type { RoomInfo } from "@confab/sdk";
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

import { extensions } from "../extensions";
import { app } from "../model";
import { current, navigate } from "../router";
import { Chat } from "./Chat";
import { Link, useApp, useEscape } from "./common";
import { Login } from "./Login";
import { NotificationsPage, ProfilePage, RoomLogPage } from "./Pages";
import { Rooms } from "./Rooms";
import { Unreachable } from "./Unreachable";
import { BellIcon, RoomMark } from "./icons";

const STATUS_TEXT = {
  connected: "Connected",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected",
} as const;

/** The connection-status indicator: always visible, announced to screen readers when it changes. */
export function ConnectionStatus() {
  const a = useApp();
  const [, tick] = useState(0);
  useEffect(() => {
    if (a.conn !== "reconnecting") return;
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [a.conn]);
  const wait = a.conn === "reconnecting" ? Math.max(0, Math.ceil((a.retryAt - Date.now()) / 1000)) : 0;
  return (
    <div class={`conn ${a.conn}`} data-state={a.conn} role="status" aria-live="polite" aria-label={`Connection: ${STATUS_TEXT[a.conn]}`}>
      <span class="conn-dot" aria-hidden="true" />
      <span class="conn-text">
        {STATUS_TEXT[a.conn]}
        {a.conn === "reconnecting" && wait > 0 ? <span class="conn-wait"> in {wait} s</span> : null}
      </span>
      {a.conn === "disconnected" || (a.conn === "reconnecting" && wait > 1) ? (
        <button type="button" class="link" onClick={() => a.retryNow()}>
          Retry now
        </button>
      ) : null}
    </div>
  );
}

function TopBar(props: { onMenu: () => void }) {
  const a = useApp();
  return (
    <header class="topbar">
      {a.phase === "ready" ? (
        <button type="button" class="icon menu-button" onClick={props.onMenu} aria-label="Open the menu">
          ☰
        </button>
      ) : null}
      <Link href="/" class="brand" aria-label="Confab: browse rooms">
        <img src="/favicon.svg" alt="" width={22} height={22} />
        <span>Confab</span>
      </Link>
      <ConnectionStatus />
      {a.phase === "ready" && a.me !== undefined ? (
        <nav class="top-actions" aria-label="Account">
          <Link href="/notifications" class="bell" aria-label={`Notifications, ${a.notifUnread} unread`}>
            <BellIcon />
            {a.notifUnread > 0 ? (
              <span class="badge" data-testid="notif-badge">
                {a.notifUnread}
              </span>
            ) : null}
          </Link>
          <Link href="/profile" class="me" aria-label={`Profile and settings of ${a.nameOf(a.me.user, a.me.username)}`}>
            <span class="avatar" aria-hidden="true">
              {a.nameOf(a.me.user, a.me.username).slice(0, 1).toUpperCase()}
            </span>
            <span class="me-name">{a.nameOf(a.me.user, a.me.username)}</span>
          </Link>
          <button type="button" class="ghost" onClick={() => void a.logout()}>
            Log out
          </button>
        </nav>
      ) : null}
    </header>
  );
}

function Sidebar(props: { open: boolean; onClose: () => void }) {
  const a = useApp();
  const route = a.route;
  // Direct chats have their own section (src/direct.tsx).
  const rooms = [...a.myRooms.values()].filter((r) => r.directUser === undefined).sort((x, y) => x.name.localeCompare(y.name));
  return (
    <nav
      class={`sidebar${props.open ? " open" : ""}`}
      aria-label="Rooms and pages"
      onClick={(e) => (e.target as HTMLElement).closest("a") && props.onClose()}
    >
      <ul class="nav-pages">
        <li>
          <Link href="/" aria-current={route.name === "rooms" ? "page" : undefined}>
            Browse rooms
          </Link>
        </li>
        <li>
          <Link href="/log" aria-current={route.name === "log" ? "page" : undefined}>
            Room log
          </Link>
        </li>
        <li>
          <Link href="/notifications" aria-current={route.name === "notifications" ? "page" : undefined}>
            Notifications {a.notifUnread > 0 ? <span class="badge">{a.notifUnread}</span> : null}
          </Link>
        </li>
      </ul>
      <h2 class="side-title">My rooms</h2>
      {rooms.length === 0 ? <p class="muted side-empty">No rooms yet: join one or create one.</p> : null}
      <ul class="my-rooms">
        {rooms.map((r) => (
          <SideRoom key={r.id} room={r} label={r.name} mark={<RoomMark private={r.visibility === "private"} />} />
        ))}
      </ul>
      {extensions.sidebarSections.map((s) => (
        <section key={s.id}>{s.render()}</section>
      ))}
    </nav>
  );
}

/** A room in the sidebar: its link, with the unread count. */
export function SideRoom(props: { room: RoomInfo; label: string; mark: ComponentChildren }) {
  const a = useApp();
  const route = current();
  const r = props.room;
  const unread = a.rooms.get(r.id)?.unread ?? 0;
  const here = route.name === "chat" && route.room === r.id;
  return (
    <li>
      <Link
        href={`/chat/${r.id}`}
        aria-current={here ? "page" : undefined}
        aria-label={`${props.label}${unread > 0 ? `, ${unread} unread` : ""}`}
      >
        <span class="hash" aria-hidden="true">
          {props.mark}
        </span>
        <span class="room-name">{a.roomName(r)}</span>
        {unread > 0 ? <span class="badge">{unread}</span> : null}
      </Link>
    </li>
  );
}

function Toasts() {
  const a = useApp();
  return (
    <div class="toasts" role="log" aria-live="polite" aria-label="Notifications">
      {a.toasts.map((t) => (
        <div key={t.id} class={`toast ${t.tone}`}>
          <button
            type="button"
            class="toast-main"
            onClick={() => {
              if (t.href !== undefined) navigate(t.href);
              a.dismiss(t.id);
            }}
          >
            <strong>{t.title}</strong>
            <span>{t.body}</span>
          </button>
          <button type="button" class="icon" aria-label="Dismiss" onClick={() => a.dismiss(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

function Page() {
  const a = useApp();
  const r = a.route;
  switch (r.name) {
    case "rooms":
    case "login":
      return <Rooms />;
    case "chat":
      return <Chat room={r.room} admin={r.admin} />;
    case "log":
      return <RoomLogPage />;
    case "notifications":
      return <NotificationsPage />;
    case "profile":
      return <ProfilePage />;
    default:
      return (
        <main class="page">
          <h1>Not found</h1>
          <p>
            Nothing lives at <code>{r.path}</code>. <Link href="/">Browse rooms</Link>
          </p>
        </main>
      );
  }
}

export function Shell() {
  const a = useApp();
  const [menu, setMenu] = useState(false);
  useEscape(menu, () => setMenu(false));
  useEffect(() => {
    if (a.phase === "ready" && a.route.name === "login") navigate("/", true);
  }, [a.phase, a.route.name]);
  let body;
  if (a.phase === "boot") {
    body = (
      <main class="center-page" aria-busy="true">
        <p class="muted">Connecting to the server…</p>
      </main>
    );
  } else if (a.phase === "unreachable") {
    body = <Unreachable />;
  } else if (a.phase === "login") {
    body = <Login />;
  } else {
    body = (
      <div class="layout">
        <Sidebar open={menu} onClose={() => setMenu(false)} />
        {menu ? <div class="scrim" onClick={() => setMenu(false)} /> : null}
        <Page />
      </div>
    );
  }
  return (
    <div class="shell" data-phase={a.phase}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <TopBar onMenu={() => setMenu((m) => !m)} />
      {body}
      <Toasts />
    </div>
  );
}

export { app };
