/**
 * Extension points for features that are not in the protocol yet.
 *
 * Each is a registry the rest of the client reads. A feature that lands
 * in SPEC.md (and so in the SDK's frame table) registers here instead of
 * editing the components; registered today (imported by main.tsx):
 * rich.tsx (renderer, formatting toolbar, sticker picker), attachments.tsx (renderer, upload
 * button), direct.tsx (member action, sidebar section), profile.tsx
 * (profile sections).
 *
 * - `messageRenderers`: how a timeline item is shown. Rich text
 *   (formatting spans, colours) and stickers register a renderer that
 *   recognises their event kind or fields (`item.raw`, the SDK's event
 *   body) and returns the element; the first renderer that returns
 *   something wins, the plain-text renderer is the fallback.
 * - `composerTools`: buttons beside the message box — an attachment
 *   button (upload with progress), a sticker picker, a formatting toolbar.
 *   Each gets the room, a `send` callback and `format`, which puts markup
 *   around the message box's selection.
 * - `memberActions`: per-member actions in the member list — "Message"
 *   (start a direct chat, OPEN_DIRECT) goes here.
 * - `sidebarSections`: extra sections of the sidebar — the list of direct
 *   chats.
 * - `profileSections`: sections of the profile page — display name, bio,
 *   email, avatar upload, change password.
 * - `notificationText`: how notification kinds newer than this client are
 *   described (the SDK hands them over as numbers).
 */

import type { ComponentChildren } from "preact";
import type { EventBody, Member } from "@confab/sdk";

import type { Item } from "./model";

export interface MessageRenderer {
  /** Returns the item's content, or `undefined` to leave it to the next renderer. */
  render(item: Item, raw: EventBody | undefined): ComponentChildren | undefined;
}

export interface ComposerTool {
  /** A stable key. */
  id: string;
  render(props: {
    room: number;
    disabled: boolean;
    send: (text: string) => void;
    /** Puts `before` and `after` around the message box's selection (or at the caret), and focuses it. */
    format: (before: string, after: string) => void;
  }): ComponentChildren;
}

export interface MemberAction {
  id: string;
  /** The button's label, e.g. "Message". */
  label: string;
  /** Whether it applies to `member` as seen by user `me`. */
  applies(member: Member, me: number): boolean;
  run(member: Member): void | Promise<void>;
}

export interface SidebarSection {
  id: string;
  render(): ComponentChildren;
}

export interface ProfileSection {
  id: string;
  title: string;
  render(): ComponentChildren;
}

export const extensions = {
  messageRenderers: [] as MessageRenderer[],
  composerTools: [] as ComposerTool[],
  memberActions: [] as MemberAction[],
  sidebarSections: [] as SidebarSection[],
  profileSections: [] as ProfileSection[],
  notificationText: new Map<number, (roomName: string, actorName: string) => string>(),
};
