/** The chat view at /chat/{room}: timeline, composer, members; the not-a-member view. */

import type { Member } from "@confab/sdk";
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

import { MemberAvatar } from "../avatar";
import { extensions } from "../extensions";
import { parseMarkup, toMarkup } from "../markup";
import { app, describe, errorCode, presenceOf, systemText, type Item, type RoomState } from "../model";
import { navigate } from "../router";
import { AdminPanel } from "./Admin";
import { ConfirmDialog, Feedback, Link, PresenceDot, RunButton, Time, useAction, useApp, useEscape } from "./common";
import { RoomMark } from "./icons";

export function Chat(props: { room: number; admin: boolean }) {
  const a = useApp();
  const rs = a.room(props.room);
  const [showMembers, setShowMembers] = useState(false);
  const [confirmLeave, setConfirmLeave] = useState(false);
  // The member list is a drawer on phones: Escape closes it (unless a dialog above it is open).
  useEscape(showMembers && !props.admin && !confirmLeave, () => setShowMembers(false));
  if (!a.myRooms.has(props.room)) return <NotMember rs={rs} />;
  const info = a.myRooms.get(props.room) ?? rs.info;
  const role = a.roleIn(props.room);
  const isAdmin = role === "admin" || role === "owner";
  return (
    <main class="chat" id="main" aria-labelledby="room-title">
      <header class="chat-head">
        <div class="chat-title">
          <h1 id="room-title">
            <span class="mark">
              <RoomMark private={info?.visibility === "private"} />
            </span>
            {info !== undefined ? a.roomName(info) : `Room ${props.room}`}
          </h1>
          {info?.topic ? <p class="topic">{info.topic}</p> : null}
        </div>
        <div class="chat-actions">
          <button type="button" class="ghost members-toggle" aria-expanded={showMembers} onClick={() => setShowMembers((s) => !s)}>
            Members: {info?.memberCount ?? rs.members.length}
          </button>
          {isAdmin ? (
            <Link href={`/chat/${props.room}/admin`} class="button ghost">
              Admin
            </Link>
          ) : null}
          <button type="button" class="ghost" onClick={() => setConfirmLeave(true)}>
            Leave
          </button>
        </div>
      </header>
      <div class="chat-body">
        <section class="chat-main" aria-label="Messages">
          <Timeline rs={rs} isAdmin={isAdmin} />
          <TypingLine rs={rs} />
          <Composer room={props.room} />
        </section>
        <Members rs={rs} open={showMembers} onClose={() => setShowMembers(false)} />
      </div>
      {props.admin ? <AdminPanel room={props.room} onClose={() => navigate(`/chat/${props.room}`)} /> : null}
      {confirmLeave ? (
        <LeaveDialog room={props.room} name={info !== undefined ? a.roomName(info) : ""} onClose={() => setConfirmLeave(false)} />
      ) : null}
    </main>
  );
}

function LeaveDialog(props: { room: number; name: string; onClose: () => void }) {
  return (
    <ConfirmDialog
      title={`Leave ${props.name}?`}
      confirm="Leave"
      cancel="Stay"
      onClose={props.onClose}
      run={async () => {
        await app.leave(props.room);
        navigate("/");
      }}
    >
      <p>
        You will stop receiving its messages. A public room can be joined again; a private one needs an invitation or an approved request.
      </p>
    </ConfirmDialog>
  );
}

/** Mentions (`@name`) highlighted; the user's own name stands out. */
export function MessageText(props: { text: string }) {
  const me = app.me?.username.toLowerCase();
  const parts = props.text.split(/(@[A-Za-z0-9_-]+)/g);
  return (
    <>
      {parts.map((p, i) =>
        i % 2 === 1 ? (
          <span key={i} class={p.slice(1).toLowerCase() === me ? "mention me" : "mention"}>
            {p}
          </span>
        ) : (
          p
        ),
      )}
    </>
  );
}

function renderContent(item: Item): ComponentChildren {
  for (const r of extensions.messageRenderers) {
    const out = r.render(item, item.raw);
    if (out !== undefined) return out;
  }
  if (item.deleted === true) return <em class="muted">This message was deleted.</em>;
  if (item.kind === "system" && item.raw !== undefined) {
    // Named as people are named now (display names change live).
    return systemText(item.raw, item.actor, item.actorName, (u, n) => app.nameOf(u, n)) ?? item.text;
  }
  return <MessageText text={item.text} />;
}

function Timeline(props: { rs: RoomState; isAdmin: boolean }) {
  const rs = props.rs;
  const a = useApp();
  const scroller = useRef<HTMLDivElement>(null);
  const fromBottom = useRef(0);
  const stick = useRef(true);
  const [editing, setEditing] = useState<number | undefined>();
  const [deleting, setDeleting] = useState<Item | undefined>();
  // Events of kinds newer than this client show only where a renderer knows them (extensions.ts).
  const shown = (i: Item) =>
    i.kind === "message" || i.text !== "" || extensions.messageRenderers.some((r) => r.render(i, i.raw) !== undefined);
  const items = [...rs.items.values()].filter(shown).sort((x, y) => x.seq - y.seq);
  const me = a.me?.user;
  const firstNew = items.find((i) => i.kind === "message" && i.seq > rs.markerAtOpen && i.actor !== me && rs.markerAtOpen > 0);
  const oldest = items[0]?.seq;

  // Keep the view where it was when older messages are put above it, and
  // at the bottom when new ones arrive while the user is there.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el === null) return;
    if (stick.current) el.scrollTop = el.scrollHeight;
    else el.scrollTop = el.scrollHeight - fromBottom.current;
  });
  // Fill the view: a first page shorter than the view cannot be scrolled up.
  useEffect(() => {
    const el = scroller.current;
    if (el !== null && rs.loaded && rs.hasMore && !rs.loading && el.scrollHeight <= el.clientHeight + 40) void app.loadOlder(rs.id);
  }, [oldest, rs.loaded, rs.hasMore, rs.loading]);

  const onScroll = () => {
    const el = scroller.current;
    if (el === null) return;
    fromBottom.current = el.scrollHeight - el.scrollTop;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
    if (el.scrollTop < 120 && rs.hasMore && !rs.loading) void app.loadOlder(rs.id);
  };

  return (
    <div class="timeline" ref={scroller} onScroll={onScroll} tabIndex={0} aria-label="Message history" role="log" aria-live="polite">
      {rs.loading ? <p class="loading-older muted">Loading earlier messages…</p> : null}
      {rs.loaded && !rs.hasMore ? <p class="history-start muted">This is the beginning of the room.</p> : null}
      {rs.loadError !== undefined ? (
        <p class="feedback error" role="alert">
          Could not load history: {rs.loadError}{" "}
          <button type="button" class="link" onClick={() => void app.loadOlder(rs.id)}>
            Try again
          </button>
        </p>
      ) : null}
      <ol class="items">
        {items.map((item) => {
          const divider =
            item === firstNew ? (
              <li key={`new-${item.seq}`} class="new-divider" role="separator" aria-label="New messages">
                <span>New messages</span>
              </li>
            ) : null;
          if (item.kind === "system") {
            return [
              divider,
              <li key={item.seq} class="system" data-seq={item.seq}>
                {renderContent(item)} · <Time at={item.at} />
              </li>,
            ];
          }
          const mine = item.actor === me;
          const canEdit = mine && item.deleted !== true && item.sticker === undefined;
          const canDelete = (mine || props.isAdmin) && item.deleted !== true;
          return [
            divider,
            <li key={item.seq} class={`msg${mine ? " mine" : ""}${item.deleted === true ? " deleted" : ""}`} data-seq={item.seq}>
              <div class="msg-head">
                <Sender user={item.actor} username={item.actorName} />
                <Time at={item.at} />
                {item.editedAt !== undefined && item.deleted !== true ? <span class="edited muted">(edited)</span> : null}
              </div>
              {editing === item.seq ? (
                <EditBox item={item} room={rs.id} onDone={() => setEditing(undefined)} />
              ) : (
                <div class="msg-text">{renderContent(item)}</div>
              )}
              {editing !== item.seq && (canEdit || canDelete) ? (
                <div class="msg-actions">
                  {canEdit ? (
                    <button
                      type="button"
                      class="link"
                      onClick={() => setEditing(item.seq)}
                      aria-label={`Edit message: ${item.text.slice(0, 40)}`}
                    >
                      Edit
                    </button>
                  ) : null}
                  {canDelete ? (
                    <button
                      type="button"
                      class="link danger-text"
                      onClick={() => setDeleting(item)}
                      aria-label={`Delete message: ${item.text.slice(0, 40)}`}
                    >
                      Delete
                    </button>
                  ) : null}
                </div>
              ) : null}
            </li>,
          ];
        })}
        {rs.outgoing.map((o) => (
          <li key={`out-${o.id}`} class={`msg mine pending ${o.status}`} data-outgoing={o.status}>
            <div class="msg-head">
              {a.me !== undefined ? <Sender user={a.me.user} username={a.me.username} /> : null}
              <span class="muted">{o.status === "sending" ? "Sending…" : o.status === "unknown" ? "Checking…" : "Not sent"}</span>
            </div>
            <div class="msg-text">{renderContent({ seq: 0, at: 0, actor: 0, actorName: "", kind: "message", ...o })}</div>
            {o.status === "failed" ? (
              <div class="msg-actions always">
                <span class="feedback error" role="alert">
                  {o.error}
                </span>
                <button type="button" class="link" onClick={() => app.retry(rs.id, o.id)}>
                  Retry
                </button>
                <button type="button" class="link" onClick={() => app.discard(rs.id, o.id)}>
                  Discard
                </button>
              </div>
            ) : null}
          </li>
        ))}
      </ol>
      {deleting !== undefined ? <DeleteDialog room={rs.id} item={deleting} onClose={() => setDeleting(undefined)} /> : null}
    </div>
  );
}

/** A message's sender: their display name, with the username for whoever hovers or reads it out. */
function Sender(props: { user: number; username: string }) {
  const name = app.nameOf(props.user, props.username);
  return (
    <span class="sender" title={`@${props.username}`} data-username={props.username}>
      {name}
      {name !== props.username ? <span class="sr-only"> (@{props.username})</span> : null}
    </span>
  );
}

function DeleteDialog(props: { room: number; item: Item; onClose: () => void }) {
  const theirs = props.item.actor !== app.me?.user;
  return (
    <ConfirmDialog
      title="Delete this message?"
      confirm="Delete"
      cancel="Cancel"
      onClose={props.onClose}
      run={() => app.remove(props.room, props.item.seq)}
    >
      <blockquote class="quote">{props.item.text}</blockquote>
      <p>
        {theirs
          ? `It was sent by ${app.nameOf(props.item.actor, props.item.actorName)}; as an admin you can delete it (this is recorded in the audit trail).`
          : "Everyone will see that a message was deleted."}
      </p>
    </ConfirmDialog>
  );
}

function EditBox(props: { item: Item; room: number; onDone: () => void }) {
  const original = toMarkup(props.item.text, props.item.spans);
  const [text, setText] = useState(original);
  const action = useAction();
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => ref.current?.focus(), []);
  const save = () =>
    void action.run(async () => {
      if (text.trim() === "" || text === original) {
        props.onDone();
        return;
      }
      await app.edit(props.room, props.item.seq, parseMarkup(text));
      props.onDone();
    });
  return (
    <div class="edit-box">
      <label class="sr-only" for={`edit-${props.item.seq}`}>
        Edit your message
      </label>
      <textarea
        id={`edit-${props.item.seq}`}
        ref={ref}
        rows={2}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey) {
            e.preventDefault();
            save();
          } else if (e.key === "Escape") {
            e.preventDefault();
            e.stopPropagation();
            props.onDone();
          }
        }}
      />
      <Feedback error={action.error} done="" />
      <div class="actions small">
        <span class="hint">Enter to save · Escape to cancel</span>
        <button type="button" class="ghost" onClick={props.onDone}>
          Cancel
        </button>
        <button type="button" class="primary" disabled={action.busy} onClick={save}>
          Save
        </button>
      </div>
    </div>
  );
}

function TypingLine(props: { rs: RoomState }) {
  const names = [...props.rs.typing].map(([user, t]) => app.nameOf(user, t.username));
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  return (
    <div class="typing" aria-live="polite" data-testid="typing">
      {text}
    </div>
  );
}

function Composer(props: { room: number }) {
  const a = useApp();
  const [text, setText] = useState("");
  const ref = useRef<HTMLTextAreaElement>(null);
  const max = a.client.welcome?.maxMessageLen ?? 4096;
  const send = (body: string) => {
    if (body.trim() === "") return;
    app.send(props.room, parseMarkup(body));
  };
  const submit = () => {
    send(text);
    setText("");
    ref.current?.focus();
  };
  const format = (before: string, after: string) => {
    const el = ref.current;
    if (el === null) return;
    const { selectionStart: from, selectionEnd: to, value } = el;
    const next = value.slice(0, from) + before + value.slice(from, to) + after + value.slice(to);
    el.value = next;
    setText(next);
    el.focus();
    el.setSelectionRange(from + before.length, to + before.length);
    app.typing(props.room);
  };
  const tooLong = new TextEncoder().encode(text).length > max;
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      {extensions.composerTools.map((t) => (
        <span key={t.id} class={`composer-tool tool-${t.id}`}>
          {t.render({ room: props.room, disabled: false, send, format })}
        </span>
      ))}
      <label class="sr-only" for="composer-input">
        Message
      </label>
      <textarea
        id="composer-input"
        ref={ref}
        rows={1}
        placeholder={`Message ${app.myRooms.get(props.room)?.name ?? ""}`}
        aria-describedby="composer-hint"
        value={text}
        onInput={(e) => {
          setText(e.currentTarget.value);
          if (e.currentTarget.value.trim() !== "") app.typing(props.room);
          else app.stopTyping(props.room);
        }}
        onBlur={() => app.stopTyping(props.room)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            if (!tooLong) submit();
          } else if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === "b" || e.key === "i")) {
            // The toolbar's two most used buttons, from the keyboard.
            e.preventDefault();
            if (e.key === "b") format("**", "**");
            else format("_", "_");
          }
        }}
        aria-invalid={tooLong}
      />
      <button type="submit" class="primary" disabled={text.trim() === "" || tooLong}>
        Send
      </button>
      <p id="composer-hint" class="hint composer-hint">
        Enter sends · Shift+Enter starts a new line · Ctrl+B, Ctrl+I · **bold** _italic_ ~~struck~~ `code` ```block``` [red]colour[/red]
      </p>
      {tooLong ? (
        <p class="feedback error composer-error" role="alert">
          Too long: at most {max} bytes.
        </p>
      ) : null}
    </form>
  );
}

function Members(props: { rs: RoomState; open: boolean; onClose: () => void }) {
  const a = useApp();
  const me = a.me?.user ?? 0;
  const order = { owner: 0, admin: 1, member: 2 } as Record<string, number>;
  const members = [...props.rs.members].sort(
    (x, y) => (order[String(x.role)] ?? 3) - (order[String(y.role)] ?? 3) || a.nameOf(x.user, x.username).localeCompare(a.nameOf(y.user, y.username)),
  );
  return (
    <aside class={`members${props.open ? " open" : ""}`} aria-label="Members">
      <div class="members-head">
        <h2>Members</h2>
        <button type="button" class="icon members-close" onClick={props.onClose} aria-label="Close the member list">
          ×
        </button>
      </div>
      {!props.rs.membersLoaded ? <p class="muted">Loading…</p> : null}
      <ul>
        {members.map((m) => (
          <MemberRow key={m.user} m={m} me={me} />
        ))}
      </ul>
    </aside>
  );
}

function MemberRow(props: { m: Member; me: number }) {
  const { m, me } = props;
  const p = presenceOf(m);
  const name = app.nameOf(m.user, m.username);
  const actions = extensions.memberActions.filter((x) => x.applies(m, me));
  return (
    <li class="member" data-user={m.username} data-presence={p}>
      <PresenceDot presence={p} />
      <MemberAvatar user={m.user} name={name} />
      <span class="member-name" title={`@${m.username}`}>
        {name}
        {name !== m.username ? <span class="muted member-username"> @{m.username}</span> : null}
        {m.user === me ? <span class="muted"> (you)</span> : null}
      </span>
      {m.role !== "member" ? <span class={`tag role-${String(m.role)}`}>{String(m.role)}</span> : null}
      {actions.map((x) => (
        <button key={x.id} type="button" class="link" onClick={() => void x.run(m)} aria-label={`${x.label} ${name}`}>
          {x.label}
        </button>
      ))}
    </li>
  );
}

/** /chat/{room} for a room the user is not in: join, accept an invitation, or ask to join. */
function NotMember(props: { rs: RoomState }) {
  const a = useApp();
  const rs = props.rs;
  const action = useAction();
  const [privateRoom, setPrivateRoom] = useState(rs.info?.visibility === "private");
  const invited = a.notifications.some((n) => n.kind === "invited" && n.room === rs.id);
  const name = rs.info !== undefined ? a.roomName(rs.info) : `Room ${rs.id}`;
  return (
    <main class="center-page" id="main">
      <section class="card not-member" aria-labelledby="nm-title">
        <h1 id="nm-title">{name}</h1>
        {rs.removed !== undefined ? (
          <p class="notice warn" role="alert" data-testid="removed">
            {rs.removed}
          </p>
        ) : (
          <p>You are not a member of this room.</p>
        )}
        {rs.info?.topic ? <p class="topic">{rs.info.topic}</p> : null}
        <Feedback error={action.error} done={action.done} />
        <div class="actions">
          {invited ? (
            <RunButton
              action={action}
              class="primary"
              run={async () => {
                await app.acceptInvite(rs.id);
              }}
            >
              Accept invitation
            </RunButton>
          ) : null}
          {!privateRoom ? (
            <RunButton
              action={action}
              class={invited ? "ghost" : "primary"}
              run={async () => {
                try {
                  await app.join(rs.id);
                } catch (e) {
                  if (errorCode(e) === "ROOM_PRIVATE") {
                    setPrivateRoom(true);
                    return "This room is private: ask its admins to let you in.";
                  }
                  throw e;
                }
                return undefined;
              }}
            >
              Join
            </RunButton>
          ) : null}
          <RunButton
            action={action}
            class={privateRoom && !invited ? "primary" : "ghost"}
            run={async () => {
              try {
                await app.client.requestJoin(rs.id);
              } catch (e) {
                if (errorCode(e) === "ALREADY_REQUESTED") return "Your request is already waiting for an admin.";
                throw new Error(describe(e));
              }
              return "Request sent: an admin of the room will decide.";
            }}
          >
            Request to join
          </RunButton>
          <Link href="/" class="button ghost">
            Browse rooms
          </Link>
        </div>
      </section>
    </main>
  );
}
