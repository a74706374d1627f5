/**
 * Attachments (SPEC.md §13): an upload button with progress beside the
 * composer, and the files a message carries (§13.5) shown under its text —
 * images inline, other files as download links, both through a signed
 * link (§13.4) fetched with the session's token, because `<img>` cannot
 * send one.
 *
 * Messages of earlier versions of this client posted an upload as its
 * name under a link span to `/api/files/{id}` on this server; those are
 * still shown as files.
 */

import { useEffect, useState } from "preact/hooks";
import { fileLink, uploadFile, type Span } from "@confab/sdk";

import { extensions } from "./extensions";
import { app, describe, type Item } from "./model";

const IMAGE = /\.(png|jpe?g|gif|webp)$/i;

/** The file id of a link to this server's `/api/files/{id}`, else undefined. */
function fileIdOf(url: string): number | undefined {
  try {
    const u = new URL(url);
    if (u.origin !== location.origin) return undefined;
    const m = /^\/api\/files\/(\d+)$/.exec(u.pathname);
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

function FileView(props: { id: number; name: string; image?: boolean; size?: number }) {
  const [link, setLink] = useState<string | undefined>(undefined);
  const [failed, setFailed] = useState("");
  const [notImage, setNotImage] = useState(!(props.image ?? IMAGE.test(props.name)));
  useEffect(() => {
    const opts = app.files();
    if (opts === undefined) return;
    fileLink(opts, props.id).then(
      (l) => setLink(l.url),
      (e: unknown) => setFailed(describe(e)),
    );
  }, [props.id]);
  if (failed !== "") return <span class="muted">📎 {props.name} ({failed})</span>;
  if (link === undefined) return <span class="muted">📎 {props.name}</span>;
  if (!notImage) {
    return (
      <a class="attachment-image" href={link} target="_blank" rel="noopener noreferrer">
        <img src={link} alt={props.name} onError={() => setNotImage(true)} />
      </a>
    );
  }
  return (
    <a class="attachment-file" href={link} download={props.name} rel="noopener noreferrer">
      📎 {props.name}
      {props.size !== undefined ? <span class="muted"> ({humanSize(props.size)})</span> : null}
    </a>
  );
}

/** A message of an earlier version of this client: the file's name under one link span to it. */
function legacyAttachment(item: Item) {
  if (item.spans?.length !== 1) return undefined;
  const s = item.spans[0] as Span;
  if (s.kind !== "link" || s.start !== 0) return undefined;
  const id = fileIdOf(s.url);
  return id === undefined ? undefined : <FileView id={id} name={item.text} />;
}

/** The message's text as the other renderers show it, without its files. */
function textOf(item: Item) {
  if (item.text === "") return null;
  const bare: Item = { ...item, attachments: undefined };
  for (const r of extensions.messageRenderers) {
    if (r.render === renderAttachment) continue;
    const out = r.render(bare, bare.raw);
    if (out !== undefined) return out;
  }
  return <span class="message-text">{item.text}</span>;
}

function renderAttachment(item: Item) {
  if (item.kind !== "message" || item.deleted === true) return undefined;
  const files = item.attachments ?? [];
  if (files.length === 0) return legacyAttachment(item);
  return (
    <>
      {textOf(item)}
      <ul class="attachments" aria-label="Attached files">
        {files.map((f) => (
          <li key={f.id}>
            <FileView id={f.id} name={f.name} image={f.width !== undefined} size={f.size} />
          </li>
        ))}
      </ul>
    </>
  );
}

/** A size for people: 900 B, 48.2 kB, 3.1 MB. */
function humanSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

function UploadButton(props: { room: number; disabled: boolean }) {
  const [progress, setProgress] = useState<number | undefined>(undefined);
  const [error, setError] = useState("");
  return (
    <span class="upload">
      <label class={`tool button${props.disabled || progress !== undefined ? " disabled" : ""}`}>
        📎<span class="sr-only">Attach a file</span>
        <input
          type="file"
          class="sr-only"
          aria-label="Attach a file"
          disabled={props.disabled || progress !== undefined}
          onChange={(e) => {
            const input = e.currentTarget;
            const file = input.files?.[0];
            const opts = app.files();
            if (file === undefined || opts === undefined) return;
            setError("");
            setProgress(0);
            uploadFile(opts, props.room, file, { onProgress: (sent, total) => setProgress(total > 0 ? sent / total : 0) })
              .then((stored) => {
                app.sendFiles(props.room, "", [stored]);
              })
              .catch((err: unknown) => setError(describe(err)))
              .finally(() => {
                setProgress(undefined);
                input.value = "";
              });
          }}
        />
      </label>
      {progress !== undefined ? (
        <progress class="upload-progress" max={1} value={progress} aria-label="Upload progress">
          {Math.round(progress * 100)}%
        </progress>
      ) : null}
      {error !== "" ? (
        <span class="feedback error" role="alert">
          {error}
        </span>
      ) : null}
    </span>
  );
}

// Before the rich renderer: a message with files shows its text, then them.
extensions.messageRenderers.unshift({ render: renderAttachment });
extensions.composerTools.push({
  id: "attach",
  render: ({ room, disabled }) => <UploadButton room={room} disabled={disabled} />,
});
