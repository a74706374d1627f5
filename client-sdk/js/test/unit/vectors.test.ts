/**
 * The protocol's test vectors (protocol-spec/vectors, SPEC.md §12), every
 * file, checked against the TypeScript codec:
 *
 * - round-trip files decode to their canonical JSON form, re-encode byte
 *   for byte, and encode byte for byte from the JSON form alone;
 * - decode-only files decode to their canonical JSON form;
 * - reject files are rejected with their error code (a typed DecodeError);
 * - refuse files (well-formed requests a server answers with ERROR) are
 *   round trips, and the SDK's own checks (src/rich.ts) predict their code;
 *   the request files the server accepts, it predicts none for.
 *
 * A vector of a frame type that the SDK's frame table (src/frames.ts) does
 * not know fails here, naming the type: a frame added to SPEC.md forces an
 * SDK update.
 */

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import {
  DecodeError,
  REQUESTS,
  REQUESTS_BY_TYPE,
  SERVER_FRAMES,
  SERVER_FRAMES_BY_TYPE,
  decodeRequestFrame,
  decodeServerFrame,
  encodeRequest,
  encodeServerMessage,
  fromCanonicalJson,
  fromHex,
  toCanonicalJson,
  toHex,
  type Direction,
  type Json,
  type Request,
  type ServerMessage,
  checkContent,
  checkEdit,
  checkFileIds,
  checkInitialMembers,
} from "../../src/index.js";

/**
 * Frame types that have vectors (or are in SPEC.md) but are NOT YET IN THE
 * TS SDK. Keep this empty for every frame in SPEC.md: a type listed here
 * has its vectors skipped (loudly) instead of failing the suite, and is
 * meant only for the short window between a SPEC change landing on main
 * and the SDK catching up. Each entry says who is adding it, e.g.
 * `0x2d, // OPEN_DIRECT: branch dm, SDK support in progress`.
 */
const NOT_YET_IN_TS_SDK: ReadonlySet<number> = new Set<number>([]);

const VECTORS = join(dirname(fileURLToPath(import.meta.url)), "../../../../protocol-spec/vectors");

interface FrameVector {
  name: string;
  direction: Direction;
  type: number;
  request_id: number;
  hex: string;
  decoded: Json;
}

interface RejectVector {
  name: string;
  direction: Direction;
  max_frame_len: number;
  hex: string;
  error_code: number;
}

function load<T>(dir: string): [string, T][] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => [f, JSON.parse(readFileSync(join(dir, f), "utf8")) as T]);
}

const roundTrip = load<FrameVector>(VECTORS);
const decodeOnly = load<FrameVector>(join(VECTORS, "decode_only"));
const reject = load<RejectVector>(join(VECTORS, "reject"));
const refuse = load<FrameVector & { error_code: number }>(join(VECTORS, "refuse"));

const hex2 = (t: number) => `0x${t.toString(16).padStart(2, "0")}`;

function known(v: FrameVector): boolean {
  const table = v.direction === "client_to_server" ? REQUESTS_BY_TYPE : SERVER_FRAMES_BY_TYPE;
  return table.has(v.type);
}

function decode(v: FrameVector): { requestId: number; message: Request | ServerMessage } {
  const bytes = fromHex(v.hex);
  return v.direction === "client_to_server" ? decodeRequestFrame(bytes) : decodeServerFrame(bytes);
}

function encode(direction: Direction, requestId: number, msg: Request | ServerMessage): string {
  return toHex(
    direction === "client_to_server"
      ? encodeRequest(requestId, msg as Request)
      : encodeServerMessage(requestId, msg as ServerMessage),
  );
}

function checkDecodes(file: string, v: FrameVector): { requestId: number; message: Request | ServerMessage } {
  if (!known(v)) {
    if (NOT_YET_IN_TS_SDK.has(v.type)) {
      console.warn(`${file}: frame type ${hex2(v.type)} is allowlisted as not yet in the TS SDK: skipped`);
      return { requestId: v.request_id, message: { type: "OK" } };
    }
    expect.fail(
      `${file}: frame type ${hex2(v.type)} (${v.direction}) is not in the TS SDK's frame table: ` +
        `add it to client-sdk/js/src/frames.ts (or, for a short while, to NOT_YET_IN_TS_SDK)`,
    );
  }
  const decoded = decode(v);
  expect(fromHex(v.hex)[4], `${file}: type`).toBe(v.type);
  expect(decoded.requestId, `${file}: request id`).toBe(v.request_id);
  expect(toCanonicalJson(v.direction, decoded.message), `${file}: canonical form`).toEqual(v.decoded);
  return decoded;
}

describe("round-trip vectors", () => {
  it("there is at least one vector per frame type the SDK knows", () => {
    const covered = new Set(roundTrip.map(([, v]) => `${v.direction}:${v.type}`));
    const missing = [
      ...Object.entries(REQUESTS).map(([n, d]) => [n, `client_to_server:${d.type}`] as const),
      ...Object.entries(SERVER_FRAMES).map(([n, d]) => [n, `server_to_client:${d.type}`] as const),
    ].filter(([, key]) => !covered.has(key));
    expect(missing.map(([n]) => n)).toEqual([]);
  });

  it.each(roundTrip)("%s", (file, v) => {
    const { requestId, message } = checkDecodes(file, v);
    if (NOT_YET_IN_TS_SDK.has(v.type) && !known(v)) return;
    expect(encode(v.direction, requestId, message), `${file}: re-encoding the decoded frame`).toBe(v.hex);
    // The canonical form alone must be enough to rebuild the frame.
    const fromJson = fromCanonicalJson(v.direction, v.type, v.decoded);
    expect(encode(v.direction, v.request_id, fromJson), `${file}: encoding the canonical form`).toBe(v.hex);
  });

  it("covers every event kind and notification kind, and an unknown one of each", () => {
    const events = new Set<Json>();
    const notifications = new Set<Json>();
    for (const [, v] of roundTrip) {
      const d = v.decoded as { [k: string]: Json };
      if (v.type === 0x80) events.add((d["body"] as { kind: Json }).kind);
      if (v.type === 0x83) notifications.add((d["notification"] as { kind: Json }).kind);
      if (v.type === 0x4b) for (const item of d["items"] as { kind: Json }[]) notifications.add(item.kind);
    }
    expect([...events].filter((k) => typeof k === "number").length).toBeGreaterThan(0);
    expect([...notifications].filter((k) => typeof k === "number").length).toBeGreaterThan(0);
    expect(events.size).toBeGreaterThanOrEqual(13);
    expect(notifications.size).toBeGreaterThanOrEqual(11);
  });
});

/**
 * The refusal the SDK's checks predict for `message` on the request alone
 * (`undefined`: none), or `null` for a request type they do not check.
 */
function predicted(message: Request): { code: number } | undefined | null {
  switch (message.type) {
    case "SEND_MESSAGE":
      return (
        checkContent(message.body, message.spans ?? [], message.sticker) ??
        checkFileIds(message.attachments ?? [], message.sticker)
      );
    case "EDIT_MESSAGE":
      return checkEdit(message.text, message.spans ?? []);
    case "CREATE_ROOM":
      return checkInitialMembers(message.members ?? []);
    default:
      return null;
  }
}

describe("refuse vectors", () => {
  it("there are some", () => expect(refuse.length).toBeGreaterThan(0));

  it.each(refuse)("%s", (file, v) => {
    const { requestId, message } = checkDecodes(file, v);
    expect(encode(v.direction, requestId, message), `${file}: re-encoding the decoded frame`).toBe(v.hex);
    const fromJson = fromCanonicalJson(v.direction, v.type, v.decoded);
    expect(encode(v.direction, v.request_id, fromJson), `${file}: encoding the canonical form`).toBe(v.hex);
    const checked = predicted(message as Request);
    if (checked === null) expect.fail(`${file}: a refuse vector of ${message.type}, which the SDK does not check`);
    expect(checked?.code, `${file}: the code the SDK's checks predict`).toBe(v.error_code);
  });

  it("the SDK's checks refuse none of the round-trip requests", () => {
    const refused = roundTrip
      .filter(([, v]) => v.direction === "client_to_server" && known(v))
      .map(([file, v]) => [file, predicted(decode(v).message as Request)] as const)
      .filter(([, r]) => r !== undefined && r !== null)
      .map(([file, r]) => `${file}: ${r?.code}`);
    expect(refused).toEqual([]);
  });
});

describe("decode-only vectors", () => {
  it.each(decodeOnly)("%s", (file, v) => {
    const { requestId, message } = checkDecodes(file, v);
    if (NOT_YET_IN_TS_SDK.has(v.type) && !known(v)) return;
    // Decode-only because a conforming encoder writes other bytes.
    expect(encode(v.direction, requestId, message), `${file}: is a round trip`).not.toBe(v.hex);
  });
});

describe("reject vectors", () => {
  it.each(reject)("%s", (file, v) => {
    const bytes = fromHex(v.hex);
    let error: unknown;
    try {
      if (v.direction === "client_to_server") decodeRequestFrame(bytes, v.max_frame_len);
      else decodeServerFrame(bytes, v.max_frame_len);
    } catch (e) {
      error = e;
    }
    expect(error, `${file}: decoded, but must be rejected`).toBeInstanceOf(DecodeError);
    expect((error as DecodeError).code, `${file}: ${(error as Error).message}`).toBe(v.error_code);
  });
});
