/** The admin panel of a room (/chat/{room}/admin): settings, invitations, join requests, members, bans. */

import type { UserEntry } from "@confab/sdk";
import { useEffect, useState } from "preact/hooks";

import { app, describe } from "../model";
import { Dialog, Feedback, PresenceDot, RunButton, Time, useAction, useApp } from "./common";
import { presenceOf } from "../model";

export function AdminPanel(props: { room: number; onClose: () => void }) {
  const a = useApp();
  const rs = a.room(props.room);
  const role = a.roleIn(props.room);
  const info = a.myRooms.get(props.room) ?? rs.info;
  const [requests, setRequests] = useState<UserEntry[]>([]);
  const [bans, setBans] = useState<UserEntry[]>([]);
  const [listError, setListError] = useState("");
  const isAdmin = role === "admin" || role === "owner";

  const reload = async () => {
    if (!isAdmin) return;
    try {
      const [r, b] = await Promise.all([app.client.listJoinRequests(props.room), app.client.listBans(props.room)]);
      setRequests(r);
      setBans(b);
      setListError("");
    } catch (e) {
      setListError(describe(e));
    }
  };
  useEffect(() => void reload(), [props.room, rs.adminVersion, isAdmin, a.conn]);

  if (!isAdmin) {
    return (
      <Dialog title="Admin" onClose={props.onClose}>
        <p>{role === undefined ? "Loading…" : "Only the room's admins can change it."}</p>
      </Dialog>
    );
  }
  return (
    <Dialog title={`Admin · ${info?.name ?? ""}`} onClose={props.onClose} wide>
      <div class="admin">
        <Settings room={props.room} name={info?.name ?? ""} topic={info?.topic ?? ""} />
        <UserForm
          title="Invite"
          label="Username to invite"
          button="Invite"
          run={async (u) => {
            await app.client.invite(props.room, u);
            return `${u} is invited.`;
          }}
        />
        <section aria-labelledby="req-title">
          <h3 id="req-title">Join requests</h3>
          {listError !== "" ? <p class="feedback error">{listError}</p> : null}
          {requests.length === 0 ? <p class="muted">No pending requests.</p> : null}
          <ul class="rows">
            {requests.map((r) => (
              <RequestRow key={r.user} room={props.room} entry={r} onDone={() => void reload()} />
            ))}
          </ul>
        </section>
        <section aria-labelledby="mem-title">
          <h3 id="mem-title">Members</h3>
          <ul class="rows">
            {rs.members.map((m) => (
              <MemberAdminRow
                key={m.user}
                room={props.room}
                user={m.user}
                username={m.username}
                role={String(m.role)}
                presence={presenceOf(m)}
                ownerView={role === "owner"}
              />
            ))}
          </ul>
        </section>
        <UserForm
          title="Ban someone"
          label="Username to ban"
          button="Ban"
          danger
          run={async (u) => {
            await app.client.ban(props.room, u);
            void reload();
            return `${u} is banned.`;
          }}
        />
        <section aria-labelledby="ban-title">
          <h3 id="ban-title">Banned</h3>
          {bans.length === 0 ? <p class="muted">Nobody is banned.</p> : null}
          <ul class="rows">
            {bans.map((b) => (
              <BanRow key={b.user} room={props.room} entry={b} onDone={() => void reload()} />
            ))}
          </ul>
        </section>
      </div>
    </Dialog>
  );
}

function Settings(props: { room: number; name: string; topic: string }) {
  const [name, setName] = useState(props.name);
  const [topic, setTopic] = useState(props.topic);
  const action = useAction();
  return (
    <section aria-labelledby="set-title">
      <h3 id="set-title">Name and topic</h3>
      <form
        class="form inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          void action.run(async () => {
            await app.client.updateRoom(props.room, name, topic);
            return "Saved.";
          });
        }}
      >
        <label>
          Name
          <input name="room-name" required maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Topic
          <input name="room-topic" maxLength={256} value={topic} onInput={(e) => setTopic(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>
          Save
        </button>
      </form>
      <Feedback error={action.error} done={action.done} />
    </section>
  );
}

function UserForm(props: { title: string; label: string; button: string; danger?: boolean; run: (username: string) => Promise<string> }) {
  const [user, setUser] = useState("");
  const action = useAction();
  const id = `uf-${props.button.toLowerCase()}`;
  return (
    <section aria-labelledby={`${id}-title`}>
      <h3 id={`${id}-title`}>{props.title}</h3>
      <form
        class="form inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const u = user.trim().replace(/^@/, "");
          void action.run(async () => {
            const msg = await props.run(u);
            setUser("");
            return msg;
          });
        }}
      >
        <label>
          {props.label}
          <input name={id} required value={user} onInput={(e) => setUser(e.currentTarget.value)} autoComplete="off" />
        </label>
        <button type="submit" class={props.danger === true ? "danger" : "primary"} disabled={action.busy}>
          {props.button}
        </button>
      </form>
      <Feedback error={action.error} done={action.done} />
    </section>
  );
}

/** A person in the admin lists: display name, and the username (what INVITE and BAN by name use). */
function PersonName(props: { user: number; username: string; plain?: boolean }) {
  const name = app.nameOf(props.user, props.username);
  const shown = props.plain === true ? name : <strong>{name}</strong>;
  return (
    <>
      {shown}
      {name !== props.username ? <span class="muted"> @{props.username}</span> : null}
    </>
  );
}

function RequestRow(props: { room: number; entry: UserEntry; onDone: () => void }) {
  const action = useAction();
  const decide = async (approve: boolean) => {
    await app.client.decideRequest(props.room, props.entry.user, approve);
    props.onDone();
  };
  return (
    <li class="row" data-request={props.entry.username}>
      <span class="grow">
        <PersonName user={props.entry.user} username={props.entry.username} />{" "}
        <span class="muted">
          asked <Time at={props.entry.at} />
        </span>
      </span>
      <RunButton action={action} class="primary" label={`Approve ${props.entry.username}`} run={() => decide(true)}>
        Approve
      </RunButton>
      <RunButton action={action} label={`Deny ${props.entry.username}`} run={() => decide(false)}>
        Deny
      </RunButton>
      <Feedback error={action.error} done="" />
    </li>
  );
}

function MemberAdminRow(props: {
  room: number;
  user: number;
  username: string;
  role: string;
  presence: "online" | "away" | "offline";
  ownerView: boolean;
}) {
  const action = useAction();
  const me = app.me?.user;
  const self = props.user === me;
  const isOwner = props.role === "owner";
  // Admins may act on members; only the owner on admins (SPEC.md §8).
  const canModerate = !self && !isOwner && (props.ownerView || props.role === "member");
  return (
    <li class="row" data-member={props.username}>
      <PresenceDot presence={props.presence} />
      <span class="grow">
        <PersonName user={props.user} username={props.username} plain />
        {self ? <span class="muted"> (you)</span> : null}{" "}
        {props.role !== "member" ? <span class={`tag role-${props.role}`}>{props.role}</span> : null}
      </span>
      {props.ownerView && !self && !isOwner ? (
        <RunButton action={action} run={() => app.client.setRole(props.room, props.user, props.role === "admin" ? "member" : "admin")}>
          {props.role === "admin" ? "Remove admin" : "Make admin"}
        </RunButton>
      ) : null}
      {canModerate ? (
        <>
          <RunButton action={action} class="ghost" label={`Kick ${props.username}`} run={() => app.client.kick(props.room, props.user)}>
            Kick
          </RunButton>
          <RunButton action={action} class="danger" label={`Ban ${props.username}`} run={() => app.client.ban(props.room, props.user)}>
            Ban
          </RunButton>
        </>
      ) : null}
      <Feedback error={action.error} done="" />
    </li>
  );
}

function BanRow(props: { room: number; entry: UserEntry; onDone: () => void }) {
  const action = useAction();
  return (
    <li class="row" data-banned={props.entry.username}>
      <span class="grow">
        <PersonName user={props.entry.user} username={props.entry.username} />{" "}
        <span class="muted">
          since <Time at={props.entry.at} />
        </span>
      </span>
      <RunButton
        action={action}
        class="ghost"
        label={`Unban ${props.entry.username}`}
        run={async () => {
          await app.client.unban(props.room, props.entry.user);
          props.onDone();
        }}
      >
        Unban
      </RunButton>
      <Feedback error={action.error} done="" />
    </li>
  );
}
