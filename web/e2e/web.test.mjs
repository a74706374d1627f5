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

/**
 * The page's visible controls (links, buttons, fields, menu items,
 * images by role) that a screen reader could not name: no aria-label,
 * aria-labelledby, <label>, rendered text, image alt or title.
 */
function unnamedControls(page) {
  return page.evaluate(() => {
    const shown = (el) => {
      const r = el.getBoundingClientRect();
      return getComputedStyle(el).visibility !== "hidden" && (r.width > 0 || r.height > 0);
    };
    const text = (el) => (el.innerText ?? "").trim();
    const fields = ["INPUT", "TEXTAREA", "SELECT"];
    const unnamed = [];
    const controls = "a[href], button, input:not([type=hidden]), textarea, select, [role=menuitem], [role=tab], [role=radio], [role=img]";
    for (const el of document.querySelectorAll(controls)) {
      if (!shown(el)) continue;
      let name = (el.getAttribute("aria-label") ?? "").trim();
      if (name === "" && el.hasAttribute("aria-labelledby")) {
        name = el
          .getAttribute("aria-labelledby")
          .split(/\s+/)
          .map((id) => document.getElementById(id)?.textContent ?? "")
          .join(" ")
          .trim();
      }
      if (name === "" && el.labels) name = [...el.labels].map(text).join(" ").trim();
      if (name === "" && !fields.includes(el.tagName)) {
        name = text(el) || [...el.querySelectorAll("img[alt]")].map((i) => i.alt).join(" ").trim();
      }
      if (name === "") name = (el.getAttribute("title") ?? "").trim();
      if (name === "") unnamed.push(el.outerHTML.slice(0, 160));
    }
    return unnamed;
  });
}

/**
 * Screenshots of the page as it is, at desktop and phone widths; at both,
 * every control has a name a screen reader can read, and at 375 px
 * nothing is wider than the screen (no sideways scrolling).
 */
async function shoot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  assert.deepEqual(await unnamedControls(page), [], `${name} (desktop): controls without an accessible name`);
  await page.screenshot({ path: join(SHOTS, `${name}-desktop.png`) });
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(400);
  assert.deepEqual(await unnamedControls(page), [], `${name} (phone): controls without an accessible name`);
  const wider = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(wider <= 0, `${name} (phone): the page is ${wider} px wider than the 375 px screen`);
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

  // Dialogs take the focus and close with Escape.
  await alice.page.getByRole("button", { name: "+ New room" }).click();
  const dialog = alice.page.getByRole("dialog", { name: "New room" });
  await dialog.waitFor();
  await until("the dialog to take the focus", () => dialog.evaluate((d) => d.contains(document.activeElement)));
  // Tab stays in the dialog: from its last control back to its first.
  await dialog.getByRole("button", { name: "Create room" }).focus();
  await alice.page.keyboard.press("Tab");
  assert.equal(await dialog.evaluate((d) => d.contains(document.activeElement)), true, "Tab stays in the dialog");
  await alice.page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });
  const back = await alice.page.evaluate(() => document.activeElement?.textContent);
  assert.equal(back, "+ New room", "the focus goes back to the button that opened the dialog");

  rooms.general = await createRoom(alice.page, "general", "Anything goes", "public");
  // Bob's list shows the new room live (ROOM_ANNOUNCED), with its member count.
  const card = bob.page.locator(`.room-card[data-room="${rooms.general}"]`);
  await card.getByText("Members: 1").waitFor();
  await shoot(bob.page, "rooms");
  await card.getByRole("button", { name: "Join general" }).click();
  await bob.page.waitForURL(`**/chat/${rooms.general}`);
  await alice.page.getByText("bob joined").waitFor();
  await alice.page.locator('.members [data-user="bob"][data-presence="online"]').waitFor();
  await bob.page.locator('.members [data-user="alice"][data-presence="online"]').waitFor();

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

test("presence: someone who closes their browser goes offline in the others' member lists", async () => {
  const carol = await person();
  try {
    await register(carol, "carol");
    await carol.page.goto(`${server.base}/chat/${rooms.general}`);
    await carol.page.getByRole("button", { name: "Join", exact: true }).click();
    await carol.page.getByLabel("Message", { exact: true }).waitFor();
    await alice.page.locator('.members [data-user="carol"][data-presence="online"]').waitFor();
    await bob.page.locator('.members [data-user="carol"][data-presence="online"]').waitFor();
  } finally {
    await carol.context.close();
  }
  await alice.page.locator('.members [data-user="carol"][data-presence="offline"]').waitFor();
  await bob.page.locator('.members [data-user="carol"][data-presence="offline"]').waitFor();
});

test("at 375 px the menu and the member list are drawers that Escape closes", async () => {
  const page = bob.page;
  await page.setViewportSize(PHONE);
  try {
    const sidebar = nav(page);
    const offscreen = (loc) => loc.evaluate((el) => el.getBoundingClientRect().right <= 0 || el.getBoundingClientRect().left >= window.innerWidth);
    await until("the menu to be out of sight", () => offscreen(sidebar));
    await page.getByRole("button", { name: "Open the menu" }).click();
    await until("the menu to slide in", async () => !(await offscreen(sidebar)));
    await page.keyboard.press("Escape");
    await until("the menu to close", () => offscreen(sidebar));
    const members = page.getByRole("complementary", { name: "Members" });
    const toggle = page.getByRole("button", { name: /^Members: \d+/ });
    await toggle.click();
    await until("the member list to slide in", async () => !(await offscreen(members)));
    assert.equal(await toggle.getAttribute("aria-expanded"), "true");
    await page.keyboard.press("Escape");
    await until("the member list to close", () => offscreen(members));
    assert.equal(await toggle.getAttribute("aria-expanded"), "false");
    // The composer fits: message box and Send side by side within the screen.
    const send = await page.getByRole("button", { name: "Send", exact: true }).boundingBox();
    assert.ok(send.x + send.width <= PHONE.width, "the Send button is on screen");
  } finally {
    await page.setViewportSize(DESKTOP);
  }
});

test("a formatted message and a sticker: the other browser renders both", async () => {
  await alice.page.goto(server.base + `/chat/${rooms.general}`);
  await alice.page.getByRole("heading", { name: "general", exact: true }).waitFor();
  await say(alice.page, "**ship** it _now_ 🚀 日本 `make` ~~later~~ https://example.com/docs");
  const msg = messages(bob.page).filter({ hasText: "ship it now" });
  await msg.locator("strong", { hasText: "ship" }).waitFor();
  await msg.locator("em", { hasText: "now" }).waitFor();
  await msg.locator("code", { hasText: "make" }).waitFor();
  await msg.locator("s", { hasText: "later" }).waitFor();
  const link = msg.getByRole("link", { name: "https://example.com/docs" });
  assert.equal(await link.getAttribute("href"), "https://example.com/docs");
  assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
  // The markers are gone from the text; the emoji and CJK are intact.
  assert.equal((await msg.locator(".msg-text").innerText()).trim(), "ship it now 🚀 日本 make later https://example.com/docs");

  // The formatting toolbar: Bold with nothing selected puts its markers at the caret (so does Ctrl+I);
  // a colour goes around the selection.
  const box = alice.page.getByLabel("Message", { exact: true });
  const toolbar = alice.page.getByRole("toolbar", { name: "Formatting" });
  await box.fill("roses are ");
  await toolbar.getByRole("button", { name: "Bold" }).click();
  await box.pressSequentially("red");
  await box.press("End");
  await box.pressSequentially(" ");
  await box.press("Control+i");
  await box.pressSequentially("and");
  await box.press("End");
  await box.pressSequentially(" violets");
  await box.evaluate((el) => el.setSelectionRange(el.value.length - "violets".length, el.value.length));
  await toolbar.getByRole("button", { name: "Text colour" }).click();
  const palette = alice.page.getByRole("menu", { name: "Text colour" });
  assert.equal(await palette.getByRole("menuitem").count(), 16, "the 16 colours of the palette");
  // From the keyboard: the first colour has the focus, arrows move it, Escape closes and returns to the button.
  const focused = () => alice.page.evaluate(() => document.activeElement?.getAttribute("aria-label"));
  await until("the first colour to have the focus", async () => (await focused()) === "Black");
  await alice.page.keyboard.press("ArrowRight");
  assert.equal(await focused(), "Red");
  await alice.page.keyboard.press("ArrowLeft");
  await alice.page.keyboard.press("ArrowLeft");
  assert.equal(await focused(), "Bright white");
  await alice.page.keyboard.press("Escape");
  await palette.waitFor({ state: "detached" });
  assert.equal(await focused(), "Text colour");
  await toolbar.getByRole("button", { name: "Text colour" }).click();
  await shoot(alice.page, "colours");
  await palette.getByRole("menuitem", { name: "Bright blue", exact: true }).click();
  assert.equal(await box.inputValue(), "roses are **red** _and_ [bright_blue]violets[/bright_blue]");
  await box.press("Enter");
  const roses = messages(bob.page).filter({ hasText: "roses are red and violets" });
  await roses.locator("strong", { hasText: "red" }).waitFor();
  await roses.locator("em", { hasText: "and" }).waitFor();
  await roses.locator(".color-bright-blue", { hasText: "violets" }).waitFor();
  assert.equal((await roses.locator(".msg-text").innerText()).trim(), "roses are red and violets");
  // Editing it starts from the same markup, colour included; Escape cancels the edit.
  const sent = messages(alice.page).filter({ hasText: "roses are red and violets" });
  await sent.hover();
  await sent.getByRole("button", { name: /^Edit message/ }).click();
  const editBox = alice.page.getByLabel("Edit your message");
  assert.equal(await editBox.inputValue(), "roses are **red** _and_ [bright_blue]violets[/bright_blue]");
  await editBox.press("Escape");
  await editBox.waitFor({ state: "detached" });

  await alice.page.getByRole("button", { name: "Stickers" }).click();
  const choice = alice.page.getByRole("menuitem", { name: /^Send sticker / }).first();
  const art = (await choice.locator("pre").innerText()).trim();
  await choice.click();
  const sticker = messages(bob.page).locator(".sticker pre").last();
  await sticker.waitFor();
  assert.equal((await sticker.innerText()).trim(), art);
  // A sticker cannot be edited: no Edit button on alice's sticker.
  const own = messages(alice.page).filter({ has: alice.page.locator(".sticker") }).last();
  await own.hover();
  assert.equal(await own.getByRole("button", { name: /^Edit message/ }).count(), 0);
});

test("a direct chat from the member list: the other browser lists it and reads it", async () => {
  await alice.page.goto(server.base + `/chat/${rooms.general}`);
  await alice.page.locator('.members [data-user="bob"]').getByRole("button", { name: "Message" }).click();
  await alice.page.waitForURL((u) => /^\/chat\/\d+$/.test(u.pathname) && u.pathname !== `/chat/${rooms.general}`);
  const dm = Number(new URL(alice.page.url()).pathname.split("/")[2]);
  assert.notEqual(dm, rooms.general);
  await alice.page.getByRole("heading", { name: "bob", exact: true }).waitFor();
  await say(alice.page, "psst, just you and me");
  const entry = nav(bob.page).getByRole("link", { name: /^Direct chat with alice/ });
  await entry.click();
  await bob.page.waitForURL(`**/chat/${dm}`);
  await messages(bob.page).filter({ hasText: "psst, just you and me" }).waitFor();
  // Opening it again from bob's side, by username, is the same room.
  await nav(bob.page).getByLabel("Username to message").fill("alice");
  await nav(bob.page).getByRole("button", { name: "Open" }).click();
  await bob.page.waitForURL(`**/chat/${dm}`);
  // A direct room is never in the room list.
  await nav(bob.page).getByRole("link", { name: "Browse rooms" }).click();
  await bob.page.locator(`.room-card[data-room="${rooms.general}"]`).waitFor();
  assert.equal(await bob.page.locator(`.room-card[data-room="${dm}"]`).count(), 0);
  await bob.page.goto(server.base + `/chat/${rooms.general}`);
  await bob.page.getByRole("heading", { name: "general", exact: true }).waitFor();
});

test("profile details and a password change that logs out the user's other session", async () => {
  const profile = async (page) => {
    await page.getByRole("link", { name: /Profile and settings/ }).click();
    await page.getByRole("heading", { name: "Profile and settings" }).waitFor();
  };
  await alice.page.goto(server.base + `/chat/${rooms.general}`);
  await alice.page.locator('.members [data-user="bob"] .member-name').filter({ hasText: /^bob$/ }).waitFor();
  await profile(bob.page);
  await bob.page.getByLabel("Display name").fill("Bobby Tables");
  await bob.page.getByLabel("Bio").fill("Drops tables.\nRarely.");
  await bob.page.getByLabel("Email (only you see it)").fill("not an email");
  await bob.page.getByRole("button", { name: "Save profile" }).click();
  await bob.page.getByRole("alert").filter({ hasText: /email/i }).waitFor();
  await bob.page.getByLabel("Email (only you see it)").fill("bob@example.com");
  await bob.page.getByRole("button", { name: "Save profile" }).click();
  await bob.page.getByText("Profile saved.").waitFor();
  // Alice sees the display name at once (PROFILE_CHANGED): in the member list, on bob's messages, in the timeline's lines.
  await alice.page.locator('.members [data-user="bob"] .member-name').filter({ hasText: "Bobby Tables" }).waitFor();
  await messages(alice.page).filter({ hasText: "hello al" }).locator(".sender").filter({ hasText: "Bobby Tables" }).waitFor();
  await alice.page.getByText("Bobby Tables joined").first().waitFor();
  assert.equal(await messages(alice.page).locator('.sender[data-username="bob"]').filter({ hasText: /^bob$/ }).count(), 0);
  await bob.page.reload();
  await bob.page.getByRole("heading", { name: "Profile and settings" }).waitFor();
  await until("the stored profile", async () => (await bob.page.getByLabel("Display name").inputValue()) === "Bobby Tables");
  assert.equal(await bob.page.getByLabel("Email (only you see it)").inputValue(), "bob@example.com");
  assert.equal(await bob.page.getByLabel("Bio").inputValue(), "Drops tables.\nRarely.");

  // An avatar: refused when it is not an image, then uploaded; alice sees it beside bob in the member list.
  const avatarInput = bob.page.getByLabel(/Upload an avatar/);
  await avatarInput.setInputFiles({ name: "evil.png", mimeType: "image/png", buffer: Buffer.from("MZ not an image") });
  await bob.page.getByRole("alert").filter({ hasText: /type|image/i }).waitFor();
  const png = Buffer.from(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f80f0000010100015d5b2c8a0000000049454e44ae426082",
    "hex",
  );
  await avatarInput.setInputFiles({ name: "me.png", mimeType: "image/png", buffer: png });
  await bob.page.getByText("Avatar updated.").waitFor();
  await bob.page.locator(".avatar-preview img.avatar-img").waitFor();
  const bobsAvatar = alice.page.locator('.members [data-user="bob"] img.avatar-img');
  await bobsAvatar.waitFor();
  await until("bob's avatar to load", () => bobsAvatar.evaluate((el) => el.complete && el.naturalWidth === 1));

  // Alice logs in a second time elsewhere; changing her password here ends that session.
  const elsewhere = await person();
  await elsewhere.page.goto(server.base + "/");
  await elsewhere.page.getByLabel("Username").fill("alice");
  await elsewhere.page.getByLabel("Password").fill(PASSWORD);
  await elsewhere.page.getByRole("button", { name: "Log in" }).last().click();
  await elsewhere.page.getByRole("heading", { name: "Rooms", exact: true }).waitFor();
  // A fresh page reads the display name (GET_PROFILE) where bob is named: members, typing.
  await elsewhere.page.goto(server.base + `/chat/${rooms.general}`);
  await elsewhere.page.locator('.members [data-user="bob"] .member-name').filter({ hasText: "Bobby Tables" }).waitFor();
  await bob.page.goto(server.base + `/chat/${rooms.general}`);
  await bob.page.getByLabel("Message", { exact: true }).fill("still typing");
  await elsewhere.page.getByTestId("typing").getByText("Bobby Tables is typing…").waitFor();
  await bob.page.getByLabel("Message", { exact: true }).fill("");
  await profile(alice.page);
  const form = alice.page.locator("form", { has: alice.page.getByLabel("Current password") });
  await form.getByLabel("Current password").fill("not my password");
  await form.getByLabel("New password", { exact: true }).fill(PASSWORD + "!");
  await form.getByLabel("Repeat the new password").fill(PASSWORD + "!");
  await form.getByRole("button", { name: "Change password" }).click();
  await form.getByRole("alert").waitFor();
  await form.getByLabel("Current password").fill(PASSWORD);
  await form.getByRole("button", { name: "Change password" }).click();
  await form.getByText(/Password changed/).waitFor();
  await elsewhere.page.getByText("Your password was changed in another session: log in again.").waitFor();
  assert.equal(await status(alice.page), "connected");
  await elsewhere.context.close();
  await alice.page.goto(server.base + `/chat/${rooms.general}`);
  await alice.page.getByRole("heading", { name: "general", exact: true }).waitFor();
});

test("attachments: an uploaded image shows inline and a text file as a download in the other browser", async () => {
  for (const p of [alice, bob]) {
    await p.page.goto(server.base + `/chat/${rooms.general}`);
    await p.page.getByRole("heading", { name: "general", exact: true }).waitFor();
  }
  const png = Buffer.from(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f80f0000010100015d5b2c8a0000000049454e44ae426082",
    "hex",
  );
  const input = alice.page.getByLabel("Attach a file");
  await input.setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: png });
  const img = messages(bob.page).locator('img[alt="dot.png"]');
  await img.waitFor();
  await until("the image to load", () => img.evaluate((el) => el.complete && el.naturalWidth === 1));
  // It is a file the message carries on the wire (SPEC.md §13.5), not a link in its text.
  const { token } = JSON.parse(await alice.page.evaluate(() => localStorage.getItem("confab.session")));
  const history = await fetch(`${server.base}/api/rooms/${rooms.general}/messages?limit=1`, {
    headers: { authorization: `Bearer ${token}` },
  }).then((r) => r.json());
  const body = history.events[0].body;
  assert.equal(body.text, "");
  assert.deepEqual(
    body.attachments.map((f) => [f.name, f.content_type, f.size, f.width, f.height]),
    [["dot.png", "image/png", png.length, 1, 1]],
  );
  await input.setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello, file\n") });
  const download = messages(bob.page).getByRole("link", { name: /notes\.txt \(12 B\)/ });
  await download.waitFor();
  assert.equal(await download.getAttribute("download"), "notes.txt");
  const r = await fetch(new URL(await download.getAttribute("href"), server.base));
  assert.equal(await r.text(), "hello, file\n");
  // A refused upload (an executable declared as an image) says why, and posts nothing.
  const count = await messages(bob.page).count();
  await input.setInputFiles({ name: "evil.png", mimeType: "image/png", buffer: Buffer.from("MZ not an image") });
  await alice.page.locator(".upload").getByRole("alert").waitFor();
  assert.equal(await messages(bob.page).count(), count);
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
  await alice.page.getByText("Bobby Tables joined").waitFor();
});

test("a request to join a private room is approved", async () => {
  rooms.vault = await createRoom(alice.page, "vault", "", "private");
  await bob.page.goto(`${server.base}/chat/${rooms.vault}`);
  await bob.page.getByText("You are not a member of this room.").waitFor();
  await bob.page.getByRole("button", { name: "Request to join" }).click();
  await bob.page.getByText("Request sent").waitFor();

  await alice.page.locator(".toast").filter({ hasText: "Bobby Tables asks to join vault" }).waitFor();
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
