/**
 * Attachments (SPEC.md §13): an upload button with progress beside the
 * composer, and files shown in messages — images inline, other files as
 * download links.
 *
 * Messages do not reference files on the wire yet (§13.5 reserves it), so
 * until they do the client posts the upload as a message whose text is the
 * file's name under a link span to `/api/files/{id}` on this server; the
 * renderer recognises such a link and shows the file through a signed
 * link (§13.4) fetched with the session's token. Other clients show the
 * name as an ordinary link.
 */

import { useEffect, useState } from "preact/hooks";
import { RichText, fileLink, uploadFile, type Span } from "@confab/sdk";

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

function FileView(props: { id: number; name: string }) {
  const [link, setLink] = useState<string | undefined>(undefined);
  const [failed, setFailed] = useState("");
  const [notImage, setNotImage] = useState(!IMAGE.test(props.name));
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
    </a>
  );
}

function renderAttachment(item: Item) {
  if (item.kind !== "message" || item.deleted === true || item.spans?.length !== 1) return undefined;
  const s = item.spans[0] as Span;
  if (s.kind !== "link" || s.start !== 0) return undefined;
  const id = fileIdOf(s.url);
  return id === undefined ? undefined : <FileView id={id} name={item.text} />;
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
                app.send(props.room, new RichText().link(stored.name, `${location.origin}/api/files/${stored.id}`));
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

// Before the rich renderer: an attachment is a message with one link span.
extensions.messageRenderers.unshift({ render: renderAttachment });
extensions.composerTools.push({
  id: "attach",
  render: ({ room, disabled }) => <UploadButton room={room} disabled={disabled} />,
});
