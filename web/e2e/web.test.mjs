// End-to-end tests of the web client: Debian's Chromium, driven by
// playwright-core, against a real confabd serving the embedded web/dist.
// Run by scripts/test-web; the tests run in order and share one server
// and two browser contexts (alice and bob), as two people would.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { Confabd, ROOT } from "./confabd.mjs";

const SHOTS = join(ROOT, "target/web-screenshots");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };
const PASSWORD = "correct horse battery";

let server;
let browser;
let alice; // { context, page }
let bob;
const rooms = {};

function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync("which", ["chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("chromium is not installed (apt-get install chromium); scripts/test-web installs it");
  }
}

/** A browser context that records the browser notifications its pages raise. */
async function person(permissions = []) {
  const context = await browser.newContext({ viewport: DESKTOP, permissions });
  context.setDefaultTimeout(10_000);
  await context.addInitScript(() => {
    window.__notifications = [];
    const Real = window.Notification;
    if (Real === undefined) return;
    const Recording = function (title, options) {
      window.__notifications.push({ title, body: options?.body ?? "" });
      return new Real(title, options);
    };
    Object.defineProperty(Recording, "permission", { get: () => Real.permission });
    Recording.requestPermission = (...a) => Real.requestPermission(...a);
    window.Notification = Recording;
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  return { context, page };
}

/** Screenshots of the page as it is, at desktop and phone widths. */
async function shoot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}-desktop.png`) });
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(400);
  await page.screenshot({ path: join(SHOTS, `${name}-phone.png`) });
  await page.setViewportSize(DESKTOP);
}

async function register(p, username) {
  await p.page.goto(server.base + "/");
  await p.page.getByRole("tab", { name: "Register" }).click();
  await p.page.getByLabel("Username").fill(username);
  await p.page.getByLabel("Password").fill(PASSWORD);
  await p.page.getByRole("button", { name: "Create account" }).click();
  await p.page.getByRole("heading", { name: "Rooms", exact: true }).waitFor();
}

async function createRoom(page, name, topic, visibility) {
  await nav(page).getByRole("link", { name: "Browse rooms" }).click();
  await page.getByRole("button", { name: "+ New room" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Name", { exact: true }).fill(name);
  await dialog.getByLabel("Description").fill(topic);
  if (visibility === "private") await dialog.getByLabel(/Private/).check();
  await dialog.getByRole("button", { name: "Create room" }).click();
  await page.waitForURL(/\/chat\/\d+$/);
  await page.getByRole("heading", { name, exact: true }).waitFor();
  return Number(new URL(page.url()).pathname.split("/")[2]);
}

async function say(page, text) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
}

const nav = (page) => page.getByRole("navigation", { name: "Rooms and pages" });
const messages = (page) => page.locator(".timeline .msg");
const status = (page) => page.locator(".conn").getAttribute("data-state");

async function until(what, cond, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  server = await Confabd.start();
  // The binary must serve this checkout's web/dist (scripts/check-web keeps it equal to the sources).
  const served = await (await fetch(server.base + "/")).text();
  const built = readFileSync(join(ROOT, "web/dist/index.html"), "utf8");
  assert.equal(served, built, "confabd serves another web/dist than this checkout's: rebuild it (cargo build -p confab-server)");
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
  alice = await person();
  bob = await person(["notifications"]);
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test("the server answers /chat/… with the client's page, with its policy and caching headers", async () => {
  const r = await fetch(server.base + "/chat/123");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/html/);
  assert.equal(r.headers.get("cache-control"), "no-cache");
  assert.match(r.headers.get("content-security-policy"), /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+ wss:/);
  const script = (await r.text()).match(/src="(\/assets\/[^"]+\.js)"/)[1];
  const asset = await fetch(server.base + script);
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get("cache-control"), /immutable/);
  const api = await fetch(server.base + "/api/no/such/thing");
  assert.equal(api.status, 404);
  assert.equal((await api.json()).error.name, "UNKNOWN_FRAME_TYPE");
});

test("two people register, create and join a room, chat both ways, see typing and presence, edit and delete", async () => {
  await alice.page.goto(server.base + "/");
  await alice.page.getByRole("heading", { name: "Log in to Confab" }).waitFor();
  assert.equal(await status(alice.page), "connected");
  await shoot(alice.page, "login");
  await register(alice, "alice");
  await register(bob, "bob");

  rooms.general = await createRoom(alice.page, "general", "Anything goes", "public");
  // Bob's list shows the new room live (ROOM_ANNOUNCED), with its member count.
  const card = bob.page.locator(`.room-card[data-room="${rooms.general}"]`);
  await card.getByText("Members: 1").waitFor();
  await shoot(bob.page, "rooms");
  await card.getByRole("button", { name: "Join general" }).click();
  await bob.page.waitForURL(`**/chat/${rooms.general}`);
  await alice.page.getByText("bob joined").waitFor();
  await alice.page.locator('.members [data-user="bob"][data-presence="online"]').waitFor();

  // Typing, both ways.
  await bob.page.getByLabel("Message", { exact: true }).fill("hello al");
  await alice.page.getByTestId("typing").getByText("bob is typing…").waitFor();
  await bob.page.getByLabel("Message", { exact: true }).press("Enter");
  await messages(alice.page).filter({ hasText: "hello al" }).waitFor();
  await alice.page.getByLabel("Message", { exact: true }).pressSequentially("hi bob");
  await bob.page.getByTestId("typing").getByText("alice is typing…").waitFor();
  await alice.page.getByLabel("Message", { exact: true }).press("Enter");
  await messages(bob.page).filter({ hasText: "hi bob" }).waitFor();
  // Shift+Enter is a new line, not a send.
  const box = alice.page.getByLabel("Message", { exact: true });
  await box.fill("line one");
  await box.press("Shift+Enter");
  await box.pressSequentially("line two");
  await box.press("Enter");
  await messages(bob.page).filter({ hasText: /line one\s+line two/ }).waitFor();

  // Presence: bob goes away and comes back.
  await bob.page.getByRole("link", { name: /Profile and settings/ }).click();
  await bob.page.getByLabel("Show me as away").check();
  await alice.page.locator('.members [data-user="bob"][data-presence="away"]').waitFor();
  await bob.page.getByLabel("Show me as away").uncheck();
  await alice.page.locator('.members [data-user="bob"][data-presence="online"]').waitFor();
  await bob.page.goBack();
  await bob.page.getByRole("heading", { name: "general", exact: true }).waitFor();

  // Edit, then delete, alice's message; bob sees both.
  const mine = messages(alice.page).filter({ hasText: "hi bob" });
  await mine.hover();
  await mine.getByRole("button", { name: /^Edit message/ }).click();
  const edit = alice.page.getByLabel("Edit your message");
  await edit.fill("hi bob, edited");
  await edit.press("Enter");
  const theirs = messages(bob.page).filter({ hasText: "hi bob, edited" });
  await theirs.getByText("(edited)").waitFor();
  await mine.hover();
  await mine.getByRole("button", { name: /^Delete message/ }).click();
  await alice.page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await messages(bob.page).filter({ hasText: "This message was deleted." }).waitFor();
  await shoot(bob.page, "chat");
});

test("an admin invites by username and the invitee accepts", async () => {
  rooms.secret = await createRoom(alice.page, "secret", "Invitation only", "private");
  await alice.page.goto(`${server.base}/chat/${rooms.secret}/admin`);
  const panel = alice.page.getByRole("dialog");
  await panel.getByLabel("Username to invite").fill("bob");
  await panel.getByRole("button", { name: "Invite", exact: true }).click();
  await panel.getByText("bob is invited.").waitFor();
  await alice.page.keyboard.press("Escape");
  await alice.page.waitForURL(`**/chat/${rooms.secret}`);

  await bob.page.locator(".toast").filter({ hasText: "alice invited you to secret" }).waitFor();
  await bob.page
    .getByRole("link", { name: /^Notifications/ })
    .first()
    .click();
  const item = bob.page.locator(".notifications li").filter({ hasText: "alice invited you to secret" });
  await shoot(bob.page, "notifications");
  await item.getByRole("button", { name: "Accept" }).click();
  await bob.page.waitForURL(`**/chat/${rooms.secret}`);
  await bob.page.getByRole("heading", { name: "secret", exact: true }).waitFor();
  await alice.page.getByText("bob joined").waitFor();
});

test("a request to join a private room is approved", async () => {
  rooms.vault = await createRoom(alice.page, "vault", "", "private");
  await bob.page.goto(`${server.base}/chat/${rooms.vault}`);
  await bob.page.getByText("You are not a member of this room.").waitFor();
  await bob.page.getByRole("button", { name: "Request to join" }).click();
  await bob.page.getByText("Request sent").waitFor();

  await alice.page.locator(".toast").filter({ hasText: "bob asks to join vault" }).waitFor();
  await alice.page.goto(`${server.base}/chat/${rooms.vault}/admin`);
  await alice.page.getByRole("button", { name: "Approve bob" }).click();
  await alice.page.getByRole("dialog").getByText("No pending requests.").waitFor();
  // Bob's page turns into the room at once.
  await bob.page.getByRole("heading", { name: "vault", exact: true }).waitFor();
  await bob.page.getByLabel("Message", { exact: true }).waitFor();
});

test("a kick and a ban take effect in the other browser at once", async () => {
  await bob.page.goto(`${server.base}/chat/${rooms.general}`);
  await alice.page.goto(`${server.base}/chat/${rooms.general}/admin`);
  await alice.page.getByRole("button", { name: "Kick bob" }).waitFor();
  await shoot(alice.page, "admin");
  await alice.page.getByRole("button", { name: "Kick bob" }).click();
  await bob.page.getByTestId("removed").getByText("alice removed you from general").waitFor();
  // A kicked user may come back to a public room.
  await bob.page.getByRole("button", { name: "Join", exact: true }).click();
  await bob.page.getByLabel("Message", { exact: true }).waitFor();
  await alice.page.locator('.admin [data-member="bob"]').waitFor();
  await alice.page.getByRole("button", { name: "Ban bob" }).click();
  await bob.page.getByTestId("removed").getByText("alice banned you from general").waitFor();
  await alice.page.locator('.admin [data-banned="bob"]').waitFor();
  // A banned user does not even see the room.
  await nav(bob.page).getByRole("link", { name: "Browse rooms" }).click();
  await bob.page.locator(`.room-card[data-room="${rooms.vault}"]`).waitFor();
  assert.equal(await bob.page.locator(`.room-card[data-room="${rooms.general}"]`).count(), 0);
  await alice.page.keyboard.press("Escape");
});

test("a mention raises a browser notification when they are allowed", async () => {
  await bob.page.goto(`${server.base}/`);
  await bob.page.getByRole("heading", { name: "Rooms", exact: true }).waitFor();
  await alice.page.goto(`${server.base}/chat/${rooms.secret}`);
  await say(alice.page, "@bob, look at this");
  await until("the mention's browser notification", async () =>
    (await bob.page.evaluate(() => window.__notifications)).some((n) => n.body === "alice mentioned you in secret"),
  );
  // …and a toast for the message in a room bob is not viewing.
  await bob.page.locator(".toast").filter({ hasText: "alice: @bob, look at this" }).waitFor();
});

test("a server restart: reconnecting, then connected, and nothing lost", async () => {
  await bob.page.goto(`${server.base}/chat/${rooms.secret}`);
  await messages(bob.page).filter({ hasText: "@bob, look at this" }).waitFor();
  await server.stop();
  await until("alice's indicator to say reconnecting", async () => (await status(alice.page)) === "reconnecting");
  await until("bob's indicator to say reconnecting", async () => (await status(bob.page)) === "reconnecting");
  await alice.page
    .getByText(/Reconnecting/)
    .first()
    .waitFor();
  // Sent while the server is down: waits, then goes out on reconnection.
  await say(alice.page, "sent during the outage");
  await alice.page.locator('[data-outgoing="sending"]').waitFor();
  await server.launch();
  await until("alice's indicator to say connected", async () => (await status(alice.page)) === "connected", 20_000);
  await until("bob's indicator to say connected", async () => (await status(bob.page)) === "connected", 20_000);
  await messages(bob.page).filter({ hasText: "sent during the outage" }).waitFor();
  await until("alice's pending message to be acknowledged", async () => (await alice.page.locator("[data-outgoing]").count()) === 0);
  await messages(alice.page).filter({ hasText: "sent during the outage" }).waitFor();
  await say(bob.page, "back again");
  await messages(alice.page).filter({ hasText: "back again" }).waitFor();
  await shoot(alice.page, "chat-after-restart");
});

test("the server unreachable page at load, and recovery when the server returns", async () => {
  await alice.page.goto(`${server.base}/profile`);
  await alice.page.getByRole("heading", { name: "Profile and settings" }).waitFor();
  await shoot(alice.page, "profile");
  // The service worker keeps the page's files for when the server is down.
  await alice.page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    for (let i = 0; i < 100 && (await caches.match("/")) === undefined; i++) await new Promise((r) => setTimeout(r, 100));
  });
  await server.stop();
  const page = await alice.context.newPage();
  await page.goto(`${server.base}/`);
  await page.getByTestId("unreachable").waitFor();
  assert.notEqual(await status(page), "connected");
  await shoot(page, "unreachable");
  await server.launch();
  await page.getByRole("heading", { name: "Rooms", exact: true }).waitFor({ timeout: 20_000 });
  assert.equal(await status(page), "connected");
  await page.close();
});
