/**
 * Primitive encodings (SPEC.md §3): varints, strings, bools, optional
 * values, lists and nested items. The reader never throws anything but a
 * {@link DecodeError}, and it applies exactly the reference decoder's rules
 * (protocol-spec/src/wire.rs).
 */

import { DecodeError, EncodeError } from "./errors.js";

/** The widths a varint field may declare (SPEC.md §3.1). */
export type VarintWidth = 16 | 32 | 64;

const WIDTH_MAX: Record<VarintWidth, number> = {
  16: 0xffff,
  32: 0xffff_ffff,
  64: Number.MAX_SAFE_INTEGER,
};

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** A cursor over one payload (or one nested item of it). */
export class Reader {
  private pos: number;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }

  /** Bytes not yet read. Bytes left after the known fields are ignored (SPEC.md §11.1). */
  remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) throw new DecodeError("truncated", "payload ended early");
    return this.buf[this.pos++] as number;
  }

  /**
   * An unsigned LEB128 varint of at most 10 bytes whose value fits
   * `width` bits. u64 values above 2^53 − 1 are refused rather than
   * rounded (SPEC.md §3.1 allows either BigInt or refusal).
   */
  varint(width: VarintWidth): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.u8();
      const low = b & 0x7f;
      if (i === 9 && low > 1) {
        throw new DecodeError("varint_overflow", "varint longer than its type allows");
      }
      // Exact while the true value is below 2^53; beyond, the sum is at
      // least 2^53 and refused below.
      value += low * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        if (value > WIDTH_MAX[width]) {
          if (width === 64) {
            throw new DecodeError("unsafe_integer", "u64 value above 2^53 - 1 cannot be represented exactly");
          }
          throw new DecodeError("varint_overflow", `value does not fit u${width}`);
        }
        return value;
      }
    }
    throw new DecodeError("varint_overflow", "varint longer than its type allows");
  }

  bytes(len: number): Uint8Array {
    if (len > this.remaining()) throw new DecodeError("truncated", "payload ended early");
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  str(): string {
    const len = this.varint64OrTruncated();
    const raw = this.bytes(len);
    try {
      return utf8Decoder.decode(raw);
    } catch {
      throw new DecodeError("invalid_utf8", "string is not valid UTF-8");
    }
  }

  bool(field = "bool"): boolean {
    const b = this.u8();
    if (b === 0) return false;
    if (b === 1) return true;
    throw new DecodeError("invalid_value", `invalid ${field} value ${b}`);
  }

  /** A list's element count, refused if above the bytes left (SPEC.md §3.6). */
  count(): number {
    const n = this.varint64OrTruncated();
    if (n > this.remaining()) throw new DecodeError("truncated", "list count exceeds the bytes left");
    return n;
  }

  /** A length-delimited nested item (SPEC.md §3.7), as a reader of its own. */
  nested(): Reader {
    const len = this.varint64OrTruncated();
    if (len > this.remaining()) throw new DecodeError("truncated", "payload ended early");
    const sub = new Reader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return sub;
  }

  /** A byte count: any u64 is well-formed, and one beyond the buffer is truncation. */
  private varint64OrTruncated(): number {
    try {
      return this.varint(64);
    } catch (e) {
      if (e instanceof DecodeError && e.reason === "unsafe_integer") {
        throw new DecodeError("truncated", "payload ended early");
      }
      throw e;
    }
  }
}

/** A growable byte buffer that encoders append to. */
export class Writer {
  private buf = new Uint8Array(64);
  private len = 0;

  get length(): number {
    return this.len;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  u8(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new EncodeError(`not a byte: ${v}`);
    this.reserve(1);
    this.buf[this.len++] = v;
  }

  u32be(v: number): void {
    this.reserve(4);
    this.buf[this.len++] = (v >>> 24) & 0xff;
    this.buf[this.len++] = (v >>> 16) & 0xff;
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
  }

  /** Writes `v` as the shortest LEB128 varint; refuses values that do not fit `width`. */
  varint(v: number, width: VarintWidth): void {
    if (!Number.isSafeInteger(v) || v < 0 || v > WIDTH_MAX[width]) {
      throw new EncodeError(`${String(v)} is not a u${width} (or is above 2^53 - 1)`);
    }
    this.reserve(10);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** A string: byte count, then UTF-8. Refuses lone surrogates, which have no UTF-8 form. */
  str(s: string): void {
    if (typeof s !== "string") throw new EncodeError(`not a string: ${String(s)}`);
    if (hasLoneSurrogate(s)) throw new EncodeError("string holds a lone surrogate: not encodable as UTF-8");
    const b = utf8Encoder.encode(s);
    this.varint(b.length, 64);
    this.bytes(b);
  }

  bool(b: boolean): void {
    if (typeof b !== "boolean") throw new EncodeError(`not a boolean: ${String(b)}`);
    this.u8(b ? 1 : 0);
  }

  /** Writes a nested item: its byte count, then what `body` writes. */
  nested(body: (w: Writer) => void): void {
    const inner = new Writer();
    body(inner);
    const bytes = inner.finish();
    this.varint(bytes.length, 64);
    this.bytes(bytes);
  }

  /** Overwrites 4 bytes at `at` with `v`, big-endian (a frame's length field). */
  patchU32be(at: number, v: number): void {
    this.buf[at] = (v >>> 24) & 0xff;
    this.buf[at + 1] = (v >>> 16) & 0xff;
    this.buf[at + 2] = (v >>> 8) & 0xff;
    this.buf[at + 3] = v & 0xff;
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return true;
    }
    if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

/** Lowercase hexadecimal of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** The bytes of a hexadecimal string (either case, even length). */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new EncodeError(`not hexadecimal: ${hex}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
