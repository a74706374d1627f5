/**
 * Rich messages in the web client (SPEC.md §5.11), registered through the
 * extension points: a renderer for formatted text and stickers, a
 * sticker picker beside the composer. The composer's markup is in
 * markup.ts.
 */

import { useEffect, useState } from "preact/hooks";
import { pieces, type Piece, type Span } from "@confab/sdk";

import { extensions } from "./extensions";
import { app, type Item } from "./model";
import { useApp } from "./ui/common";
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

function StickerPicker(props: { room: number; disabled: boolean }) {
  const a = useApp();
  const [open, setOpen] = useState(false);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") setOpen(false);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [open]);
  const stickers = [...(a.stickers?.values() ?? [])];
  return (
    <span class="sticker-picker">
      <button
        type="button"
        class="tool"
        aria-label="Stickers"
        aria-expanded={open}
        disabled={props.disabled || stickers.length === 0}
        onClick={() => setOpen(!open)}
      >
        ☺
      </button>
      {open ? (
        <div class="sticker-menu" role="menu" aria-label="Stickers">
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

extensions.messageRenderers.push({ render: renderRich });
extensions.composerTools.push({
  id: "stickers",
  render: ({ room, disabled }) => <StickerPicker room={room} disabled={disabled} />,
});
