/**
 * Stable error and close codes (SPEC.md §6), one table: number, name and
 * default message. A unit test checks it against SPEC.md's table, so a
 * code added to the SPEC fails the SDK's tests until it is added here.
 *
 * Codes are never reused or redefined; a server may send a code newer than
 * this table, which the SDK keeps as a number (its name is then
 * `"UNKNOWN"`).
 */

export const ERROR_CODES = {
  // 1xx: protocol violations, sent in CLOSE.
  MALFORMED_FRAME: [100, "malformed frame"],
  UNKNOWN_FRAME_TYPE: [101, "unknown frame type"],
  FRAME_TOO_LARGE: [102, "frame exceeds the maximum frame size"],
  UNSUPPORTED_VERSION: [103, "unsupported protocol version"],
  HANDSHAKE_REQUIRED: [104, "HELLO must be the first frame, exactly once"],
  HANDSHAKE_TIMEOUT: [105, "handshake timed out"],
  UNEXPECTED_FRAME: [106, "frame type not valid from a client"],
  // 2xx: authentication and accounts.
  NOT_AUTHENTICATED: [200, "authentication required"],
  INVALID_TOKEN: [201, "invalid or expired session token"],
  INVALID_CREDENTIALS: [202, "invalid username or password"],
  USERNAME_TAKEN: [203, "username is already taken"],
  INVALID_USERNAME: [204, "username must be 3-32 characters of a-z, 0-9, '_', '-' or '.'"],
  INVALID_PASSWORD: [205, "password must be 8-256 bytes"],
  ALREADY_AUTHENTICATED: [206, "connection is already authenticated"],
  TOO_MANY_ATTEMPTS: [207, "too many attempts: retry later"],
  INVALID_DISPLAY_NAME: [208, "display name must be 1-64 characters without control characters"],
  INVALID_BIO: [209, "bio must be at most 500 characters without control characters other than line breaks"],
  INVALID_EMAIL: [210, "email address is not valid"],
  PROFILE_RATE_LIMITED: [211, "too many profile changes: retry later"],
  // 3xx: rooms and membership.
  ROOM_NOT_FOUND: [300, "room not found"],
  NOT_A_MEMBER: [301, "you are not a member of this room"],
  ALREADY_MEMBER: [302, "you are already a member of this room"],
  INVALID_ROOM_NAME: [303, "room name must be 1-64 characters without control characters"],
  INVALID_TOPIC: [304, "room topic must be at most 256 characters without control characters"],
  ROOM_PRIVATE: [305, "room is private: join by invitation or approved request"],
  INVALID_PAGING: [306, "limit must be 1-200"],
  NOT_ADMIN: [307, "only room admins may do this"],
  NOT_OWNER: [308, "only the room owner may do this"],
  BANNED: [309, "you are banned from this room"],
  NOT_INVITED: [310, "you have no pending invitation to this room"],
  NO_SUCH_USER: [311, "no such user"],
  ROOM_TERMINATED: [312, "this room has terminated"],
  CANNOT_TARGET_SELF: [313, "you cannot do this to yourself"],
  CANNOT_TARGET_OWNER: [314, "the room owner cannot be kicked, banned or have their role changed"],
  ALREADY_INVITED: [315, "that user is already invited"],
  ALREADY_REQUESTED: [316, "you have already asked to join this room"],
  NO_SUCH_REQUEST: [317, "that user has no pending join request"],
  NOT_BANNED: [318, "that user is not banned"],
  TARGET_NOT_MEMBER: [319, "that user is not a member of this room"],
  TARGET_BANNED: [320, "that user is banned from this room"],
  ALREADY_BANNED: [321, "that user is already banned"],
  INVALID_ROLE: [322, "role must be member or admin (ownership passes only by succession)"],
  DUPLICATE_MEMBER: [323, "a user is named twice among the initial members"],
  TOO_MANY_MEMBERS: [324, "too many initial members"],
  DIRECT_ROOM: [325, "not possible in a direct chat"],
  // 4xx: messages.
  MESSAGE_EMPTY: [400, "message is empty"],
  MESSAGE_TOO_LONG: [401, "message exceeds the maximum message size"],
  RATE_LIMITED: [402, "too many messages: slow down"],
  MESSAGE_NOT_FOUND: [403, "no such message in this room"],
  MESSAGE_DELETED: [404, "that message has been deleted"],
  NOT_YOUR_MESSAGE: [405, "that message is not yours"],
  INVALID_READ_MARKER: [406, "the read marker is beyond the room's last event"],
  INVALID_SPANS: [407, "invalid formatting spans"],
  UNKNOWN_COLOR: [408, "unknown colour: the palette has 16 colours, 0-15"],
  INVALID_LINK: [409, "a link must be an http, https or mailto URL"],
  UNKNOWN_STICKER: [410, "no such sticker"],
  STICKER_MESSAGE: [411, "a sticker message carries no text, spans or attachments and cannot be edited"],
  UNKNOWN_FILE: [412, "no such file"],
  ATTACHMENT_NOT_YOURS: [413, "that file is not yours to attach here"],
  FILE_REFUSED: [414, "the upload was refused"],
  FILE_LINK_INVALID: [415, "the file link has expired or is not valid"],
  INVALID_ATTACHMENTS: [416, "a message carries at most 10 attachments, each once"],
  UPLOAD_RATE_LIMITED: [417, "too many bytes uploaded this hour: retry later"],
  // 5xx: server side; the request may be retried.
  INTERNAL: [500, "internal server error"],
  STORAGE_UNAVAILABLE: [501, "storage is unavailable"],
  OVERLOADED: [502, "server is overloaded"],
  SHUTTING_DOWN: [503, "server is shutting down"],
  ROOM_MOVING: [504, "the room is moving between nodes: retry shortly"],
  // 6xx: close reasons.
  SLOW_CONSUMER: [600, "connection closed: outbound queue overflowed (slow consumer)"],
  IDLE_TIMEOUT: [601, "connection closed: idle timeout"],
  LOGGED_OUT: [602, "connection closed: session logged out"],
  PASSWORD_CHANGED: [603, "connection closed: the account's password was changed"],
} as const satisfies Record<string, readonly [number, string]>;

/** The name of a code this SDK knows, e.g. `"ROOM_NOT_FOUND"`. */
export type ErrorCodeName = keyof typeof ERROR_CODES;

/** Numeric value of each known code: `ErrorCode.ROOM_NOT_FOUND === 300`. */
export const ErrorCode: { readonly [K in ErrorCodeName]: (typeof ERROR_CODES)[K][0] } =
  Object.fromEntries(Object.entries(ERROR_CODES).map(([name, [code]]) => [name, code])) as never;

const BY_NUMBER = new Map<number, ErrorCodeName>(
  (Object.keys(ERROR_CODES) as ErrorCodeName[]).map((name) => [ERROR_CODES[name][0], name]),
);

/** The name of `code`, or `"UNKNOWN"` for a code newer than this SDK. */
export function errorCodeName(code: number): ErrorCodeName | "UNKNOWN" {
  return BY_NUMBER.get(code) ?? "UNKNOWN";
}

/** The SPEC's default message for `code` (empty for an unknown code). */
export function defaultMessage(code: number): string {
  const name = BY_NUMBER.get(code);
  return name === undefined ? "" : ERROR_CODES[name][1];
}

/**
 * Whether a reconnect may follow a CLOSE with `code` (SPEC.md §7.9):
 * never after a logout, a rejected token or a password changed elsewhere
 * (the session is gone, SPEC.md §5.2.4), nor
 * after a protocol violation (client and server disagree; retrying would
 * repeat it), except a handshake timeout, which a slow network causes.
 */
export function mayReconnectAfter(code: number): boolean {
  if (code === ErrorCode.LOGGED_OUT || code === ErrorCode.INVALID_TOKEN || code === ErrorCode.PASSWORD_CHANGED) return false;
  if (code === ErrorCode.HANDSHAKE_TIMEOUT) return true;
  return !(code >= 100 && code < 200);
}
