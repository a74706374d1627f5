/**
 * Payload schemas: small composable codecs from which every frame's
 * encoder, decoder, TypeScript type and canonical JSON form (SPEC.md §12.3)
 * are derived. A frame is declared once, as a list of fields in wire order
 * (see frames.ts); nothing else has to be written to encode, decode, type
 * or test it.
 *
 * Field names are camelCase in TypeScript and snake_case in the canonical
 * JSON form; the conversion is mechanical (`actorName` ↔ `actor_name`).
 */

import { DecodeError, EncodeError } from "./errors.js";
import { fromHex, Reader, toHex, type VarintWidth, type Writer } from "./wire.js";

/** A JSON value, as in the vector files. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Encodes and decodes one value. `Out` is what decoding yields; `In` what
 * encoding accepts (the same, except that fields with a default may be
 * left out).
 */
export interface Codec<Out, In = Out> {
  /** What the codec is, for error messages. */
  readonly describe: string;
  encode(w: Writer, v: In): void;
  decode(r: Reader): Out;
  /** The canonical JSON form of a decoded value (SPEC.md §12.3). */
  toJson(v: Out): Json;
  /** The value a canonical JSON form stands for; throws `TypeError` on a mismatch. */
  fromJson(j: Json, path: string): Out;
}

/** The decoded type of a codec. */
export type OutOf<C> = C extends Codec<infer O, unknown> ? O : never;
/** The encodable type of a codec. */
export type InOf<C> = C extends Codec<unknown, infer I> ? I : never;

// ------------------------------------------------------------ primitives

function expectNumber(j: Json, path: string): number {
  if (typeof j !== "number" || !Number.isSafeInteger(j) || j < 0) {
    throw new TypeError(`${path}: expected a non-negative integer, got ${JSON.stringify(j)}`);
  }
  return j;
}

function expectString(j: Json, path: string): string {
  if (typeof j !== "string") throw new TypeError(`${path}: expected a string, got ${JSON.stringify(j)}`);
  return j;
}

function expectObject(j: Json, path: string): { [key: string]: Json } {
  if (j === null || typeof j !== "object" || Array.isArray(j)) {
    throw new TypeError(`${path}: expected an object, got ${JSON.stringify(j)}`);
  }
  return j;
}

function varint(width: VarintWidth): Codec<number> {
  return {
    describe: `varint(u${width})`,
    encode: (w, v) => w.varint(v, width),
    decode: (r) => r.varint(width),
    toJson: (v) => v,
    fromJson: expectNumber,
  };
}

/** `varint(u64)`: ids, seqs, timestamps (numbers up to 2^53 − 1; SPEC.md §3.1). */
export const u64 = varint(64);
/** `varint(u32)`: counts, limits. */
export const u32 = varint(32);
/** `varint(u16)`: versions, error codes. */
export const u16 = varint(16);

/** `bool` (SPEC.md §3.3): `00` or `01`. */
export const bool: Codec<boolean> = {
  describe: "bool",
  encode: (w, v) => w.bool(v),
  decode: (r) => r.bool(),
  toJson: (v) => v,
  fromJson: (j, path) => {
    if (typeof j !== "boolean") throw new TypeError(`${path}: expected a boolean, got ${JSON.stringify(j)}`);
    return j;
  },
};

/** `string` (SPEC.md §3.4): byte count, then well-formed UTF-8. */
export const string: Codec<string> = {
  describe: "string",
  encode: (w, v) => w.str(v),
  decode: (r) => r.str(),
  toJson: (v) => v,
  fromJson: expectString,
};

/** Every byte left in the payload or nested item (an unknown event kind's fields); JSON: lowercase hex. */
export const rest: Codec<Uint8Array> = {
  describe: "remaining bytes",
  encode: (w, v) => w.bytes(v),
  decode: (r) => r.bytes(r.remaining()),
  toJson: (v) => toHex(v),
  fromJson: (j, path) => fromHex(expectString(j, path)),
};

/**
 * A closed `u8` enumeration (visibility, role): a byte outside the table
 * makes the frame malformed (SPEC.md §11.4).
 */
export function closedEnum<const T extends Record<string, number>>(field: string, table: T): Codec<keyof T & string> {
  const byCode = new Map<number, keyof T & string>();
  for (const [name, code] of Object.entries(table)) byCode.set(code, name);
  return {
    describe: field,
    encode: (w, v) => {
      const code = table[v];
      if (code === undefined) throw new EncodeError(`invalid ${field}: ${String(v)}`);
      w.u8(code);
    },
    decode: (r) => {
      const b = r.u8();
      const name = byCode.get(b);
      if (name === undefined) throw new DecodeError("invalid_value", `invalid ${field} value ${b}`);
      return name;
    },
    toJson: (v) => v,
    fromJson: (j, path) => {
      if (typeof j !== "string" || !(j in table)) throw new TypeError(`${path}: not a ${field}: ${JSON.stringify(j)}`);
      return j;
    },
  };
}

/**
 * An open `u8` enumeration (notification kind, leave reason, presence):
 * any byte is well-formed; a value without a name stays a number
 * (SPEC.md §5.8.1, §12.3 rule 8).
 */
export function openEnum<const T extends Record<string, number>>(field: string, table: T): Codec<(keyof T & string) | number> {
  const byCode = new Map<number, keyof T & string>();
  for (const [name, code] of Object.entries(table)) byCode.set(code, name);
  const toCode = (v: string | number): number => {
    if (typeof v === "number") {
      if (byCode.has(v)) throw new EncodeError(`${field} ${v} has a name (${byCode.get(v)}): use it`);
      return v;
    }
    const code = table[v];
    if (code === undefined) throw new EncodeError(`invalid ${field}: ${v}`);
    return code;
  };
  return {
    describe: field,
    encode: (w, v) => w.u8(toCode(v)),
    decode: (r) => {
      const b = r.u8();
      return byCode.get(b) ?? b;
    },
    toJson: (v) => v,
    fromJson: (j, path) => {
      if (typeof j === "string" && j in table) return j;
      if (typeof j === "number" && Number.isInteger(j) && j >= 0 && j <= 255 && !byCode.has(j)) return j;
      throw new TypeError(`${path}: not a ${field}: ${JSON.stringify(j)}`);
    },
  };
}

// ------------------------------------------------------------ containers

/**
 * `list` (SPEC.md §3.6): an element count, then the elements. Wrap the
 * element in {@link nested} for lists of nested items.
 */
export function list<O, I>(item: Codec<O, I>): Codec<O[], readonly I[]> {
  return {
    describe: `list(${item.describe})`,
    encode: (w, v) => {
      if (!Array.isArray(v)) throw new EncodeError(`expected an array for ${item.describe}s`);
      w.varint(v.length, 64);
      for (const x of v) item.encode(w, x);
    },
    decode: (r) => {
      const n = r.count();
      const out: O[] = [];
      for (let i = 0; i < n; i++) out.push(item.decode(r));
      return out;
    },
    toJson: (v) => v.map((x) => item.toJson(x)),
    fromJson: (j, path) => {
      if (!Array.isArray(j)) throw new TypeError(`${path}: expected an array, got ${JSON.stringify(j)}`);
      return j.map((x, i) => item.fromJson(x, `${path}[${i}]`));
    },
  };
}

/**
 * `nested` (SPEC.md §3.7): a byte count, then the item; bytes left in the
 * item after the fields the decoder knows are skipped.
 */
export function nested<O, I>(item: Codec<O, I>): Codec<O, I> {
  return {
    describe: `nested(${item.describe})`,
    encode: (w, v) => w.nested((inner) => item.encode(inner, v)),
    decode: (r) => item.decode(r.nested()),
    toJson: (v) => item.toJson(v),
    fromJson: (j, path) => item.fromJson(j, path),
  };
}

// ---------------------------------------------------------------- structs

/** How a field of a struct is carried. */
type Mode = "plain" | "optional" | "appended";

/**
 * A struct field with a presence rule. Plain codecs in a struct spec are
 * plain fields; {@link optional} and {@link appended} make the others.
 */
export interface Field<O, I, OutOptional extends boolean, InOptional extends boolean> {
  readonly mode: Mode;
  readonly codec: Codec<O, I>;
  /** Set: absent on the wire decodes as this value. */
  readonly hasDefault: boolean;
  readonly defaultValue: O | undefined;
  /** An appended field written only when it differs from its default. */
  readonly omitDefaultOnWire: boolean;
  /** Appended fields of one group are present together or not at all. */
  readonly group: string | undefined;
  /** The canonical JSON form of an absent value: `null` or no key. */
  readonly jsonAbsent: "null" | "omit";
  /** No JSON key when the value equals its default. */
  readonly omitDefaultInJson: boolean;
  /** Phantom markers: whether the key is optional in `Out` / `In`. */
  readonly outOptional: OutOptional;
  readonly inOptional: InOptional;
}

type AnyField = Field<any, any, boolean, boolean>; // eslint-disable-line @typescript-eslint/no-explicit-any
type AnyCodec = Codec<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A struct's fields, in wire order. */
export type StructSpec = { readonly [key: string]: AnyCodec | AnyField };

type EntryOut<E> = E extends Field<infer O, unknown, boolean, boolean> ? O : E extends Codec<infer O, unknown> ? O : never;
type EntryIn<E> = E extends Field<unknown, infer I, boolean, boolean> ? I : E extends Codec<unknown, infer I> ? I : never;
type OutOptionalKeys<S> = { [K in keyof S]: S[K] extends { outOptional: true } ? K : never }[keyof S];
type InOptionalKeys<S> = { [K in keyof S]: S[K] extends { inOptional: true } ? K : never }[keyof S];

/** Flattens an intersection for readable hover types. */
export type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The decoded value of a struct spec. */
export type StructOut<S> = Simplify<
  { -readonly [K in Exclude<keyof S, OutOptionalKeys<S>>]: EntryOut<S[K]> } & {
    -readonly [K in OutOptionalKeys<S>]?: EntryOut<S[K]>;
  }
>;
/** What encoding a struct spec accepts. */
export type StructIn<S> = Simplify<
  { readonly [K in Exclude<keyof S, InOptionalKeys<S>>]: EntryIn<S[K]> } & {
    readonly [K in InOptionalKeys<S>]?: EntryIn<S[K]>;
  }
>;

/**
 * `optional` (SPEC.md §3.5): a presence byte, then the value if `01`.
 * Absent is `undefined` in TypeScript and `null` in JSON.
 */
export function optional<O, I>(codec: Codec<O, I>): Field<O, I, true, true> {
  return {
    mode: "optional",
    codec,
    hasDefault: false,
    defaultValue: undefined,
    omitDefaultOnWire: false,
    group: undefined,
    jsonAbsent: "null",
    omitDefaultInJson: false,
    outOptional: true,
    inOptional: true,
  };
}

/**
 * A field appended to its payload or nested item after the first release
 * (SPEC.md §11.1): present when bytes remain, absent otherwise. Appended
 * fields of one `group` are present together (the first decides; a later
 * one missing is truncation, as in the reference decoder).
 */
export function appended<O, I>(
  codec: Codec<O, I>,
  options: { group?: string; jsonAbsent?: "null" | "omit" } = {},
): Field<O, I, true, true> {
  return {
    mode: "appended",
    codec,
    hasDefault: false,
    defaultValue: undefined,
    omitDefaultOnWire: false,
    group: options.group,
    jsonAbsent: options.jsonAbsent ?? "omit",
    omitDefaultInJson: false,
    outOptional: true,
    inOptional: true,
  };
}

/**
 * An appended field whose absence means `defaultValue` (ERROR's
 * `retry_after_ms`, LIST_ROOMS' `exact`, CREATE_ROOM's `members`): always
 * set once decoded, optional when encoding.
 */
export function appendedDefault<O, I>(
  codec: Codec<O, I>,
  defaultValue: O,
  options: { omitOnWire: boolean; omitInJson: boolean },
): Field<O, I, false, true> {
  return {
    mode: "appended",
    codec,
    hasDefault: true,
    defaultValue,
    omitDefaultOnWire: options.omitOnWire,
    group: undefined,
    jsonAbsent: "omit",
    omitDefaultInJson: options.omitInJson,
    outOptional: false,
    inOptional: true,
  };
}

function asField(e: AnyCodec | AnyField): AnyField {
  if ("mode" in e) return e;
  return {
    mode: "plain",
    codec: e,
    hasDefault: false,
    defaultValue: undefined,
    omitDefaultOnWire: false,
    group: undefined,
    jsonAbsent: "omit",
    omitDefaultInJson: false,
    outOptional: false,
    inOptional: false,
  };
}

/** `actorName` → `actor_name`. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isDefault(f: AnyField, v: unknown): boolean {
  if (!f.hasDefault) return false;
  const d: unknown = f.defaultValue;
  if (Array.isArray(d) && Array.isArray(v)) return d.length === 0 && v.length === 0;
  return Object.is(d, v);
}

/** The keys a struct's JSON form uses, for the frame table's sanity checks. */
export interface StructCodec<S extends StructSpec> extends Codec<StructOut<S>, StructIn<S>> {
  readonly spec: S;
}

/**
 * Fields one after another, in the spec's key order (which is wire order).
 */
export function struct<const S extends StructSpec>(spec: S): StructCodec<S> {
  const fields = Object.entries(spec).map(([key, e]) => ({ key, json: snakeCase(key), f: asField(e) }));
  return {
    spec,
    describe: `{${fields.map((x) => x.key).join(", ")}}`,
    encode(w, v) {
      const value = v as Record<string, unknown>;
      let appendedStopped: string | undefined;
      const groups = new Map<string, boolean>();
      for (const { key, f } of fields) {
        let x = value[key];
        switch (f.mode) {
          case "plain":
            if (x === undefined) throw new EncodeError(`missing field ${key}`);
            f.codec.encode(w, x);
            break;
          case "optional":
            if (x === undefined) {
              w.u8(0);
            } else {
              w.u8(1);
              f.codec.encode(w, x);
            }
            break;
          case "appended": {
            if (x === undefined && f.hasDefault) x = f.defaultValue;
            const write = x !== undefined && !(f.omitDefaultOnWire && isDefault(f, x));
            if (f.group !== undefined) {
              const before = groups.get(f.group);
              if (before !== undefined && before !== write) {
                throw new EncodeError(`the fields of group ${f.group} must be all present or all absent`);
              }
              groups.set(f.group, write);
            }
            if (write) {
              if (appendedStopped !== undefined) {
                throw new EncodeError(`${key} cannot be sent without ${appendedStopped}, an appended field before it`);
              }
              f.codec.encode(w, x);
            } else {
              appendedStopped ??= key;
            }
            break;
          }
        }
      }
    },
    decode(r) {
      const out: Record<string, unknown> = {};
      const groups = new Map<string, boolean>();
      for (const { key, f } of fields) {
        switch (f.mode) {
          case "plain":
            out[key] = f.codec.decode(r);
            break;
          case "optional":
            if (r.bool(`${key} presence`)) out[key] = f.codec.decode(r);
            break;
          case "appended": {
            let present = f.group === undefined ? undefined : groups.get(f.group);
            if (present === undefined) {
              present = r.remaining() > 0;
              if (f.group !== undefined) groups.set(f.group, present);
            }
            if (present) out[key] = f.codec.decode(r);
            else if (f.hasDefault) out[key] = f.defaultValue;
            break;
          }
        }
      }
      return out as StructOut<S>;
    },
    toJson(v) {
      const value = v as Record<string, unknown>;
      const out: { [key: string]: Json } = {};
      for (const { key, json, f } of fields) {
        let x = value[key];
        if (x === undefined && f.hasDefault) x = f.defaultValue;
        if (x === undefined) {
          if (f.jsonAbsent === "null") out[json] = null;
          continue;
        }
        if (f.omitDefaultInJson && isDefault(f, x)) continue;
        out[json] = f.codec.toJson(x);
      }
      return out;
    },
    fromJson(j, path) {
      const obj = expectObject(j, path);
      const known = new Set(fields.map((x) => x.json));
      for (const k of Object.keys(obj)) {
        if (!known.has(k)) throw new TypeError(`${path}: unexpected key ${JSON.stringify(k)}`);
      }
      const out: Record<string, unknown> = {};
      for (const { key, json, f } of fields) {
        const x = obj[json];
        if (x === undefined || (x === null && f.mode !== "plain")) {
          if (f.mode === "plain") throw new TypeError(`${path}: missing key ${JSON.stringify(json)}`);
          if (f.hasDefault) out[key] = f.defaultValue;
          continue;
        }
        out[key] = f.codec.fromJson(x, `${path}.${json}`);
      }
      return out as StructOut<S>;
    },
  };
}

// ---------------------------------------------------------- tagged union

/** A variant of an event-like union nobody told this SDK about: its kind byte and raw fields. */
export interface UnknownKind {
  kind: number;
  data: Uint8Array;
}

type VariantTable = { readonly [name: string]: readonly [number, StructSpec] };

/** The decoded union of a variant table, plus {@link UnknownKind}. */
export type UnionOut<V extends VariantTable> =
  | { [K in keyof V & string]: Simplify<{ kind: K } & StructOut<V[K][1]>> }[keyof V & string]
  | UnknownKind;
/** What encoding a variant table accepts. */
export type UnionIn<V extends VariantTable> =
  | { [K in keyof V & string]: Simplify<{ readonly kind: K } & StructIn<V[K][1]>> }[keyof V & string]
  | UnknownKind;

/**
 * A `u8` kind, then that kind's fields (a room event's body, SPEC.md
 * §5.5.2). A kind without an entry keeps every remaining byte, so that
 * clients skip kinds from later versions without failing. JSON:
 * `{"kind": name, ...fields}`, or `{"kind": n, "data_hex": "…"}`.
 */
export function kindUnion<const V extends VariantTable>(variants: V): Codec<UnionOut<V>, UnionIn<V>> {
  const byName = new Map<string, { code: number; body: StructCodec<StructSpec> }>();
  const byCode = new Map<number, { name: string; body: StructCodec<StructSpec> }>();
  for (const [name, [code, spec]] of Object.entries(variants)) {
    if ("kind" in spec) throw new Error(`variant ${name}: a field may not be called "kind"`);
    const body = struct(spec);
    byName.set(name, { code, body });
    byCode.set(code, { name, body });
  }
  return {
    describe: "kind union",
    encode(w, v) {
      if (typeof v.kind === "number") {
        if (byCode.has(v.kind)) throw new EncodeError(`kind ${v.kind} has a name: use it`);
        w.u8(v.kind);
        w.bytes((v as UnknownKind).data);
        return;
      }
      const variant = byName.get(v.kind);
      if (variant === undefined) throw new EncodeError(`unknown kind ${v.kind}`);
      w.u8(variant.code);
      variant.body.encode(w, v as never);
    },
    decode(r) {
      const code = r.u8();
      const variant = byCode.get(code);
      if (variant === undefined) return { kind: code, data: r.bytes(r.remaining()).slice() };
      return { kind: variant.name, ...(variant.body.decode(r) as object) } as UnionOut<V>;
    },
    toJson(v): Json {
      if (typeof v.kind === "number") return { kind: v.kind, data_hex: toHex((v as UnknownKind).data) };
      const { kind, ...fields } = v as { kind: string };
      const variant = byName.get(kind);
      if (variant === undefined) throw new EncodeError(`unknown kind ${kind}`);
      return { kind, ...(variant.body.toJson(fields as never) as { [key: string]: Json }) };
    },
    fromJson(j, path) {
      const { kind, ...fields } = expectObject(j, path);
      if (typeof kind === "number") {
        const { data_hex: hex, ...other } = fields;
        if (Object.keys(other).length > 0 || byCode.has(kind)) throw new TypeError(`${path}: bad unknown kind`);
        return { kind, data: fromHex(expectString(hex ?? null, `${path}.data_hex`)) };
      }
      const variant = byName.get(expectString(kind ?? null, `${path}.kind`));
      if (variant === undefined) throw new TypeError(`${path}: unknown kind ${JSON.stringify(kind)}`);
      return { kind, ...(variant.body.fromJson(fields, path) as object) } as UnionOut<V>;
    },
  };
}

/** Decodes `codec` from a whole buffer (a payload); trailing bytes are ignored (SPEC.md §11.1). */
export function decodeAll<O>(codec: Codec<O, unknown>, bytes: Uint8Array): O {
  return codec.decode(new Reader(bytes));
}
