/**
 * The composer's markup (`**bold**`, `_italic_`, `~~struck~~`, `` `code` ``,
 * ```` ```block``` ````, bare http(s) links), turned into spans by the
 * SDK's RichText, which computes the UTF-8 byte offsets (SPEC.md §5.11.1).
 */

import { RichText, checkUrl, pieces, type Span } from "@confab/sdk";

const MARKUP = /```\n?([\s\S]+?)\n?```|`([^`\n]+)`|\*\*([^*\n]+?)\*\*|~~([^~\n]+?)~~|(?<![\p{L}\p{N}_])_([^_\n]+?)_(?![\p{L}\p{N}_])|(https?:\/\/[^\s<>]+[^\s<>.,;:!?)'"])/gu;

/**
 * The composer's text as a formatted message: markup markers are
 * removed and become spans. Markup does not nest (the inside of a marker
 * is plain). Text without markup is sent as it is.
 */
export function parseMarkup(input: string): RichText {
  const out = new RichText();
  let last = 0;
  for (const m of input.matchAll(MARKUP)) {
    const at = m.index;
    out.plain(input.slice(last, at));
    const [whole, block, code, bold, strike, italic, url] = m;
    if (block !== undefined) out.codeBlock(block);
    else if (code !== undefined) out.code(code);
    else if (bold !== undefined) out.bold(bold);
    else if (strike !== undefined) out.strikethrough(strike);
    else if (italic !== undefined) out.italic(italic);
    else if (url !== undefined && checkUrl(url) === undefined) out.link(url, url);
    else out.plain(whole);
    last = at + whole.length;
  }
  out.plain(input.slice(last));
  // The server would refuse spans that break its rules: send the text plain then.
  return out.check() === undefined ? out : RichText.from(input);
}

/** A formatted message back as markup, for the edit box (links and colours keep their text only). */
export function toMarkup(text: string, spans: readonly Span[] | undefined): string {
  if (spans === undefined || spans.length === 0) return text;
  return pieces(text, spans)
    .map((p) => {
      if (p.codeBlock) return "```" + p.text + "```";
      if (p.code) return "`" + p.text + "`";
      if (p.link === p.text) return p.text;
      if (p.bold) return `**${p.text}**`;
      if (p.italic) return `_${p.text}_`;
      if (p.strikethrough) return `~~${p.text}~~`;
      return p.text;
    })
    .join("");
}

