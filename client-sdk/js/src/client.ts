/**
 * ConfabClient: one WebSocket connection to confabd (SPEC.md §1.4.2),
 * re-established with backoff when it drops, with typed requests and
 * events.
 */

import { backoffDelay, reconnectPolicy, type ReconnectOptions, type ReconnectPolicy } from "./backoff.js";
import { systemClock, type Clock, type TimerHandle } from "./clock.js";
import { ErrorCode, errorCodeName, mayReconnectAfter } from "./codes.js";
import {
  DEFAULT_MAX_FRAME_LEN,
  MAX_SERVER_FRAME_LEN,
  PROTOCOL_VERSION,
  decodeServerRaw,
  encodeRequest,
  splitFrame,
} from "./codec.js";
import { ConfabError, DecodeError } from "./errors.js";
import { ConfabEvent, type ConfabEventMap, type ConfabEventType, type ConnectionState } from "./events.js";
import {
  requestDef,
  typeRange,
  type AuditItem,
  type Member,
  type Notification,
  type ReadState,
  type ReplyOf,
  type RequestInput,
  type RequestInputPayload,
  type RequestTypeName,
  type ResumePoint,
  type Role,
  type RoomEvent,
  type RoomInfo,
  type RoomLogItem,
  type ServerMessage,
  type ServerMessageOf,
  type Profile,
  type SpanInput,
  type Sticker,
  type UserEntry,
  type UserRef,
  type Visibility,
  type Welcome,
} from "./frames.js";
import { RichText } from "./rich.js";
import { SeqTracker } from "./tracker.js";

/** The client name this SDK announces in HELLO. */
export const CLIENT_NAME = "confab-sdk-js/0.1.0";

/** The part of the WebSocket API the client uses (the browser's, Node 22's, or the `ws` package's). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ConfabClientOptions {
  /**
   * The server's WebSocket address, e.g. `ws://127.0.0.1:7480/ws` (or
   * `wss://…`). Several servers — the nodes of one cluster — as a
   * comma-separated list or an array: {@link ConfabClient.connect} tries
   * them in order until one answers WELCOME (a refusal no retry mends, such
   * as `INVALID_TOKEN`, ends the tries at once); after a disconnect the
   * client reconnects to the same server first, then to the next of the
   * list (round it) after each failed attempt.
   */
  url: string | readonly string[];
  /** The WebSocket implementation. Default `globalThis.WebSocket` (browsers, Node ≥ 22); on Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** A session token from an earlier SESSION: the connection authenticates in HELLO. */
  token?: string;
  /** Rooms to resume from the start (e.g. saved {@link ConfabClient.resumePoints} of an earlier client). */
  resume?: readonly ResumePoint[];
  /** The client name sent in HELLO (for the server's logs). Default {@link CLIENT_NAME}. */
  clientName?: string;
  /** Bound on each request's reply, and on how long a request waits for a connection. Default 10000 ms. */
  requestTimeoutMs?: number;
  /** Bound on opening the WebSocket plus the HELLO/WELCOME handshake. Default 10000 ms. */
  connectTimeoutMs?: number;
  /** How often to send PING. Default: half of WELCOME's `heartbeat_ms`. */
  heartbeatIntervalMs?: number;
  /** A connection from which nothing arrives this long after a PING is presumed dead. Default: WELCOME's `heartbeat_ms` (SPEC.md §7.6). */
  heartbeatTimeoutMs?: number;
  /** Reconnection: `false` to disable, or the backoff's bounds. Default: enabled, 1 s to 30 s. */
  reconnect?: ReconnectOptions | boolean;
  /** Largest frame accepted from the server; a larger one drops the connection. Default 16 MiB (SPEC.md §2.2). */
  maxInboundFrameLen?: number;
  /** Timers (tests inject a fake one). */
  clock?: Clock;
  /** Random numbers in [0, 1) for the backoff's jitter (tests inject their own). */
  random?: () => number;
}

/** An authenticated session: the token authenticates later connections. */
export interface Session {
  user: number;
  username: string;
  token: string;
}

/** Options for {@link ConfabClient.createRoom}. */
export interface NewRoom {
  topic?: string;
  /** Default `"public"`. */
  visibility?: Visibility;
  /** Initial members besides the creator: user ids or usernames (at most 50). */
  members?: readonly (number | string)[];
}

export type MessageAck = Omit<ServerMessageOf<"MESSAGE_ACK">, "type">;
export type HistoryPage = Omit<ServerMessageOf<"HISTORY_PAGE">, "type">;
export type RoomPage = { rooms: RoomInfo[]; total: number };
export type MyRooms = { rooms: RoomInfo[]; unreadTotal: number; readStates: ReadState[] };
export type NotificationPage = Omit<ServerMessageOf<"NOTIFICATION_LIST">, "type">;
export type AuditPage = { room: number; hasMore: boolean; items: AuditItem[] };

/** A message's content: plain text, a {@link RichText}, or a text with its spans (UTF-8 byte offsets). */
export type MessageContent = string | RichText | { readonly text: string; readonly spans?: readonly SpanInput[] };

function content(c: MessageContent): { text: string; spans: readonly SpanInput[] } {
  if (typeof c === "string") return { text: c, spans: [] };
  if (c instanceof RichText) return { text: c.text, spans: c.spans };
  return { text: c.text, spans: c.spans ?? [] };
}

/** The value sent for an optional "before": 0 asks for the newest, so "before the first" becomes 1. */
function beforeOnWire(before: number | undefined): number {
  return before === undefined ? 0 : Math.max(before, 1);
}

/** A user named by id (a number) or by username (a string). */
export function userRef(user: number | string | UserRef): UserRef {
  if (typeof user === "number") return { id: user, username: "" };
  if (typeof user === "string") return { id: 0, username: user };
  return user;
}

interface Pending {
  type: RequestTypeName | "heartbeat";
  resolve: (msg: ServerMessage) => void;
  reject: (e: ConfabError) => void;
  timer: TimerHandle | undefined;
}

interface Queued {
  msg: RequestInput;
  resolve: (msg: ServerMessage) => void;
  reject: (e: ConfabError) => void;
  timer: TimerHandle;
}

/** One WebSocket and the state of its handshake. */
interface Link {
  ws: WebSocketLike;
  /** HELLO's request id. */
  helloId: number;
  /** WELCOME received. */
  welcomed: boolean;
  connectTimer: TimerHandle | undefined;
  /** The server's CLOSE, if it sent one, or the handshake's ERROR. */
  serverEnd: ConfabError | undefined;
  heartbeatTimer: TimerHandle | undefined;
  deadTimer: TimerHandle | undefined;
  /** The request id of the heartbeat PING awaiting its PONG, if any. */
  pingId: number | undefined;
  lastRx: number;
}

/** The WebSocket `readyState` of an open socket. */
const OPEN = 1;
/** Lower bound on the heartbeat interval, whatever the server announces. */
const MIN_HEARTBEAT_MS = 50;
/** How many notification ids are remembered to drop repeats. */
const NOTIFICATION_MEMORY = 4096;

/**
 * A Confab client over WebSocket.
 *
 * ```ts
 * const client = new ConfabClient({ url: "ws://127.0.0.1:7480/ws" });
 * client.on("roomevent", (ev) => { if (ev.body.kind === "message") console.log(ev.actorName, ev.body.text); });
 * await client.connect();
 * await client.login("alice", "secret123");
 * ```
 *
 * Requests made while the client is (re)connecting wait for the
 * connection, up to the request timeout, and then fail with a
 * {@link ConfabError} of kind `not_sent`: nothing is silently dropped.
 * Requests in flight when the connection drops fail with kind
 * `disconnected` and are never resent (a message may have been stored).
 */
export class ConfabClient extends EventTarget {
  /** The servers, in order (several: the nodes of one cluster). */
  private readonly urls: readonly string[];
  /** The server connected to, or tried next. */
  private current = 0;
  /** Servers of the list not yet tried by this {@link connect} (tried at once, without backoff). */
  private untried = 0;
  private readonly WS: WebSocketConstructor | undefined;
  private readonly clientName: string;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly heartbeatIntervalMs: number | undefined;
  private readonly heartbeatTimeoutMs: number | undefined;
  private readonly policy: ReconnectPolicy;
  private readonly maxInboundFrameLen: number;
  private readonly clock: Clock;
  private readonly random: () => number;

  private currentState: ConnectionState = "disconnected";
  private link: Link | undefined;
  private everConnected = false;
  private attempt = 0;
  private retryTimer: TimerHandle | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private queue: Queued[] = [];
  private readonly tracker = new SeqTracker();
  private readonly seenNotifications = new Set<number>();
  private currentToken: string | undefined;
  private currentSession: { user: number; username: string } | undefined;
  private currentWelcome: Welcome | undefined;
  /** Cleared by LOGOUT and by a refusal that ends the session. */
  private mayReconnect = true;
  private waiters: { resolve: (w: Welcome) => void; reject: (e: ConfabError) => void }[] = [];

  constructor(options: ConfabClientOptions) {
    super();
    this.urls = serverUrls(options.url);
    this.WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.clientName = options.clientName ?? CLIENT_NAME;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs;
    this.policy = reconnectPolicy(options.reconnect);
    this.maxInboundFrameLen = options.maxInboundFrameLen ?? MAX_SERVER_FRAME_LEN;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.currentToken = options.token;
    for (const p of options.resume ?? []) this.tracker.raise(p.room, p.after);
  }

  // ------------------------------------------------------------ state

  /** The connection's state. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** The server connected to (or tried next): one of the `url` option's list. */
  get url(): string {
    return this.urls[this.current]!;
  }

  /** WELCOME of the current (or last) connection: server name and limits. */
  get welcome(): Welcome | undefined {
    return this.currentWelcome;
  }

  /** Who the connection is authenticated as, if anyone. */
  get session(): { user: number; username: string } | undefined {
    return this.currentSession;
  }

  /** The session token used to re-authenticate after a reconnect (from the options, REGISTER or LOGIN); cleared by LOGOUT. */
  get token(): string | undefined {
    return this.currentToken;
  }

  /**
   * Listens for `type`; the handler gets the event's detail. Returns a
   * function that removes the listener.
   */
  on<K extends ConfabEventType>(type: K, handler: (detail: ConfabEventMap[K]) => void): () => void {
    const listener = (e: Event) => handler((e as ConfabEvent<K>).detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /** Like {@link on}, for one event. */
  once<K extends ConfabEventType>(type: K, handler: (detail: ConfabEventMap[K]) => void): () => void {
    const off = this.on(type, (detail) => {
      off();
      handler(detail);
    });
    return off;
  }

  private emit<K extends ConfabEventType>(type: K, detail: ConfabEventMap[K]): void {
    this.dispatchEvent(new ConfabEvent(type, detail));
  }

  private setState(state: ConnectionState, extra: { attempt?: number; delayMs?: number; error?: ConfabError } = {}): void {
    const previous = this.currentState;
    this.currentState = state;
    this.emit("statechange", {
      state,
      previous,
      attempt: extra.attempt ?? 0,
      delayMs: extra.delayMs ?? 0,
      error: extra.error,
    });
  }

  // ------------------------------------------------------- connecting

  /**
   * Connects (HELLO with the token and resume points, then WELCOME).
   * Resolves with WELCOME once connected. If the attempt fails and
   * reconnection is enabled, the client keeps trying with backoff (state
   * `reconnecting`) and the promise waits; it rejects when the client
   * gives up (out of attempts, a refusal such as `INVALID_TOKEN`, or
   * {@link close}). Calling it while connected resolves at once.
   */
  connect(): Promise<Welcome> {
    if (this.currentState === "connected" && this.currentWelcome !== undefined) {
      return Promise.resolve(this.currentWelcome);
    }
    const promise = new Promise<Welcome>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.currentState === "disconnected") {
      this.mayReconnect = true;
      this.attempt = 0;
      this.current = 0;
      this.untried = this.urls.length - 1;
      this.setState("connecting");
      this.open();
    }
    return promise;
  }

  /**
   * Closes the connection and stops reconnecting. Requests in flight fail
   * (`disconnected`), queued ones fail (`not_sent`). The client can
   * {@link connect} again later.
   */
  close(): void {
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const link = this.link;
    const wasConnected = link?.welcomed === true;
    if (link !== undefined) this.drop(link, 1000, "client closed");
    const error = new ConfabError("not_sent", "the client was closed: the request was not sent");
    this.failPending(new ConfabError("disconnected", "the client was closed while the request was in flight"));
    this.failQueue(error);
    this.failWaiters(new ConfabError("connect_failed", "the client was closed before it connected"));
    if (this.currentState !== "disconnected") {
      if (wasConnected) {
        this.emit("disconnected", { code: undefined, codeName: undefined, message: "closed by the client", willReconnect: false });
      }
      this.setState("disconnected");
    }
  }

  private open(): void {
    const WS = this.WS;
    if (WS === undefined) {
      this.attemptFailed(
        new ConfabError("connect_failed", "no WebSocket implementation: pass options.WebSocket (the `ws` package on Node 20)"),
        false,
      );
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new WS(this.url);
    } catch (e) {
      this.attemptFailed(new ConfabError("connect_failed", `cannot open ${this.url}: ${String(e)}`, { cause: e }), false);
      return;
    }
    ws.binaryType = "arraybuffer";
    const link: Link = {
      ws,
      helloId: this.allocateId(),
      welcomed: false,
      connectTimer: undefined,
      serverEnd: undefined,
      heartbeatTimer: undefined,
      deadTimer: undefined,
      pingId: undefined,
      lastRx: this.clock.now(),
    };
    this.link = link;
    link.connectTimer = this.clock.setTimeout(() => {
      if (this.link !== link) return;
      this.lost(link, new ConfabError("connect_failed", `no WELCOME within ${this.connectTimeoutMs} ms`));
    }, this.connectTimeoutMs);
    ws.addEventListener("open", () => {
      if (this.link !== link) return;
      const hello = encodeRequest(link.helloId, {
        type: "HELLO",
        version: PROTOCOL_VERSION,
        client: this.clientName,
        token: this.currentToken,
        resume: this.tracker.resumePoints(),
      });
      ws.send(hello);
    });
    ws.addEventListener("message", (event: { data: unknown }) => {
      if (this.link !== link) return;
      this.onMessage(link, event.data);
    });
    ws.addEventListener("close", (event: { code?: number; reason?: string }) => {
      if (this.link !== link) return;
      const why = link.serverEnd ?? new ConfabError(
        link.welcomed ? "disconnected" : "connect_failed",
        `connection closed (WebSocket code ${event.code ?? "?"}${event.reason ? `: ${event.reason}` : ""})`,
      );
      this.lost(link, why);
    });
    ws.addEventListener("error", () => {
      // A "close" event follows; nothing to do here.
    });
  }

  /** Detaches `link` (its later events are ignored) and closes its socket. */
  private drop(link: Link, code: number, reason: string): void {
    if (this.link === link) this.link = undefined;
    for (const t of [link.connectTimer, link.heartbeatTimer, link.deadTimer]) {
      if (t !== undefined) this.clock.clearTimeout(t);
    }
    try {
      link.ws.close(code, reason);
    } catch {
      // Already closed, or closing.
    }
  }

  /** The link ended (socket closed, CLOSE received, heartbeat lost, broken frame). */
  private lost(link: Link, why: ConfabError): void {
    const wasConnected = link.welcomed;
    this.drop(link, 1000, "");
    // What the server said (ERROR or CLOSE) decides whether to come back;
    // garbage the client could not decode is worth another connection.
    const serverCode = why.kind === "server" || why.kind === "closed" ? why.code : undefined;
    if (!wasConnected) {
      // The handshake failed. Not again after INVALID_TOKEN (the session is
      // gone) or UNSUPPORTED_VERSION; STORAGE_UNAVAILABLE and the rest are
      // worth another try.
      const retry = serverCode === undefined || mayReconnectAfter(serverCode);
      if (serverCode === ErrorCode.INVALID_TOKEN) this.currentToken = undefined;
      this.attemptFailed(why, retry);
      return;
    }
    this.failPending(
      why.kind === "closed"
        ? why
        : new ConfabError("disconnected", `the connection dropped while the request was in flight (${why.message}); it may have been applied`, {
            cause: why,
          }),
    );
    if (serverCode !== undefined && !mayReconnectAfter(serverCode)) this.mayReconnect = false;
    const willReconnect = this.policy.enabled && this.mayReconnect;
    this.emit("disconnected", {
      code: why.code,
      codeName: why.codeName,
      message: why.message,
      willReconnect,
    });
    if (willReconnect) {
      this.attempt = 0;
      this.scheduleRetry(why);
    } else {
      this.giveUp(why);
    }
  }

  /**
   * A connection attempt failed before WELCOME. The next attempt goes to
   * the next server of the list; while {@link connect} has servers it has
   * not tried, at once.
   */
  private attemptFailed(why: ConfabError, retryable: boolean): void {
    if (retryable && this.mayReconnect) {
      this.current = (this.current + 1) % this.urls.length;
      if (this.untried > 0 && this.currentState === "connecting") {
        this.untried--;
        this.open();
        return;
      }
    }
    if (retryable && this.policy.enabled && this.mayReconnect) {
      this.scheduleRetry(why);
    } else {
      this.giveUp(why);
    }
  }

  private scheduleRetry(why: ConfabError): void {
    if (this.attempt >= this.policy.maxAttempts) {
      this.giveUp(new ConfabError("connect_failed", `gave up after ${this.attempt} reconnect attempts: ${why.message}`, { cause: why }));
      return;
    }
    const delayMs = backoffDelay(this.policy, this.attempt, this.random());
    this.attempt++;
    this.setState("reconnecting", { attempt: this.attempt, delayMs, error: why });
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (this.currentState === "reconnecting") this.open();
    }, delayMs);
  }

  private giveUp(why: ConfabError): void {
    this.failQueue(new ConfabError("not_sent", `not connected (${why.message}): the request was not sent`, { cause: why }));
    const refusal = why.kind === "server" || why.kind === "closed" ? why : new ConfabError("connect_failed", why.message, { cause: why });
    this.failWaiters(refusal);
    this.setState("disconnected", { error: why });
  }

  private onWelcome(link: Link, welcome: Welcome): void {
    link.welcomed = true;
    if (link.connectTimer !== undefined) this.clock.clearTimeout(link.connectTimer);
    link.connectTimer = undefined;
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    this.untried = 0;
    this.currentWelcome = welcome;
    this.currentSession = welcome.session;
    if (welcome.session === undefined) this.currentToken = undefined; // anonymous
    this.startHeartbeat(link, welcome);
    this.setState("connected");
    this.emit("connected", { welcome, reconnected });
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(welcome);
    // Requests made while (re)connecting, in the order they were made.
    const queue = this.queue;
    this.queue = [];
    for (const q of queue) {
      this.clock.clearTimeout(q.timer);
      this.send(q.msg, q.resolve, q.reject);
    }
  }

  // -------------------------------------------------------- heartbeat

  private startHeartbeat(link: Link, welcome: Welcome): void {
    const interval =
      this.heartbeatIntervalMs ?? (welcome.heartbeatMs > 0 ? Math.floor(welcome.heartbeatMs / 2) : undefined);
    if (interval === undefined) return;
    const period = Math.max(interval, MIN_HEARTBEAT_MS);
    const deadAfter = this.heartbeatTimeoutMs ?? Math.max(welcome.heartbeatMs, period);
    const tick = () => {
      if (this.link !== link) return;
      const sentAt = this.clock.now();
      // At most one heartbeat awaits its PONG: an older one is forgotten.
      if (link.pingId !== undefined) this.pending.delete(link.pingId);
      const id = this.allocateId();
      link.pingId = id;
      this.pending.set(id, { type: "heartbeat", resolve: () => {}, reject: () => {}, timer: undefined });
      this.rawSend(link, encodeRequest(id, { type: "PING", nonce: id }));
      if (link.deadTimer === undefined) {
        link.deadTimer = this.clock.setTimeout(() => {
          link.deadTimer = undefined;
          if (this.link !== link) return;
          if (link.lastRx < sentAt) {
            this.lost(link, new ConfabError("disconnected", `no reply to PING within ${deadAfter} ms: connection presumed dead`));
          }
        }, deadAfter);
      }
      link.heartbeatTimer = this.clock.setTimeout(tick, period);
    };
    link.heartbeatTimer = this.clock.setTimeout(tick, period);
  }

  // ---------------------------------------------------------- inbound

  private onMessage(link: Link, data: unknown): void {
    link.lastRx = this.clock.now();
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      this.broken(link, new ConfabError("protocol", "the server sent a text message (SPEC.md §1.4.2)"));
      return;
    }
    let decoded: { requestId: number; message: ServerMessage };
    try {
      const frame = splitFrame(bytes, this.maxInboundFrameLen);
      try {
        decoded = decodeServerRaw(frame);
      } catch (e) {
        if (e instanceof DecodeError && e.reason === "unknown_frame_type") {
          this.onUnknownType(frame.type, frame.requestId);
          return;
        }
        throw e;
      }
    } catch (e) {
      const err = e instanceof DecodeError ? e : new DecodeError("truncated", String(e));
      this.broken(link, new ConfabError("protocol", `undecodable frame from the server: ${err.message}`, { cause: err, code: err.code }));
      return;
    }
    this.onFrame(link, decoded.requestId, decoded.message);
  }

  /** SPEC.md §11.2: unknown event types are ignored; an unknown reply fails its request. */
  private onUnknownType(type: number, requestId: number): void {
    if (typeRange(type) === "event") return;
    const p = this.pending.get(requestId);
    if (requestId !== 0 && p !== undefined) {
      this.settle(requestId);
      p.reject(new ConfabError("protocol", `reply of unknown frame type 0x${type.toString(16)}`));
    }
  }

  /** The server broke the protocol: report it and drop the connection (SPEC.md §12.2). */
  private broken(link: Link, error: ConfabError): void {
    this.emit("protocolerror", error);
    this.lost(link, error);
  }

  private onFrame(link: Link, requestId: number, msg: ServerMessage): void {
    if (!link.welcomed) {
      this.onHandshakeFrame(link, requestId, msg);
      return;
    }
    switch (msg.type) {
      case "EVENT":
        this.onRoomEvent(msg);
        return;
      case "RESUME_GAP":
        // `lastSeq` may be below what we saw (events lost in a crash; their
        // numbers are reused): set, not raise.
        this.tracker.set(msg.room, msg.lastSeq);
        this.emit("resumegap", { room: msg.room, lastSeq: msg.lastSeq });
        return;
      case "NOTIFICATION":
        this.onNotification(msg.notification);
        return;
      case "ROOM_ANNOUNCED":
        this.emit("roomannounced", msg.info);
        return;
      case "TYPING":
        this.emit("typing", { room: msg.room, user: msg.user, username: msg.username, typing: msg.typing });
        return;
      case "READ_MARKER_MOVED":
        this.emit("readmarkermoved", { room: msg.room, readSeq: msg.readSeq, unread: msg.unread });
        return;
      case "PRESENCE":
        this.emit("presence", { room: msg.room, changes: msg.changes });
        return;
      case "PROFILE_CHANGED":
        this.emit("profilechanged", { room: msg.room, changes: msg.changes });
        return;
      case "CLOSE":
        this.onClose(link, msg.code, msg.message);
        return;
      default:
        this.onReply(requestId, msg);
    }
  }

  private onHandshakeFrame(link: Link, requestId: number, msg: ServerMessage): void {
    switch (msg.type) {
      case "WELCOME":
        if (requestId === link.helloId) this.onWelcome(link, msg);
        return;
      case "ERROR":
        // INVALID_TOKEN or STORAGE_UNAVAILABLE; CLOSE follows.
        link.serverEnd = ConfabError.server(msg.code, msg.message, msg.retryAfterMs);
        return;
      case "CLOSE":
        link.serverEnd ??= ConfabError.closed(msg.code, msg.message);
        this.emit("close", { code: msg.code, codeName: errorCodeName(msg.code), message: msg.message });
        this.lost(link, link.serverEnd);
        return;
      default:
        return; // Nothing else comes before WELCOME.
    }
  }

  private onClose(link: Link, code: number, message: string): void {
    const error = ConfabError.closed(code, message);
    link.serverEnd = error;
    this.emit("close", { code, codeName: errorCodeName(code), message });
    if (code === ErrorCode.LOGGED_OUT || code === ErrorCode.INVALID_TOKEN || code === ErrorCode.PASSWORD_CHANGED) {
      this.currentToken = undefined;
      this.currentSession = undefined;
    }
    // CLOSE is the server's last frame; do not wait for the socket to end.
    this.lost(link, error);
  }

  private onRoomEvent(ev: RoomEvent): void {
    if (!this.tracker.observe(ev.room, ev.seq)) return; // a duplicate
    const me = this.currentSession?.user;
    const body = ev.body;
    const gone =
      (body.kind === "member_left" && ev.actor === me) ||
      ((body.kind === "member_kicked" || body.kind === "member_banned") && body.target === me) ||
      body.kind === "room_terminated";
    // We get nothing more from this room: do not ask to resume it.
    if (gone) this.tracker.forget(ev.room);
    this.emit("roomevent", ev);
  }

  private onNotification(n: Notification): void {
    if (this.seenNotifications.has(n.id)) return;
    this.seenNotifications.add(n.id);
    if (this.seenNotifications.size > NOTIFICATION_MEMORY) {
      const oldest = this.seenNotifications.values().next();
      if (oldest.done !== true) this.seenNotifications.delete(oldest.value);
    }
    this.emit("notification", n);
  }

  private onReply(requestId: number, msg: ServerMessage): void {
    const p = this.pending.get(requestId);
    if (p === undefined || requestId === 0) return; // timed out, or not ours
    this.settle(requestId);
    if (p.type === "heartbeat") return;
    if (msg.type === "ERROR") {
      p.reject(ConfabError.server(msg.code, msg.message, msg.retryAfterMs));
      return;
    }
    if (!requestDef(p.type).replies.includes(msg.type)) {
      p.reject(new ConfabError("protocol", `unexpected reply to ${p.type}: ${msg.type}`));
      return;
    }
    this.learn(p.type, msg);
    p.resolve(msg);
  }

  /** Remembers what a successful reply changes about the session. */
  private learn(type: RequestTypeName, msg: ServerMessage): void {
    if ((type === "REGISTER" || type === "LOGIN") && msg.type === "SESSION") {
      this.currentToken = msg.token;
      this.currentSession = { user: msg.user, username: msg.username };
    } else if (type === "LOGOUT" && msg.type === "OK") {
      this.mayReconnect = false;
      this.currentToken = undefined;
      this.currentSession = undefined;
    }
  }

  // --------------------------------------------------------- requests

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= 0xffff_ffff ? 1 : id + 1;
      if (!this.pending.has(id) && id !== this.link?.helloId) return id;
    }
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (p?.timer !== undefined) this.clock.clearTimeout(p.timer);
    this.pending.delete(id);
  }

  private rawSend(link: Link, bytes: Uint8Array): boolean {
    if (link.ws.readyState !== OPEN) return false;
    try {
      link.ws.send(bytes);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Sends request `type` and resolves with its reply (one of the reply
   * types the frame table lists for it); an ERROR reply rejects with a
   * {@link ConfabError} of kind `server`. The typed methods are built on
   * this.
   */
  request<K extends RequestTypeName>(type: K, payload: RequestInputPayload<K>): Promise<ReplyOf<K>> {
    return new Promise<ServerMessage>((resolve, reject) => {
      const msg = { type, ...payload } as RequestInput;
      if (type === "HELLO") {
        reject(new ConfabError("invalid_request", "HELLO is sent by the client itself"));
        return;
      }
      if (this.currentState === "connected" && this.link?.welcomed === true) {
        this.send(msg, resolve, reject);
        return;
      }
      if (this.currentState === "disconnected") {
        reject(new ConfabError("not_sent", `not connected (state ${this.currentState}): the request was not sent; call connect()`));
        return;
      }
      // Connecting or reconnecting: wait for the connection, up to the request timeout.
      const queued: Queued = {
        msg,
        resolve,
        reject,
        timer: this.clock.setTimeout(() => {
          this.queue = this.queue.filter((q) => q !== queued);
          reject(
            new ConfabError(
              "not_sent",
              `not connected within ${this.requestTimeoutMs} ms (state ${this.currentState}): the ${type} request was not sent`,
            ),
          );
        }, this.requestTimeoutMs),
      };
      this.queue.push(queued);
    }) as Promise<ReplyOf<K>>;
  }

  private send(msg: RequestInput, resolve: (m: ServerMessage) => void, reject: (e: ConfabError) => void): void {
    const link = this.link;
    if (link === undefined || !link.welcomed) {
      reject(new ConfabError("not_sent", "not connected: the request was not sent"));
      return;
    }
    const id = this.allocateId();
    let bytes: Uint8Array;
    try {
      bytes = encodeRequest(id, msg);
    } catch (e) {
      reject(new ConfabError("invalid_request", `cannot encode ${msg.type}: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
      return;
    }
    const max = this.currentWelcome?.maxFrameLen ?? DEFAULT_MAX_FRAME_LEN;
    if (bytes.length - 4 > max) {
      reject(new ConfabError("frame_too_large", `${msg.type} of ${bytes.length - 4} bytes exceeds the server's max_frame_len ${max}; not sent`));
      return;
    }
    const timer = this.clock.setTimeout(() => {
      if (!this.pending.has(id)) return;
      this.pending.delete(id);
      reject(new ConfabError("timeout", `no reply to ${msg.type} within ${this.requestTimeoutMs} ms; it may have been applied`));
    }, this.requestTimeoutMs);
    this.pending.set(id, { type: msg.type, resolve, reject, timer });
    if (!this.rawSend(link, bytes)) {
      this.settle(id);
      reject(new ConfabError("not_sent", "the connection is closing: the request was not sent"));
    }
  }

  private failPending(error: ConfabError): void {
    const pending = [...this.pending.entries()];
    for (const [id] of pending) this.settle(id);
    for (const [, p] of pending) if (p.type !== "heartbeat") p.reject(error);
  }

  private failQueue(error: ConfabError): void {
    const queue = this.queue;
    this.queue = [];
    for (const q of queue) {
      this.clock.clearTimeout(q.timer);
      q.reject(error);
    }
  }

  private failWaiters(error: ConfabError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
  }

  // ------------------------------------------------------ resume state

  /**
   * Declares that the application has seen `room` up to `seq` (from
   * {@link history}, say): later events at or below it are dropped, and a
   * reconnect resumes after it. Never lowers what was seen.
   */
  trackRoom(room: number, seq: number): void {
    this.tracker.raise(room, seq);
  }

  /** The last seen seq of `room`, if tracked. */
  lastSeen(room: number): number | undefined {
    return this.tracker.lastSeen(room);
  }

  /** What a reconnect would resume from: pass it as `resume` to a later client. */
  resumePoints(): ResumePoint[] {
    return this.tracker.resumePoints();
  }

  // -------------------------------------------------- typed requests

  /** Creates an account and authenticates this connection as it. */
  async register(username: string, password: string): Promise<Session> {
    const { user, username: name, token } = await this.request("REGISTER", { username, password });
    return { user, username: name, token };
  }

  /** Authenticates this connection. */
  async login(username: string, password: string): Promise<Session> {
    const { user, username: name, token } = await this.request("LOGIN", { username, password });
    return { user, username: name, token };
  }

  /** Ends the session; the server then closes every connection using it (CLOSE `LOGGED_OUT`) and the client stays disconnected. */
  async logout(): Promise<void> {
    await this.request("LOGOUT", {});
  }

  /** Sends PING and resolves with the round-trip time in ms. */
  async ping(): Promise<number> {
    const start = this.clock.now();
    await this.request("PING", { nonce: Math.floor(this.random() * 2 ** 32) });
    return this.clock.now() - start;
  }

  /** Creates a room owned by the caller, with its initial members; resolves once durable. */
  async createRoom(name: string, options: NewRoom = {}): Promise<RoomInfo> {
    const reply = await this.request("CREATE_ROOM", {
      name,
      topic: options.topic ?? "",
      visibility: options.visibility ?? "public",
      members: (options.members ?? []).map(userRef),
    });
    return reply.info;
  }

  /** Rooms visible to the caller whose name or topic contains `query` (case-insensitive), by id. */
  async listRooms(options: { query?: string; offset?: number; limit?: number } = {}): Promise<RoomPage> {
    const { rooms, total } = await this.request("LIST_ROOMS", {
      query: options.query ?? "",
      offset: options.offset ?? 0,
      limit: options.limit ?? 50,
      exact: false,
    });
    return { rooms, total };
  }

  /** Rooms named exactly `name` (case-insensitive, trimmed); names are not unique. */
  async roomsNamed(name: string, options: { offset?: number; limit?: number } = {}): Promise<RoomPage> {
    const { rooms, total } = await this.request("LIST_ROOMS", {
      query: name,
      offset: options.offset ?? 0,
      limit: options.limit ?? 50,
      exact: true,
    });
    return { rooms, total };
  }

  /** Joins a room; resolves once durable. */
  async joinRoom(room: number): Promise<RoomInfo> {
    return (await this.request("JOIN_ROOM", { room })).info;
  }

  /** Leaves a room; resolves once durable. */
  async leaveRoom(room: number): Promise<void> {
    await this.request("LEAVE_ROOM", { room });
  }

  /** The room's members in join order, with their presence (members only). */
  async listMembers(room: number): Promise<Member[]> {
    return (await this.request("LIST_MEMBERS", { room })).members;
  }

  /**
   * Sends a message — plain text, or formatted (a {@link RichText}, or a
   * text with spans); resolves on the server's durable acknowledgement.
   */
  async sendMessage(room: number, message: MessageContent): Promise<MessageAck> {
    const { text, spans } = content(message);
    const { room: r, seq, at } = await this.request("SEND_MESSAGE", { room, body: text, spans });
    return { room: r, seq, at };
  }

  /**
   * Sends a message carrying files this user uploaded to `room` (see
   * {@link uploadFile}; at most 10, SPEC.md §13.5), with `message` as its
   * text, which may be empty. Members receive each file's id, name, type,
   * size and an image's size in pixels.
   */
  async sendFiles(room: number, message: MessageContent, files: readonly number[]): Promise<MessageAck> {
    const { text, spans } = content(message);
    const { room: r, seq, at } = await this.request("SEND_MESSAGE", {
      room,
      body: text,
      spans,
      attachments: [...files],
    });
    return { room: r, seq, at };
  }

  /** Sends the sticker `id` of the server's catalogue (see {@link listStickers}). */
  async sendSticker(room: number, id: string): Promise<MessageAck> {
    const { room: r, seq, at } = await this.request("SEND_MESSAGE", { room, body: "", sticker: id });
    return { room: r, seq, at };
  }

  /**
   * Replaces the text and spans of your message `seq` (an edit without
   * spans leaves it unformatted); the ack carries the MESSAGE_EDITED
   * event's seq.
   */
  async editMessage(room: number, seq: number, message: MessageContent): Promise<MessageAck> {
    const { text, spans } = content(message);
    const { room: r, seq: s, at } = await this.request("EDIT_MESSAGE", { room, seq, text, spans });
    return { room: r, seq: s, at };
  }

  /**
   * Opens the direct chat (a one-to-one private room) with a user, by id
   * or username: creates it, or returns the one the two already have
   * (rejoining it if you left). Its RoomInfo is named after the other user
   * and carries `directUser` / `directUsername`.
   */
  async openDirect(user: number | string): Promise<RoomInfo> {
    return (await this.request("OPEN_DIRECT", { user: userRef(user) })).info;
  }

  /**
   * Changes your password; every other session of yours ends (their
   * connections get CLOSE `PASSWORD_CHANGED`, 603), this one stays.
   */
  async changePassword(current: string, newPassword: string): Promise<void> {
    await this.request("CHANGE_PASSWORD", { current, new: newPassword });
  }

  /** A user's profile (the email only in your own). */
  async getProfile(user: number): Promise<Profile> {
    const { type: _type, ...profile } = await this.request("GET_PROFILE", { user });
    return profile;
  }

  /**
   * Replaces your whole profile (an absent display name or email clears
   * it); resolves with the profile as stored.
   */
  async updateProfile(profile: { displayName?: string; bio?: string; email?: string }): Promise<Profile> {
    const { type: _type, ...stored } = await this.request("UPDATE_PROFILE", {
      ...(profile.displayName !== undefined ? { displayName: profile.displayName } : {}),
      bio: profile.bio ?? "",
      ...(profile.email !== undefined ? { email: profile.email } : {}),
    });
    return stored;
  }

  /** The server's sticker catalogue, in id order; it changes only when the server restarts. */
  async listStickers(): Promise<Sticker[]> {
    return (await this.request("LIST_STICKERS", {})).stickers;
  }

  /** Deletes message `seq` (yours, or anyone's as an admin); the ack carries the MESSAGE_DELETED event's seq. */
  async deleteMessage(room: number, seq: number): Promise<MessageAck> {
    const { room: r, seq: s, at } = await this.request("DELETE_MESSAGE", { room, seq });
    return { room: r, seq: s, at };
  }

  /**
   * Up to `limit` (1–200, default 50) of the room's events, newest first:
   * the newest without `before`, else those with `seq < before`. To page
   * back, pass the smallest seq of the previous page.
   */
  async history(room: number, options: { before?: number; limit?: number } = {}): Promise<HistoryPage> {
    const { room: r, hasMore, events } = await this.request("HISTORY", {
      room,
      before: beforeOnWire(options.before),
      limit: options.limit ?? 50,
    });
    return { room: r, hasMore, events };
  }

  /** The rooms the caller is a member of, with read markers and unread counts. */
  async myRooms(): Promise<MyRooms> {
    const reply = await this.request("MY_ROOMS", {});
    return { rooms: reply.rooms, unreadTotal: reply.unreadTotal ?? 0, readStates: reply.readStates ?? [] };
  }

  /** Invites a user (by id or username) to a room (admins). */
  async invite(room: number, user: number | string): Promise<void> {
    await this.request("INVITE", { room, user: userRef(user) });
  }

  /** Accepts a pending invitation: joins the room. */
  async acceptInvite(room: number): Promise<RoomInfo> {
    const reply = await this.request("RESPOND_INVITE", { room, accept: true });
    if (reply.type !== "ROOM") throw new ConfabError("protocol", `unexpected reply to RESPOND_INVITE: ${reply.type}`);
    return reply.info;
  }

  /** Declines a pending invitation. */
  async declineInvite(room: number): Promise<void> {
    await this.request("RESPOND_INVITE", { room, accept: false });
  }

  /** Asks a room's admins to be let in. */
  async requestJoin(room: number): Promise<void> {
    await this.request("REQUEST_JOIN", { room });
  }

  /** Approves or denies a pending join request (admins). */
  async decideRequest(room: number, user: number, approve: boolean): Promise<void> {
    await this.request("DECIDE_REQUEST", { room, user, approve });
  }

  /** Removes a member (admins; an admin only by the owner). */
  async kick(room: number, user: number): Promise<void> {
    await this.request("KICK", { room, user });
  }

  /** Bans a user, by id or username, member or not (admins). */
  async ban(room: number, user: number | string): Promise<void> {
    await this.request("BAN", { room, user: userRef(user) });
  }

  /** Lifts a ban (admins). */
  async unban(room: number, user: number): Promise<void> {
    await this.request("UNBAN", { room, user });
  }

  /** Makes a member an admin or a member again (the owner). */
  async setRole(room: number, user: number, role: Exclude<Role, "owner">): Promise<void> {
    await this.request("SET_ROLE", { room, user, role });
  }

  /** Pending join requests, oldest first (admins). */
  async listJoinRequests(room: number): Promise<UserEntry[]> {
    return (await this.request("LIST_JOIN_REQUESTS", { room })).users;
  }

  /** The room's bans (admins). */
  async listBans(room: number): Promise<UserEntry[]> {
    return (await this.request("LIST_BANS", { room })).users;
  }

  /** Your notifications, newest first, with the unread count (the badge). */
  async notifications(options: { before?: number; limit?: number; unreadOnly?: boolean } = {}): Promise<NotificationPage> {
    const { unread, hasMore, items } = await this.request("LIST_NOTIFICATIONS", {
      before: beforeOnWire(options.before),
      limit: options.limit ?? 50,
      unreadOnly: options.unreadOnly ?? false,
    });
    return { unread, hasMore, items };
  }

  /** Marks your notifications with id ≤ `upTo` read; resolves with the unread count after. */
  async markRead(upTo: number): Promise<number> {
    return (await this.request("MARK_READ", { upTo })).unread;
  }

  /** Your room log: every room you have been a member of, most recently joined first. */
  async roomLog(): Promise<RoomLogItem[]> {
    return (await this.request("ROOM_LOG", {})).items;
  }

  /** The room's audit trail, newest first (admins). */
  async roomAudit(room: number, options: { before?: number; limit?: number } = {}): Promise<AuditPage> {
    const { room: r, hasMore, items } = await this.request("ROOM_AUDIT", {
      room,
      before: beforeOnWire(options.before),
      limit: options.limit ?? 50,
    });
    return { room: r, hasMore, items };
  }

  /** Renames a room and sets its topic (admins); both are always sent. */
  async updateRoom(room: number, name: string, topic: string): Promise<void> {
    await this.request("UPDATE_ROOM", { room, name, topic });
  }

  /** Tells the room you are typing; repeat every 2–4 s while typing. */
  async typingStart(room: number): Promise<void> {
    await this.request("TYPING_START", { room });
  }

  /** Tells the room you stopped typing. */
  async typingStop(room: number): Promise<void> {
    await this.request("TYPING_STOP", { room });
  }

  /** Marks `room` read up to `seq`; resolves with the marker as it now is and the unread count. */
  async setReadMarker(room: number, seq: number): Promise<ReadState> {
    const { room: r, readSeq, unread } = await this.request("SET_READ_MARKER", { room, seq });
    return { room: r, readSeq, unread };
  }

  /** Sets (`true`) or clears your away state, for all your connections. */
  async setAway(away: boolean): Promise<void> {
    await this.request("SET_AWAY", { away });
  }
}

/**
 * The `url` option as a list: a comma-separated string or an array, each
 * trimmed, empty entries dropped; at least one.
 */
export function serverUrls(url: string | readonly string[]): string[] {
  const list = (typeof url === "string" ? url.split(",") : [...url]).map((u) => u.trim()).filter((u) => u !== "");
  if (list.length === 0) throw new TypeError("ConfabClient: no server URL given (options.url)");
  return list;
}
