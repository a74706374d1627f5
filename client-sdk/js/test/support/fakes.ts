/**
 * Test doubles: a clock whose time only moves when the test says so, and
 * a WebSocket whose "server" end the test drives with the SDK's own codec.
 */

import {
  decodeRequestFrame,
  encodeServerMessage,
  type Clock,
  type Request,
  type ServerMessageInput,
  type WebSocketLike,
} from "../../src/index.js";

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private time = 0;
  private nextId = 1;
  private timers: Timer[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.timers.push({ id, at: this.time + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Moves time forward by `ms`, running every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fn();
      await flush();
    }
    this.time = end;
    await flush();
  }

  pending(): number {
    return this.timers.length;
  }
}

/** Lets promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

type Listener = (event: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Every FakeWebSocket made, newest last. */
export const sockets: FakeWebSocket[] = [];

export class FakeWebSocket implements WebSocketLike {
  binaryType = "blob";
  readyState = 0;
  readonly sent: { requestId: number; message: Request }[] = [];
  closedByClient: { code: number | undefined; reason: string | undefined } | undefined;
  private readonly listeners = new Map<string, Listener[]>();

  constructor(readonly url: string) {
    sockets.push(this);
  }

  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  private fire(type: string, event: unknown): void {
    for (const l of this.listeners.get(type) ?? []) l(event);
  }

  send(data: Uint8Array): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(decodeRequestFrame(data));
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    this.closedByClient = { code, reason };
    this.readyState = 3;
    // Browsers fire "close" later; the client must not need it.
  }

  // -------------------------------------------------- the server's end

  /** The transport is up. */
  open(): void {
    this.readyState = 1;
    this.fire("open", {});
  }

  /** The server sends `msg` with `requestId`. */
  deliver(requestId: number, msg: ServerMessageInput): void {
    const bytes = encodeServerMessage(requestId, msg);
    this.fire("message", { data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }

  /** The server sends raw bytes (or text). */
  deliverRaw(data: ArrayBuffer | string): void {
    this.fire("message", { data });
  }

  /** The transport ends. */
  drop(code = 1006): void {
    this.readyState = 3;
    this.fire("close", { code, reason: "" });
  }

  /** Requests sent so far, of type `type`. */
  requests<T extends Request["type"]>(type: T): { requestId: number; message: Extract<Request, { type: T }> }[] {
    return this.sent.filter((s) => s.message.type === type) as never;
  }

  /** The last request sent. */
  last(): { requestId: number; message: Request } {
    const s = this.sent[this.sent.length - 1];
    if (s === undefined) throw new Error("nothing sent");
    return s;
  }
}

export const WELCOME: Extract<ServerMessageInput, { type: "WELCOME" }> = {
  type: "WELCOME",
  version: 1,
  server: "fake/0",
  maxFrameLen: 65536,
  maxMessageLen: 4096,
  heartbeatMs: 30000,
  rateLimitPerSec: 50,
  rateLimitBurst: 100,
};
