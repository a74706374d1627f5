/**
 * Direct chats (SPEC.md §5.3.7) through the extension points: a "Message"
 * action on every other member, and a sidebar section listing the user's
 * direct chats with a form to start one by username.
 */

import { useState } from "preact/hooks";

import { extensions } from "./extensions";
import { app } from "./model";
import { current, navigate } from "./router";
import { Feedback, Link, useAction, useApp } from "./ui/common";

async function openDirect(user: number | string): Promise<void> {
  const info = await app.openDirect(user);
  navigate(`/chat/${info.id}`);
}

function DirectSection() {
  const a = useApp();
  const [name, setName] = useState("");
  const action = useAction();
  const route = current();
  const directs = [...a.myRooms.values()].filter((r) => r.directUser !== undefined).sort((x, y) => x.name.localeCompare(y.name));
  return (
    <div class="direct-section">
      <h2 class="side-title">Direct messages</h2>
      {directs.length === 0 ? <p class="muted side-empty">No direct chats yet.</p> : null}
      <ul class="my-rooms direct-rooms">
        {directs.map((r) => {
          const unread = a.rooms.get(r.id)?.unread ?? 0;
          const here = route.name === "chat" && route.room === r.id;
          return (
            <li key={r.id}>
              <Link
                href={`/chat/${r.id}`}
                aria-current={here ? "page" : undefined}
                aria-label={`Direct chat with ${r.name}${unread > 0 ? `, ${unread} unread` : ""}`}
              >
                <span class="hash" aria-hidden="true">
                  @
                </span>
                <span class="room-name">{r.name}</span>
                {unread > 0 ? <span class="badge">{unread}</span> : null}
              </Link>
            </li>
          );
        })}
      </ul>
      <form
        class="direct-form"
        onSubmit={(e) => {
          e.preventDefault();
          const who = name.trim();
          if (who === "") return;
          void action.run(async () => {
            await openDirect(who);
            setName("");
          });
        }}
      >
        <label class="sr-only" for="direct-user">
          Username to message
        </label>
        <input id="direct-user" placeholder="Message a user…" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <button type="submit" disabled={action.busy || name.trim() === ""}>
          Open
        </button>
        <Feedback error={action.error} done="" />
      </form>
    </div>
  );
}

extensions.memberActions.push({
  id: "message",
  label: "Message",
  applies: (m, me) => m.user !== me,
  run: (m) => openDirect(m.user).catch(() => undefined),
});
extensions.sidebarSections.push({ id: "direct", render: () => <DirectSection /> });
