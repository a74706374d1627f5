/** The dashboard: rooms to browse (search, filter, join) and the create-room form. */

import type { RoomInfo } from "@confab/sdk";
import { useEffect, useState } from "preact/hooks";

import { app, describe, errorCode } from "../model";
import { navigate } from "../router";
import { Dialog, Feedback, Link, useAction, useApp } from "./common";
import { RoomMark } from "./icons";

type Filter = "all" | "joined" | "public" | "private";
const PAGE = 50;

function matches(r: RoomInfo, q: string): boolean {
  const s = q.trim().toLowerCase();
  return s === "" || r.name.toLowerCase().includes(s) || r.topic.toLowerCase().includes(s);
}

export function Rooms() {
  const a = useApp();
  const [query, setQuery] = useState("");
  const [filter, setFilter] = useState<Filter>("all");
  const [rooms, setRooms] = useState<RoomInfo[]>([]);
  const [total, setTotal] = useState(0);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState("");
  const [creating, setCreating] = useState(false);
  const [joinError, setJoinError] = useState<{ room: number; text: string } | undefined>();

  // Announcements before the list was fetched are in it (or hidden from the user since, e.g. banned).
  const [since, setSince] = useState(0);
  const load = async (q: string, offset: number) => {
    setLoading(true);
    setError("");
    if (offset === 0) setSince(app.announced.length);
    try {
      const page = await app.client.listRooms({ query: q.trim(), offset, limit: PAGE });
      setRooms((old) => (offset === 0 ? page.rooms : [...old, ...page.rooms]));
      setTotal(page.total);
    } catch (e) {
      setError(describe(e));
    } finally {
      setLoading(false);
    }
  };

  // Search as the user types (a quarter second after the last key).
  useEffect(() => {
    const t = setTimeout(() => void load(query, 0), 250);
    return () => clearTimeout(t);
  }, [query, a.conn === "connected"]);

  // Rooms announced live (ROOM_ANNOUNCED) join the list when they match.
  const shown = new Map(rooms.map((r) => [r.id, r]));
  for (const r of a.announced.slice(since)) if (matches(r, query)) shown.set(r.id, r);
  for (const r of a.myRooms.values()) if (shown.has(r.id)) shown.set(r.id, r);
  const list = [...shown.values()]
    .filter((r) => filter === "all" || (filter === "joined" ? a.myRooms.has(r.id) : r.visibility === filter))
    .sort((x, y) => y.id - x.id);

  const join = async (r: RoomInfo) => {
    setJoinError(undefined);
    try {
      await app.join(r.id);
      navigate(`/chat/${r.id}`);
    } catch (e) {
      if (errorCode(e) === "ALREADY_MEMBER") navigate(`/chat/${r.id}`);
      else setJoinError({ room: r.id, text: describe(e) });
    }
  };

  return (
    <main class="page" id="main">
      <div class="page-head">
        <h1>Rooms</h1>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          + New room
        </button>
      </div>
      <div class="toolbar">
        <label class="search">
          <span class="sr-only">Search rooms by name or topic</span>
          <input type="search" placeholder="Search by name or topic…" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <div class="chips" role="radiogroup" aria-label="Show">
          {(["all", "joined", "public", "private"] as const).map((f) => (
            <button
              key={f}
              type="button"
              role="radio"
              aria-checked={filter === f}
              class={filter === f ? "chip active" : "chip"}
              onClick={() => setFilter(f)}
            >
              {f === "all" ? "All" : f === "joined" ? "Joined" : f === "public" ? "Public" : "Private"}
            </button>
          ))}
        </div>
      </div>
      {error !== "" ? (
        <p class="feedback error" role="alert">
          {error}
        </p>
      ) : null}
      <p class="muted count" aria-live="polite">
        {loading ? "Loading…" : `${list.length} of ${Math.max(total, list.length)} room${total === 1 ? "" : "s"}`}
      </p>
      <ul class="room-cards" aria-label="Rooms">
        {list.map((r) => {
          const member = a.myRooms.has(r.id);
          return (
            <li key={r.id} class="room-card" data-room={r.id}>
              <div class="room-card-main">
                <h2>
                  <span class="mark">
                    <RoomMark private={r.visibility === "private"} />
                  </span>
                  {r.name}
                  {r.visibility === "private" ? <span class="tag">private</span> : null}
                </h2>
                <p class="topic">{r.topic !== "" ? r.topic : <span class="muted">No description</span>}</p>
                <p class="meta">Members: {r.memberCount}</p>
                {joinError?.room === r.id ? (
                  <p class="feedback error" role="alert">
                    {joinError.text}
                  </p>
                ) : null}
              </div>
              {member ? (
                <Link href={`/chat/${r.id}`} class="button">
                  Open
                </Link>
              ) : (
                <button type="button" class="primary" onClick={() => void join(r)} aria-label={`Join ${r.name}`}>
                  Join
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {!loading && list.length === 0 ? <p class="empty">No rooms match. Create one?</p> : null}
      {rooms.length < total ? (
        <button type="button" class="ghost more" disabled={loading} onClick={() => void load(query, rooms.length)}>
          Load more
        </button>
      ) : null}
      {creating ? <CreateRoom onClose={() => setCreating(false)} /> : null}
    </main>
  );
}

export function CreateRoom(props: { onClose: () => void }) {
  const [name, setName] = useState("");
  const [topic, setTopic] = useState("");
  const [visibility, setVisibility] = useState<"public" | "private">("public");
  const [members, setMembers] = useState("");
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      const names = members
        .split(/[\s,]+/)
        .map((m) => m.replace(/^@/, "").trim())
        .filter((m) => m !== "");
      const info = await app.createRoom(name, topic, visibility, names);
      app.toast({ title: "Room created", body: `${info.name} is ready`, tone: "ok" });
      props.onClose();
      navigate(`/chat/${info.id}`);
    });
  };
  return (
    <Dialog title="New room" onClose={props.onClose}>
      <form class="form" onSubmit={submit}>
        <label>
          Name
          <input name="name" required maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Description
          <input name="topic" maxLength={256} value={topic} onInput={(e) => setTopic(e.currentTarget.value)} />
        </label>
        <fieldset class="radios">
          <legend>Who can join</legend>
          <label>
            <input type="radio" name="visibility" checked={visibility === "public"} onChange={() => setVisibility("public")} /> Public:
            anyone can find and join it
          </label>
          <label>
            <input type="radio" name="visibility" checked={visibility === "private"} onChange={() => setVisibility("private")} /> Private:
            by invitation or approved request
          </label>
        </fieldset>
        <label>
          Initial members <span class="muted">(usernames, separated by commas; optional)</span>
          <input name="members" placeholder="alice, bob" value={members} onInput={(e) => setMembers(e.currentTarget.value)} />
        </label>
        <Feedback error={action.error} done={action.done} />
        <div class="actions">
          <button type="button" class="ghost" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={action.busy}>
            {action.busy ? "Creating…" : "Create room"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
