/**
 * ConfabClient against a fake WebSocket and a fake clock: the connection
 * state machine, backoff, heartbeats, resume, request matching, timeouts,
 * the send queue and error typing.
 */

import { afterEach, describe, expect, it } from "vitest";

import {
  ConfabClient,
  ConfabError,
  type ConfabClientOptions,
  type ConfabEventMap,
  type ConfabEventType,
  type ConnectionState,
  type ServerMessageInput,
  serverUrls,
} from "../../src/index.js";
import { FakeClock, FakeWebSocket, WELCOME, flush, sockets } from "../support/fakes.js";

afterEach(() => {
  sockets.length = 0;
});

function setup(options: Partial<ConfabClientOptions> = {}) {
  const clock = new FakeClock();
  const client = new ConfabClient({
    url: "ws://test/ws",
    WebSocket: FakeWebSocket,
    clock,
    random: () => 0.5,
    ...options,
  });
  const states: ConnectionState[] = [];
  client.on("statechange", (s) => states.push(s.state));
  return { client, clock, states };
}

function record<K extends ConfabEventType>(client: ConfabClient, type: K): ConfabEventMap[K][] {
  const seen: ConfabEventMap[K][] = [];
  client.on(type, (d) => seen.push(d));
  return seen;
}

function socket(i = -1): FakeWebSocket {
  const s = sockets.at(i);
  if (s === undefined) throw new Error("no socket");
  return s;
}

/** Opens the newest socket and answers its HELLO with WELCOME. */
async function welcome(extra: Partial<Omit<typeof WELCOME, "type">> = {}) {
  const ws = socket();
  ws.open();
  const hello = ws.requests("HELLO")[0];
  if (hello === undefined) throw new Error("no HELLO");
  ws.deliver(hello.requestId, { ...WELCOME, ...extra });
  await flush();
  return { ws, hello: hello.message };
}

/** Answers the last request on `ws` with `msg`. */
function reply(ws: FakeWebSocket, msg: ServerMessageInput) {
  ws.deliver(ws.last().requestId, msg);
}

async function rejection(p: Promise<unknown>): Promise<ConfabError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConfabError);
    return e as ConfabError;
  }
  throw new Error("resolved, expected a rejection");
}

describe("connecting", () => {
  it("sends HELLO with the token and resume points, and is connected on WELCOME", async () => {
    const { client, states } = setup({ token: "tok", resume: [{ room: 7, after: 3 }] });
    const connected = client.connect();
    expect(client.state).toBe("connecting");
    const { hello } = await welcome({ session: { user: 1, username: "alice" } });
    expect(hello).toMatchObject({ version: 1, token: "tok", resume: [{ room: 7, after: 3 }] });
    const w = await connected;
    expect(w.server).toBe("fake/0");
    expect(client.state).toBe("connected");
    expect(client.session).toEqual({ user: 1, username: "alice" });
    expect(states).toEqual(["connecting", "connected"]);
    expect(socket().binaryType).toBe("arraybuffer");
  });

  it("fails without a WebSocket implementation, saying what to pass", async () => {
    const { client } = setup({ WebSocket: undefined, reconnect: false });
    const g = globalThis as { WebSocket?: unknown };
    const saved = g.WebSocket;
    delete g.WebSocket;
    try {
      const c = new ConfabClient({ url: "ws://x/ws", reconnect: false });
      const e = await rejection(c.connect());
      expect(e.kind).toBe("connect_failed");
      expect(e.message).toMatch(/options\.WebSocket/);
    } finally {
      if (saved !== undefined) g.WebSocket = saved;
    }
    void client;
  });

  it("a refused token ends the attempt for good (no retry with the same token)", async () => {
    const { client, clock } = setup({ token: "stale" });
    const connected = client.connect();
    const ws = socket();
    ws.open();
    const hello = ws.last();
    ws.deliver(hello.requestId, { type: "ERROR", code: 201, message: "invalid token" });
    ws.deliver(0, { type: "CLOSE", code: 201, message: "invalid token" });
    const e = await rejection(connected);
    expect(e.kind).toBe("server");
    expect(e.codeName).toBe("INVALID_TOKEN");
    expect(client.state).toBe("disconnected");
    expect(client.token).toBeUndefined();
    await clock.advance(60_000);
    expect(sockets.length).toBe(1);
  });

  it("keeps trying when the first attempt fails, and connect() resolves when it succeeds", async () => {
    const { client, clock, states } = setup({ reconnect: { initialDelayMs: 1000, maxDelayMs: 8000 } });
    const connected = client.connect();
    socket().drop();
    expect(client.state).toBe("reconnecting");
    await clock.advance(499); // full jitter: 0.5 * 1000
    expect(sockets.length).toBe(1);
    await clock.advance(1);
    expect(sockets.length).toBe(2);
    await welcome();
    await connected;
    expect(states).toEqual(["connecting", "reconnecting", "connected"]);
  });

  it("gives up after maxAttempts and rejects connect()", async () => {
    const { client, clock } = setup({ reconnect: { maxAttempts: 2 } });
    const connected = client.connect();
    const failed = rejection(connected);
    socket().drop();
    await clock.advance(10_000);
    socket().drop();
    await clock.advance(10_000);
    socket().drop();
    const e = await failed;
    expect(e.kind).toBe("connect_failed");
    expect(e.message).toMatch(/gave up after 2/);
    expect(client.state).toBe("disconnected");
    expect(sockets.length).toBe(3);
  });

  it("times out a handshake that gets no WELCOME", async () => {
    const { client, clock } = setup({ reconnect: false, connectTimeoutMs: 2000 });
    const failed = rejection(client.connect());
    socket().open();
    await clock.advance(2000);
    const e = await failed;
    expect(e.kind).toBe("connect_failed");
    expect(e.message).toMatch(/no WELCOME within 2000/);
    expect(socket().closedByClient).toBeDefined();
  });
});

describe("several servers (the nodes of one cluster)", () => {
  it("parses a comma-separated list or an array, and refuses an empty one", () => {
    expect(serverUrls("ws://a/ws, ws://b/ws,")).toEqual(["ws://a/ws", "ws://b/ws"]);
    expect(serverUrls(["ws://a/ws", " ws://b/ws "])).toEqual(["ws://a/ws", "ws://b/ws"]);
    expect(serverUrls("ws://a/ws")).toEqual(["ws://a/ws"]);
    expect(() => serverUrls(" , ")).toThrow(/no server URL/);
    expect(() => setup({ url: [] })).toThrow(/no server URL/);
  });

  it("connects to the first that answers, trying the next at once when one is down", async () => {
    const { client, states } = setup({ url: "ws://a/ws,ws://b/ws,ws://c/ws" });
    const connected = client.connect();
    expect(socket().url).toBe("ws://a/ws");
    socket().drop();
    expect(sockets.length).toBe(2); // no backoff while some server is untried
    expect(socket().url).toBe("ws://b/ws");
    expect(client.url).toBe("ws://b/ws");
    await welcome();
    await connected;
    expect(states).toEqual(["connecting", "connected"]);
  });

  it("after every server failed once, backs off as with one (and without reconnection, fails with the last error)", async () => {
    {
      const { client, clock, states } = setup({ url: ["ws://a/ws", "ws://b/ws"], reconnect: { initialDelayMs: 1000 } });
      const connected = client.connect();
      socket().drop();
      socket().drop();
      expect(sockets.length).toBe(2);
      expect(client.state).toBe("reconnecting");
      await clock.advance(500);
      expect(socket().url).toBe("ws://a/ws"); // round the list
      await welcome();
      await connected;
      expect(states).toEqual(["connecting", "reconnecting", "connected"]);
    }
    sockets.length = 0;
    {
      const { client } = setup({ url: ["ws://a/ws", "ws://b/ws"], reconnect: false });
      const failed = rejection(client.connect());
      socket().drop(4001);
      socket().drop(4002);
      const e = await failed;
      expect(e.kind).toBe("connect_failed");
      expect(e.message).toMatch(/4002/);
      expect(sockets.map((w) => w.url)).toEqual(["ws://a/ws", "ws://b/ws"]);
    }
  });

  it("after a disconnect, reconnects to the same server first, then to the next after each failed attempt", async () => {
    const { client, clock } = setup({ url: "ws://a/ws,ws://b/ws,ws://c/ws", reconnect: { initialDelayMs: 100, maxDelayMs: 100 } });
    const connected = client.connect();
    socket().drop();
    await welcome(); // on b
    await connected;
    socket().drop();
    expect(client.state).toBe("reconnecting");
    await clock.advance(100);
    expect(socket().url).toBe("ws://b/ws");
    socket().drop();
    await clock.advance(100);
    expect(socket().url).toBe("ws://c/ws");
    socket().drop();
    await clock.advance(100);
    expect(socket().url).toBe("ws://a/ws");
    await welcome();
    expect(client.state).toBe("connected");
    expect(client.url).toBe("ws://a/ws");
    expect(sockets.map((w) => w.url)).toEqual(["ws://a/ws", "ws://b/ws", "ws://b/ws", "ws://c/ws", "ws://a/ws"]);
  });

  it("a refusal no retry mends (a rejected token) ends the tries: the other servers are not asked", async () => {
    const { client, clock } = setup({ url: "ws://a/ws,ws://b/ws", token: "stale" });
    const connected = client.connect();
    const ws = socket();
    ws.open();
    ws.deliver(ws.last().requestId, { type: "ERROR", code: 201, message: "invalid token" });
    ws.deliver(0, { type: "CLOSE", code: 201, message: "invalid token" });
    const e = await rejection(connected);
    expect(e.codeName).toBe("INVALID_TOKEN");
    await clock.advance(60_000);
    expect(sockets.length).toBe(1);
    expect(client.state).toBe("disconnected");
  });
});

describe("requests", () => {
  it("matches replies to requests by id, in any order", async () => {
    const { client } = setup();
    void client.connect();
    const { ws } = await welcome();
    const a = client.joinRoom(1);
    const b = client.sendMessage(2, "hi");
    const [ja, sb] = [ws.requests("JOIN_ROOM")[0]!, ws.requests("SEND_MESSAGE")[0]!];
    expect(ja.requestId).not.toBe(sb.requestId);
    expect(sb.message).toEqual({ type: "SEND_MESSAGE", room: 2, body: "hi" });
    ws.deliver(sb.requestId, { type: "MESSAGE_ACK", room: 2, seq: 5, at: 99 });
    const info = { id: 1, name: "r", topic: "", visibility: "public", owner: 3, memberCount: 2, lastSeq: 4, createdAt: 1 } as const;
    ws.deliver(ja.requestId, { type: "ROOM", info });
    expect(await b).toEqual({ room: 2, seq: 5, at: 99 });
    expect(await a).toEqual(info);
  });

  it("turns ERROR into a typed ConfabError with code, name and retry hint", async () => {
    const { client } = setup();
    void client.connect();
    const { ws } = await welcome();
    const p = rejection(client.login("alice", "wrong-password"));
    reply(ws, { type: "ERROR", code: 207, message: "slow down", retryAfterMs: 1500 });
    const e = await p;
    expect(e).toMatchObject({ kind: "server", code: 207, codeName: "TOO_MANY_ATTEMPTS", retryAfterMs: 1500, serverMessage: "slow down" });
    expect(e.is("TOO_MANY_ATTEMPTS")).toBe(true);
    expect(e.message).toContain("TOO_MANY_ATTEMPTS (207)");

    const q = rejection(client.joinRoom(9));
    reply(ws, { type: "ERROR", code: 999, message: "from the future" });
    expect(await q).toMatchObject({ code: 999, codeName: "UNKNOWN" });
  });

  it("times out a request with no reply", async () => {
    const { client, clock } = setup({ requestTimeoutMs: 3000 });
    void client.connect();
    await welcome();
    const p = rejection(client.listMembers(1));
    await clock.advance(3000);
    expect(await p).toMatchObject({ kind: "timeout" });
  });

  it("refuses a reply of the wrong type", async () => {
    const { client } = setup();
    void client.connect();
    const { ws } = await welcome();
    const p = rejection(client.joinRoom(1));
    reply(ws, { type: "OK" });
    expect(await p).toMatchObject({ kind: "protocol" });
  });

  it("refuses to send a frame over the server's max_frame_len", async () => {
    const { client } = setup();
    void client.connect();
    const { ws } = await welcome();
    const e = await rejection(client.sendMessage(1, "x".repeat(70_000)));
    expect(e.kind).toBe("frame_too_large");
    expect(ws.requests("SEND_MESSAGE")).toEqual([]);
  });

  it("refuses what cannot be encoded, without sending", async () => {
    const { client } = setup();
    void client.connect();
    await welcome();
    expect((await rejection(client.joinRoom(-1))).kind).toBe("invalid_request");
    expect((await rejection(client.sendMessage(1, "\ud800"))).kind).toBe("invalid_request");
  });

  it("remembers the token from LOGIN and forgets it on LOGOUT", async () => {
    const { client } = setup();
    void client.connect();
    const { ws } = await welcome();
    const login = client.login("Alice", "password1");
    reply(ws, { type: "SESSION", user: 4, username: "alice", token: "t0k" });
    expect(await login).toEqual({ user: 4, username: "alice", token: "t0k" });
    expect(client.token).toBe("t0k");
    const out = client.logout();
    reply(ws, { type: "OK" });
    await out;
    expect(client.token).toBeUndefined();
    ws.deliver(0, { type: "CLOSE", code: 602, message: "logged out" });
    await flush();
    expect(client.state).toBe("disconnected");
  });
});

describe("the send queue", () => {
  it("holds requests made before the first WELCOME", async () => {
    const { client } = setup();
    void client.connect();
    const p = client.listRooms({ query: "x" });
    const { ws } = await welcome();
    const sent = ws.requests("LIST_ROOMS")[0]!;
    expect(sent.message).toEqual({ type: "LIST_ROOMS", query: "x", offset: 0, limit: 50, exact: false });
    ws.deliver(sent.requestId, { type: "ROOM_LIST", total: 0, rooms: [] });
    expect(await p).toEqual({ rooms: [], total: 0 });
  });

  it("a session that expired while away ends reconnection, and queued requests fail as not sent", async () => {
    const { client, clock } = setup({ token: "old" });
    const disconnected = record(client, "statechange");
    void client.connect();
    await welcome({ session: { user: 1, username: "a" } });
    socket().drop();
    const p = rejection(client.sendMessage(1, "x"));
    await clock.advance(500);
    const ws = socket();
    ws.open();
    expect(ws.requests("HELLO")[0]!.message.token).toBe("old");
    ws.deliver(ws.last().requestId, { type: "ERROR", code: 201, message: "expired" });
    ws.deliver(0, { type: "CLOSE", code: 201, message: "expired" });
    expect((await p).kind).toBe("not_sent");
    expect(client.state).toBe("disconnected");
    expect(client.token).toBeUndefined();
    expect(disconnected.at(-1)?.error?.codeName).toBe("INVALID_TOKEN");
    await clock.advance(60_000);
    expect(sockets.length).toBe(2);
  });

  it("holds requests made while reconnecting and sends them, in order, once connected", async () => {
    const { client, clock } = setup({ requestTimeoutMs: 5000 });
    void client.connect();
    await welcome();
    socket().drop();
    expect(client.state).toBe("reconnecting");
    const a = client.sendMessage(1, "one");
    const b = client.sendMessage(1, "two");
    await clock.advance(500);
    const { ws } = await welcome();
    const sends = ws.requests("SEND_MESSAGE");
    expect(sends.map((s) => s.message.body)).toEqual(["one", "two"]);
    ws.deliver(sends[0]!.requestId, { type: "MESSAGE_ACK", room: 1, seq: 1, at: 1 });
    ws.deliver(sends[1]!.requestId, { type: "MESSAGE_ACK", room: 1, seq: 2, at: 2 });
    expect((await a).seq).toBe(1);
    expect((await b).seq).toBe(2);
  });

  it("fails a queued request, saying it was not sent, when no connection comes within the timeout", async () => {
    const { client, clock } = setup({ requestTimeoutMs: 2000, reconnect: { initialDelayMs: 10_000, maxDelayMs: 10_000 } });
    void client.connect();
    await welcome();
    socket().drop();
    const p = rejection(client.sendMessage(1, "lost?"));
    await clock.advance(2000);
    const e = await p;
    expect(e.kind).toBe("not_sent");
    expect(e.message).toMatch(/not connected within 2000 ms.*not sent/);
  });

  it("fails requests in flight when the connection drops (never resent)", async () => {
    const { client, clock } = setup();
    void client.connect();
    await welcome();
    const p = rejection(client.sendMessage(1, "in flight"));
    socket().drop();
    expect((await p).kind).toBe("disconnected");
    await clock.advance(1000);
    const { ws } = await welcome();
    expect(ws.requests("SEND_MESSAGE")).toEqual([]);
  });

  it("fails at once when disconnected for good", async () => {
    const { client } = setup();
    expect((await rejection(client.myRooms())).kind).toBe("not_sent");
    void client.connect();
    await welcome();
    client.close();
    expect(client.state).toBe("disconnected");
    expect((await rejection(client.myRooms())).kind).toBe("not_sent");
  });
});

describe("events, resume and reconnection", () => {
  const ev = (room: number, seq: number, text = "m") =>
    ({ type: "EVENT", room, seq, at: 1, actor: 2, actorName: "bob", body: { kind: "message", text } }) as const;

  it("delivers room events once, and resumes from the last seq per room with the learned token", async () => {
    const { client, clock, states } = setup({ random: () => 0.25 });
    const events = record(client, "roomevent");
    const connected = record(client, "connected");
    const disconnected = record(client, "disconnected");
    void client.connect();
    const { ws } = await welcome();
    const login = client.login("bob", "password1");
    reply(ws, { type: "SESSION", user: 2, username: "bob", token: "T" });
    await login;
    ws.deliver(0, ev(10, 1));
    ws.deliver(0, ev(10, 2));
    ws.deliver(0, ev(10, 2)); // duplicate
    ws.deliver(0, ev(20, 7));
    expect(events.map((e) => [e.room, e.seq])).toEqual([[10, 1], [10, 2], [20, 7]]);

    ws.drop();
    expect(disconnected).toEqual([{ code: undefined, codeName: undefined, message: expect.any(String), willReconnect: true }]);
    await clock.advance(250);
    const again = await welcome({ session: { user: 2, username: "bob" } });
    expect(again.hello).toMatchObject({ token: "T", resume: [{ room: 10, after: 2 }, { room: 20, after: 7 }] });
    expect(connected.map((c) => c.reconnected)).toEqual([false, true]);
    again.ws.deliver(0, ev(10, 2)); // replay overlap is dropped
    again.ws.deliver(0, ev(10, 3));
    expect(events.map((e) => e.seq)).toEqual([1, 2, 7, 3]);
    expect(states).toEqual(["connecting", "connected", "reconnecting", "connected"]);
  });

  it("RESUME_GAP sets the room's seq, even lower, and is reported", async () => {
    const { client } = setup();
    const gaps = record(client, "resumegap");
    const events = record(client, "roomevent");
    void client.connect();
    const { ws } = await welcome();
    ws.deliver(0, ev(5, 40));
    ws.deliver(0, { type: "RESUME_GAP", room: 5, lastSeq: 38 });
    expect(client.lastSeen(5)).toBe(38);
    ws.deliver(0, ev(5, 39)); // a reused seq is delivered
    expect(gaps).toEqual([{ room: 5, lastSeq: 38 }]);
    expect(events.map((e) => e.seq)).toEqual([40, 39]);
  });

  it("stops tracking a room the user left", async () => {
    const { client } = setup({ token: "T" });
    void client.connect();
    const { ws } = await welcome({ session: { user: 2, username: "bob" } });
    ws.deliver(0, ev(5, 1));
    ws.deliver(0, { type: "EVENT", room: 5, seq: 2, at: 1, actor: 2, actorName: "bob", body: { kind: "member_left" } });
    ws.deliver(0, ev(6, 1));
    ws.deliver(0, { type: "EVENT", room: 6, seq: 2, at: 1, actor: 9, actorName: "x", body: { kind: "member_kicked", target: 2, targetName: "bob" } });
    expect(client.resumePoints()).toEqual([]);
  });

  it("backs off exponentially with full jitter", async () => {
    const samples = [0.999, 0.999, 0.999, 0.999, 0.999, 0.999];
    const { client, clock } = setup({
      random: () => samples.shift() ?? 0.999,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    });
    const delays: number[] = [];
    client.on("statechange", (s) => {
      if (s.state === "reconnecting") delays.push(s.delayMs);
    });
    void client.connect();
    for (let i = 0; i < 6; i++) {
      socket().drop();
      await clock.advance(1000);
    }
    expect(delays).toEqual([99, 199, 399, 799, 999, 999]);
  });

  it("sends PING at half the heartbeat and reconnects when nothing answers", async () => {
    const { client, clock } = setup();
    void client.connect();
    const { ws } = await welcome({ heartbeatMs: 1000 });
    await clock.advance(500);
    const ping = ws.requests("PING");
    expect(ping.length).toBe(1);
    ws.deliver(ping[0]!.requestId, { type: "PONG", nonce: ping[0]!.message.nonce });
    await clock.advance(1000);
    expect(client.state).toBe("connected");
    expect(ws.requests("PING").length).toBe(3);
    // Silence from now on: presumed dead a heartbeat after the next PING.
    await clock.advance(1500);
    expect(client.state).toBe("reconnecting");
    expect(ws.closedByClient).toBeDefined();
  });

  it("does not reconnect after CLOSE LOGGED_OUT, but does after SHUTTING_DOWN", async () => {
    {
      const { client, clock } = setup();
      const closes = record(client, "close");
      void client.connect();
      const { ws } = await welcome();
      ws.deliver(0, { type: "CLOSE", code: 602, message: "bye" });
      expect(closes).toEqual([{ code: 602, codeName: "LOGGED_OUT", message: "bye" }]);
      expect(client.state).toBe("disconnected");
      await clock.advance(60_000);
      expect(sockets.length).toBe(1);
    }
    sockets.length = 0;
    {
      const { client } = setup();
      void client.connect();
      const { ws } = await welcome();
      const p = rejection(client.sendMessage(1, "x"));
      ws.deliver(0, { type: "CLOSE", code: 503, message: "shutting down" });
      expect(await p).toMatchObject({ kind: "closed", codeName: "SHUTTING_DOWN" });
      expect(client.state).toBe("reconnecting");
    }
  });

  it("treats an undecodable frame as a broken connection, and ignores unknown event types", async () => {
    const { client, clock } = setup();
    const errors = record(client, "protocolerror");
    void client.connect();
    const { ws } = await welcome();
    ws.deliverRaw(new Uint8Array([0, 0, 0, 5, 0xbe, 0, 0, 0, 0]).buffer); // unknown event type
    expect(client.state).toBe("connected");
    ws.deliverRaw(new Uint8Array([0, 0, 0, 6, 0x80, 0, 0, 0, 0, 0x2a]).buffer); // truncated EVENT
    expect(errors.length).toBe(1);
    expect(errors[0]!.code).toBe(100);
    expect(client.state).toBe("reconnecting");
    await clock.advance(1000);
    const second = await welcome();
    second.ws.deliverRaw("text");
    expect(errors.length).toBe(2);
  });

  it("deduplicates notifications by id, and passes on the other events", async () => {
    const { client } = setup();
    const notes = record(client, "notification");
    const typing = record(client, "typing");
    const presence = record(client, "presence");
    const markers = record(client, "readmarkermoved");
    const announced = record(client, "roomannounced");
    void client.connect();
    const { ws } = await welcome();
    const n = { id: 5, kind: "mentioned", room: 1, roomName: "r", actor: 2, actorName: "bob", at: 1, read: false } as const;
    ws.deliver(0, { type: "NOTIFICATION", notification: n });
    ws.deliver(0, { type: "NOTIFICATION", notification: n });
    ws.deliver(0, { type: "NOTIFICATION", notification: { ...n, id: 6, kind: 42 } });
    ws.deliver(0, { type: "TYPING", room: 1, user: 2, username: "bob", typing: true });
    ws.deliver(0, { type: "PRESENCE", room: 1, changes: [{ user: 2, username: "bob", presence: "away" }] });
    ws.deliver(0, { type: "READ_MARKER_MOVED", room: 1, readSeq: 4, unread: 0 });
    const info = { id: 3, name: "new", topic: "", visibility: "public", owner: 2, memberCount: 1, lastSeq: 1, createdAt: 1 } as const;
    ws.deliver(0, { type: "ROOM_ANNOUNCED", info });
    expect(notes.map((x) => [x.id, x.kind])).toEqual([[5, "mentioned"], [6, 42]]);
    expect(typing).toEqual([{ room: 1, user: 2, username: "bob", typing: true }]);
    expect(presence).toEqual([{ room: 1, changes: [{ user: 2, username: "bob", presence: "away" }] }]);
    expect(markers).toEqual([{ room: 1, readSeq: 4, unread: 0 }]);
    expect(announced).toEqual([info]);
  });

  it("on() returns an unsubscribe function", async () => {
    const { client } = setup();
    const seen: string[] = [];
    const off = client.on("statechange", (s) => seen.push(s.state));
    void client.connect();
    off();
    await welcome();
    expect(seen).toEqual(["connecting"]);
  });
});
