/**
 * Avatars (SPEC.md §13.6): the profile page's avatar form (upload a PNG,
 * JPEG, GIF or WebP, or remove it) and the small picture shown beside a
 * member. An avatar is a file any signed-in user may read; `<img>`
 * cannot send a token, so it is shown through a signed link (§13.4),
 * fetched once per avatar and again when it expires.
 */

import { useEffect, useState } from "preact/hooks";
import { clearAvatar, fileLink, setAvatar } from "@confab/sdk";

import { app } from "./model";
import { Feedback, useAction, useApp } from "./ui/common";

/** Signed links by avatar file id, with their expiry (unix seconds). */
const links = new Map<number, Promise<{ url: string; expires: number }>>();

function linkOf(id: number): Promise<{ url: string; expires: number }> {
  const cached = links.get(id);
  const now = Date.now() / 1000;
  if (cached !== undefined) {
    return cached.then((l) => (l.expires - 30 > now ? l : (links.delete(id), linkOf(id))));
  }
  const opts = app.files();
  if (opts === undefined) return Promise.reject(new Error("not signed in"));
  const fresh = fileLink(opts, id);
  links.set(id, fresh);
  fresh.catch(() => links.delete(id));
  return fresh;
}

/** The avatar of file `id`, or nothing while it loads or when there is none. */
export function AvatarImage(props: { id: number | undefined; name: string; size: number }) {
  const [url, setUrl] = useState<string | undefined>(undefined);
  useEffect(() => {
    setUrl(undefined);
    if (props.id === undefined) return;
    let live = true;
    linkOf(props.id).then(
      (l) => live && setUrl(l.url),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [props.id]);
  if (url === undefined) return null;
  const side = `${props.size}px`;
  return <img class="avatar-img" src={url} alt={`${props.name}'s avatar`} style={{ width: side, height: side }} />;
}

/** A member's avatar, from the profiles the model keeps (read on first sight, kept by PROFILE_CHANGED). */
export function MemberAvatar(props: { user: number; name: string }) {
  const a = useApp();
  return <AvatarImage id={a.profiles.get(props.user)?.avatar} name={props.name} size={24} />;
}

const TYPES = "image/png,image/jpeg,image/gif,image/webp";

/** The profile page's avatar section (registered by profile.tsx, between details and password). */
export function AvatarForm() {
  const a = useApp();
  const action = useAction();
  useEffect(() => {
    if (a.profile === undefined) void action.run(() => app.loadProfile());
  }, []);
  const p = a.profile;
  const opts = app.files();
  return (
    <div class="stack avatar-form">
      <div class="avatar-preview">
        {p?.avatar !== undefined ? (
          <AvatarImage id={p.avatar} name={p.displayName ?? p.username} size={96} />
        ) : (
          <span class="muted">No avatar yet.</span>
        )}
      </div>
      <label>
        Upload an avatar (PNG, JPEG, GIF or WebP; at most 1024 × 1024 pixels)
        <input
          type="file"
          accept={TYPES}
          disabled={action.busy || opts === undefined}
          onChange={(e) => {
            const input = e.currentTarget;
            const file = input.files?.[0];
            if (file === undefined || opts === undefined) return;
            void action
              .run(async () => {
                await setAvatar(opts, file);
                await app.loadProfile();
                return "Avatar updated.";
              })
              .finally(() => {
                input.value = "";
              });
          }}
        />
      </label>
      {p?.avatar !== undefined ? (
        <div>
          <button
            type="button"
            disabled={action.busy || opts === undefined}
            onClick={() => {
              if (opts === undefined) return;
              void action.run(async () => {
                await clearAvatar(opts);
                await app.loadProfile();
                return "Avatar removed.";
              });
            }}
          >
            Remove avatar
          </button>
        </div>
      ) : null}
      <Feedback error={action.error} done={action.done} />
    </div>
  );
}
