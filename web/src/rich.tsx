/**
 * Rich messages in the web client (SPEC.md §5.11), registered through the
 * extension points: a renderer for formatted text and stickers, a
 * formatting toolbar (bold, italic, struck, code, the 16 colours) and a
 * sticker picker beside the composer. The composer's markup is in
 * markup.ts.
 */

import { useEffect, useRef, useState } from "preact/hooks";
import { pieces, type Piece, type Span } from "@confab/sdk";

import { extensions } from "./extensions";
import { COLOR_NAMES, type ColorName } from "./markup";
import { app, type Item } from "./model";
import { useApp, useEscape } from "./ui/common";
import { MessageText } from "./ui/Chat";

// ------------------------------------------------------------- rendering

function PieceView(props: { p: Piece }) {
  const { p } = props;
  if (p.codeBlock) {
    return (
      <pre class="code-block">
        <code>{p.text}</code>
      </pre>
    );
  }
  let el = p.code ? <code class="code-inline">{p.text}</code> : <MessageText text={p.text} />;
  if (p.bold) el = <strong>{el}</strong>;
  if (p.italic) el = <em>{el}</em>;
  if (p.strikethrough) el = <s>{el}</s>;
  if (p.color !== undefined) el = <span class={`color-${p.color.replace("_", "-")}`}>{el}</span>;
  if (p.link !== undefined) {
    el = (
      <a href={p.link} target="_blank" rel="noopener noreferrer">
        {el}
      </a>
    );
  }
  return el;
}

/** A message's text with its spans applied (styles the client does not know are ignored). */
export function RichContent(props: { text: string; spans: readonly Span[] }) {
  return (
    <>
      {pieces(props.text, props.spans).map((p, i) => (
        <PieceView key={i} p={p} />
      ))}
    </>
  );
}

function StickerView(props: { id: string; fallback: string }) {
  const a = useApp();
  const s = a.stickers?.get(props.id);
  if (s === undefined) return <span class="muted">{props.fallback}</span>;
  return (
    <figure class="sticker" data-sticker={s.id}>
      <pre role="img" aria-label={`Sticker: ${s.name}`}>
        {s.art}
      </pre>
    </figure>
  );
}

function renderRich(item: Item) {
  if (item.kind !== "message" || item.deleted === true) return undefined;
  if (item.sticker !== undefined) return <StickerView id={item.sticker} fallback={item.text} />;
  if (item.spans !== undefined && item.spans.length > 0) return <RichContent text={item.text} spans={item.spans} />;
  return undefined;
}

// ---------------------------------------------------------- sticker picker

/**
 * A pop-up menu: focus moves to its first item when it opens; arrow keys,
 * Home and End move between the items; Escape closes it and gives the
 * focus back to the button that opened it.
 */
function useMenu() {
  const [open, setOpen] = useState(false);
  const menu = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  useEscape(open, () => {
    setOpen(false);
    button.current?.focus();
  });
  useEffect(() => {
    if (open) menu.current?.querySelector<HTMLElement>("[role=menuitem]")?.focus();
  }, [open]);
  const onKeyDown = (e: KeyboardEvent) => {
    const items = [...(menu.current?.querySelectorAll<HTMLElement>("[role=menuitem]") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLElement);
    const step: Record<string, number> = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    let next: number | undefined;
    if (e.key in step) next = (at + (step[e.key] ?? 0) + items.length) % items.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = items.length - 1;
    if (next === undefined || items.length === 0) return;
    e.preventDefault();
    items[next]?.focus();
  };
  return { open, setOpen, menu, button, onKeyDown };
}

function StickerPicker(props: { room: number; disabled: boolean }) {
  const a = useApp();
  const { open, setOpen, menu, button, onKeyDown } = useMenu();
  const stickers = [...(a.stickers?.values() ?? [])];
  return (
    <span class="sticker-picker">
      <button
        type="button"
        class="tool"
        aria-label="Stickers"
        aria-expanded={open}
        disabled={props.disabled || stickers.length === 0}
        ref={button}
        onClick={() => setOpen(!open)}
      >
        ☺
      </button>
      {open ? (
        <div class="sticker-menu" role="menu" aria-label="Stickers" ref={menu} onKeyDown={onKeyDown}>
          {stickers.map((s) => (
            <button
              key={s.id}
              type="button"
              role="menuitem"
              class="sticker-choice"
              aria-label={`Send sticker ${s.name}`}
              title={s.name}
              onClick={() => {
                setOpen(false);
                app.sendSticker(props.room, s.id);
              }}
            >
              <pre aria-hidden="true">{s.art}</pre>
            </button>
          ))}
        </div>
      ) : null}
    </span>
  );
}

// ------------------------------------------------------- formatting toolbar

/** "bright_red" → "Bright red". */
function colorLabel(c: ColorName): string {
  const words = c.replace("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

type Format = (before: string, after: string) => void;

function ColorPicker(props: { disabled: boolean; format: Format }) {
  const { open, setOpen, menu, button, onKeyDown } = useMenu();
  return (
    <span class="color-picker">
      <button
        type="button"
        class="tool"
        aria-label="Text colour"
        title="Text colour"
        aria-haspopup="menu"
        aria-expanded={open}
        disabled={props.disabled}
        ref={button}
        onClick={() => setOpen(!open)}
      >
        <span class="color-icon" aria-hidden="true">
          A
        </span>
      </button>
      {open ? (
        <div class="color-menu" role="menu" aria-label="Text colour" ref={menu} onKeyDown={onKeyDown}>
          {COLOR_NAMES.map((c) => (
            <button
              key={c}
              type="button"
              role="menuitem"
              class="color-choice"
              aria-label={colorLabel(c)}
              title={colorLabel(c)}
              data-color={c}
              onClick={() => {
                setOpen(false);
                props.format(`[${c}]`, `[/${c}]`);
              }}
            >
              <span class={`swatch swatch-${c.replace("_", "-")}`} aria-hidden="true" />
            </button>
          ))}
        </div>
      ) : null}
    </span>
  );
}

const STYLES = [
  { label: "Bold", before: "**", after: "**", face: <strong>B</strong> },
  { label: "Italic", before: "_", after: "_", face: <em>I</em> },
  { label: "Strikethrough", before: "~~", after: "~~", face: <s>S</s> },
  { label: "Code", before: "`", after: "`", face: <code>{"</>"}</code> },
];

function FormatBar(props: { disabled: boolean; format: Format }) {
  return (
    <span class="format-bar" role="toolbar" aria-label="Formatting">
      {STYLES.map((s) => (
        <button
          key={s.label}
          type="button"
          class="tool"
          aria-label={s.label}
          title={`${s.label}: ${s.before}text${s.after}`}
          disabled={props.disabled}
          onClick={() => props.format(s.before, s.after)}
        >
          {s.face}
        </button>
      ))}
      <ColorPicker disabled={props.disabled} format={props.format} />
    </span>
  );
}

extensions.messageRenderers.push({ render: renderRich });
extensions.composerTools.push({
  id: "format",
  render: ({ disabled, format }) => <FormatBar disabled={disabled} format={format} />,
});
extensions.composerTools.push({
  id: "stickers",
  render: ({ room, disabled }) => <StickerPicker room={room} disabled={disabled} />,
});
