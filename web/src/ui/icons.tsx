/** Inline icons (SVG, so that they need no emoji font). */

export function BellIcon() {
  return (
    <svg class="icon-svg" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
      <path
        d="M12 3a6 6 0 0 0-6 6v3.6L4.3 15.3A1 1 0 0 0 5.2 17h13.6a1 1 0 0 0 .9-1.7L18 12.6V9a6 6 0 0 0-6-6zm-2.5 15a2.5 2.5 0 0 0 5 0z"
        fill="currentColor"
      />
    </svg>
  );
}

export function LockIcon() {
  return (
    <svg class="icon-svg small" viewBox="0 0 24 24" width="14" height="14" aria-hidden="true">
      <path
        d="M7 10V8a5 5 0 0 1 10 0v2h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1zm2 0h6V8a3 3 0 0 0-6 0z"
        fill="currentColor"
      />
    </svg>
  );
}

export function PlugIcon() {
  return (
    <svg viewBox="0 0 24 24" width="48" height="48" aria-hidden="true">
      <path d="M8 2v5M16 2v5M6 7h12v4a6 6 0 0 1-12 0zM12 17v5" stroke="currentColor" stroke-width="2" fill="none" stroke-linecap="round" />
      <path d="M3 3l18 18" stroke="var(--bad)" stroke-width="2" stroke-linecap="round" />
    </svg>
  );
}

/** A room's mark: a lock for private rooms, # for public ones. */
export function RoomMark(props: { private: boolean }) {
  return props.private ? <LockIcon /> : <span aria-hidden="true">#</span>;
}
