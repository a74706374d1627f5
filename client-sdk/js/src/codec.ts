/**
 * Framing (SPEC.md §2) and whole-frame encoding and decoding, driven by
 * the frame table (frames.ts).
 */

import { ErrorCode } from "./codes.js";
import { DecodeError, EncodeError } from "./errors.js";
import {
  REQUESTS_BY_TYPE,
  SERVER_FRAMES_BY_TYPE,
  requestDef,
  serverDef,
  typeRange,
  type Request,
  type RequestInput,
  type ServerMessage,
  type ServerMessageInput,
} from "./frames.js";
import type { Json } from "./schema.js";
import { Reader, Writer } from "./wire.js";

/** Bytes of the fixed header: length (4), type (1), request id (4). */
export const HEADER_LEN = 9;
/** The smallest length field: a frame with an empty payload. */
export const MIN_LENGTH = 5;
/** The `max_frame_len` every server accepts at least (SPEC.md §2.2): the limit for HELLO. */
export const DEFAULT_MAX_FRAME_LEN = 65536;
/** The largest length field of a server frame, which clients must accept (SPEC.md §2.2). */
export const MAX_SERVER_FRAME_LEN = 16 * 1024 * 1024;
/** The protocol version this SDK speaks. */
export const PROTOCOL_VERSION = 1;

/** One frame, split but not decoded. */
export interface RawFrame {
  type: number;
  requestId: number;
  payload: Uint8Array;
}

/**
 * Splits `bytes` — one WebSocket message — into exactly one frame. The
 * length field is checked before anything else (SPEC.md §2.4): below 5 is
 * `MALFORMED_FRAME`, above `maxLen` `FRAME_TOO_LARGE`, and bytes that are
 * more or less than that one frame are `MALFORMED_FRAME`.
 */
export function splitFrame(bytes: Uint8Array, maxLen: number = MAX_SERVER_FRAME_LEN): RawFrame {
  if (bytes.length < 4) throw new DecodeError("not_one_frame", `${bytes.length} bytes: not even a length field`);
  const length = (((bytes[0] as number) << 24) >>> 0) + ((bytes[1] as number) << 16) + ((bytes[2] as number) << 8) + (bytes[3] as number);
  if (length < MIN_LENGTH) throw new DecodeError("frame_too_short", `frame length ${length} is below the minimum of 5`);
  if (length > maxLen) {
    throw new DecodeError("frame_too_large", `frame length ${length} exceeds the maximum ${maxLen}`, ErrorCode.FRAME_TOO_LARGE);
  }
  if (bytes.length !== 4 + length) {
    throw new DecodeError("not_one_frame", `a message of ${bytes.length} bytes holding a frame of ${4 + length}`);
  }
  return {
    type: bytes[4] as number,
    requestId: ((((bytes[5] as number) << 24) >>> 0) + ((bytes[6] as number) << 16) + ((bytes[7] as number) << 8) + (bytes[8] as number)),
    payload: bytes.subarray(HEADER_LEN),
  };
}

function unknownType(type: number): DecodeError {
  // A server-only type from a client is UNEXPECTED_FRAME (106); anything
  // else unknown is UNKNOWN_FRAME_TYPE (101), as the reference crate maps it.
  const range = typeRange(type);
  const code = range === "response" || range === "event" ? ErrorCode.UNEXPECTED_FRAME : ErrorCode.UNKNOWN_FRAME_TYPE;
  return new DecodeError("unknown_frame_type", `unknown frame type 0x${type.toString(16).padStart(2, "0")}`, code);
}

function checkRequestId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) throw new EncodeError(`request id ${id} is not a u32`);
}

function encodeFrame(type: number, requestId: number, body: (w: Writer) => void): Uint8Array {
  checkRequestId(requestId);
  const w = new Writer();
  w.u32be(0);
  w.u8(type);
  w.u32be(requestId);
  body(w);
  w.patchU32be(0, w.length - 4);
  return w.finish();
}

/** Encodes a request as one whole frame (length prefix included). */
export function encodeRequest(requestId: number, msg: RequestInput): Uint8Array {
  const def = requestDef(msg.type);
  return encodeFrame(def.type, requestId, (w) => def.payload.encode(w, msg as never));
}

/** Encodes a response or event as one whole frame (fakes and tests; clients never send these). */
export function encodeServerMessage(requestId: number, msg: ServerMessageInput): Uint8Array {
  const def = serverDef(msg.type);
  return encodeFrame(def.type, requestId, (w) => def.payload.encode(w, msg as never));
}

/** A decoded frame: its request id and message. */
export interface Decoded<M> {
  requestId: number;
  message: M;
}

/**
 * Decodes one server frame (a whole WebSocket message). Throws
 * {@link DecodeError}: for a type outside the table (`unknown_frame_type`;
 * SPEC.md §11.2 has clients ignore unknown event types, which the client
 * does), and for every malformed payload.
 */
export function decodeServerFrame(bytes: Uint8Array, maxLen: number = MAX_SERVER_FRAME_LEN): Decoded<ServerMessage> {
  return decodeServerRaw(splitFrame(bytes, maxLen));
}

/** {@link decodeServerFrame} of an already split frame. */
export function decodeServerRaw(frame: RawFrame): Decoded<ServerMessage> {
  const entry = SERVER_FRAMES_BY_TYPE.get(frame.type);
  if (entry === undefined) throw unknownType(frame.type);
  const [name, def] = entry;
  const payload = def.payload.decode(new Reader(frame.payload));
  return { requestId: frame.requestId, message: { type: name, ...payload } as ServerMessage };
}

/** Decodes one request frame (fakes, tests and tools; servers do this). */
export function decodeRequestFrame(bytes: Uint8Array, maxLen: number = DEFAULT_MAX_FRAME_LEN): Decoded<Request> {
  const frame = splitFrame(bytes, maxLen);
  const entry = REQUESTS_BY_TYPE.get(frame.type);
  if (entry === undefined) throw unknownType(frame.type);
  const [name, def] = entry;
  const payload = def.payload.decode(new Reader(frame.payload));
  return { requestId: frame.requestId, message: { type: name, ...payload } as Request };
}

/** Which way a frame travels. */
export type Direction = "client_to_server" | "server_to_client";

function payloadOf(msg: { type: string }): Record<string, unknown> {
  const { type: _type, ...payload } = msg;
  return payload;
}

/** The canonical JSON form of a message's payload (SPEC.md §12.3). */
export function toCanonicalJson(direction: Direction, msg: Request | ServerMessage): Json {
  const def = direction === "client_to_server" ? requestDef(msg.type) : serverDef(msg.type);
  return def.payload.toJson(payloadOf(msg) as never);
}

/** The message a canonical JSON payload stands for (SPEC.md §12.3). */
export function fromCanonicalJson(direction: Direction, type: number, json: Json): Request | ServerMessage {
  const entry = (direction === "client_to_server" ? REQUESTS_BY_TYPE : SERVER_FRAMES_BY_TYPE).get(type);
  if (entry === undefined) throw unknownType(type);
  const [name, def] = entry;
  return { type: name, ...(def.payload.fromJson(json, name) as object) } as Request | ServerMessage;
}
