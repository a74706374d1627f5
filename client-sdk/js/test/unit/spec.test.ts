/**
 * The SDK's tables against SPEC.md itself: the frame types of §4 and the
 * error codes of §6. A frame or code added to the SPEC fails here until
 * the SDK has it (or, for frames, until it is allowlisted in
 * vectors.test.ts's NOT_YET_IN_TS_SDK).
 */

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { ERROR_CODES, REQUESTS, SERVER_FRAMES, errorCodeName, mayReconnectAfter } from "../../src/index.js";

const SPEC = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../../../../protocol-spec/SPEC.md"), "utf8");

describe("SPEC.md", () => {
  it("§4: the frame table lists exactly the SDK's frames, with the same numbers", () => {
    const row = /^\| `0x([0-9A-Fa-f]{2})` \| ([A-Z_]+) \| (C→S|S→C) \|/gm;
    const spec = [...SPEC.matchAll(row)].map((m) => [m[2], parseInt(m[1] as string, 16), m[3]] as const);
    expect(spec.length).toBeGreaterThan(50);
    const sdk = [
      ...Object.entries(REQUESTS).map(([n, d]) => [n, d.type, "C→S"] as const),
      ...Object.entries(SERVER_FRAMES).map(([n, d]) => [n, d.type, "S→C"] as const),
    ];
    const key = (x: readonly [unknown, number, unknown]) => x[1];
    expect([...sdk].sort((a, b) => key(a) - key(b))).toEqual([...spec].sort((a, b) => key(a) - key(b)));
  });

  it("§6: the error code table lists exactly the SDK's codes and names", () => {
    const row = /^\| (\d{3}) \| `([A-Z_]+)` \|/gm;
    const spec = [...SPEC.matchAll(row)].map((m) => [Number(m[1]), m[2]] as const);
    expect(spec.length).toBeGreaterThan(40);
    const sdk = Object.entries(ERROR_CODES).map(([n, [code]]) => [code, n] as const);
    expect(sdk).toEqual(spec);
    expect(errorCodeName(300)).toBe("ROOM_NOT_FOUND");
    expect(errorCodeName(799)).toBe("UNKNOWN");
  });

  it("§7.9: no reconnect after LOGGED_OUT, INVALID_TOKEN or a protocol violation", () => {
    for (const c of [602, 201, 100, 103]) expect(mayReconnectAfter(c), String(c)).toBe(false);
    for (const c of [600, 601, 503, 105, 650]) expect(mayReconnectAfter(c), String(c)).toBe(true);
  });
});
