/**
 * The composer's markup (`**bold**`, `_italic_`, `~~struck~~`, `` `code` ``,
 * ```` ```block``` ````, `[red]coloured[/red]` with the 16 colours of the
 * palette, bare http(s) links), turned into spans by the SDK's RichText,
 * which computes the UTF-8 byte offsets (SPEC.md §5.11.1).
 */

import { COLORS, RichText, checkUrl, pieces, type Piece, type Span } from "@confab/sdk";

export type ColorName = keyof typeof COLORS;

/** The palette's names in the order of their values (SPEC.md §5.11.2). */
export const COLOR_NAMES = (Object.keys(COLORS) as ColorName[]).sort((x, y) => COLORS[x] - COLORS[y]);

const COLOR_ALT = COLOR_NAMES.join("|");

const MARKUP = new RegExp(
  [
    `\\[(?<color>${COLOR_ALT})\\](?<colored>[\\s\\S]+?)\\[\\/\\k<color>\\]`,
    "```\\n?(?<block>[\\s\\S]+?)\\n?```",
    "`(?<code>[^`\\n]+)`",
    "\\*\\*(?<bold>[^*\\n]+?)\\*\\*",
    "~~(?<strike>[^~\\n]+?)~~",
    "(?<![\\p{L}\\p{N}_])_(?<italic>[^_\\n]+?)_(?![\\p{L}\\p{N}_])",
    "(?<url>https?:\\/\\/[^\\s<>\\[\\]]+[^\\s<>\\[\\].,;:!?)'\"])",
  ].join("|"),
  "gu",
);

/** Appends `input`'s markup to `out`; inside a colour, the other markup still applies. */
function appendMarkup(out: RichText, input: string): void {
  let last = 0;
  for (const m of input.matchAll(MARKUP)) {
    const at = m.index;
    out.plain(input.slice(last, at));
    const whole = m[0];
    const g = m.groups ?? {};
    if (g["color"] !== undefined && g["colored"] !== undefined) {
      const from = out.text.length;
      appendMarkup(out, g["colored"]);
      out.styleRange(from, out.text.length, { kind: "color", color: g["color"] as ColorName });
    } else if (g["block"] !== undefined) out.codeBlock(g["block"]);
    else if (g["code"] !== undefined) out.code(g["code"]);
    else if (g["bold"] !== undefined) out.bold(g["bold"]);
    else if (g["strike"] !== undefined) out.strikethrough(g["strike"]);
    else if (g["italic"] !== undefined) out.italic(g["italic"]);
    else if (g["url"] !== undefined && checkUrl(g["url"]) === undefined) out.link(g["url"], g["url"]);
    else out.plain(whole);
    last = at + whole.length;
  }
  out.plain(input.slice(last));
}

/**
 * The composer's text as a formatted message: markup markers are
 * removed and become spans. Markup does not nest, except inside a colour
 * (`[red]**loud**[/red]`). Text without markup is sent as it is.
 */
export function parseMarkup(input: string): RichText {
  const out = new RichText();
  appendMarkup(out, input);
  // The server would refuse spans that break its rules: send the text plain then.
  return out.check() === undefined ? out : RichText.from(input);
}

function pieceMarkup(p: Piece): string {
  if (p.codeBlock) return "```" + p.text + "```";
  if (p.code) return "`" + p.text + "`";
  if (p.link === p.text) return p.text;
  if (p.bold) return `**${p.text}**`;
  if (p.italic) return `_${p.text}_`;
  if (p.strikethrough) return `~~${p.text}~~`;
  return p.text;
}

/** A formatted message back as markup, for the edit box (links keep their text only). */
export function toMarkup(text: string, spans: readonly Span[] | undefined): string {
  if (spans === undefined || spans.length === 0) return text;
  let out = "";
  let color: ColorName | undefined;
  for (const p of pieces(text, spans)) {
    if (p.color !== color) {
      if (color !== undefined) out += `[/${color}]`;
      if (p.color !== undefined) out += `[${p.color}]`;
      color = p.color;
    }
    out += pieceMarkup(p);
  }
  if (color !== undefined) out += `[/${color}]`;
  return out;
}
