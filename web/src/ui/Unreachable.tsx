/** Shown while the server cannot be reached and nothing has connected yet; the client keeps trying. */

import { useEffect, useState } from "preact/hooks";

import { useApp } from "./common";
import { PlugIcon } from "./icons";

export function Unreachable() {
  const a = useApp();
  const [, tick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, []);
  const wait = Math.max(0, Math.ceil((a.retryAt - Date.now()) / 1000));
  const trying = a.conn === "reconnecting" || a.conn === "connecting";
  return (
    <main class="center-page" id="main">
      <section class="card unreachable" aria-labelledby="unreachable-title" data-testid="unreachable">
        <div class="big-icon">
          <PlugIcon />
        </div>
        <h1 id="unreachable-title">The Confab server is unreachable</h1>
        <p>
          This page could not connect to <code>{location.host}</code>. The server may be restarting or down, or your network may be offline.
        </p>
        <p class="muted" role="status" aria-live="polite">
          {trying ? (wait > 0 ? `Trying again in ${wait} s (attempt ${a.attempt}).` : "Trying to connect…") : "Stopped trying."}
        </p>
        <button type="button" class="primary" onClick={() => a.retryNow()}>
          Try again now
        </button>
        <p class="hint">You will be taken back as soon as the server answers; nothing you did is lost.</p>
      </section>
    </main>
  );
}
