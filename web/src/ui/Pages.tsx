/** Notifications, the room log, and the profile and settings page. */

import type { RoomLogItem } from "@confab/sdk";
import { useEffect, useState } from "preact/hooks";

import { AvatarImage } from "../avatar";
import { extensions } from "../extensions";
import { app, describe, errorCode, notificationText } from "../model";
import { navigate } from "../router";
import { Feedback, Link, RunButton, Time, useAction, useApp } from "./common";
import { RoomMark } from "./icons";

export function NotificationsPage() {
  const a = useApp();
  const action = useAction();
  const [permission, setPermission] = useState(typeof Notification === "undefined" ? "unsupported" : Notification.permission);
  return (
    <main class="page" id="main">
      <div class="page-head">
        <h1>Notifications</h1>
        <button
          type="button"
          class="ghost"
          disabled={a.notifUnread === 0 || action.busy}
          onClick={() => void action.run(() => app.markAllRead())}
        >
          Mark all read
        </button>
      </div>
      {permission === "default" ? (
        <p class="notice">
          Get desktop notifications for mentions, invitations and messages while this tab is in the background.{" "}
          <button type="button" class="link" onClick={() => void Notification.requestPermission().then(setPermission)}>
            Allow notifications
          </button>
        </p>
      ) : null}
      <Feedback error={action.error} done="" />
      {a.notifications.length === 0 ? <p class="empty">Nothing yet.</p> : null}
      <ul class="notifications">
        {a.notifications.map((n) => (
          <li key={n.id} class={n.read ? "read" : "unread"} data-kind={String(n.kind)}>
            {!n.read ? <span class="unread-dot" aria-label="unread" /> : null}
            <span class="grow">
              {notificationText(n)}{" "}
              <span class="muted">
                · <Time at={n.at} />
              </span>
            </span>
            <NotificationAction room={n.room} kind={String(n.kind)} />
          </li>
        ))}
      </ul>
      {a.notifHasMore ? (
        <button type="button" class="ghost more" onClick={() => void app.loadNotifications(a.notifications.at(-1)?.id)}>
          Older
        </button>
      ) : null}
    </main>
  );
}

function NotificationAction(props: { room: number; kind: string }) {
  const a = useApp();
  const action = useAction();
  const member = a.myRooms.has(props.room);
  if (props.kind === "invited" && !member) {
    return (
      <span class="inline-actions">
        <RunButton
          action={action}
          class="primary"
          run={async () => {
            try {
              await app.acceptInvite(props.room);
            } catch (e) {
              if (errorCode(e) === "NOT_INVITED") throw new Error("This invitation is no longer open.");
              throw e;
            }
            navigate(`/chat/${props.room}`);
          }}
        >
          Accept
        </RunButton>
        <RunButton
          action={action}
          run={async () => {
            await app.client.declineInvite(props.room);
            return "Declined.";
          }}
        >
          Decline
        </RunButton>
        <Feedback error={action.error} done={action.done} />
      </span>
    );
  }
  if (props.kind === "join_request") return <Link href={`/chat/${props.room}/admin`}>Review</Link>;
  if (member) return <Link href={`/chat/${props.room}`}>Open</Link>;
  return null;
}

const REASON: Record<string, string> = {
  active: "Member",
  left: "Left",
  kicked: "Removed by an admin",
  banned: "Banned",
  terminated: "Room closed",
};

export function RoomLogPage() {
  const a = useApp();
  const [items, setItems] = useState<RoomLogItem[] | undefined>();
  const [error, setError] = useState("");
  useEffect(() => {
    app.client.roomLog().then(setItems, (e: unknown) => setError(describe(e)));
  }, [a.myRooms.size, a.conn]);
  return (
    <main class="page" id="main">
      <h1>Room log</h1>
      <p class="muted">Every room you have been in, most recently joined first.</p>
      {error !== "" ? <p class="feedback error">{error}</p> : null}
      {items === undefined && error === "" ? <p class="muted">Loading…</p> : null}
      {items?.length === 0 ? <p class="empty">You have not joined any room yet.</p> : null}
      <ul class="room-cards">
        {items?.map((it) => (
          <LogRow key={it.room.id} it={it} />
        ))}
      </ul>
    </main>
  );
}

function LogRow(props: { it: RoomLogItem }) {
  const { it } = props;
  const a = useApp();
  const action = useAction();
  const member = a.myRooms.has(it.room.id);
  const reason = String(it.reason);
  return (
    <li class="room-card" data-room={it.room.id}>
      <div class="room-card-main">
        <h2>
          <span class="mark">
            <RoomMark private={it.room.visibility === "private"} />
          </span>
          {it.room.name}
        </h2>
        <p class="meta">
          {it.terminated ? "Room closed" : member ? "Member" : (REASON[reason] ?? reason)} · joined <Time at={it.lastJoinedAt} />
          {it.leftAt !== undefined ? (
            <>
              {" "}
              · left <Time at={it.leftAt} />
            </>
          ) : null}
        </p>
        <Feedback error={action.error} done={action.done} />
      </div>
      {it.terminated || reason === "banned" ? null : member ? (
        <Link href={`/chat/${it.room.id}`} class="button">
          Open
        </Link>
      ) : it.room.visibility === "public" ? (
        <RunButton
          action={action}
          class="primary"
          run={async () => {
            await app.join(it.room.id);
            navigate(`/chat/${it.room.id}`);
          }}
        >
          Rejoin
        </RunButton>
      ) : (
        <RunButton
          action={action}
          class="ghost"
          run={async () => {
            await app.client.requestJoin(it.room.id);
            return "Request sent.";
          }}
        >
          Request to join
        </RunButton>
      )}
    </li>
  );
}

export function ProfilePage() {
  const a = useApp();
  const action = useAction();
  const [permission, setPermission] = useState(typeof Notification === "undefined" ? "unsupported" : Notification.permission);
  const me = a.me;
  if (me === undefined) return null;
  return (
    <main class="page narrow" id="main">
      <h1>Profile and settings</h1>
      <section class="card profile">
        {a.profile?.avatar !== undefined ? (
          <AvatarImage id={a.profile.avatar} name={a.nameOf(me.user, me.username)} size={64} />
        ) : (
          <div class="avatar big" aria-hidden="true">
            {a.nameOf(me.user, me.username).slice(0, 1).toUpperCase()}
          </div>
        )}
        <div>
          <h2>{a.nameOf(me.user, me.username)}</h2>
          <p class="muted">
            @{me.username} · User #{me.user}
          </p>
        </div>
      </section>
      {extensions.profileSections.map((s) => (
        <section key={s.id} class="card">
          <h2>{s.title}</h2>
          {s.render()}
        </section>
      ))}
      {extensions.profileSections.length === 0 ? (
        <section class="card" aria-labelledby="pf-title">
          <h2 id="pf-title">Profile details</h2>
          <p class="muted">Display name, bio, email, avatar and password changes are not offered by this server yet.</p>
        </section>
      ) : null}
      <section class="card" aria-labelledby="st-title">
        <h2 id="st-title">Settings</h2>
        <label class="check">
          <input
            type="checkbox"
            checked={a.away}
            disabled={action.busy}
            onChange={(e) => void action.run(() => app.setAway(e.currentTarget.checked))}
          />{" "}
          Show me as away
        </label>
        <p>
          Desktop notifications:{" "}
          {permission === "granted" ? (
            "on"
          ) : permission === "denied" ? (
            "blocked in this browser's settings"
          ) : permission === "unsupported" ? (
            "not supported by this browser"
          ) : (
            <button type="button" class="link" onClick={() => void Notification.requestPermission().then(setPermission)}>
              Allow
            </button>
          )}
        </p>
        <Feedback error={action.error} done="" />
      </section>
      <button type="button" class="danger" onClick={() => void app.logout()}>
        Log out
      </button>
    </main>
  );
}
