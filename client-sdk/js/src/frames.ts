/**
 * THE FRAME TABLE: every frame of SPEC.md §4–§5, declared once.
 *
 * Each entry gives the frame's type number and its payload's fields in
 * wire order; encoders, decoders, TypeScript types and the canonical JSON
 * form all derive from it. Requests also list the reply types that
 * answer them (ERROR is always possible).
 *
 * To add a frame (say GET_PROFILE 0x32 answered by PROFILE 0x51):
 *
 *   1. add `GET_PROFILE: request(0x32, { user: u64 }, ["PROFILE"]),` to
 *      REQUESTS and `PROFILE: frame(0x51, { user: u64, bio: string }),` to
 *      SERVER_FRAMES below (shared structures go in the section above);
 *   2. add a one-line typed method to ConfabClient (client.ts), and an
 *      event in events.ts if it is a new event type;
 *   3. the vector tests pick up the new vector files by themselves; until
 *      step 1 is done they fail, naming the frame type.
 *
 * A field appended to an existing payload is `appended(codec)` at the end
 * of its struct (SPEC.md §11.1); a new event kind is one line in
 * `eventBody`.
 */

import {
  appended,
  appendedDefault,
  appendedOrEmpty,
  bool,
  closedEnum,
  kindUnion,
  list,
  nested,
  openEnum,
  optional,
  string,
  struct,
  u16,
  u32,
  u64,
  type Codec,
  type Json,
  type StructCodec,
  type StructIn,
  type StructOut,
  type StructSpec,
  type UnionIn,
  type UnionOut,
} from "./schema.js";
import { EncodeError } from "./errors.js";

// ------------------------------------------------------------ structures

/** Room visibility (SPEC.md §5.3.1); closed. */
export const visibility = closedEnum("visibility", { public: 0, private: 1 });
/** Room role, `owner` > `admin` > `member` (SPEC.md §5.3.1); closed. */
export const role = closedEnum("role", { member: 0, admin: 1, owner: 2 });
/** A user's presence (SPEC.md §5.10); open. */
export const presence = openEnum("presence", { offline: 0, online: 1, away: 2 });
/** What a notification is about (SPEC.md §5.8.1); open. */
export const notificationKind = openEnum("notification kind", {
  invited: 1,
  join_request: 2,
  request_approved: 3,
  request_denied: 4,
  kicked: 5,
  banned: 6,
  unbanned: 7,
  role_changed: 8,
  room_terminated: 9,
  mentioned: 10,
});
/** How a room log item's last membership ended (SPEC.md §5.8.1); open. */
export const leaveReason = openEnum("leave reason", { active: 0, left: 1, kicked: 2, banned: 3, terminated: 4 });

/** RoomInfo (SPEC.md §5.3.1), always nested. */
export const roomInfo = nested(
  struct({
    id: u64,
    name: string,
    topic: string,
    visibility,
    owner: u64,
    memberCount: u32,
    lastSeq: u64,
    createdAt: u64,
    directUser: appended(u64, { group: "direct" }),
    directUsername: appended(string, { group: "direct" }),
  }),
);

/** Member (SPEC.md §5.3.1), always nested. */
export const member = nested(
  struct({
    user: u64,
    username: string,
    role,
    online: bool,
    joinedAt: u64,
    presence: appended(presence),
  }),
);

/**
 * UserRef (SPEC.md §5.7.1), inline: by id, or `id` 0 and a username. As
 * the reference decoder does, a username beside a non-zero id is dropped.
 */
const userRefStruct = struct({ id: u64, username: string });
export const userRefCodec: Codec<StructOut<typeof userRefStruct.spec>, StructIn<typeof userRefStruct.spec>> = {
  ...userRefStruct,
  decode(r) {
    const v = userRefStruct.decode(r);
    return v.id === 0 ? v : { id: v.id, username: "" };
  },
};

/** UserEntry (SPEC.md §5.7.1), always nested. */
export const userEntry = nested(struct({ user: u64, username: string, at: u64 }));

/** Notification (SPEC.md §5.8.1), always nested. */
export const notification = nested(
  struct({
    id: u64,
    kind: notificationKind,
    room: u64,
    roomName: string,
    actor: u64,
    actorName: string,
    at: u64,
    read: bool,
  }),
);

/** RoomLogItem (SPEC.md §5.8.1), always nested. */
export const roomLogItem = nested(
  struct({
    room: roomInfo,
    firstJoinedAt: u64,
    lastJoinedAt: u64,
    leftAt: optional(u64),
    reason: leaveReason,
    terminated: bool,
  }),
);

/** AuditItem (SPEC.md §5.8.1), always nested. */
export const auditItem = nested(
  struct({
    id: u64,
    at: u64,
    actor: u64,
    actorName: string,
    action: string,
    target: u64,
    targetName: string,
    detail: string,
  }),
);

/** ReadState (SPEC.md §5.9): nested in lists, direct in READ_MARKER(_MOVED). */
export const readStateFields = { room: u64, readSeq: u64, unread: u32 } as const;

/** PresenceChange (SPEC.md §5.10.2), always nested. */
export const presenceChange = nested(struct({ user: u64, username: string, presence }));

/** The palette of colour spans (SPEC.md §5.11.2): the 16 ANSI colours; open (a later server may send more). */
export const COLORS = {
  black: 0,
  red: 1,
  green: 2,
  yellow: 3,
  blue: 4,
  magenta: 5,
  cyan: 6,
  white: 7,
  bright_black: 8,
  bright_red: 9,
  bright_green: 10,
  bright_yellow: 11,
  bright_blue: 12,
  bright_magenta: 13,
  bright_cyan: 14,
  bright_white: 15,
} as const;
export const color = openEnum("colour", COLORS);

/** A span's style and its fields (SPEC.md §5.11.1); a kind this SDK does not know keeps its bytes. */
const spanStyle = kindUnion({
  bold: [1, {}],
  italic: [2, {}],
  strikethrough: [3, {}],
  code: [4, {}],
  code_block: [5, {}],
  link: [6, { url: string }],
  color: [7, { color }],
});
const spanRange = struct({ start: u32, end: u32 });
type SpanStyleOut = UnionOut<typeof spanStyle extends Codec<UnionOut<infer V>, unknown> ? V : never>;
type SpanStyleIn = UnionIn<typeof spanStyle extends Codec<UnionOut<infer V>, unknown> ? V : never>;

/** A formatting span (SPEC.md §5.11.1): a UTF-8 byte range of the text and its style. */
export type Span = { start: number; end: number } & SpanStyleOut;
/** What encoding a span accepts. */
export type SpanInput = { readonly start: number; readonly end: number } & SpanStyleIn;

/** Span: the range, then the style's kind byte and fields, in one object (`{start, end, kind, …}`). */
const spanCodec: Codec<Span, SpanInput> = {
  describe: "span",
  encode(w, v) {
    spanRange.encode(w, v);
    const { start: _s, end: _e, ...style } = v;
    spanStyle.encode(w, style as SpanStyleIn);
  },
  decode(r) {
    return { ...spanRange.decode(r), ...spanStyle.decode(r) } as Span;
  },
  toJson(v) {
    const { start, end, ...style } = v;
    return { start, end, ...(spanStyle.toJson(style as SpanStyleOut) as { [key: string]: Json }) };
  },
  fromJson(j, path) {
    if (j === null || typeof j !== "object" || Array.isArray(j)) throw new TypeError(`${path}: expected a span`);
    const { start, end, ...style } = j;
    return {
      ...spanRange.fromJson({ start: start ?? null, end: end ?? null }, path),
      ...spanStyle.fromJson(style, path),
    } as Span;
  },
};
/** A message's spans: a list of nested Span items. */
export const spans = list(nested(spanCodec));

/**
 * A file a message carries (SPEC.md §13.5), always nested: width and
 * height are appended, written for images only.
 */
export const attachment = nested(
  struct({
    id: u64,
    name: string,
    contentType: string,
    size: u64,
    width: appendedOrEmpty(u32, 0),
    height: appendedOrEmpty(u32, 0),
  }),
);

/** Sticker (SPEC.md §5.11.3), always nested. */
export const sticker = nested(struct({ id: string, name: string, art: string }));

/** Profile (SPEC.md §5.2.5): PROFILE's payload, and nested in PROFILE_CHANGED. */
export const profileFields = {
  user: u64,
  username: string,
  displayName: optional(string),
  bio: string,
  email: optional(string),
  avatar: optional(u64),
} as const;

/** A room event's body (SPEC.md §5.5.2): kind byte, then the kind's fields. */
export const eventBody = kindUnion({
  message: [
    1,
    {
      text: string,
      editedAt: appendedOrEmpty(u64, 0),
      spans: appendedOrEmpty(spans, []),
      sticker: appendedOrEmpty(string, ""),
      attachments: appendedOrEmpty(list(attachment), []),
    },
  ],
  member_joined: [2, {}],
  member_left: [3, {}],
  room_created: [4, { name: string, topic: string }],
  member_kicked: [5, { target: u64, targetName: string }],
  member_banned: [6, { target: u64, targetName: string }],
  role_changed: [7, { target: u64, targetName: string, role }],
  room_updated: [8, { name: string, topic: string }],
  room_terminated: [9, {}],
  message_edited: [10, { targetSeq: u64, text: string, spans: appendedOrEmpty(spans, []) }],
  message_deleted: [11, { targetSeq: u64 }],
  tombstone: [12, {}],
});

/** A room event (SPEC.md §5.5.1): EVENT's payload, and nested in HISTORY_PAGE. */
export const roomEventFields = {
  room: u64,
  seq: u64,
  at: u64,
  actor: u64,
  actorName: string,
  body: eventBody,
} as const;

// ---------------------------------------------------------------- tables

/** A frame type's table entry. */
export interface FrameDef<S extends StructSpec> {
  readonly type: number;
  readonly payload: StructCodec<S>;
}

/** A request's table entry: its payload and the reply types that answer it. */
export interface RequestDef<S extends StructSpec, R extends readonly string[]> extends FrameDef<S> {
  readonly replies: R;
}

function request<const S extends StructSpec, const R extends readonly ServerTypeName[]>(
  type: number,
  spec: S,
  replies: R,
): RequestDef<S, R> {
  return { type, payload: struct(spec), replies };
}

function frame<const S extends StructSpec>(type: number, spec: S): FrameDef<S> {
  return { type, payload: struct(spec) };
}

/** Every request (client → server) of SPEC.md §4, by name. */
export const REQUESTS = {
  HELLO: request(
    0x01,
    { version: u16, client: string, token: optional(string), resume: list(struct({ room: u64, after: u64 })) },
    ["WELCOME"],
  ),
  PING: request(0x02, { nonce: u64 }, ["PONG"]),
  REGISTER: request(0x03, { username: string, password: string }, ["SESSION"]),
  LOGIN: request(0x04, { username: string, password: string }, ["SESSION"]),
  LOGOUT: request(0x05, {}, ["OK"]),
  CREATE_ROOM: request(
    0x10,
    {
      name: string,
      topic: string,
      visibility,
      members: appendedDefault(list(userRefCodec), [], { omitOnWire: true, omitInJson: true }),
    },
    ["ROOM"],
  ),
  LIST_ROOMS: request(
    0x11,
    { query: string, offset: u32, limit: u32, exact: appendedDefault(bool, false, { omitOnWire: false, omitInJson: false }) },
    ["ROOM_LIST"],
  ),
  JOIN_ROOM: request(0x12, { room: u64 }, ["ROOM"]),
  LEAVE_ROOM: request(0x13, { room: u64 }, ["OK"]),
  LIST_MEMBERS: request(0x14, { room: u64 }, ["MEMBER_LIST"]),
  SEND_MESSAGE: request(
    0x15,
    {
      room: u64,
      body: string,
      spans: appendedOrEmpty(spans, []),
      sticker: appendedOrEmpty(string, ""),
      attachments: appendedOrEmpty(list(u64), []),
    },
    ["MESSAGE_ACK"],
  ),
  HISTORY: request(0x16, { room: u64, before: u64, limit: u32 }, ["HISTORY_PAGE"]),
  MY_ROOMS: request(0x17, {}, ["ROOM_LIST"]),
  INVITE: request(0x18, { room: u64, user: userRefCodec }, ["OK"]),
  RESPOND_INVITE: request(0x19, { room: u64, accept: bool }, ["ROOM", "OK"]),
  REQUEST_JOIN: request(0x1a, { room: u64 }, ["OK"]),
  DECIDE_REQUEST: request(0x1b, { room: u64, user: u64, approve: bool }, ["OK"]),
  KICK: request(0x1c, { room: u64, user: u64 }, ["OK"]),
  BAN: request(0x1d, { room: u64, user: userRefCodec }, ["OK"]),
  UNBAN: request(0x1e, { room: u64, user: u64 }, ["OK"]),
  SET_ROLE: request(0x1f, { room: u64, user: u64, role }, ["OK"]),
  LIST_JOIN_REQUESTS: request(0x20, { room: u64 }, ["USER_LIST"]),
  LIST_BANS: request(0x21, { room: u64 }, ["USER_LIST"]),
  LIST_NOTIFICATIONS: request(0x22, { before: u64, limit: u32, unreadOnly: bool }, ["NOTIFICATION_LIST"]),
  MARK_READ: request(0x23, { upTo: u64 }, ["UNREAD_COUNT"]),
  ROOM_LOG: request(0x24, {}, ["ROOM_LOG_LIST"]),
  ROOM_AUDIT: request(0x25, { room: u64, before: u64, limit: u32 }, ["AUDIT_PAGE"]),
  UPDATE_ROOM: request(0x26, { room: u64, name: string, topic: string }, ["OK"]),
  EDIT_MESSAGE: request(0x27, { room: u64, seq: u64, text: string, spans: appendedOrEmpty(spans, []) }, ["MESSAGE_ACK"]),
  DELETE_MESSAGE: request(0x28, { room: u64, seq: u64 }, ["MESSAGE_ACK"]),
  TYPING_START: request(0x29, { room: u64 }, ["OK"]),
  TYPING_STOP: request(0x2a, { room: u64 }, ["OK"]),
  SET_READ_MARKER: request(0x2b, { room: u64, seq: u64 }, ["READ_MARKER"]),
  SET_AWAY: request(0x2c, { away: bool }, ["OK"]),
  OPEN_DIRECT: request(0x2d, { user: userRefCodec }, ["ROOM"]),
  LIST_STICKERS: request(0x2e, {}, ["STICKER_LIST"]),
  CHANGE_PASSWORD: request(0x31, { current: string, new: string }, ["OK"]),
  GET_PROFILE: request(0x32, { user: u64 }, ["PROFILE"]),
  UPDATE_PROFILE: request(0x33, { displayName: optional(string), bio: string, email: optional(string) }, ["PROFILE"]),
} as const;

/** Every response and event (server → client) of SPEC.md §4, by name. */
export const SERVER_FRAMES = {
  // Responses (0x40–0x7F): carry the request's id.
  WELCOME: frame(0x40, {
    version: u16,
    server: string,
    maxFrameLen: u32,
    maxMessageLen: u32,
    heartbeatMs: u32,
    session: optional(struct({ user: u64, username: string })),
    rateLimitPerSec: appended(u32, { group: "rate_limit", jsonAbsent: "null" }),
    rateLimitBurst: appended(u32, { group: "rate_limit", jsonAbsent: "null" }),
  }),
  PONG: frame(0x41, { nonce: u64 }),
  OK: frame(0x42, {}),
  ERROR: frame(0x43, {
    code: u16,
    message: string,
    retryAfterMs: appendedDefault(u32, 0, { omitOnWire: true, omitInJson: false }),
  }),
  SESSION: frame(0x44, { user: u64, username: string, token: string }),
  ROOM: frame(0x45, { info: roomInfo }),
  ROOM_LIST: frame(0x46, {
    total: u32,
    rooms: list(roomInfo),
    unreadTotal: appended(u32, { group: "unread" }),
    readStates: appended(list(nested(struct(readStateFields))), { group: "unread" }),
  }),
  MEMBER_LIST: frame(0x47, { room: u64, members: list(member) }),
  MESSAGE_ACK: frame(0x48, { room: u64, seq: u64, at: u64 }),
  HISTORY_PAGE: frame(0x49, { room: u64, hasMore: bool, events: list(nested(struct(roomEventFields))) }),
  USER_LIST: frame(0x4a, { room: u64, users: list(userEntry) }),
  NOTIFICATION_LIST: frame(0x4b, { unread: u32, hasMore: bool, items: list(notification) }),
  UNREAD_COUNT: frame(0x4c, { unread: u32 }),
  ROOM_LOG_LIST: frame(0x4d, { items: list(roomLogItem) }),
  AUDIT_PAGE: frame(0x4e, { room: u64, hasMore: bool, items: list(auditItem) }),
  READ_MARKER: frame(0x4f, readStateFields),
  STICKER_LIST: frame(0x50, { stickers: list(sticker) }),
  PROFILE: frame(0x51, profileFields),
  // Events (0x80–0xBF): request id 0.
  EVENT: frame(0x80, roomEventFields),
  RESUME_GAP: frame(0x81, { room: u64, lastSeq: u64 }),
  CLOSE: frame(0x82, { code: u16, message: string }),
  NOTIFICATION: frame(0x83, { notification }),
  ROOM_ANNOUNCED: frame(0x84, { info: roomInfo }),
  TYPING: frame(0x85, { room: u64, user: u64, username: string, typing: bool }),
  READ_MARKER_MOVED: frame(0x86, readStateFields),
  PRESENCE: frame(0x87, { room: u64, changes: list(presenceChange) }),
  PROFILE_CHANGED: frame(0x88, { room: u64, changes: list(nested(struct(profileFields))) }),
} as const;

// ----------------------------------------------------------------- types

/** A request's name: `"HELLO"`, `"SEND_MESSAGE"`, … */
export type RequestTypeName = keyof typeof REQUESTS;
/** A server frame's name: `"WELCOME"`, `"EVENT"`, … */
export type ServerTypeName = keyof typeof SERVER_FRAMES;

type SpecOf<D> = D extends FrameDef<infer S> ? S : never;

/** The decoded payload of request `K`. */
export type RequestPayload<K extends RequestTypeName> = StructOut<SpecOf<(typeof REQUESTS)[K]>>;
/** What encoding request `K` accepts (fields with defaults may be left out). */
export type RequestInputPayload<K extends RequestTypeName> = StructIn<SpecOf<(typeof REQUESTS)[K]>>;
/** The decoded payload of server frame `K`. */
export type ServerPayload<K extends ServerTypeName> = StructOut<SpecOf<(typeof SERVER_FRAMES)[K]>>;
/** What encoding server frame `K` accepts. */
export type ServerInputPayload<K extends ServerTypeName> = StructIn<SpecOf<(typeof SERVER_FRAMES)[K]>>;

/** A decoded request: `{ type: "SEND_MESSAGE", room, body }`. */
export type Request = { [K in RequestTypeName]: { type: K } & RequestPayload<K> }[RequestTypeName];
/** A request to encode. */
export type RequestInput = { [K in RequestTypeName]: { readonly type: K } & RequestInputPayload<K> }[RequestTypeName];
/** A decoded response or event: `{ type: "EVENT", room, seq, … }`. */
export type ServerMessage = { [K in ServerTypeName]: { type: K } & ServerPayload<K> }[ServerTypeName];
/** A server frame to encode (fakes and tests). */
export type ServerMessageInput = {
  [K in ServerTypeName]: { readonly type: K } & ServerInputPayload<K>;
}[ServerTypeName];
/** The server message of type `K`. */
export type ServerMessageOf<K extends ServerTypeName> = Extract<ServerMessage, { type: K }>;
/** The reply types that answer request `K`. */
export type ReplyTypeOf<K extends RequestTypeName> = (typeof REQUESTS)[K]["replies"][number];
/** A successful reply to request `K`. */
export type ReplyOf<K extends RequestTypeName> = ServerMessageOf<ReplyTypeOf<K>>;

// Shared structures, as their own types.
export type Visibility = "public" | "private";
export type Role = "member" | "admin" | "owner";
/** `"offline"`, `"online"`, `"away"`, or the number of a presence newer than this SDK. */
export type Presence = "offline" | "online" | "away" | number;
export type RoomInfo = ServerPayload<"ROOM">["info"];
export type Member = ServerPayload<"MEMBER_LIST">["members"][number];
export type RoomEvent = ServerPayload<"EVENT">;
export type EventBody = RoomEvent["body"];
export type Notification = ServerPayload<"NOTIFICATION">["notification"];
export type NotificationKind = Notification["kind"];
export type UserEntry = ServerPayload<"USER_LIST">["users"][number];
export type RoomLogItem = ServerPayload<"ROOM_LOG_LIST">["items"][number];
export type LeaveReason = RoomLogItem["reason"];
export type AuditItem = ServerPayload<"AUDIT_PAGE">["items"][number];
export type ReadState = ServerPayload<"READ_MARKER">;
export type PresenceChange = ServerPayload<"PRESENCE">["changes"][number];
export type Welcome = ServerPayload<"WELCOME">;
export type UserRef = RequestPayload<"INVITE">["user"];
export type ResumePoint = RequestPayload<"HELLO">["resume"][number];
export type Sticker = ServerPayload<"STICKER_LIST">["stickers"][number];
/** A file a message carries (SPEC.md §13.5). */
export type Attachment = Extract<EventBody, { kind: "message" }>["attachments"] extends
  | readonly (infer A)[]
  | undefined
  ? A
  : never;
export type Profile = ServerPayload<"PROFILE">;
export type ProfileChanged = ServerPayload<"PROFILE_CHANGED">;
/** A palette colour's name, or the number of a colour newer than this SDK. */
export type Color = keyof typeof COLORS | number;

// ------------------------------------------------------- lookup and checks

/** The direction range of a frame type number (SPEC.md §4). */
export function typeRange(type: number): "request" | "response" | "event" | "invalid" {
  if (type >= 0x01 && type <= 0x3f) return "request";
  if (type >= 0x40 && type <= 0x7f) return "response";
  if (type >= 0x80 && type <= 0xbf) return "event";
  return "invalid";
}

type AnyDef = FrameDef<StructSpec>;

function index(table: Record<string, AnyDef>, range: (t: number) => boolean): Map<number, [string, AnyDef]> {
  const byType = new Map<number, [string, AnyDef]>();
  for (const [name, def] of Object.entries(table)) {
    if (!range(def.type)) throw new Error(`${name}: type 0x${def.type.toString(16)} is outside its range`);
    if (byType.has(def.type)) throw new Error(`${name}: type 0x${def.type.toString(16)} is taken`);
    if ("type" in def.payload.spec) throw new Error(`${name}: a field may not be called "type"`);
    byType.set(def.type, [name, def]);
  }
  return byType;
}

/** Request definitions by type number. */
export const REQUESTS_BY_TYPE = index(REQUESTS, (t) => typeRange(t) === "request");
/** Server frame definitions by type number. */
export const SERVER_FRAMES_BY_TYPE = index(SERVER_FRAMES, (t) => {
  const r = typeRange(t);
  return r === "response" || r === "event";
});

/** The table entry of request `name`; throws {@link EncodeError} for a name not in the table. */
export function requestDef(name: string): AnyDef & { replies: readonly string[] } {
  const def = (REQUESTS as Record<string, RequestDef<StructSpec, readonly string[]> | undefined>)[name];
  if (def === undefined) throw new EncodeError(`unknown request type ${name}`);
  return def;
}

/** The table entry of server frame `name`; throws {@link EncodeError} for a name not in the table. */
export function serverDef(name: string): AnyDef {
  const def = (SERVER_FRAMES as Record<string, AnyDef | undefined>)[name];
  if (def === undefined) throw new EncodeError(`unknown server frame type ${name}`);
  return def;
}
