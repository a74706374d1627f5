/**
 * Direct chats (SPEC.md §5.3.7) through the extension points: a "Message"
 * action on every other member, and a sidebar section listing the user's
 * direct chats with a form to start one by username.
 */

import { useState } from "preact/hooks";

import { extensions } from "./extensions";
import { app } from "./model";
import { navigate } from "./router";
import { Feedback, useAction, useApp } from "./ui/common";
import { SideRoom } from "./ui/Shell";

async function openDirect(user: number | string): Promise<void> {
  const info = await app.openDirect(user);
  navigate(`/chat/${info.id}`);
}

function DirectSection() {
  const a = useApp();
  const [name, setName] = useState("");
  const action = useAction();
  const directs = [...a.myRooms.values()]
    .filter((r) => r.directUser !== undefined)
    .sort((x, y) => a.roomName(x).localeCompare(a.roomName(y)));
  return (
    <div class="direct-section">
      <h2 class="side-title">Direct messages</h2>
      {directs.length === 0 ? <p class="muted side-empty">No direct chats yet.</p> : null}
      <ul class="my-rooms direct-rooms">
        {directs.map((r) => (
          <SideRoom key={r.id} room={r} label={`Direct chat with ${a.roomName(r)}`} mark="@" />
        ))}
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
