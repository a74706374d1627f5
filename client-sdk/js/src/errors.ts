import { ErrorCode, errorCodeName, type ErrorCodeName } from "./codes.js";

/** Why bytes could not be decoded as a frame (SPEC.md §2.4, §3). */
export type DecodeErrorReason =
  /** The payload (or a nested item) ended in the middle of a field. */
  | "truncated"
  /** A varint over 10 bytes, a 10th byte above 1, or a value wider than its field. */
  | "varint_overflow"
  /** A u64 above 2^53 − 1, which a JavaScript number cannot hold exactly (SPEC.md §3.1). */
  | "unsafe_integer"
  /** A string that is not well-formed UTF-8. */
  | "invalid_utf8"
  /** A `bool`, presence byte or closed enumeration byte out of range. */
  | "invalid_value"
  /** A frame type the decoder does not know (in that direction). */
  | "unknown_frame_type"
  /** A length field below 5. */
  | "frame_too_short"
  /** A length field above the receiver's limit. */
  | "frame_too_large"
  /** A WebSocket message that is not exactly one frame. */
  | "not_one_frame";

/**
 * Bytes that are not a valid frame. `code` is what a server would close
 * the connection with (SPEC.md §6): 100 `MALFORMED_FRAME` for most,
 * 102 `FRAME_TOO_LARGE`, 101 `UNKNOWN_FRAME_TYPE`, or 106
 * `UNEXPECTED_FRAME` for a server-only type sent by a client.
 */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
  readonly code: number;
  readonly codeName: ErrorCodeName | "UNKNOWN";

  constructor(
    readonly reason: DecodeErrorReason,
    detail: string,
    code: number = ErrorCode.MALFORMED_FRAME,
  ) {
    super(`${reason}: ${detail}`);
    this.code = code;
    this.codeName = errorCodeName(code);
  }
}

/** A value that cannot be encoded (a negative id, a number too wide for its field, a lone surrogate…). */
export class EncodeError extends Error {
  override readonly name = "EncodeError";
}

/** What kind of failure a {@link ConfabError} reports. */
export type ConfabErrorKind =
  /** The server answered the request with ERROR; the connection stays usable. */
  | "server"
  /** The server sent CLOSE (`code` says why) and closed the connection. */
  | "closed"
  /** No reply within the request timeout (the request was sent; it may have been applied). */
  | "timeout"
  /** The connection dropped while the request was in flight; it may have been applied, and is never resent. */
  | "disconnected"
  /**
   * The request was never sent: the client was not connected, and did not
   * reconnect within the request timeout (or is closed, or gave up). Safe to retry.
   */
  | "not_sent"
  /** Connecting failed (socket error, handshake timeout, no WebSocket implementation). */
  | "connect_failed"
  /** The server sent bytes that are not a valid frame, or a reply of the wrong type. */
  | "protocol"
  /** The request would exceed the server's `max_frame_len`; not sent. */
  | "frame_too_large"
  /** The request could not be encoded (see {@link EncodeError}); not sent. */
  | "invalid_request";

/**
 * Every error the client's methods reject with.
 *
 * For `kind` `"server"` and `"closed"`, `code` is the ERROR or CLOSE code
 * and `codeName` its SPEC name (`"ROOM_NOT_FOUND"`, or `"UNKNOWN"` for a
 * code newer than this SDK); `retryAfterMs` is the server's hint (0: none).
 */
export class ConfabError extends Error {
  override readonly name = "ConfabError";
  readonly kind: ConfabErrorKind;
  readonly code: number | undefined;
  readonly codeName: ErrorCodeName | "UNKNOWN" | undefined;
  readonly retryAfterMs: number;
  /** The ERROR or CLOSE frame's own message, for humans (empty otherwise). */
  readonly serverMessage: string;

  constructor(
    kind: ConfabErrorKind,
    message: string,
    options: { code?: number; retryAfterMs?: number; serverMessage?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.code = options.code;
    this.codeName = options.code === undefined ? undefined : errorCodeName(options.code);
    this.retryAfterMs = options.retryAfterMs ?? 0;
    this.serverMessage = options.serverMessage ?? "";
  }

  /** An ERROR reply. */
  static server(code: number, message: string, retryAfterMs = 0): ConfabError {
    return new ConfabError("server", `${errorCodeName(code)} (${code}): ${message}`, {
      code,
      retryAfterMs,
      serverMessage: message,
    });
  }

  /** A CLOSE frame from the server. */
  static closed(code: number, message: string): ConfabError {
    return new ConfabError("closed", `connection closed by the server, ${errorCodeName(code)} (${code}): ${message}`, {
      code,
      serverMessage: message,
    });
  }

  /** Whether this is an ERROR or CLOSE with the code named `name`. */
  is(name: ErrorCodeName): boolean {
    return this.code === ErrorCode[name];
  }
}
