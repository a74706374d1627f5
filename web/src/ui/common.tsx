/** Small shared pieces: the store hook, links, dialogs, times, presence dots. */

import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

import { app, describe } from "../model";
import { linkClick } from "../router";

/**
 * Re-renders the component whenever the app's state changes. Subscribes
 * in a layout effect (synchronously after the render), and re-renders at
 * once if a change came between the render and the subscription: a
 * plain effect may run a frame later, after the WELCOME that ends the
 * "Connecting…" screen, and that change would be missed until the next.
 */
export function useApp(): typeof app {
  const [, setTick] = useState(0);
  const rendered = app.version;
  useLayoutEffect(() => {
    const off = app.subscribe(() => setTick((t) => t + 1));
    if (app.version !== rendered) setTick((t) => t + 1);
    return off;
  }, []);
  return app;
}

export function Link(props: {
  href: string;
  class?: string;
  children: ComponentChildren;
  "aria-label"?: string;
  "aria-current"?: "page" | undefined;
}) {
  return (
    <a href={props.href} class={props.class} onClick={linkClick} aria-label={props["aria-label"]} aria-current={props["aria-current"]}>
      {props.children}
    </a>
  );
}

/** While `active`, the Escape key calls `onEscape` (dialogs, drawers, pop-up menus). */
export function useEscape(active: boolean, onEscape: () => void): void {
  const latest = useRef(onEscape);
  latest.current = onEscape;
  useEffect(() => {
    if (!active) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape" && !e.defaultPrevented) {
        e.preventDefault();
        latest.current();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [active]);
}

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), select:not([disabled])";

/**
 * A modal dialog: Escape or the close button calls `onClose`; focus moves
 * into it, Tab and Shift+Tab stay in it, and it goes back to where it was
 * when the dialog closes.
 */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useEscape(true, props.onClose);
  useEffect(() => {
    const before = document.activeElement;
    const first = ref.current?.querySelector<HTMLElement>("input, textarea, select, button:not(.dialog-close)");
    first?.focus();
    return () => {
      if (before instanceof HTMLElement && before.isConnected) before.focus();
    };
  }, []);
  const trapTab = (e: KeyboardEvent) => {
    if (e.key !== "Tab" || ref.current === null) return;
    const all = [...ref.current.querySelectorAll<HTMLElement>(FOCUSABLE)];
    const first = all[0];
    const last = all[all.length - 1];
    if (first === undefined || last === undefined) return;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div
        class={`dialog${props.wide === true ? " wide" : ""}`}
        role="dialog"
        aria-modal="true"
        aria-labelledby="dialog-title"
        ref={ref}
        onKeyDown={trapTab}
      >
        <header class="dialog-head">
          <h2 id="dialog-title">{props.title}</h2>
          <button type="button" class="icon dialog-close" onClick={props.onClose} aria-label="Close">
            ×
          </button>
        </header>
        <div class="dialog-body">{props.children}</div>
      </div>
    </div>
  );
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function Time(props: { at: number }) {
  const d = new Date(props.at);
  const today = new Date().toDateString() === d.toDateString();
  return (
    <time dateTime={d.toISOString()} title={dateFmt.format(d)}>
      {today ? timeFmt.format(d) : dateFmt.format(d)}
    </time>
  );
}

export function PresenceDot(props: { presence: "online" | "away" | "offline" }) {
  return <span class={`dot ${props.presence}`} role="img" aria-label={props.presence} title={props.presence} />;
}

/** An async action's state for a form: busy, error, success message. */
export function useAction(): {
  busy: boolean;
  error: string;
  done: string;
  run: (f: () => Promise<string | void>) => Promise<void>;
  clear: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [done, setDone] = useState("");
  return {
    busy,
    error,
    done,
    clear: () => {
      setError("");
      setDone("");
    },
    run: async (f) => {
      setBusy(true);
      setError("");
      setDone("");
      try {
        const msg = await f();
        if (typeof msg === "string") setDone(msg);
      } catch (e) {
        setError(describe(e));
      } finally {
        setBusy(false);
      }
    },
  };
}

export function Feedback(props: { error: string; done: string }) {
  if (props.error !== "")
    return (
      <p class="feedback error" role="alert">
        {props.error}
      </p>
    );
  if (props.done !== "")
    return (
      <p class="feedback ok" role="status">
        {props.done}
      </p>
    );
  return null;
}

type Action = ReturnType<typeof useAction>;

/** A button that runs `run` as `action`: disabled while it is busy, its error or message shown by the action's Feedback. */
export function RunButton(props: {
  action: Action;
  run: () => Promise<string | void>;
  class?: string;
  label?: string;
  children: ComponentChildren;
}) {
  return (
    <button
      type="button"
      class={props.class ?? "ghost"}
      disabled={props.action.busy}
      aria-label={props.label}
      onClick={() => void props.action.run(props.run)}
    >
      {props.children}
    </button>
  );
}

/** "Are you sure?": Cancel, or the confirming button that runs `run` and closes. */
export function ConfirmDialog(props: {
  title: string;
  confirm: string;
  cancel: string;
  run: () => Promise<void>;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const action = useAction();
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      {props.children}
      <Feedback error={action.error} done="" />
      <div class="actions">
        <button type="button" class="ghost" onClick={props.onClose}>
          {props.cancel}
        </button>
        <RunButton
          action={action}
          class="danger"
          run={async () => {
            await props.run();
            props.onClose();
          }}
        >
          {props.confirm}
        </RunButton>
      </div>
    </Dialog>
  );
}
