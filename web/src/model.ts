/**
 * The client's state and everything that changes it: one ConfabClient
 * (the SDK) and what the server told it. Components read `app` and
 * re-render on `app.subscribe`; they change state only through `app`'s
 * methods.
 */

import {
  ConfabClient,
  ConfabError,
  type Attachment,
  type ConnectionState,
  type EventBody,
  type Member,
  type Notification,
  type Presence,
  type Profile,
  type MessageContent,
  type RoomEvent,
  type RoomInfo,
  type Span,
  type Sticker,
} from "@confab/sdk";

import { extensions } from "./extensions";
import { current, navigate, onRoute, type Route } from "./router";

/** One line of a room's timeline: a message, or a system line (joins, renames, …). */
export interface Item {
  seq: number;
  at: number;
  actor: number;
  actorName: string;
  kind: "message" | "system";
  /** The message's text, or the system line's description. */
  text: string;
  editedAt?: number;
  deleted?: boolean;
  /** Formatting over `text` (UTF-8 byte offsets, SPEC.md §5.11.1); absent when plain. */
  spans?: Span[];
  /** A sticker message's sticker id (then `text` is the fallback `:id:`). */
  sticker?: string;
  /** The files the message carries (SPEC.md §13.5). */
  attachments?: Attachment[];
  /** The SDK's event body, for renderers of richer kinds (extensions.ts). */
  raw?: EventBody;
}

/** A message the user sent that the server has not acknowledged. */
export interface Outgoing {
  id: number;
  room: number;
  text: string;
  spans?: Span[];
  sticker?: string;
  attachments?: Attachment[];
  /** `unknown`: the connection dropped in flight; checked against history after reconnecting. */
  status: "sending" | "failed" | "unknown";
  error?: string;
  /** The room's highest seq when it was sent: its event, if stored, comes after. */
  afterSeq: number;
}

export interface RoomState {
  id: number;
  info: RoomInfo | undefined;
  items: Map<number, Item>;
  loaded: boolean;
  loading: boolean;
  hasMore: boolean;
  loadError: string | undefined;
  members: Member[];
  membersLoaded: boolean;
  typing: Map<number, { username: string; until: number }>;
  readSeq: number;
  unread: number;
  /** The read marker when the room was opened: the "new messages" line goes after it. */
  markerAtOpen: number;
  outgoing: Outgoing[];
  /** Why the user is no longer a member (kicked, banned, left, terminated). */
  removed: string | undefined;
  /** Bumped when the admin lists (join requests, bans) may have changed. */
  adminVersion: number;
}

export interface Toast {
  id: number;
  title: string;
  body: string;
  href?: string;
  tone: "info" | "ok" | "warn" | "error";
}

export type Phase = "boot" | "unreachable" | "login" | "ready";

interface SavedSession {
  token: string;
  user: number;
  username: string;
}

const SESSION_KEY = "confab.session";
/** How long a typist stays shown without a new START (SPEC.md §5.5.7 suggests about 6 s). */
const TYPING_TTL_MS = 6000;

function loadSession(): SavedSession | undefined {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    if (raw === null) return undefined;
    const s = JSON.parse(raw) as Partial<SavedSession>;
    if (typeof s.token === "string" && typeof s.user === "number" && typeof s.username === "string") {
      return { token: s.token, user: s.user, username: s.username };
    }
  } catch {
    // unreadable: start anew
  }
  return undefined;
}

function wsUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/** A ConfabError (or anything thrown) as a sentence for people. */
export function describe(e: unknown): string {
  if (e instanceof ConfabError) {
    switch (e.kind) {
      case "server":
        return e.serverMessage !== "" ? `${e.serverMessage} (${e.codeName})` : (e.codeName ?? "refused");
      case "not_sent":
        return "Not sent: the server could not be reached.";
      case "disconnected":
        return "The connection dropped before the server answered.";
      case "timeout":
        return "The server did not answer in time.";
      default:
        return e.message;
    }
  }
  return e instanceof Error ? e.message : String(e);
}

export function errorCode(e: unknown): string | undefined {
  return e instanceof ConfabError && e.kind === "server" ? e.codeName : undefined;
}

function roleName(role: unknown): string {
  return typeof role === "string" ? role : "member";
}

/** Shows user `user` (whose username is `username`): their display name once known. */
export type NameOf = (user: number, username: string) => string;

/**
 * How a system event reads in the timeline, with people named by `name`
 * (display names, SPEC.md §5.2.5); `undefined`: not shown on its own.
 */
export function systemText(body: EventBody, actor: number, actorName: string, name: NameOf): string | undefined {
  const b = body;
  const who = actorName !== "" ? name(actor, actorName) : "The server";
  switch (b.kind) {
    case "member_joined":
      return `${who} joined`;
    case "member_left":
      return `${who} left`;
    case "room_created":
      return `${who} created the room “${b.name}”`;
    case "member_kicked":
      return `${who} removed ${name(b.target, b.targetName)}`;
    case "member_banned":
      return `${who} banned ${name(b.target, b.targetName)}`;
    case "role_changed":
      return `${name(b.target, b.targetName)} is now ${roleName(b.role) === "member" ? "a member" : `the ${roleName(b.role)}`}`;
    case "room_updated":
      return `${who} set the name to “${b.name}”${b.topic !== "" ? ` and the topic to “${b.topic}”` : ""}`;
    case "room_terminated":
      return "The room was closed";
    default:
      return undefined;
  }
}

export const NOTIFICATION_TEXT: Record<string, (room: string, actor: string) => string> = {
  invited: (room, actor) => `${actor} invited you to ${room}`,
  join_request: (room, actor) => `${actor} asks to join ${room}`,
  request_approved: (room, actor) => `${actor} let you into ${room}`,
  request_denied: (room, actor) => `${actor} declined your request to join ${room}`,
  kicked: (room, actor) => `${actor} removed you from ${room}`,
  banned: (room, actor) => `${actor} banned you from ${room}`,
  unbanned: (room, actor) => `${actor} lifted your ban from ${room}`,
  role_changed: (room) => `Your role in ${room} changed`,
  room_terminated: (room) => `${room} was closed`,
  mentioned: (room, actor) => `${actor} mentioned you in ${room}`,
};

export function notificationText(n: Notification): string {
  const actor = n.actorName !== "" ? app.nameOf(n.actor, n.actorName) : "The server";
  const room = n.roomName !== "" ? n.roomName : `room ${n.room}`;
  if (typeof n.kind === "number") return extensions.notificationText.get(n.kind)?.(room, actor) ?? `Something happened in ${room}`;
  return NOTIFICATION_TEXT[n.kind]?.(room, actor) ?? `Something happened in ${room}`;
}

export function presenceOf(m: Member): "online" | "away" | "offline" {
  const p: Presence = m.presence ?? (m.online ? "online" : "offline");
  if (p === "online" || p === "away" || p === "offline") return p;
  return m.online ? "online" : "offline";
}

export class App {
  client!: ConfabClient;
  conn: ConnectionState = "connecting";
  everConnected = false;
  /** While reconnecting: when the next attempt starts (ms since the epoch). */
  retryAt = 0;
  attempt = 0;
  phase: Phase = "boot";
  /** Shown on the login page: why the user is there (logged out elsewhere, session expired). */
  loginNotice = "";
  me: { user: number; username: string } | undefined;
  route: Route = current();
  /** Rooms the user is a member of. */
  myRooms = new Map<number, RoomInfo>();
  rooms = new Map<number, RoomState>();
  notifications: Notification[] = [];
  notifUnread = 0;
  notifHasMore = false;
  /** Rooms announced (ROOM_ANNOUNCED) since the page loaded, in arrival order; only ever appended to. */
  announced: RoomInfo[] = [];
  toasts: Toast[] = [];
  away = false;

  private readonly listeners = new Set<() => void>();
  private offClient: (() => void)[] = [];
  private nextLocal = 1;
  private markerTimers = new Map<number, ReturnType<typeof setTimeout>>();
  private membersTimers = new Map<number, ReturnType<typeof setTimeout>>();
  private typingSentAt = new Map<number, number>();
  private notifyQueued = false;
  /**
   * Unread notifications are pushed again when a connection authenticates,
   * before the reply to the LIST_NOTIFICATIONS sent after it: only those
   * arriving after that reply are new and pop up.
   */
  private liveNotifications = false;

  // ------------------------------------------------------------ plumbing

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Bumped each time listeners are told of changes (see useApp). */
  version = 0;

  /** Something changed: re-render (once per microtask, however many changes). */
  changed(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      this.version++;
      this.updateTitle();
      for (const l of this.listeners) l();
    });
  }

  private updateTitle(): void {
    let unread = 0;
    for (const id of this.myRooms.keys()) unread += this.rooms.get(id)?.unread ?? 0;
    const badge = unread + this.notifUnread;
    document.title = badge > 0 ? `(${badge}) Confab` : "Confab";
  }

  room(id: number): RoomState {
    let rs = this.rooms.get(id);
    if (rs === undefined) {
      rs = {
        id,
        info: this.myRooms.get(id),
        items: new Map(),
        loaded: false,
        loading: false,
        hasMore: true,
        loadError: undefined,
        members: [],
        membersLoaded: false,
        typing: new Map(),
        readSeq: 0,
        unread: 0,
        markerAtOpen: 0,
        outgoing: [],
        removed: undefined,
        adminVersion: 0,
      };
      this.rooms.set(id, rs);
    }
    return rs;
  }

  /** The room the user is looking at, if any. */
  get viewing(): number | undefined {
    return this.route.name === "chat" ? this.route.room : undefined;
  }

  /** The user's role in `room`, if a member and the member list is loaded. */
  roleIn(room: number): "owner" | "admin" | "member" | undefined {
    const me = this.me?.user;
    const m = this.rooms.get(room)?.members.find((x) => x.user === me);
    return m === undefined ? undefined : (roleName(m.role) as "owner" | "admin" | "member");
  }

  toast(t: Omit<Toast, "id">): void {
    const toast = { ...t, id: this.nextLocal++ };
    this.toasts = [...this.toasts.slice(-3), toast];
    this.changed();
    setTimeout(() => this.dismiss(toast.id), 7000);
  }

  dismiss(id: number): void {
    const before = this.toasts.length;
    this.toasts = this.toasts.filter((t) => t.id !== id);
    if (this.toasts.length !== before) this.changed();
  }

  /** A notification from the browser (when the user allowed them). */
  private systemNotify(title: string, body: string, href: string | undefined): void {
    if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
    try {
      const n = new Notification(title, { body, tag: `confab-${this.nextLocal++}` });
      n.onclick = () => {
        window.focus();
        if (href !== undefined) navigate(href);
        n.close();
      };
    } catch {
      // Some browsers allow notifications from service workers only.
    }
  }

  // ------------------------------------------------------- connection

  start(): void {
    onRoute((route) => this.onRoute(route));
    document.addEventListener("visibilitychange", () => {
      const v = this.viewing;
      if (v !== undefined && document.visibilityState === "visible") this.markReadSoon(v);
    });
    setInterval(() => this.sweepTyping(), 1000);
    this.makeClient(loadSession()?.token);
  }

  private makeClient(token: string | undefined): void {
    for (const off of this.offClient) off();
    this.offClient = [];
    this.client?.close();
    const c = new ConfabClient({
      url: wsUrl(),
      token,
      clientName: "confab-web/0.1.0",
      requestTimeoutMs: 15_000,
      reconnect: { initialDelayMs: 500, maxDelayMs: 8000 },
    });
    this.client = c;
    this.everConnected = false;
    this.phase = "boot";
    this.conn = "connecting";
    const on = this.offClient;
    on.push(
      c.on("statechange", (s) => {
        this.conn = s.state;
        this.attempt = s.attempt;
        this.retryAt = s.state === "reconnecting" ? Date.now() + s.delayMs : 0;
        if (s.state === "reconnecting" && !this.everConnected) this.phase = "unreachable";
        if (
          s.state === "disconnected" &&
          this.everConnected &&
          (s.error?.codeName === "LOGGED_OUT" || s.error?.codeName === "INVALID_TOKEN" || s.error?.codeName === "PASSWORD_CHANGED")
        ) {
          const why = {
            LOGGED_OUT: "You were logged out.",
            INVALID_TOKEN: "Your session expired: log in again.",
            PASSWORD_CHANGED: "Your password was changed in another session: log in again.",
          };
          this.sessionEnded(why[s.error.codeName]);
          return;
        }
        this.changed();
      }),
    );
    on.push(c.on("connected", ({ reconnected }) => this.onConnected(c, reconnected)));
    on.push(c.on("roomevent", (ev) => this.onRoomEvent(ev)));
    on.push(c.on("resumegap", ({ room }) => this.onResumeGap(room)));
    on.push(c.on("notification", (n) => this.onNotification(n)));
    on.push(c.on("roomannounced", (info) => this.onAnnounced(info)));
    on.push(c.on("typing", (t) => this.onTyping(t.room, t.user, t.username, t.typing)));
    on.push(c.on("presence", (p) => this.onPresence(p.room, p.changes)));
    on.push(c.on("profilechanged", (p) => this.onProfiles(p.changes)));
    on.push(
      c.on("readmarkermoved", (r) => {
        const rs = this.room(r.room);
        if (r.readSeq >= rs.readSeq) {
          rs.readSeq = r.readSeq;
          rs.unread = r.unread;
          this.changed();
        }
      }),
    );
    c.connect().catch((e: unknown) => {
      if (this.client !== c) return;
      if (errorCode(e) === "INVALID_TOKEN") {
        this.sessionEnded("Your session expired: log in again.");
        return;
      }
      this.phase = "unreachable";
      this.changed();
    });
    this.changed();
  }

  /** Tries to connect now (the "try again" button), instead of waiting out the backoff. */
  retryNow(): void {
    const token = this.client.token ?? loadSession()?.token;
    if (this.everConnected) {
      this.client.close();
      void this.client.connect().catch(() => undefined);
    } else {
      this.makeClient(token);
    }
  }

  private onConnected(c: ConfabClient, reconnected: boolean): void {
    if (this.client !== c) return;
    this.everConnected = true;
    this.conn = "connected";
    const session = c.session;
    if (session === undefined) {
      this.me = undefined;
      this.phase = "login";
      this.changed();
      return;
    }
    this.me = session;
    this.phase = "ready";
    this.liveNotifications = false;
    // Nobody is typing until told otherwise (SPEC.md §5.5.7).
    for (const rs of this.rooms.values()) rs.typing.clear();
    // PROFILE_CHANGED is not replayed (SPEC.md §5.2.5): profiles shown are read again when next shown.
    this.profileFresh.clear();
    void this.loadAccount();
    if (reconnected) void this.checkUnknown();
    this.changed();
  }

  /** The server's sticker catalogue by id, fetched once (it changes only when the server restarts). */
  stickers: Map<string, Sticker> | undefined;

  private async loadStickers(): Promise<void> {
    try {
      this.stickers = new Map((await this.client.listStickers()).map((s) => [s.id, s]));
      this.changed();
    } catch {
      // Sticker messages show their fallback text; tried again on the next connection.
    }
  }

  /** Rooms, unread counts and notifications; the open room's members. */
  private async loadAccount(): Promise<void> {
    if (this.stickers === undefined) void this.loadStickers();
    await Promise.all([this.refreshMyRooms(), this.loadNotifications()]);
    const v = this.viewing;
    if (v !== undefined) {
      this.openRoom(v);
      if (this.myRooms.has(v)) void this.loadMembers(v);
    }
  }

  /** Reloads the user's rooms and unread counts; resolves with the rooms that are new. */
  async refreshMyRooms(): Promise<number[]> {
    try {
      const mine = await this.client.myRooms();
      const had = new Set(this.myRooms.keys());
      this.myRooms = new Map(mine.rooms.map((r) => [r.id, r]));
      for (const r of mine.rooms) {
        const rs = this.room(r.id);
        rs.info = r;
        rs.removed = undefined;
      }
      for (const s of mine.readStates) {
        const rs = this.room(s.room);
        rs.readSeq = Math.max(rs.readSeq, s.readSeq);
        rs.unread = s.unread;
      }
      const added = mine.rooms.map((r) => r.id).filter((id) => !had.has(id));
      // The open room just became ours (an approved request, say): load it.
      const v = this.viewing;
      if (v !== undefined && added.includes(v)) this.openRoom(v);
      else if (v !== undefined && this.myRooms.has(v)) this.markReadSoon(v);
      this.changed();
      return added;
    } catch {
      // Offline: the next connection loads them again.
      return [];
    }
  }

  async loadNotifications(before?: number): Promise<void> {
    try {
      const page = await this.client.notifications({ limit: 50, ...(before !== undefined ? { before } : {}) });
      const byId = new Map(this.notifications.map((n) => [n.id, n]));
      for (const n of page.items) byId.set(n.id, n);
      this.notifications = [...byId.values()].sort((a, b) => b.id - a.id);
      this.notifUnread = page.unread;
      if (before === undefined) {
        this.notifHasMore = page.hasMore;
        this.liveNotifications = true;
      } else if (!page.hasMore) this.notifHasMore = false;
      this.changed();
    } catch {
      // Offline.
    }
  }

  private sessionEnded(notice: string): void {
    localStorage.removeItem(SESSION_KEY);
    this.reset();
    this.loginNotice = notice;
    this.makeClient(undefined);
  }

  private reset(): void {
    this.me = undefined;
    this.profile = undefined;
    this.profiles = new Map();
    this.profileFresh.clear();
    this.myRooms = new Map();
    this.rooms = new Map();
    this.notifications = [];
    this.notifUnread = 0;
    this.announced = [];
    this.away = false;
  }

  // ------------------------------------------------------------ account

  async login(username: string, password: string, register: boolean): Promise<void> {
    const session = register ? await this.client.register(username, password) : await this.client.login(username, password);
    const saved: SavedSession = { token: session.token, user: session.user, username: session.username };
    localStorage.setItem(SESSION_KEY, JSON.stringify(saved));
    this.me = { user: session.user, username: session.username };
    this.loginNotice = "";
    this.liveNotifications = false;
    this.phase = "ready";
    if (this.route.name === "login") navigate("/", true);
    await this.loadAccount();
    this.changed();
  }

  async logout(): Promise<void> {
    try {
      await this.client.logout();
    } catch {
      // Offline: the token is forgotten here all the same.
    }
    localStorage.removeItem(SESSION_KEY);
    this.reset();
    this.loginNotice = "You are logged out.";
    navigate("/login");
    this.makeClient(undefined);
  }

  /** Away or back (shown at once; undone if the server refuses). */
  async setAway(away: boolean): Promise<void> {
    const before = this.away;
    this.away = away;
    this.changed();
    try {
      await this.client.setAway(away);
    } catch (e) {
      this.away = before;
      this.changed();
      throw e;
    }
  }

  // -------------------------------------------------------------- rooms

  private onRoute(route: Route): void {
    const before = this.viewing;
    this.route = route;
    if (before !== undefined && before !== this.viewing) this.stopTyping(before);
    if (route.name === "chat" && this.phase === "ready") this.openRoom(route.room);
    this.changed();
  }

  /** The user opened `room`: load what is missing and mark it read. */
  openRoom(room: number): void {
    const rs = this.room(room);
    rs.markerAtOpen = rs.readSeq;
    if (!this.myRooms.has(room)) {
      this.changed();
      return;
    }
    if (!rs.loaded && !rs.loading) void this.loadOlder(room);
    if (!rs.membersLoaded) void this.loadMembers(room);
    this.markReadSoon(room);
  }

  /** Loads the next older page of history (the newest page first). */
  async loadOlder(room: number): Promise<void> {
    const rs = this.room(room);
    if (rs.loading || (rs.loaded && !rs.hasMore)) return;
    rs.loading = true;
    rs.loadError = undefined;
    this.changed();
    try {
      let oldest: number | undefined;
      if (rs.loaded) for (const seq of rs.items.keys()) if (oldest === undefined || seq < oldest) oldest = seq;
      const page = await this.client.history(room, { limit: 50, ...(oldest !== undefined ? { before: oldest } : {}) });
      // Oldest first, so that edits and deletions apply to what they change.
      for (const ev of [...page.events].reverse()) this.applyEvent(rs, ev, false);
      if (!rs.loaded && page.events[0] !== undefined) this.client.trackRoom(room, page.events[0].seq);
      rs.hasMore = page.hasMore;
      rs.loaded = true;
    } catch (e) {
      rs.loadError = describe(e);
    } finally {
      rs.loading = false;
      this.changed();
    }
    this.markReadSoon(room);
  }

  async loadMembers(room: number): Promise<void> {
    try {
      const members = await this.client.listMembers(room);
      const rs = this.room(room);
      rs.members = members;
      rs.membersLoaded = true;
      this.changed();
    } catch {
      // Not a member (any more), or offline.
    }
  }

  /** Members change: reload the list once the burst is over. */
  private membersSoon(room: number): void {
    const rs = this.rooms.get(room);
    if (rs === undefined || !rs.membersLoaded) return;
    clearTimeout(this.membersTimers.get(room));
    this.membersTimers.set(
      room,
      setTimeout(() => void this.loadMembers(room), 150),
    );
  }

  async join(room: number): Promise<RoomInfo> {
    const info = await this.client.joinRoom(room);
    this.addMembership(info);
    return info;
  }

  /** Where the HTTP API is, with this session's token (file uploads and links, SPEC.md §13). */
  files(): { baseUrl: string; token: string } | undefined {
    const token = this.client.token;
    return token === undefined ? undefined : { baseUrl: location.origin, token };
  }

  /** The user's own profile, once loaded (GET_PROFILE; the only one with the email). */
  profile: Profile | undefined;

  async loadProfile(): Promise<void> {
    if (this.me === undefined) return;
    this.profile = await this.client.getProfile(this.me.user);
    this.keepProfile(this.profile);
    this.changed();
  }

  async updateProfile(p: { displayName?: string; bio?: string; email?: string }): Promise<void> {
    this.profile = await this.client.updateProfile(p);
    this.keepProfile(this.profile);
    this.changed();
  }

  /**
   * Other users' profiles, by user id: read with GET_PROFILE the first
   * time someone is shown, kept current by PROFILE_CHANGED (sent for
   * members of the rooms the user shares with them), read again after a
   * reconnection (changes during the outage are not replayed).
   */
  profiles = new Map<number, Profile>();
  /** Users whose profile is current (or being read): not asked for again. */
  private readonly profileFresh = new Set<number>();

  /**
   * The name to show for `user`: their display name when they set one
   * (SPEC.md §5.2.5), else `username`. The first call for a user reads
   * their profile; the view re-renders when it arrives.
   */
  nameOf(user: number, username: string): string {
    const p = this.profiles.get(user);
    if (!this.profileFresh.has(user)) this.readProfile(user);
    if (p === undefined) return username;
    return p.displayName ?? p.username;
  }

  /** How a room is named to this user: a direct chat by the other person's name. */
  roomName(info: RoomInfo): string {
    return info.directUser !== undefined ? this.nameOf(info.directUser, info.directUsername ?? info.name) : info.name;
  }

  private readProfile(user: number): void {
    if (user === 0 || this.me === undefined || this.conn !== "connected") return;
    const c = this.client;
    this.profileFresh.add(user);
    c.getProfile(user).then(
      (p) => {
        if (this.client !== c) return;
        this.keepProfile(p);
        this.changed();
      },
      (e: unknown) => {
        // A user with no account any more keeps their username; otherwise ask again when next shown.
        if (errorCode(e) !== "NO_SUCH_USER") this.profileFresh.delete(user);
      },
    );
  }

  private keepProfile(p: Profile): void {
    const { email: _email, ...shown } = p;
    this.profiles.set(p.user, shown);
    this.profileFresh.add(p.user);
  }

  private onProfiles(changes: Profile[]): void {
    for (const p of changes) {
      this.keepProfile(p);
      // The user's own profile changed in another session: the email is not in PROFILE_CHANGED.
      if (p.user === this.me?.user && this.profile !== undefined) {
        this.profile = { ...p, ...(this.profile.email !== undefined ? { email: this.profile.email } : {}) };
      }
    }
    this.changed();
  }

  async changePassword(current: string, next: string): Promise<void> {
    await this.client.changePassword(current, next);
  }

  /** Opens (creates, or returns) the direct chat with `user`, by id or username. */
  async openDirect(user: number | string): Promise<RoomInfo> {
    const info = await this.client.openDirect(user);
    this.addMembership(info);
    return info;
  }

  async acceptInvite(room: number): Promise<RoomInfo> {
    const info = await this.client.acceptInvite(room);
    this.addMembership(info);
    return info;
  }

  private addMembership(info: RoomInfo): void {
    this.myRooms.set(info.id, info);
    const rs = this.room(info.id);
    rs.info = info;
    rs.removed = undefined;
    rs.loaded = false;
    rs.hasMore = true;
    rs.membersLoaded = false;
    if (this.viewing === info.id) this.openRoom(info.id);
    this.changed();
  }

  async createRoom(name: string, topic: string, visibility: "public" | "private", members: string[]): Promise<RoomInfo> {
    const info = await this.client.createRoom(name, { topic, visibility, members });
    this.addMembership(info);
    return info;
  }

  async leave(room: number): Promise<void> {
    await this.client.leaveRoom(room);
    this.removeMembership(room, "You left this room.");
  }

  private removeMembership(room: number, why: string): void {
    const rs = this.room(room);
    this.myRooms.delete(room);
    rs.removed = why;
    rs.typing.clear();
    rs.outgoing = [];
    rs.unread = 0;
    this.changed();
  }

  // ------------------------------------------------------------ events

  private onRoomEvent(ev: RoomEvent): void {
    const rs = this.room(ev.room);
    this.applyEvent(rs, ev, true);
    this.changed();
  }

  /** Applies one room event, from history (`live` false) or live. */
  private applyEvent(rs: RoomState, ev: RoomEvent, live: boolean): void {
    const b = ev.body;
    const me = this.me?.user;
    const base = { seq: ev.seq, at: ev.at, actor: ev.actor, actorName: ev.actorName, raw: b };
    switch (b.kind) {
      case "message": {
        const item: Item = { ...base, kind: "message", text: b.text };
        if (b.editedAt !== undefined) item.editedAt = b.editedAt;
        if (b.spans !== undefined) item.spans = b.spans;
        if (b.sticker !== undefined) item.sticker = b.sticker;
        if (b.attachments !== undefined) item.attachments = b.attachments;
        rs.items.set(ev.seq, item);
        if (ev.actor === me) this.settleOutgoing(rs, b.text, ev.seq);
        if (live && ev.actor !== me) this.onOthersMessage(rs, ev, b.text);
        return;
      }
      case "tombstone":
        rs.items.set(ev.seq, { ...base, kind: "message", text: "", deleted: true });
        return;
      case "message_edited": {
        const target = rs.items.get(b.targetSeq);
        if (target !== undefined && b.text !== "") {
          target.text = b.text;
          target.spans = b.spans;
          target.editedAt = ev.at;
        }
        return;
      }
      case "message_deleted": {
        const target = rs.items.get(b.targetSeq);
        if (target !== undefined) {
          target.deleted = true;
          target.text = "";
        }
        return;
      }
      default:
        break;
    }
    // The line's text is made again when shown (names change: PROFILE_CHANGED); here: whether it has one.
    const text = systemText(b, ev.actor, ev.actorName, (_, username) => username);
    if (text !== undefined) rs.items.set(ev.seq, { ...base, kind: "system", text });
    if (typeof b.kind === "number") {
      // A kind newer than this client: shown only if a renderer knows it.
      rs.items.set(ev.seq, { ...base, kind: "system", text: "" });
      return;
    }
    if (!live) return;
    const roomName = rs.info !== undefined ? this.roomName(rs.info) : `room ${rs.id}`;
    switch (b.kind) {
      case "member_joined":
        if (ev.actor === me) void this.refreshMyRooms();
        else if (this.viewing !== rs.id)
          this.toast({ title: roomName, body: `${this.nameOf(ev.actor, ev.actorName)} joined`, href: `/chat/${rs.id}`, tone: "info" });
        if (rs.info !== undefined && ev.actor !== me) rs.info = { ...rs.info, memberCount: rs.info.memberCount + 1 };
        this.membersSoon(rs.id);
        break;
      case "member_left":
        if (ev.actor === me) this.removeMembership(rs.id, "You left this room.");
        else {
          if (this.viewing !== rs.id) {
            this.toast({ title: roomName, body: `${this.nameOf(ev.actor, ev.actorName)} left`, href: `/chat/${rs.id}`, tone: "info" });
          }
          if (rs.info !== undefined) rs.info = { ...rs.info, memberCount: Math.max(0, rs.info.memberCount - 1) };
          rs.typing.delete(ev.actor);
        }
        this.membersSoon(rs.id);
        break;
      case "member_kicked":
      case "member_banned": {
        const verb = b.kind === "member_kicked" ? "removed you from" : "banned you from";
        if (b.target === me) {
          this.removeMembership(rs.id, `${this.nameOf(ev.actor, ev.actorName)} ${verb} ${roomName}.`);
        } else {
          rs.typing.delete(b.target);
          if (rs.info !== undefined && rs.members.some((m) => m.user === b.target)) {
            rs.info = { ...rs.info, memberCount: Math.max(0, rs.info.memberCount - 1) };
          }
        }
        rs.adminVersion++;
        this.membersSoon(rs.id);
        break;
      }
      case "role_changed":
        this.membersSoon(rs.id);
        break;
      case "room_updated":
        if (rs.info !== undefined) rs.info = { ...rs.info, name: b.name, topic: b.topic };
        if (this.myRooms.has(rs.id) && rs.info !== undefined) this.myRooms.set(rs.id, rs.info);
        break;
      case "room_terminated":
        this.removeMembership(rs.id, `${roomName} was closed.`);
        break;
      default:
        break;
    }
  }

  private onOthersMessage(rs: RoomState, ev: RoomEvent, text: string): void {
    rs.typing.delete(ev.actor);
    const looking = this.viewing === rs.id && document.visibilityState === "visible";
    if (looking) {
      this.markReadSoon(rs.id);
      return;
    }
    rs.unread++;
    const roomName = rs.info !== undefined ? this.roomName(rs.info) : `room ${rs.id}`;
    const sender = this.nameOf(ev.actor, ev.actorName);
    if (this.viewing !== rs.id) {
      this.toast({ title: roomName, body: `${sender}: ${text.slice(0, 140)}`, href: `/chat/${rs.id}`, tone: "info" });
    }
    if (document.visibilityState === "hidden") this.systemNotify(`${sender} in ${roomName}`, text.slice(0, 200), `/chat/${rs.id}`);
  }

  private onResumeGap(room: number): void {
    const rs = this.room(room);
    rs.items.clear();
    rs.loaded = false;
    rs.hasMore = true;
    if (this.viewing === room) void this.loadOlder(room);
    this.changed();
  }

  private onNotification(n: Notification): void {
    const known = this.notifications.some((x) => x.id === n.id);
    if (!known) {
      this.notifications = [n, ...this.notifications].sort((a, b) => b.id - a.id);
      if (!n.read) this.notifUnread++;
    }
    if (!known && !n.read && this.liveNotifications) {
      const text = notificationText(n);
      const tone = n.kind === "kicked" || n.kind === "banned" || n.kind === "request_denied" ? "warn" : "info";
      const href = n.kind === "join_request" ? `/chat/${n.room}/admin` : `/chat/${n.room}`;
      this.toast({ title: "Notification", body: text, href, tone });
      this.systemNotify("Confab", text, href);
    }
    switch (n.kind) {
      case "join_request":
        this.room(n.room).adminVersion++;
        break;
      case "request_approved":
      case "role_changed":
        void this.refreshMyRooms();
        this.membersSoon(n.room);
        break;
      default:
        break;
    }
    this.changed();
  }

  private onAnnounced(info: RoomInfo): void {
    // Direct rooms are never in the room list (SPEC.md §5.3.7), only in the caller's own.
    if (info.directUser === undefined) this.announced = [...this.announced, info];
    // Initial members of a new room learn of it here (SPEC.md §5.3.2).
    if (info.owner !== this.me?.user) {
      void this.refreshMyRooms().then((added) => {
        if (added.includes(info.id)) {
          const direct = info.directUser !== undefined;
          this.toast({
            title: direct ? "New direct chat" : "Added to a room",
            body: direct ? `${this.roomName(info)} started a direct chat with you` : `You are now a member of ${info.name}`,
            href: `/chat/${info.id}`,
            tone: "info",
          });
        }
      });
    }
    this.changed();
  }

  private onTyping(room: number, user: number, username: string, typing: boolean): void {
    const rs = this.room(room);
    if (typing) rs.typing.set(user, { username, until: Date.now() + TYPING_TTL_MS });
    else rs.typing.delete(user);
    this.changed();
  }

  private sweepTyping(): void {
    const now = Date.now();
    let any = false;
    for (const rs of this.rooms.values()) {
      for (const [user, t] of rs.typing) {
        if (t.until < now) {
          rs.typing.delete(user);
          any = true;
        }
      }
    }
    if (any) this.changed();
  }

  private onPresence(room: number, changes: { user: number; presence: Presence }[]): void {
    const rs = this.room(room);
    if (!rs.membersLoaded) return;
    const by = new Map(changes.map((c) => [c.user, c.presence]));
    rs.members = rs.members.map((m) => {
      const p = by.get(m.user);
      return p === undefined ? m : { ...m, presence: p, online: p !== "offline" && p !== 0 };
    });
    this.changed();
  }

  // ----------------------------------------------------------- sending

  private highestSeq(rs: RoomState): number {
    let max = rs.info?.lastSeq ?? 0;
    for (const seq of rs.items.keys()) if (seq > max) max = seq;
    return max;
  }

  /** Sends a message (plain or formatted); it shows as pending until acknowledged, failed if not sent. */
  send(room: number, content: MessageContent): void {
    const text = typeof content === "string" ? content : content.text;
    const spans = typeof content === "string" ? [] : ((content.spans ?? []) as Span[]);
    this.dispatch(room, { text, ...(spans.length > 0 ? { spans } : {}) }, () =>
      this.client.sendMessage(room, { text, spans }),
    );
  }

  /** Sends uploaded files (with `text`, which may be empty) as one message. */
  sendFiles(room: number, text: string, files: Attachment[]): void {
    this.dispatch(room, { text, attachments: files }, () =>
      this.client.sendFiles(
        room,
        text,
        files.map((f) => f.id),
      ),
    );
  }

  /** Sends sticker `id` of the catalogue. */
  sendSticker(room: number, id: string): void {
    this.dispatch(room, { text: `:${id}:`, sticker: id }, () => this.client.sendSticker(room, id));
  }

  private dispatch(
    room: number,
    content: { text: string; spans?: Span[]; sticker?: string; attachments?: Attachment[] },
    request: () => ReturnType<ConfabClient["sendMessage"]>,
  ): void {
    const rs = this.room(room);
    const out: Outgoing = { id: this.nextLocal++, room, ...content, status: "sending", afterSeq: this.highestSeq(rs) };
    rs.outgoing = [...rs.outgoing, out];
    this.stopTyping(room);
    this.changed();
    request().then(
      (ack) => {
        if (!rs.items.has(ack.seq) && this.me !== undefined) {
          const { user, username } = this.me;
          rs.items.set(ack.seq, { seq: ack.seq, at: ack.at, actor: user, actorName: username, kind: "message", ...content });
        }
        rs.outgoing = rs.outgoing.filter((o) => o !== out);
        this.markReadSoon(room);
        this.changed();
      },
      (e: unknown) => {
        if (!rs.outgoing.includes(out)) return;
        const k = e instanceof ConfabError ? e.kind : undefined;
        out.status = k === "disconnected" || k === "timeout" || k === "closed" ? "unknown" : "failed";
        out.error = out.status === "unknown" ? "Checking whether it arrived…" : describe(e);
        rs.outgoing = [...rs.outgoing];
        this.changed();
        if (out.status === "unknown" && this.conn === "connected") void this.checkUnknown();
      },
    );
  }

  /** Our own message `seq` arrived: the pending copy with its text is delivered. */
  private settleOutgoing(rs: RoomState, text: string, seq: number): void {
    const i = rs.outgoing.findIndex((o) => o.text === text && o.status !== "failed" && seq > o.afterSeq);
    if (i >= 0) rs.outgoing = rs.outgoing.filter((_, j) => j !== i);
  }

  /** Messages whose fate the connection did not tell: look for them in history. */
  private async checkUnknown(): Promise<void> {
    for (const rs of this.rooms.values()) {
      const unknown = rs.outgoing.filter((o) => o.status === "unknown");
      if (unknown.length === 0) continue;
      try {
        const page = await this.client.history(rs.id, { limit: 100 });
        for (const ev of [...page.events].reverse()) this.applyEvent(rs, ev, false);
        for (const o of unknown) {
          if (!rs.outgoing.includes(o)) continue;
          o.status = "failed";
          o.error = "Not delivered: the connection dropped before the server stored it.";
        }
        rs.outgoing = [...rs.outgoing];
      } catch {
        // Try again on the next connection.
      }
    }
    this.changed();
  }

  retry(room: number, id: number): void {
    const rs = this.room(room);
    const out = rs.outgoing.find((o) => o.id === id);
    if (out === undefined) return;
    rs.outgoing = rs.outgoing.filter((o) => o !== out);
    if (out.sticker !== undefined) this.sendSticker(room, out.sticker);
    else if (out.attachments !== undefined) this.sendFiles(room, out.text, out.attachments);
    else this.send(room, { text: out.text, spans: out.spans ?? [] });
  }

  discard(room: number, id: number): void {
    const rs = this.room(room);
    rs.outgoing = rs.outgoing.filter((o) => o.id !== id);
    this.changed();
  }

  async edit(room: number, seq: number, content: MessageContent): Promise<void> {
    await this.client.editMessage(room, seq, content);
    const item = this.room(room).items.get(seq);
    if (item !== undefined) {
      const text = typeof content === "string" ? content : content.text;
      const spans = typeof content === "string" ? undefined : (content.spans as Span[] | undefined);
      item.text = text;
      item.spans = spans !== undefined && spans.length > 0 ? spans : undefined;
      item.editedAt ??= Date.now();
    }
    this.changed();
  }

  async remove(room: number, seq: number): Promise<void> {
    await this.client.deleteMessage(room, seq);
    const item = this.room(room).items.get(seq);
    if (item !== undefined) {
      item.deleted = true;
      item.text = "";
    }
    this.changed();
  }

  /** The user typed in `room`'s message box: START at most every 3 s (SPEC.md §5.5.7). */
  typing(room: number): void {
    const now = Date.now();
    if (now - (this.typingSentAt.get(room) ?? 0) < 3000 || this.conn !== "connected") return;
    this.typingSentAt.set(room, now);
    this.client.typingStart(room).catch(() => undefined);
  }

  stopTyping(room: number): void {
    if (!this.typingSentAt.has(room)) return;
    this.typingSentAt.delete(room);
    if (this.conn === "connected" && this.myRooms.has(room)) this.client.typingStop(room).catch(() => undefined);
  }

  /** Moves the read marker to the room's newest event, soon (while the user looks at it). */
  markReadSoon(room: number): void {
    if (this.viewing !== room || document.visibilityState !== "visible" || !this.myRooms.has(room)) return;
    clearTimeout(this.markerTimers.get(room));
    this.markerTimers.set(
      room,
      setTimeout(() => {
        const rs = this.room(room);
        let last = 0;
        for (const seq of rs.items.keys()) if (seq > last) last = seq;
        if (last <= rs.readSeq && rs.unread === 0) return;
        this.client.setReadMarker(room, last).then(
          (r) => {
            rs.readSeq = Math.max(rs.readSeq, r.readSeq);
            rs.unread = r.unread;
            this.changed();
          },
          () => undefined,
        );
      }, 400),
    );
  }

  // ------------------------------------------------------ notifications

  async markAllRead(): Promise<void> {
    const top = this.notifications[0]?.id;
    if (top === undefined) return;
    this.notifUnread = await this.client.markRead(top);
    this.notifications = this.notifications.map((n) => (n.id <= top ? { ...n, read: true } : n));
    this.changed();
  }
}

export const app = new App();
