/** Primitive encodings (SPEC.md §3) and framing (§2), beyond the vectors. */

import { describe, expect, it } from "vitest";

import {
  DecodeError,
  EncodeError,
  Reader,
  Writer,
  backoffDelay,
  decodeServerFrame,
  encodeRequest,
  fromHex,
  reconnectPolicy,
  splitFrame,
  toHex,
  SeqTracker,
} from "../../src/index.js";

const varint = (hex: string, width: 16 | 32 | 64 = 64) => new Reader(fromHex(hex.replace(/ /g, ""))).varint(width);
const encoded = (v: number, width: 16 | 32 | 64 = 64) => {
  const w = new Writer();
  w.varint(v, width);
  return toHex(w.finish());
};
const reason = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof DecodeError) return e.reason;
    throw e;
  }
  return "accepted";
};

describe("varint (§3.1)", () => {
  it.each([
    [0, "00"],
    [1, "01"],
    [127, "7f"],
    [128, "8001"],
    [300, "ac02"],
    [4096, "8020"],
    [30000, "b0ea01"],
    [65536, "808004"],
    [1700000000000, "80d095ffbc31"],
    [Number.MAX_SAFE_INTEGER, "ffffffffffffff0f"],
  ])("%d ↔ %s", (value, hex) => {
    expect(encoded(value)).toBe(hex);
    expect(varint(hex)).toBe(value);
  });

  it("accepts non-shortest encodings", () => {
    expect(varint("85 80 00")).toBe(5);
  });

  it("refuses what the reference decoder refuses", () => {
    expect(reason(() => varint("ff ff ff ff ff ff ff ff ff ff ff"))).toBe("varint_overflow");
    expect(reason(() => varint("ff ff ff ff ff ff ff ff ff 02"))).toBe("varint_overflow");
    expect(reason(() => varint("ff ff ff ff ff ff ff ff ff 81"))).toBe("varint_overflow");
    expect(reason(() => varint("80 80"))).toBe("truncated");
    expect(reason(() => varint("80 80 04", 16))).toBe("varint_overflow");
    expect(reason(() => varint("80 80 80 80 10", 32))).toBe("varint_overflow");
    expect(varint("ff ff ff ff 0f", 32)).toBe(0xffff_ffff);
  });

  it("refuses u64 values a number cannot hold exactly, rather than rounding them", () => {
    expect(reason(() => varint("ff ff ff ff ff ff ff ff ff 01"))).toBe("unsafe_integer");
    expect(reason(() => varint("80 80 80 80 80 80 80 10"))).toBe("unsafe_integer"); // 2^53
    expect(varint("ff ff ff ff ff ff ff 0f")).toBe(2 ** 53 - 1);
  });

  it("encoders refuse negative, fractional, unsafe and too wide values", () => {
    for (const v of [-1, 1.5, Number.NaN, 2 ** 53]) expect(() => encoded(v)).toThrow(EncodeError);
    expect(() => encoded(65536, 16)).toThrow(EncodeError);
  });
});

describe("strings, bools and lists (§3.3–§3.6)", () => {
  it("round-trips UTF-8 and refuses ill-formed input", () => {
    const w = new Writer();
    w.str("café ☕ 👋");
    const r = new Reader(w.finish());
    expect(r.str()).toBe("café ☕ 👋");
    for (const bad of ["02c328", "03eda080", "02c0af", "01ff"]) {
      expect(reason(() => new Reader(fromHex(bad)).str()), bad).toBe("invalid_utf8");
    }
    expect(reason(() => new Reader(fromHex("05616263")).str())).toBe("truncated");
  });

  it("does not strip a leading byte-order mark", () => {
    const w = new Writer();
    w.str("\ufeffx");
    expect(new Reader(w.finish()).str()).toBe("\ufeffx");
  });

  it("refuses lone surrogates when encoding", () => {
    expect(() => new Writer().str("a\udc00")).toThrow(EncodeError);
    expect(() => new Writer().str("\ud83d")).toThrow(EncodeError);
  });

  it("bool is 00 or 01", () => {
    expect(new Reader(fromHex("01")).bool()).toBe(true);
    expect(reason(() => new Reader(fromHex("02")).bool())).toBe("invalid_value");
  });

  it("a list count above the bytes left is refused before decoding elements", () => {
    expect(reason(() => new Reader(fromHex("e8070102")).count())).toBe("truncated");
  });
});

describe("framing (§2)", () => {
  it("a WebSocket message must be exactly one frame", () => {
    const ping = encodeRequest(7, { type: "PING", nonce: 42 });
    expect(splitFrame(ping)).toMatchObject({ type: 2, requestId: 7 });
    const two = new Uint8Array([...ping, ...ping]);
    expect(reason(() => splitFrame(two))).toBe("not_one_frame");
    expect(reason(() => splitFrame(ping.subarray(0, ping.length - 1)))).toBe("not_one_frame");
    expect(reason(() => splitFrame(ping.subarray(0, 3)))).toBe("not_one_frame");
  });

  it("checks the length against the limit from the header alone", () => {
    const e = (() => {
      try {
        splitFrame(fromHex("01000001"), 16 * 1024 * 1024);
      } catch (x) {
        return x as DecodeError;
      }
      return undefined;
    })();
    expect(e?.reason).toBe("frame_too_large");
    expect(e?.code).toBe(102);
  });

  it("request ids span the whole u32", () => {
    const bytes = encodeRequest(0xffff_ffff, { type: "MY_ROOMS" });
    expect(toHex(bytes)).toBe("0000000517ffffffff");
    expect(splitFrame(bytes).requestId).toBe(0xffff_ffff);
    expect(() => encodeRequest(2 ** 32, { type: "MY_ROOMS" })).toThrow(EncodeError);
  });

  it("ignores bytes appended after the fields it knows (§11.1)", () => {
    const pong = fromHex("000000084100000009" + "2a" + "ffff");
    expect(decodeServerFrame(pong).message).toEqual({ type: "PONG", nonce: 42 });
  });

  it("rejects unknown types with the code of their range", () => {
    const e = (hex: string) => {
      try {
        decodeServerFrame(fromHex(hex));
      } catch (x) {
        return (x as DecodeError).code;
      }
      return 0;
    };
    expect(e("00000005be00000000")).toBe(106); // event range: clients ignore it
    expect(e("000000050200000000")).toBe(101); // a request type from a server
  });
});

describe("backoff and seq tracking", () => {
  it("full jitter: uniform in [0, min(max, initial·2^n)]", () => {
    const p = reconnectPolicy({ initialDelayMs: 100, maxDelayMs: 5000 });
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(p, n, 1))).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(backoffDelay(p, 3, 0)).toBe(0);
    expect(backoffDelay(p, 3, 0.5)).toBe(400);
    expect(backoffDelay(p, 3, Number.NaN)).toBe(0);
    expect(backoffDelay(p, 3, 7)).toBe(800);
    expect(backoffDelay(p, 10_000, 1)).toBe(5000);
    expect(reconnectPolicy(false).enabled).toBe(false);
    expect(reconnectPolicy(undefined)).toMatchObject({ enabled: true, initialDelayMs: 1000, maxDelayMs: 30_000 });
  });

  it("tracks the last seq per room", () => {
    const t = new SeqTracker();
    expect(t.observe(1, 1)).toBe(true);
    expect(t.observe(1, 1)).toBe(false);
    expect(t.observe(1, 5)).toBe(true);
    t.raise(1, 3);
    expect(t.lastSeen(1)).toBe(5);
    t.set(1, 2);
    expect(t.observe(1, 3)).toBe(true);
    t.raise(9, 4);
    expect(t.resumePoints()).toEqual([{ room: 1, after: 3 }, { room: 9, after: 4 }]);
    t.forget(1);
    expect(t.resumePoints()).toEqual([{ room: 9, after: 4 }]);
  });
});
