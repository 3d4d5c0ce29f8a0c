// Palaver's browser client in headless Chromium: two people register, meet in a private room, chat both ways, see
// each other online and typing; one drops off the network and comes back to every message exactly once; markup in a
// message stays text; an oversized message gets a clear error; older pages load on scroll-up; a new device rejoins
// the rooms its user is a member of; the chat works at phone width; leaving and deleting work.
//
// Run by integration-tests/tests/browser.rs, which starts the server and passes its address:
//   PALAVER_E2E_URL=http://127.0.0.1:8080 node --test-reporter=spec chat.test.mjs

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const BASE_URL = process.env.PALAVER_E2E_URL ?? 'http://127.0.0.1:8080';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT_DIR = process.env.PALAVER_E2E_OUT ?? path.join(HERE, '..', '..', 'target', 'e2e');
const CHROMIUM = process.env.PALAVER_CHROMIUM ?? '/usr/bin/chromium';
/** How long any one expected change on a page may take. */
const WAIT_MS = 10000;
const PASSWORD = 'correct horse battery';
const ROOM_PASSWORD = 'open sesame 42';
const XSS = '<script>alert(1)</script> <img src=x onerror="window.__palaverXss = true"> & "quotes"';

const suffix = Date.now().toString(36).slice(-5);
const ROOM = `secret-${suffix}`;

let browser;
let alice;
let bob;

/** A person: a browser context of their own (cookies, storage), one page, and what went wrong on it. */
async function person(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const problems = [];
  const dialogs = [];
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`csp: ${message.text()}`);
  });
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  return { name: `${name}_${suffix}`, context, page, problems, dialogs };
}

const byId = (who, id) => who.page.getByTestId(id);

/** Waits until `predicate(arg)` holds in the page, failing with `what` after WAIT_MS. */
async function until(who, what, predicate, arg) {
  try {
    await who.page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (error) {
    throw new Error(`${who.name}: timed out waiting until ${what}: ${error.message.split('\n')[0]}`);
  }
}

/** The stored messages on screen, in order: [seq, author, content]. */
function shownMessages(who) {
  return who.page.$$eval('[data-testid="messages"] > li', (items) => items.map((li) => [
    li.dataset.pending ? `pending:${li.dataset.pending}` : Number(li.dataset.seq),
    li.dataset.author,
    li.querySelector('[data-testid="message-content"]').textContent,
  ]));
}

async function waitForMessage(who, content) {
  await until(who, `"${content}" is shown as stored`, (text) => [...document.querySelectorAll(
    '[data-testid="messages"] > li[data-seq]',
  )].some((li) => li.querySelector('[data-testid="message-content"]').textContent === text), content);
}

async function send(who, content) {
  const input = byId(who, 'message-input');
  await input.fill(content);
  await input.press('Enter');
}

async function register(who) {
  await who.page.goto(BASE_URL);
  await byId(who, 'register-username').fill(who.name);
  await byId(who, 'register-email').fill(`${who.name}@example.com`);
  await byId(who, 'register-password').fill(PASSWORD);
  await byId(who, 'register-submit').click();
  await byId(who, 'chat-view').waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await byId(who, 'current-user').textContent(), who.name);
  await until(who, 'the socket is open', () =>
    document.querySelector('[data-testid="connection-status"]').dataset.state === 'online');
}

async function memberOnline(who, username, online) {
  await until(who, `${username} is listed as ${online ? 'online' : 'offline'}`, ([name, state]) =>
    document.querySelector(`[data-testid="member"][data-username="${name}"]`)?.dataset.online === state,
  [username, String(online)]);
}

before(async () => {
  mkdirSync(OUT_DIR, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  alice = await person('alice');
  bob = await person('bob');
});

after(async () => {
  await browser?.close();
});

test('the page is served with its security policy', async () => {
  const page = (await person('probe')).page;
  const response = await page.goto(BASE_URL);
  const headers = response.headers();
  assert.match(headers['content-security-policy'], /script-src 'self'/);
  assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  await byId({ page }, 'login-form').waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.context().close();
});

test('two people register, and one logs out and back in', async () => {
  await Promise.all([register(alice), register(bob)]);
  await byId(bob, 'logout-button').click();
  await byId(bob, 'login-form').waitFor({ state: 'visible', timeout: WAIT_MS });
  await byId(bob, 'login-username').fill(bob.name);
  await byId(bob, 'login-password').fill('not the password');
  await byId(bob, 'login-submit').click();
  await byId(bob, 'error-banner').waitFor({ state: 'visible', timeout: WAIT_MS });
  await byId(bob, 'login-password').fill(PASSWORD);
  await byId(bob, 'login-submit').click();
  await byId(bob, 'chat-view').waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await byId(bob, 'current-user').textContent(), bob.name);
});

test('a private room is created, and joined with its password after a wrong one', async () => {
  await byId(alice, 'create-room-name').fill(ROOM);
  await byId(alice, 'create-room-private').check();
  await byId(alice, 'create-room-password').fill(ROOM_PASSWORD);
  await byId(alice, 'create-room-submit').click();
  await until(alice, 'the new room is on screen', (room) =>
    document.querySelector('[data-testid="active-room-name"]').textContent.includes(room), ROOM);
  await until(alice, 'the room is listed as private', (room) =>
    document.querySelector(`[data-testid="room-item"][data-room="${room}"]`)?.dataset.private === 'true', ROOM);

  await byId(bob, 'refresh-rooms').click();
  const listed = bob.page.locator(`[data-testid="room-item"][data-room="${ROOM}"]`);
  await listed.waitFor({ timeout: WAIT_MS });
  assert.equal(await listed.getAttribute('data-private'), 'true');
  await listed.getByRole('button').click();
  assert.equal(await byId(bob, 'join-room-name').inputValue(), ROOM, 'the join form is filled in');
  await byId(bob, 'join-room-password').fill('wrong password');
  await byId(bob, 'join-room-submit').click();
  await byId(bob, 'error-banner').waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.match(await byId(bob, 'error-text').textContent(), /incorrect room password/i);

  await byId(bob, 'join-room-password').fill(ROOM_PASSWORD);
  await byId(bob, 'join-room-submit').click();
  await until(bob, 'the room is on screen', (room) =>
    document.querySelector('[data-testid="active-room-name"]').textContent.includes(room), ROOM);
  assert.equal(await byId(bob, 'error-banner').isHidden(), true, 'the error is cleared once joined');
});

test('messages go both ways, and each sees the other online', async () => {
  await send(alice, 'hello from alice');
  await waitForMessage(bob, 'hello from alice');
  await send(bob, 'hi alice, bob here');
  await waitForMessage(alice, 'hi alice, bob here');
  await waitForMessage(bob, 'hi alice, bob here');
  await memberOnline(alice, bob.name, true);
  await memberOnline(bob, alice.name, true);
  await byId(alice, 'refresh-rooms').click();
  await until(alice, 'the room list counts two online', (room) =>
    document.querySelector(`[data-testid="room-item"][data-room="${room}"] [data-testid="room-online"]`)
      ?.textContent === '2 online', ROOM);
});

test('"is typing" is shown to the other', async () => {
  await byId(bob, 'message-input').pressSequentially('still thinking', { delay: 10 });
  await until(alice, 'bob is shown typing', (name) =>
    document.querySelector('[data-testid="typing-indicator"]').textContent === `${name} is typing…`, bob.name);
  await byId(bob, 'message-input').fill('');
});

test('offline and back: every message once, in order, and the post made offline is delivered', async () => {
  await bob.context.setOffline(true);
  await until(bob, 'the status shows the connection lost', () =>
    document.querySelector('[data-testid="connection-status"]').dataset.state !== 'online');
  // The server has seen bob's socket close: what alice sends now reaches bob only by the resume.
  await memberOnline(alice, bob.name, false);
  for (let n = 1; n <= 5; n += 1) await send(alice, `while you were away ${n}`);
  await waitForMessage(alice, 'while you were away 5');
  await send(bob, 'written offline');
  await until(bob, 'the offline post is pending', () =>
    document.querySelector('[data-testid="messages"] > li[data-pending]') !== null);

  await bob.context.setOffline(false);
  await until(bob, 'the socket is open again', () =>
    document.querySelector('[data-testid="connection-status"]').dataset.state === 'online');
  await waitForMessage(bob, 'while you were away 5');
  await waitForMessage(bob, 'written offline');
  await waitForMessage(alice, 'written offline');
  await until(bob, 'nothing is left pending', () =>
    document.querySelector('[data-testid="messages"] > li[data-pending]') === null);

  const seenByBob = await shownMessages(bob);
  const seenByAlice = await shownMessages(alice);
  assert.deepEqual(seenByBob, seenByAlice, 'both show the same messages');
  const seqs = seenByBob.map(([seq]) => seq);
  assert.deepEqual(seqs, seqs.map((_, index) => index + 1), 'seqs 1, 2, 3, … each once, in order');
  assert.deepEqual(seenByBob.map(([, , content]) => content), [
    'hello from alice', 'hi alice, bob here',
    'while you were away 1', 'while you were away 2', 'while you were away 3', 'while you were away 4',
    'while you were away 5', 'written offline',
  ]);
});

test('markup in a message is shown as text and runs nothing', async () => {
  await send(alice, XSS);
  await waitForMessage(bob, XSS);
  await waitForMessage(alice, XSS);
  for (const who of [alice, bob]) {
    const found = await who.page.evaluate(() => ({
      injected: document.querySelectorAll('[data-testid="messages"] img, [data-testid="messages"] script').length,
      flag: window.__palaverXss === true,
    }));
    assert.deepEqual(found, { injected: 0, flag: false }, `${who.name}: the markup stayed text`);
    assert.deepEqual(who.dialogs, [], `${who.name}: no alert ran`);
  }
  await bob.page.screenshot({ path: path.join(OUT_DIR, 'chat.png') });
});

test('a message over the size limit is refused with a clear error, and can be discarded', async () => {
  await send(alice, 'x'.repeat(70000));
  await until(alice, 'the post is marked as not sent', () =>
    document.querySelector('[data-testid="messages"] > li[data-pending="failed"]') !== null);
  assert.match(await byId(alice, 'error-text').textContent(), /too large \(max 65536 bytes\)/);
  await byId(alice, 'message-discard').click();
  await until(alice, 'the refused post is gone', () =>
    document.querySelector('[data-testid="messages"] > li[data-pending]') === null);
  await byId(alice, 'error-dismiss').click();
  assert.equal(await byId(alice, 'error-banner').isHidden(), true);
});

test('older pages load on scroll-up after a reload, each message once', async () => {
  for (let n = 1; n <= 50; n += 1) await send(alice, `filler ${n}`);
  await waitForMessage(alice, 'filler 50');
  await until(alice, 'every post is stored', () =>
    document.querySelector('[data-testid="messages"] > li[data-pending]') === null);
  const total = (await shownMessages(alice)).length;
  assert.equal(total, 59);

  await bob.page.reload();
  await waitForMessage(bob, 'filler 50');
  assert.equal((await shownMessages(bob)).length, 50, 'one page of history after a reload');
  await byId(bob, 'load-older').waitFor({ state: 'visible', timeout: WAIT_MS });
  await byId(bob, 'message-scroller').evaluate((scroller) => { scroller.scrollTop = 0; });
  await until(bob, 'the older page is in', (count) =>
    document.querySelectorAll('[data-testid="messages"] > li[data-seq]').length === count, total);
  const seqs = (await shownMessages(bob)).map(([seq]) => seq);
  assert.deepEqual(seqs, seqs.map((_, index) => index + 1));
  assert.equal(await byId(bob, 'load-older').isHidden(), true, 'nothing older is left');
});

test('on a new device, the rooms one is a member of are joined again without their password', async () => {
  const device = await person('bob');
  device.name = bob.name;
  await device.page.goto(BASE_URL);
  await byId(device, 'login-username').fill(bob.name);
  await byId(device, 'login-password').fill(PASSWORD);
  await byId(device, 'login-submit').click();
  await byId(device, 'chat-view').waitFor({ state: 'visible', timeout: WAIT_MS });
  await until(device, 'the private room is joined again', (room) =>
    document.querySelector(`[data-testid="room-item"][data-room="${room}"]`)?.dataset.joined === 'true', ROOM);
  const listed = device.page.locator(`[data-testid="room-item"][data-room="${ROOM}"]`);
  await listed.getByRole('button').click();
  await waitForMessage(device, 'filler 50');
  assert.equal(await byId(device, 'error-banner').isHidden(), true, 'no password was asked for');
  assert.deepEqual(device.problems, []);
  await device.context.close();
});

test('the chat is usable at phone width', async () => {
  await alice.page.setViewportSize({ width: 390, height: 760 });
  const input = await byId(alice, 'message-input').boundingBox();
  assert.ok(input && input.x >= 0 && input.x + input.width <= 390, 'the message box fits the screen');
  assert.equal(await byId(alice, 'member-list').isVisible(), false, 'one panel at a time');
  await byId(alice, 'tab-members').click();
  await memberOnline(alice, bob.name, true);
  assert.equal(await byId(alice, 'member-list').isVisible(), true);
  await byId(alice, 'tab-rooms').click();
  assert.equal(await byId(alice, 'room-list').isVisible(), true);
  await byId(alice, 'tab-chat').click();
  await alice.page.screenshot({ path: path.join(OUT_DIR, 'chat-phone.png') });
  await alice.page.setViewportSize({ width: 1100, height: 760 });
});

test('leaving, then deleting the room', async () => {
  await byId(bob, 'leave-room').click();
  await until(bob, 'the room is no longer joined', (room) =>
    document.querySelector(`[data-testid="room-item"][data-room="${room}"]`)?.dataset.joined === 'false', ROOM);
  await until(alice, 'bob is no longer a member', (name) =>
    document.querySelector(`[data-testid="member"][data-username="${name}"]`) === null, bob.name);

  assert.equal(await byId(bob, 'delete-room').isHidden(), true, 'only the owner may delete');
  await byId(alice, 'delete-room').click();
  await byId(alice, 'delete-confirm-yes').click();
  await until(alice, 'the room is gone', (room) =>
    document.querySelector(`[data-testid="room-item"][data-room="${room}"]`) === null, ROOM);
  assert.match(await byId(alice, 'notice').textContent(), /deleted/);
});

test('no page raised an error or broke its security policy', () => {
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});
