/**
 * Files over HTTP (SPEC.md §13): upload to a room with progress, signed
 * links for `<img src>` and downloads. Files never travel in frames; these
 * helpers talk to confabd's HTTP API with the session's bearer token.
 *
 * In a browser, uploads use XMLHttpRequest (the only platform API that
 * reports upload progress); elsewhere (Node) `fetch`, with one progress
 * report at the end.
 */

import { ConfabError } from "./errors.js";

/** A stored file as the HTTP API shows it (SPEC.md §13.1). */
export interface StoredFile {
  id: number;
  room: number;
  uploader: number;
  name: string;
  contentType: string;
  size: number;
  sha256: string;
  width?: number;
  height?: number;
  createdAt: number;
  /** A signed link to the bytes, absolute, valid until `urlExpires` (unix seconds). */
  url: string;
  urlExpires: number;
}

/** A signed link (SPEC.md §13.4): absolute URL and its expiry in unix seconds. */
export interface FileLink {
  url: string;
  expires: number;
}

/** An HTTP API error: status, the protocol code and name, and `reason` where one code covers several cases (§13.2). */
export class HttpError extends ConfabError {
  constructor(
    readonly status: number,
    code: number,
    message: string,
    readonly reason: string | undefined,
  ) {
    super("server", message, { code, serverMessage: message });
  }
}

export interface FilesOptions {
  /** The server's HTTP base, e.g. `http://127.0.0.1:7480` (see {@link httpBaseOf}). */
  baseUrl: string;
  /** The session token (SESSION's `token`). */
  token: string;
}

/** The HTTP base of a WebSocket address: `ws://h:p/ws` → `http://h:p`, `wss:` → `https:`. */
export function httpBaseOf(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  return u.origin;
}

function absolute(base: string, path: string): string {
  return new URL(path, base).toString();
}

async function errorOf(status: number, body: string): Promise<HttpError> {
  try {
    const e = (JSON.parse(body) as { error: { code: number; message: string; reason?: string } }).error;
    return new HttpError(status, e.code, e.message, e.reason);
  } catch {
    return new HttpError(status, 0, `HTTP ${status}`, undefined);
  }
}

function storedFile(base: string, j: Record<string, unknown>): StoredFile {
  const f: StoredFile = {
    id: j["id"] as number,
    room: j["room"] as number,
    uploader: j["uploader"] as number,
    name: j["name"] as string,
    contentType: j["content_type"] as string,
    size: j["size"] as number,
    sha256: j["sha256"] as string,
    createdAt: j["created_at"] as number,
    url: absolute(base, j["url"] as string),
    urlExpires: j["url_expires"] as number,
  };
  if (typeof j["width"] === "number") f.width = j["width"];
  if (typeof j["height"] === "number") f.height = j["height"];
  return f;
}

/** Upload options: the name (else the Blob's own), the type (else the Blob's), and a progress callback. */
export interface UploadOptions {
  name?: string;
  contentType?: string;
  /** Bytes sent so far and the total. */
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * Uploads `data` to `room` (members only); resolves with the stored file,
 * or rejects with an {@link HttpError} (`FILE_REFUSED` 414 with its
 * `reason`: `too_large`, `type_not_allowed`, `type_mismatch`, `empty`,
 * `name_*`; `NOT_A_MEMBER` 301; …).
 */
export async function uploadFile(
  opts: FilesOptions,
  room: number,
  data: Blob | Uint8Array,
  options: UploadOptions = {},
): Promise<StoredFile> {
  const blob = data instanceof Uint8Array ? new Blob([data as Uint8Array<ArrayBuffer>]) : data;
  const name = options.name ?? (typeof File !== "undefined" && blob instanceof File ? blob.name : "");
  const type = options.contentType ?? blob.type;
  const url = absolute(opts.baseUrl, `/api/rooms/${room}/files?name=${encodeURIComponent(name)}`);
  const headers: Record<string, string> = { Authorization: `Bearer ${opts.token}` };
  if (type !== "") headers["Content-Type"] = type;
  if (typeof XMLHttpRequest !== "undefined") {
    return new Promise<StoredFile>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => options.onProgress?.(e.loaded, e.lengthComputable ? e.total : blob.size);
      xhr.onload = () => {
        if (xhr.status === 201) resolve(storedFile(opts.baseUrl, JSON.parse(xhr.responseText) as Record<string, unknown>));
        else void errorOf(xhr.status, xhr.responseText).then(reject);
      };
      xhr.onerror = () => reject(new ConfabError("disconnected", "the upload failed: the server could not be reached"));
      xhr.onabort = () => reject(new ConfabError("closed", "the upload was cancelled"));
      options.signal?.addEventListener("abort", () => xhr.abort());
      xhr.send(blob);
    });
  }
  const r = await fetch(url, { method: "POST", headers, body: blob, ...(options.signal ? { signal: options.signal } : {}) });
  const text = await r.text();
  if (r.status !== 201) throw await errorOf(r.status, text);
  options.onProgress?.(blob.size, blob.size);
  return storedFile(opts.baseUrl, JSON.parse(text) as Record<string, unknown>);
}

/** A fresh signed link to file `id` (members of its room), for `<img src>` or a download link. */
export async function fileLink(opts: FilesOptions, id: number): Promise<FileLink> {
  const r = await fetch(absolute(opts.baseUrl, `/api/files/${id}/url`), { headers: { Authorization: `Bearer ${opts.token}` } });
  const text = await r.text();
  if (!r.ok) throw await errorOf(r.status, text);
  const j = JSON.parse(text) as { url: string; expires: number };
  return { url: absolute(opts.baseUrl, j.url), expires: j.expires };
}

/** The caller's avatar as the HTTP API answers a change to it: its file id, none when cleared. */
export interface AvatarState {
  /** The avatar's file id (any signed-in user may fetch it: {@link fileLink}); undefined when none. */
  avatar?: number;
}

async function avatarRequest(opts: FilesOptions, method: "PUT" | "DELETE", body?: Blob): Promise<AvatarState> {
  const headers: Record<string, string> = { Authorization: `Bearer ${opts.token}` };
  if (body !== undefined && body.type !== "") headers["Content-Type"] = body.type;
  const r = await fetch(absolute(opts.baseUrl, "/api/me/avatar"), { method, headers, ...(body ? { body } : {}) });
  const text = await r.text();
  if (!r.ok) throw await errorOf(r.status, text);
  const j = JSON.parse(text) as { avatar?: number | null };
  return typeof j.avatar === "number" ? { avatar: j.avatar } : {};
}

/**
 * Makes the image `data` the caller's avatar (`PUT /api/me/avatar`,
 * SPEC.md §13.6): PNG, JPEG, GIF or WebP, declared by `contentType` (else
 * the Blob's type). Rejects with an {@link HttpError}: `FILE_REFUSED`
 * (414) with `reason` `not_image`, `too_large`, `too_many_pixels`,
 * `type_mismatch`, …; `PROFILE_RATE_LIMITED` (211); `UPLOAD_RATE_LIMITED`
 * (417).
 */
export async function setAvatar(opts: FilesOptions, data: Blob | Uint8Array, contentType?: string): Promise<AvatarState> {
  const type = contentType ?? (data instanceof Blob ? data.type : "");
  const bytes = data instanceof Uint8Array ? (data as Uint8Array<ArrayBuffer>) : data;
  return avatarRequest(opts, "PUT", new Blob([bytes], { type }));
}

/** Removes the caller's avatar (`DELETE /api/me/avatar`). */
export async function clearAvatar(opts: FilesOptions): Promise<AvatarState> {
  return avatarRequest(opts, "DELETE");
}
