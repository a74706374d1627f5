/** Rich messages on the client (src/rich.ts): UTF-8 offsets from JS strings, the server's rules, rendering pieces. */

import { describe, expect, it } from "vitest";

import {
  ErrorCode,
  RichText,
  byteOffset,
  checkSpans,
  checkUrl,
  encodeRequest,
  decodeRequestFrame,
  pieces,
  utf16Index,
  utf8Length,
  type Span,
} from "../../src/index.js";

const bytes = (s: string) => new TextEncoder().encode(s).length;

describe("UTF-8 offsets from JavaScript strings", () => {
  it.each(["", "abc", "é", "日本語", "👍", "a👍b", "👩‍👩‍👧", "漢字🎉mixed ñ"])("utf8Length(%j) is its encoded length", (s) => {
    expect(utf8Length(s)).toBe(bytes(s));
  });

  it("a lone surrogate counts as U+FFFD, as TextEncoder writes it", () => {
    expect(utf8Length("a\ud83d")).toBe(bytes("a\ud83d"));
    expect(utf8Length("\ude00b")).toBe(4);
  });

  it("converts UTF-16 indices to byte offsets and back", () => {
    const text = "日本👍x";
    // 日 (1 unit, 3 bytes), 本 (1, 3), 👍 (2, 4), x (1, 1)
    expect([0, 1, 2, 4, 5].map((i) => byteOffset(text, i))).toEqual([0, 3, 6, 10, 11]);
    expect(byteOffset(text, 3)).toBe(6); // inside the emoji's pair: its start
    expect([0, 3, 6, 10, 11].map((o) => utf16Index(text, o))).toEqual([0, 1, 2, 4, 5]);
    expect(utf16Index(text, 1)).toBeUndefined(); // inside 日
    expect(utf16Index(text, 8)).toBeUndefined(); // inside 👍
    expect(utf16Index(text, 12)).toBeUndefined(); // past the end
  });
});

describe("RichText", () => {
  it("gives each styled piece spans over exactly its UTF-8 bytes (emoji and CJK)", () => {
    const msg = new RichText()
      .plain("ok ")
      .styled("👍", { kind: "bold" }, { kind: "color", color: "yellow" })
      .plain(" 日本")
      .italic("語")
      .plain("\n")
      .codeBlock("fn main() {}");
    expect(msg.text).toBe("ok 👍 日本語\nfn main() {}");
    expect(msg.spans).toEqual([
      { start: 3, end: 7, kind: "bold" },
      { start: 3, end: 7, kind: "color", color: "yellow" },
      { start: 14, end: 17, kind: "italic" },
      { start: 18, end: 30, kind: "code_block" },
    ]);
    expect(msg.check()).toBeUndefined();
    // The bytes the spans name are the pieces' bytes.
    const raw = new TextEncoder().encode(msg.text);
    const slice = (s: { start: number; end: number }) => new TextDecoder().decode(raw.slice(s.start, s.end));
    expect(msg.spans.map(slice)).toEqual(["👍", "👍", "語", "fn main() {}"]);
    expect(new RichText().bold("").spans).toEqual([]);
  });

  it("styles a UTF-16 range of the text (a selection)", () => {
    const msg = new RichText().plain("héllo 🌍 world").styleRange(6, 8, { kind: "bold" });
    expect(msg.spans).toEqual([{ start: 7, end: 11, kind: "bold" }]);
  });

  it("encodes into SEND_MESSAGE as the server reads it", () => {
    const msg = new RichText().link("文档", "https://example.com/docs").plain(" ").strikethrough("🙈");
    const frame = encodeRequest(7, { type: "SEND_MESSAGE", room: 1, body: msg.text, spans: msg.spans });
    const back = decodeRequestFrame(frame).message;
    expect(back).toEqual({
      type: "SEND_MESSAGE",
      room: 1,
      body: "文档 🙈",
      spans: [
        { start: 0, end: 6, kind: "link", url: "https://example.com/docs" },
        { start: 7, end: 11, kind: "strikethrough" },
      ],
    });
    // A plain message carries no spans field at all.
    expect(encodeRequest(7, { type: "SEND_MESSAGE", room: 1, body: "hi", spans: [] })).toEqual(
      encodeRequest(7, { type: "SEND_MESSAGE", room: 1, body: "hi" }),
    );
  });
});

describe("the server's rules (SPEC.md §5.11.1)", () => {
  const code = (text: string, spans: Span[]) => checkSpans(text, spans)?.code;

  it("ranges: in the text, non-empty, on character boundaries", () => {
    expect(code("日本", [{ start: 0, end: 6, kind: "bold" }])).toBeUndefined();
    expect(code("日本", [{ start: 0, end: 7, kind: "bold" }])).toBe(ErrorCode.INVALID_SPANS);
    expect(code("日本", [{ start: 3, end: 3, kind: "bold" }])).toBe(ErrorCode.INVALID_SPANS);
    expect(code("日本", [{ start: 1, end: 3, kind: "bold" }])).toBe(ErrorCode.INVALID_SPANS);
    expect(code("👍", [{ start: 0, end: 2, kind: "bold" }])).toBe(ErrorCode.INVALID_SPANS);
    expect(code("x", [{ start: 0, end: 1, kind: 42, data: new Uint8Array() }])).toBe(ErrorCode.INVALID_SPANS);
  });

  it("overlaps: one kind never, a code block with nothing, different kinds freely", () => {
    expect(code("abcd", [{ start: 0, end: 2, kind: "bold" }, { start: 2, end: 4, kind: "bold" }])).toBeUndefined();
    expect(code("abcd", [{ start: 0, end: 3, kind: "bold" }, { start: 2, end: 4, kind: "bold" }])).toBe(407);
    expect(code("abcd", [{ start: 0, end: 3, kind: "bold" }, { start: 1, end: 4, kind: "italic" }])).toBeUndefined();
    expect(code("abcd", [{ start: 0, end: 4, kind: "code_block" }, { start: 1, end: 2, kind: "italic" }])).toBe(407);
  });

  it("colours of the palette only; links http, https or mailto only", () => {
    expect(code("ab", [{ start: 0, end: 2, kind: "color", color: 16 }])).toBe(ErrorCode.UNKNOWN_COLOR);
    expect(code("ab", [{ start: 0, end: 2, kind: "color", color: "bright_cyan" }])).toBeUndefined();
    expect(code("ab", [{ start: 0, end: 2, kind: "link", url: "javascript:alert(1)" }])).toBe(ErrorCode.INVALID_LINK);
    for (const ok of ["https://x", "HTTP://x.y/z", "mailto:a@b"]) expect(checkUrl(ok), ok).toBeUndefined();
    for (const bad of ["", "x", "https:///x", "https://", "mailto:", "data:text/html,x", "https://a b", "https://a\u0085"]) {
      expect(checkUrl(bad), bad).toBeDefined();
    }
  });

  it("at most 64 spans", () => {
    const many = Array.from({ length: 65 }, (_, i): Span => ({ start: i, end: i + 1, kind: "bold" }));
    expect(code("x".repeat(65), many.slice(0, 64))).toBeUndefined();
    expect(code("x".repeat(65), many)).toBe(ErrorCode.INVALID_SPANS);
  });
});

describe("pieces (rendering)", () => {
  it("splits at every span edge, with the styles over each piece", () => {
    const text = "Deploy 日本 now 🎉";
    const ps = pieces(text, [
      { start: 0, end: 6, kind: "bold" },
      { start: 7, end: 13, kind: "color", color: "red" },
      { start: 7, end: 10, kind: "italic" },
      { start: 18, end: 22, kind: "link", url: "https://x.example" },
    ]);
    expect(ps.map((p) => p.text)).toEqual(["Deploy", " ", "日", "本", " now ", "🎉"]);
    expect(ps.map((p) => p.text).join("")).toBe(text);
    expect(ps[0]).toMatchObject({ bold: true, italic: false });
    expect(ps[2]).toMatchObject({ italic: true, color: "red" });
    expect(ps[3]).toMatchObject({ italic: false, color: "red" });
    expect(ps[5]).toMatchObject({ link: "https://x.example" });
  });

  it("ignores spans a client must ignore or a server never sends", () => {
    const ps = pieces("héllo", [
      { start: 0, end: 2, kind: 42, data: new Uint8Array([1]) },
      { start: 0, end: 3, kind: "color", color: 16 },
      { start: 1, end: 2, kind: "bold" }, // splits é
      { start: 0, end: 9, kind: "italic" }, // past the end
      { start: 0, end: 1, kind: "link", url: "javascript:alert(1)" },
    ]);
    expect(ps).toEqual([{ text: "héllo", bold: false, italic: false, strikethrough: false, code: false, codeBlock: false }]);
  });
});
