/**
 * Rich messages (SPEC.md §5.11) on the client side: building a formatted
 * text's spans from JavaScript strings, the rules a server checks (to
 * refuse early, with the code the server would answer), and splitting a
 * received message into styled pieces for rendering.
 *
 * Span offsets are UTF-8 **byte** offsets into the text. JavaScript
 * strings index UTF-16 code units, so nothing here uses `.length` of a
 * string as an offset: an emoji is 2 code units and 4 bytes, a CJK
 * character 1 code unit and 3 bytes.
 */

import { ErrorCode } from "./codes.js";
import { COLORS, type Color, type Span, type SpanInput } from "./frames.js";

/** The most spans one message may carry (SPEC.md §5.11.1). */
export const MAX_SPANS = 64;
/** The longest link URL, in bytes. */
export const MAX_URL_LEN = 2048;
/** The longest sticker id, in bytes (SPEC.md §5.11.3). */
export const MAX_STICKER_ID_LEN = 32;

/** A span's style without its range: `{ kind: "bold" }`, `{ kind: "link", url }`, `{ kind: "color", color }`. */
export type Style = SpanInput extends infer S ? (S extends unknown ? Omit<S, "start" | "end"> : never) : never;

/** The number of UTF-8 bytes of `text` (as the wire carries it; a lone surrogate counts as U+FFFD, 3 bytes). */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; ) {
    const [bytes, units] = charAt(text, i);
    n += bytes;
    i += units;
  }
  return n;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** The UTF-8 bytes and UTF-16 units of the character at index `i` (a lone surrogate: U+FFFD's 3 bytes). */
function charAt(text: string, i: number): [bytes: number, units: number] {
  const c = text.charCodeAt(i);
  if (c < 0x80) return [1, 1];
  if (c < 0x800) return [2, 1];
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) return [4, 2];
  return [3, 1];
}

/**
 * The UTF-8 byte offset of UTF-16 index `index` of `text` (an index
 * inside a surrogate pair counts as the pair's start).
 */
export function byteOffset(text: string, index: number): number {
  let i = Math.max(0, Math.min(index, text.length));
  if (i > 0 && i < text.length && isLowSurrogate(text.charCodeAt(i)) && !isLowSurrogate(text.charCodeAt(i - 1))) {
    const hi = text.charCodeAt(i - 1);
    if (hi >= 0xd800 && hi <= 0xdbff) i--;
  }
  return utf8Length(text.slice(0, i));
}

/**
 * The UTF-16 index of UTF-8 byte offset `offset` of `text`, or `undefined`
 * when the offset is past the text or inside a character.
 */
export function utf16Index(text: string, offset: number): number | undefined {
  let bytes = 0;
  let i = 0;
  while (bytes < offset && i < text.length) {
    const [b, units] = charAt(text, i);
    bytes += b;
    i += units;
  }
  return bytes === offset ? i : undefined;
}

// ---------------------------------------------------------------- checks

/** Why a server would refuse a message's content: the ERROR code and a reason. */
export interface Refusal {
  code: number;
  message: string;
}

const WHITE_SPACE_OR_CONTROL = /[\p{White_Space}\p{Cc}]/u;

/** Why `url` is not a link a server accepts (SPEC.md §5.11.1), or `undefined` when it is. */
export function checkUrl(url: string): string | undefined {
  const len = utf8Length(url);
  if (len === 0 || len > MAX_URL_LEN) return `a link's URL must be 1-${MAX_URL_LEN} bytes`;
  if (WHITE_SPACE_OR_CONTROL.test(url)) return "a link's URL may not hold white space or control characters";
  const colon = url.indexOf(":");
  if (colon < 0) return "a link's URL needs a scheme (http, https or mailto)";
  const scheme = url.slice(0, colon).replace(/[A-Z]/g, (c) => c.toLowerCase());
  const rest = url.slice(colon + 1);
  let ok: boolean;
  if (scheme === "http" || scheme === "https") ok = rest.startsWith("//") && rest.length > 2 && rest[2] !== "/";
  else if (scheme === "mailto") ok = rest.length > 0;
  else return "a link's scheme must be http, https or mailto";
  return ok ? undefined : "a link's URL has no host (http, https) or address (mailto)";
}

function isPaletteColor(c: Color): boolean {
  return typeof c === "string" ? c in COLORS : false;
}

/** The set of UTF-8 offsets of `text` that are character boundaries (0 and its length included). */
function boundaries(text: string): Set<number> {
  const set = new Set<number>([0]);
  let bytes = 0;
  for (const ch of text) {
    bytes += utf8Length(ch);
    set.add(bytes);
  }
  return set;
}

/**
 * The first rule of SPEC.md §5.11.1 that `spans` over `text` break, in the
 * server's order, as the ERROR the server would answer (407, 408 or 409);
 * `undefined` when a server accepts them.
 */
export function checkSpans(text: string, spans: readonly (Span | SpanInput)[]): Refusal | undefined {
  const invalid = (message: string): Refusal => ({ code: ErrorCode.INVALID_SPANS, message });
  if (spans.length > MAX_SPANS) return invalid(`${spans.length} spans: at most ${MAX_SPANS} are allowed`);
  const len = utf8Length(text);
  const edges = boundaries(text);
  for (const [i, s] of spans.entries()) {
    if (typeof s.kind === "number") return invalid(`span ${i}: unknown kind ${s.kind}`);
    if (s.start >= s.end || s.end > len) {
      return invalid(`span ${i}: range ${s.start}..${s.end} is empty or not within the text's ${len} bytes`);
    }
    if (!edges.has(s.start) || !edges.has(s.end)) {
      return invalid(`span ${i}: range ${s.start}..${s.end} splits a character (offsets are UTF-8 bytes)`);
    }
    if (s.kind === "color" && !isPaletteColor(s.color)) {
      return { code: ErrorCode.UNKNOWN_COLOR, message: `span ${i}: unknown colour ${String(s.color)} (the palette is 0-15)` };
    }
    if (s.kind === "link") {
      const why = checkUrl(s.url);
      if (why !== undefined) return { code: ErrorCode.INVALID_LINK, message: `span ${i}: ${why}` };
    }
  }
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const a = spans[i] as Span;
      const b = spans[j] as Span;
      if (!(a.start < b.end && b.start < a.end)) continue;
      if (a.kind === b.kind) return invalid(`spans ${i} and ${j} overlap of one kind`);
      if (a.kind === "code_block" || b.kind === "code_block") return invalid(`spans ${i} and ${j} overlap over a code block`);
    }
  }
  return undefined;
}

/**
 * What a server would refuse in a message's content (SEND_MESSAGE's
 * `body`, `spans`, `sticker`; EDIT_MESSAGE without a sticker): a sticker
 * message with text or spans (411), else the spans' rules.
 */
export function checkContent(text: string, spans: readonly (Span | SpanInput)[], sticker?: string): Refusal | undefined {
  if (sticker === undefined) return checkSpans(text, spans);
  if (text.length > 0 || spans.length > 0) {
    return { code: ErrorCode.STICKER_MESSAGE, message: "a sticker message has an empty text and no spans" };
  }
  return undefined;
}

/** At most this many files in one message (SPEC.md §13.5). */
export const MAX_ATTACHMENTS = 10;

/**
 * What a server would refuse in SEND_MESSAGE's file ids before it looks
 * them up (SPEC.md §13.5): files with a sticker (411), more than
 * {@link MAX_ATTACHMENTS} or one named twice (416).
 */
export function checkFileIds(ids: readonly number[], sticker?: string): Refusal | undefined {
  if (ids.length === 0) return undefined;
  if (sticker !== undefined) {
    return { code: ErrorCode.STICKER_MESSAGE, message: "a sticker message carries no attachments" };
  }
  if (ids.length > MAX_ATTACHMENTS) {
    return {
      code: ErrorCode.INVALID_ATTACHMENTS,
      message: `${ids.length} attachments: a message carries at most ${MAX_ATTACHMENTS}`,
    };
  }
  const twice = ids.find((id, i) => ids.indexOf(id) !== i);
  if (twice !== undefined) return { code: ErrorCode.INVALID_ATTACHMENTS, message: `file ${twice} is attached twice` };
  return undefined;
}

/**
 * Whether `text` shows nothing (SPEC.md §5.4.1), which a server refuses as
 * a message's text with MESSAGE_EMPTY (400): every character is white space
 * (the White_Space property) or an invisible format character (U+00AD,
 * U+180E, U+200B–U+200F, U+2060–U+2064, U+FEFF). An empty text is blank.
 */
export function isBlank(text: string): boolean {
  return /^[\p{White_Space}\u00AD\u180E\u200B-\u200F\u2060-\u2064\uFEFF]*$/u.test(text);
}

/**
 * What a server would refuse in EDIT_MESSAGE's new text and spans, in the
 * server's order: a blank text (400), then the spans' rules. (A text over
 * the server's `max_message_len` is refused too, with 401.)
 */
export function checkEdit(text: string, spans: readonly (Span | SpanInput)[]): Refusal | undefined {
  if (isBlank(text)) return { code: ErrorCode.MESSAGE_EMPTY, message: "message is empty" };
  return checkSpans(text, spans);
}

/** The most initial members CREATE_ROOM may name (SPEC.md §5.3.2). */
export const MAX_INITIAL_MEMBERS = 50;

/**
 * What a server would refuse in CREATE_ROOM's initial members before it
 * looks them up: more than {@link MAX_INITIAL_MEMBERS} (324). A user named
 * twice (323), the caller (313) or an unknown user (311) it finds only
 * when it resolves them.
 */
export function checkInitialMembers(members: readonly unknown[]): Refusal | undefined {
  if (members.length <= MAX_INITIAL_MEMBERS) return undefined;
  return {
    code: ErrorCode.TOO_MANY_MEMBERS,
    message: `${members.length} initial members: at most ${MAX_INITIAL_MEMBERS}`,
  };
}

/** Whether `id` has the form of a sticker id (1–32 bytes of `a-z`, `0-9`, `_`, `-`). */
export function isStickerId(id: string): boolean {
  return id.length > 0 && id.length <= MAX_STICKER_ID_LEN && /^[a-z0-9_-]+$/.test(id);
}

/** The text a sticker message carries: its id between colons (SPEC.md §5.11.3). */
export function stickerFallback(id: string): string {
  return `:${id}:`;
}

// --------------------------------------------------------------- builder

/**
 * Builds a formatted text piece by piece; each styled piece gets spans
 * over exactly its UTF-8 bytes.
 *
 * ```ts
 * const msg = new RichText().plain("ok ").bold("👍").plain(" see ").link("the docs", "https://example.com");
 * await client.sendMessage(room, msg);
 * ```
 */
export class RichText {
  #text = "";
  #bytes = 0;
  readonly #spans: SpanInput[] = [];

  /** A text and its spans as received (e.g. to re-edit a message). */
  static from(text: string, spans: readonly SpanInput[] = []): RichText {
    const r = new RichText().plain(text);
    r.#spans.push(...spans);
    return r;
  }

  /** Appends unstyled text. */
  plain(text: string): this {
    this.#text += text;
    this.#bytes += utf8Length(text);
    return this;
  }

  /** Appends `text` with every style of `styles` over it (none for an empty piece). */
  styled(text: string, ...styles: Style[]): this {
    const start = this.#bytes;
    this.plain(text);
    if (this.#bytes > start) {
      for (const style of styles) this.#spans.push({ start, end: this.#bytes, ...style } as SpanInput);
    }
    return this;
  }

  bold(text: string): this {
    return this.styled(text, { kind: "bold" });
  }
  italic(text: string): this {
    return this.styled(text, { kind: "italic" });
  }
  strikethrough(text: string): this {
    return this.styled(text, { kind: "strikethrough" });
  }
  code(text: string): this {
    return this.styled(text, { kind: "code" });
  }
  codeBlock(text: string): this {
    return this.styled(text, { kind: "code_block" });
  }
  link(text: string, url: string): this {
    return this.styled(text, { kind: "link", url });
  }
  color(text: string, color: keyof typeof COLORS): this {
    return this.styled(text, { kind: "color", color });
  }

  /** Adds a span over the UTF-16 range `from..to` of the text so far (e.g. a selection in a text field). */
  styleRange(from: number, to: number, style: Style): this {
    const start = byteOffset(this.#text, from);
    const end = byteOffset(this.#text, to);
    if (start < end) this.#spans.push({ start, end, ...style } as SpanInput);
    return this;
  }

  get text(): string {
    return this.#text;
  }

  get spans(): SpanInput[] {
    return [...this.#spans];
  }

  /** What a server would refuse in this text's spans (see {@link checkSpans}), or `undefined`. */
  check(): Refusal | undefined {
    return checkSpans(this.#text, this.#spans);
  }
}

// ------------------------------------------------------------- rendering

/** Styles a renderer applies to one piece of text: only those this SDK knows, with palette colours. */
export interface PieceStyle {
  bold: boolean;
  italic: boolean;
  strikethrough: boolean;
  code: boolean;
  codeBlock: boolean;
  link?: string;
  color?: keyof typeof COLORS;
}

/** A run of text under one set of styles. */
export interface Piece extends PieceStyle {
  text: string;
}

/**
 * Splits a received message into pieces with their styles, for
 * rendering. Spans a client must ignore (SPEC.md §5.11.1: unknown kinds,
 * colours outside the palette) are ignored, as are spans a server should
 * never have sent (out of range, splitting a character, a link that is
 * not http/https/mailto): their text shows unstyled. Concatenating the
 * pieces' texts gives `text` back.
 */
export function pieces(text: string, spans: readonly Span[] = []): Piece[] {
  const len = utf8Length(text);
  const edges = boundaries(text);
  const usable = spans.filter((s) => {
    if (typeof s.kind === "number") return false;
    if (!(s.start < s.end && s.end <= len && edges.has(s.start) && edges.has(s.end))) return false;
    if (s.kind === "color") return isPaletteColor(s.color);
    if (s.kind === "link") return checkUrl(s.url) === undefined;
    return true;
  });
  const cuts = [...new Set([0, len, ...usable.flatMap((s) => [s.start, s.end])])].sort((a, b) => a - b);
  const out: Piece[] = [];
  for (let k = 0; k + 1 < cuts.length; k++) {
    const from = cuts[k] as number;
    const to = cuts[k + 1] as number;
    const piece: Piece = {
      text: text.slice(utf16Index(text, from), utf16Index(text, to)),
      bold: false,
      italic: false,
      strikethrough: false,
      code: false,
      codeBlock: false,
    };
    for (const s of usable) {
      if (s.start > from || s.end < to) continue;
      switch (s.kind) {
        case "bold":
          piece.bold = true;
          break;
        case "italic":
          piece.italic = true;
          break;
        case "strikethrough":
          piece.strikethrough = true;
          break;
        case "code":
          piece.code = true;
          break;
        case "code_block":
          piece.codeBlock = true;
          break;
        case "link":
          piece.link = s.url;
          break;
        case "color":
          piece.color = s.color as keyof typeof COLORS;
          break;
      }
    }
    out.push(piece);
  }
  if (out.length === 0 && text.length > 0) {
    out.push({ text, bold: false, italic: false, strikethrough: false, code: false, codeBlock: false });
  }
  return out;
}
