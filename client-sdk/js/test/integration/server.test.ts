/**
 * The SDK against a real confabd over ws:// (Node's `ws` package as the
 * WebSocket): accounts, rooms, messages between two clients, history
 * paging, error codes, and reconnects that lose no message.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import {
  ConfabClient,
  ConfabError,
  RichText,
  HttpError,
  fileLink,
  httpBaseOf,
  uploadFile,
  setAvatar,
  clearAvatar,
  type ConnectionState,
  type RoomEvent,
  type WebSocketConstructor,
} from "../../src/index.js";
import { Confabd, CuttableWebSocket, until } from "./confabd.js";

let server: Confabd;
const clients: ConfabClient[] = [];
let counter = 0;

beforeAll(async () => {
  server = await Confabd.start();
});

afterAll(async () => {
  await server?.dispose();
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function client(options: Parameters<Confabd["client"]>[0] = {}): ConfabClient {
  const c = server.client(options);
  clients.push(c);
  return c;
}

/** A fresh, unique username. */
function name(prefix: string): string {
  counter += 1;
  return `${prefix}${process.pid % 10000}x${counter}`;
}

/** A connected client, registered as a new user. */
async function newUser(prefix: string, options: Parameters<Confabd["client"]>[0] = {}) {
  const c = client(options);
  await c.connect();
  const username = name(prefix);
  const session = await c.register(username, "correct horse");
  return { c, username, session };
}

function messages(events: RoomEvent[], room: number): { seq: number; text: string }[] {
  return events
    .filter((e) => e.room === room && e.body.kind === "message")
    .map((e) => ({ seq: e.seq, text: (e.body as { text: string }).text }));
}

describe("against a real confabd", () => {
  it("registers, logs in elsewhere, refuses a wrong password, and authenticates by token", async () => {
    const { c, username, session } = await newUser("reg");
    expect(session.username).toBe(username);
    expect(session.user).toBeGreaterThan(0);
    expect(c.welcome?.server).toMatch(/^confabd/);

    const other = client();
    await other.connect();
    const again = await other.login(username.toUpperCase(), "correct horse");
    expect(again.user).toBe(session.user);

    const wrong = client();
    await wrong.connect();
    const e = await wrong.login(username, "not the password").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfabError);
    expect(e).toMatchObject({ kind: "server", code: 202, codeName: "INVALID_CREDENTIALS" });

    const byToken = client({ token: session.token });
    const welcome = await byToken.connect();
    expect(welcome.session).toEqual({ user: session.user, username });
  });

  it("creates and joins a room, and carries messages both ways between two clients", async () => {
    const alice = await newUser("alice");
    const bob = await newUser("bob");
    const aliceEvents: RoomEvent[] = [];
    const bobEvents: RoomEvent[] = [];
    alice.c.on("roomevent", (e) => aliceEvents.push(e));
    bob.c.on("roomevent", (e) => bobEvents.push(e));

    const room = await alice.c.createRoom(name("room"), { topic: "tests" });
    expect(room).toMatchObject({ visibility: "public", owner: alice.session.user, memberCount: 1 });
    const joined = await bob.c.joinRoom(room.id);
    expect(joined.memberCount).toBe(2);
    const members = await alice.c.listMembers(room.id);
    expect(members.map((m) => [m.username, m.role])).toEqual([
      [alice.username, "owner"],
      [bob.username, "member"],
    ]);

    const ack = await alice.c.sendMessage(room.id, "hello, bob 👋");
    await until(() => messages(bobEvents, room.id).length === 1, 5000, "bob's copy");
    expect(messages(bobEvents, room.id)).toEqual([{ seq: ack.seq, text: "hello, bob 👋" }]);
    const back = await bob.c.sendMessage(room.id, "hi alice");
    await until(() => messages(aliceEvents, room.id).some((m) => m.seq === back.seq), 5000, "alice's copy");
    expect(bobEvents.find((e) => e.seq === back.seq)?.actorName).toBe(bob.username);

    const edited = await bob.c.editMessage(room.id, back.seq, "hi alice!");
    await until(() => aliceEvents.some((e) => e.seq === edited.seq), 5000, "the edit");
    expect(aliceEvents.find((e) => e.seq === edited.seq)?.body).toEqual({
      kind: "message_edited",
      targetSeq: back.seq,
      text: "hi alice!",
    });
  });

  it("rich messages: spans over emoji and CJK, an edit with spans, stickers, and every refusal's code", async () => {
    const alice = await newUser("rich");
    const bob = await newUser("rich");
    const bobEvents: RoomEvent[] = [];
    bob.c.on("roomevent", (e) => bobEvents.push(e));
    const room = await alice.c.createRoom(name("rich"));
    await bob.c.joinRoom(room.id);

    const msg = new RichText().plain("日本 ").bold("👍").plain(" ").link("docs", "https://example.com").plain(" ").color("red", "red");
    const ack = await alice.c.sendMessage(room.id, msg);
    await until(() => bobEvents.some((e) => e.seq === ack.seq), 5000, "bob's copy");
    expect(bobEvents.find((e) => e.seq === ack.seq)?.body).toEqual({ kind: "message", text: msg.text, spans: msg.spans });

    const edit = await alice.c.editMessage(room.id, ack.seq, new RichText().italic("日本語"));
    await until(() => bobEvents.some((e) => e.seq === edit.seq), 5000, "the edit");
    expect(bobEvents.find((e) => e.seq === edit.seq)?.body).toEqual({
      kind: "message_edited",
      targetSeq: ack.seq,
      text: "日本語",
      spans: [{ start: 0, end: 9, kind: "italic" }],
    });

    const stickers = await bob.c.listStickers();
    expect(stickers.length).toBeGreaterThanOrEqual(20);
    const first = stickers[0]!;
    const sticker = await bob.c.sendSticker(room.id, first.id);
    const page = await alice.c.history(room.id, { limit: 10 });
    const byId = new Map(page.events.map((e) => [e.seq, e.body]));
    expect(byId.get(sticker.seq)).toEqual({ kind: "message", text: `:${first.id}:`, sticker: first.id });
    const edited = byId.get(ack.seq) as { editedAt?: number };
    expect(byId.get(ack.seq)).toMatchObject({ kind: "message", text: "日本語", spans: [{ start: 0, end: 9, kind: "italic" }] });
    expect(edited.editedAt).toBeGreaterThan(0);

    const refused = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as ConfabError).code;
    const r = room.id;
    expect(await refused(alice.c.sendMessage(r, { text: "日本", spans: [{ start: 0, end: 2, kind: "bold" }] }))).toBe(407);
    expect(await refused(alice.c.sendMessage(r, { text: "ab", spans: [{ start: 0, end: 2, kind: "color", color: 16 }] }))).toBe(408);
    const js = { start: 0, end: 2, kind: "link", url: "javascript:alert(1)" } as const;
    expect(await refused(alice.c.sendMessage(r, { text: "ab", spans: [js] }))).toBe(409);
    expect(await refused(alice.c.sendSticker(r, "no-such-sticker"))).toBe(410);
    expect(await refused(bob.c.editMessage(r, sticker.seq, "text"))).toBe(411);
    // Nothing of the refused requests was stored.
    expect((await alice.c.history(r, { limit: 1 })).events[0]?.seq).toBe(sticker.seq);
  });

  it("direct chats: one room per pair, named after the other user, closed to governance", async () => {
    const alice = await newUser("dm");
    const bob = await newUser("dm");
    const carol = await newUser("dm");
    const announced: number[] = [];
    bob.c.on("roomannounced", (info) => announced.push(info.id));
    const mine = await alice.c.openDirect(bob.username);
    expect(mine).toMatchObject({ name: bob.username, visibility: "private", directUser: bob.session.user, directUsername: bob.username });
    await until(() => announced.includes(mine.id), 5000, "bob's announcement");
    const theirs = await bob.c.openDirect(alice.session.user);
    expect(theirs).toMatchObject({ id: mine.id, name: alice.username, directUser: alice.session.user });
    const plain = await alice.c.createRoom(name("notdm"));
    expect(plain.directUser).toBeUndefined();
    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as ConfabError).code;
    expect(await code(carol.c.joinRoom(mine.id))).toBe(325);
    expect(await code(alice.c.invite(mine.id, carol.username))).toBe(325);
    expect(await code(alice.c.openDirect(alice.username))).toBe(313);
    expect(await code(alice.c.openDirect("nobody-at-all"))).toBe(311);
  });

  it("profiles and password change: display name, bio, email only to its owner, PROFILE_CHANGED, CLOSE 603 elsewhere", async () => {
    const alice = await newUser("prof");
    const bob = await newUser("prof");
    const room = await alice.c.createRoom(name("prof"));
    await bob.c.joinRoom(room.id);
    const changes: string[] = [];
    bob.c.on("profilechanged", (p) => changes.push(...p.changes.map((c) => `${c.username}:${c.displayName ?? ""}`)));

    const stored = await alice.c.updateProfile({ displayName: "  Alice A. ", bio: "line one\nline two", email: "alice@example.com" });
    expect(stored).toMatchObject({ user: alice.session.user, displayName: "Alice A.", bio: "line one\nline two", email: "alice@example.com" });
    const seen = await bob.c.getProfile(alice.session.user);
    expect(seen.displayName).toBe("Alice A.");
    expect(seen.email).toBeUndefined();
    expect((await alice.c.getProfile(alice.session.user)).email).toBe("alice@example.com");
    await until(() => changes.includes(`${alice.username}:Alice A.`), 5000, "bob's PROFILE_CHANGED");

    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as ConfabError).code;
    expect(await code(alice.c.updateProfile({ displayName: "x".repeat(65) }))).toBe(208);
    expect(await code(alice.c.updateProfile({ bio: "b".repeat(501) }))).toBe(209);
    expect(await code(alice.c.updateProfile({ email: "not an email" }))).toBe(210);
    expect(await code(bob.c.getProfile(987654321))).toBe(311);

    // A second session of alice's is ended by the change; this one stays.
    const sameSession = client({ token: alice.session.token });
    await sameSession.connect();
    const closes: number[] = [];
    const second = client();
    await second.connect();
    await second.login(alice.username, "correct horse");
    second.on("close", (c) => closes.push(c.code));
    expect(await code(alice.c.changePassword("wrong password", "a new password"))).toBe(202);
    expect(await code(alice.c.changePassword("correct horse", "short"))).toBe(205);
    await alice.c.changePassword("correct horse", "a new password");
    await until(() => closes.includes(603), 5000, "CLOSE 603 on the other session");
    expect(alice.c.state).toBe("connected");
    expect(sameSession.state).toBe("connected");
    expect(second.session).toBeUndefined();
    await alice.c.sendMessage(room.id, "still here");
    const again = client();
    await again.connect();
    expect(await code(again.login(alice.username, "correct horse"))).toBe(202);
    await again.login(alice.username, "a new password");
  });

  it("files over HTTP: upload with progress, a signed link that serves the bytes, refusals with their code and reason", async () => {
    const alice = await newUser("file");
    const outsider = await newUser("file");
    const room = await alice.c.createRoom(name("files"));
    const opts = { baseUrl: httpBaseOf(server.url), token: alice.session.token };
    // A 1×1 PNG.
    const png = Uint8Array.from(
      Buffer.from(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f80f0000010100015d5b2c8a0000000049454e44ae426082",
        "hex",
      ),
    );
    const progress: number[] = [];
    const file = await uploadFile(opts, room.id, png, { name: "dot.png", contentType: "image/png", onProgress: (s) => progress.push(s) });
    expect(file).toMatchObject({ room: room.id, uploader: alice.session.user, name: "dot.png", contentType: "image/png", size: png.length, width: 1, height: 1 });
    expect(progress.at(-1)).toBe(png.length);
    for (const url of [file.url, (await fileLink(opts, file.id)).url]) {
      const r = await fetch(url); // no token: the signature is the permission
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("image/png");
      expect(new Uint8Array(await r.arrayBuffer())).toEqual(png);
    }
    const tampered = await fetch(file.url.replace(/sig=./, (m) => (m.endsWith("0") ? "sig=1" : "sig=0")));
    expect(tampered.status).toBe(403);

    const refused = async (p: Promise<unknown>) => {
      const e = await p.catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HttpError);
      return [(e as HttpError).code, (e as HttpError).reason];
    };
    const exe = Uint8Array.from(Buffer.from("MZ\x90\x00 an executable", "latin1"));
    expect(await refused(uploadFile(opts, room.id, exe, { name: "x.png", contentType: "image/png" }))).toEqual([414, "type_mismatch"]);
    expect(await refused(uploadFile(opts, room.id, png, { name: "a/b.png", contentType: "image/png" }))).toEqual([414, "name_has_path"]);
    const theirs = { baseUrl: opts.baseUrl, token: outsider.session.token };
    expect((await refused(uploadFile(theirs, room.id, png, { name: "dot.png", contentType: "image/png" })))[0]).toBe(301);
    expect((await refused(fileLink(theirs, file.id)))[0]).toBe(301);

    // Sent in a message (no text), the file's description reaches the
    // room with it and history keeps it; it goes with one message only.
    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as ConfabError).code;
    const seen: RoomEvent[] = [];
    alice.c.on("roomevent", (e) => seen.push(e));
    const ack = await alice.c.sendFiles(room.id, "", [file.id]);
    const described = { id: file.id, name: "dot.png", contentType: "image/png", size: png.length, width: 1, height: 1 };
    await until(() => seen.some((e) => e.seq === ack.seq), 5000, "the message with its file");
    expect(seen.find((e) => e.seq === ack.seq)?.body).toEqual({ kind: "message", text: "", attachments: [described] });
    const page = await alice.c.history(room.id, { before: ack.seq + 1, limit: 1 });
    expect(page.events[0]?.body).toMatchObject({ attachments: [described] });
    expect(await code(alice.c.sendFiles(room.id, "again", [file.id]))).toBe(413);
    expect(await code(alice.c.sendFiles(room.id, "", [file.id + 1000]))).toBe(412);

    // An avatar: set from a PNG, shown in the profile, readable by another
    // signed-in user, refused when it is not an image, cleared.
    const set = await setAvatar(opts, png, "image/png");
    expect(set.avatar).toBeGreaterThan(0);
    expect((await outsider.c.getProfile(alice.session.user)).avatar).toBe(set.avatar);
    const seenByOutsider = await fileLink({ baseUrl: opts.baseUrl, token: outsider.session.token }, set.avatar ?? 0);
    expect(new Uint8Array(await (await fetch(seenByOutsider.url)).arrayBuffer())).toEqual(png);
    expect(await refused(setAvatar(opts, exe, "image/png"))).toEqual([414, "type_mismatch"]);
    expect(await clearAvatar(opts)).toEqual({});
    expect((await alice.c.getProfile(alice.session.user)).avatar).toBeUndefined();
  });

  it("pages through history, newest first, without gaps", async () => {
    const { c } = await newUser("pager");
    const room = await c.createRoom(name("hist"));
    const sent: number[] = [];
    for (let i = 0; i < 25; i++) sent.push((await c.sendMessage(room.id, `m${i}`)).seq);

    const seqs: number[] = [];
    let before: number | undefined;
    let pages = 0;
    for (;;) {
      const page = await c.history(room.id, { limit: 10, ...(before === undefined ? {} : { before }) });
      pages++;
      seqs.push(...page.events.map((e) => e.seq));
      if (!page.hasMore) break;
      before = Math.min(...page.events.map((e) => e.seq));
    }
    // 25 messages after ROOM_CREATED (seq 1): 26 events in 3 pages.
    expect(pages).toBe(3);
    expect(seqs).toEqual([...Array(26).keys()].map((i) => 26 - i));
    expect(sent).toEqual([...Array(25).keys()].map((i) => i + 2));
  });

  it("reports error codes as typed errors (ROOM_NOT_FOUND), and the connection stays usable", async () => {
    const { c } = await newUser("err");
    const e = await c.joinRoom(987_654_321).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfabError);
    expect(e).toMatchObject({ kind: "server", code: 300, codeName: "ROOM_NOT_FOUND" });
    expect((e as ConfabError).is("ROOM_NOT_FOUND")).toBe(true);
    const bad = await c.history(987_654_321, { limit: 0 }).catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(ConfabError);
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
    expect(c.state).toBe("connected");
  });

  it("governance round trip: invite by name, accept, notifications", async () => {
    const owner = await newUser("own");
    const guest = await newUser("gst");
    const notes: string[] = [];
    guest.c.on("notification", (n) => notes.push(String(n.kind)));
    const room = await owner.c.createRoom(name("priv"), { visibility: "private" });
    await owner.c.invite(room.id, guest.username);
    await until(() => notes.includes("invited"), 5000, "the invitation");
    const info = await guest.c.acceptInvite(room.id);
    expect(info.memberCount).toBe(2);
    const page = await guest.c.notifications({ unreadOnly: true });
    expect(page.items.map((n) => n.kind)).toContain("invited");
    const { unreadTotal } = await guest.c.myRooms();
    expect(unreadTotal).toBe(0);
  });

  it("with several URLs, skips a server that is down and connects to the next", async () => {
    // A port nothing listens on: bound, then closed.
    const net = await import("node:net");
    const dead = await new Promise<number>((resolve) => {
      const l = net.createServer().listen(0, "127.0.0.1", () => {
        const port = (l.address() as { port: number }).port;
        l.close(() => resolve(port));
      });
    });
    const c = client({ url: `ws://127.0.0.1:${dead}/ws,${server.url}` });
    await c.connect();
    expect(c.url).toBe(server.url);
    const session = await c.register(name("multi"), "correct horse");
    expect(session.username).toMatch(/^multi/);
  });

  it("resumes after a dropped connection and loses no message", async () => {
    const alice = await newUser("ra");
    const bob = await newUser("rb", {
      WebSocket: CuttableWebSocket as unknown as WebSocketConstructor,
      // Full jitter would pick anywhere in [0, 1500] ms: pin it near the top
      // so that alice's messages go out while bob is away.
      reconnect: { initialDelayMs: 1500, maxDelayMs: 1500 },
      random: () => 0.999,
    });
    const room = await alice.c.createRoom(name("resume"));
    await bob.c.joinRoom(room.id);
    const bobEvents: RoomEvent[] = [];
    bob.c.on("roomevent", (e) => bobEvents.push(e));
    const states: ConnectionState[] = [];
    bob.c.on("statechange", (s) => states.push(s.state));

    await alice.c.sendMessage(room.id, "before");
    await until(() => messages(bobEvents, room.id).length === 1, 5000, "the first message");

    expect(bob.c.resumePoints()).toContainEqual({ room: room.id, after: bobEvents.at(-1)?.seq });
    CuttableWebSocket.cutAll();
    await until(() => states.includes("reconnecting"), 5000, "bob reconnecting");
    // Sent while bob is away: replayed to him on resume.
    for (const t of ["while", "bob", "was", "away"]) await alice.c.sendMessage(room.id, t);
    await until(() => bob.c.state === "connected", 10_000, "bob back");
    await alice.c.sendMessage(room.id, "after");
    await until(() => messages(bobEvents, room.id).length === 6, 5000, "every message");

    const got = messages(bobEvents, room.id);
    expect(got.map((m) => m.text)).toEqual(["before", "while", "bob", "was", "away", "after"]);
    const seqs = got.map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(states).toEqual(["reconnecting", "connected"]);
  });

  it("rides out a server restart: queued requests are sent after it, and nothing is lost", async () => {
    const alice = await newUser("sa", { requestTimeoutMs: 30_000 });
    const bob = await newUser("sb");
    const room = await alice.c.createRoom(name("restart"));
    await bob.c.joinRoom(room.id);
    const bobEvents: RoomEvent[] = [];
    bob.c.on("roomevent", (e) => bobEvents.push(e));
    const closes: string[] = [];
    alice.c.on("close", (c) => closes.push(c.codeName));
    const aliceStates: ConnectionState[] = [];
    const bobStates: ConnectionState[] = [];
    alice.c.on("statechange", (s) => aliceStates.push(s.state));
    bob.c.on("statechange", (s) => bobStates.push(s.state));

    const first = await alice.c.sendMessage(room.id, "one");
    await until(() => messages(bobEvents, room.id).length === 1, 5000, "the first message");

    await server.stop(); // SIGTERM: CLOSE SHUTTING_DOWN, then exit
    await until(() => aliceStates.includes("reconnecting") && bobStates.includes("reconnecting"), 10_000, "both reconnecting");
    expect(closes).toContain("SHUTTING_DOWN");
    // Made during the outage: waits for the reconnect, is not dropped.
    const queued = alice.c.sendMessage(room.id, "two");
    await server.launch();
    const ack = await queued;
    expect(ack.seq).toBeGreaterThan(first.seq);
    await until(() => messages(bobEvents, room.id).length === 2, 10_000, "the queued message");
    expect(messages(bobEvents, room.id).map((m) => m.text)).toEqual(["one", "two"]);
    expect(alice.c.session?.username).toBe(alice.username);
  });
});
