// Palaver's browser client in headless Chromium: two people register, meet in a private room, chat both ways, see
// each other online and typing; one drops off the network and comes back to every message exactly once; markup in a
// message stays text; an oversized message gets a clear error; older pages load on scroll-up; a new device rejoins
// the rooms its user is a member of; messages are edited, deleted (tombstones), reacted to and replied to, live and
// across a reconnect; unread badges, the "new messages" divider and read marks (on a second device too); search
// finds a message and opens its room; a direct conversation is opened from the member list, appears for the other
// person by name without a reload, carries messages both ways, refuses a blocked sender clearly (and delivers
// again once unblocked) and resumes after a reconnect; history pages merge with live changes by their as_of; the
// chat works at phone width; leaving and deleting work.
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
const LOUNGE = `lounge-${suffix}`;

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
  return who.page.$$eval('[data-testid="messages"] > li[data-testid="message"]', (items) => items.map((li) => [
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

/** The stored messages on screen in their current state: edited, deleted, reply, reactions (emoji and count). */
function conversation(who) {
  return who.page.$$eval('[data-testid="messages"] > li[data-testid="message"][data-seq]', (items) => items.map((li) => ({
    seq: Number(li.dataset.seq),
    author: li.dataset.author,
    content: li.querySelector('[data-testid="message-content"]')?.textContent ?? null,
    edited: li.dataset.edited === 'true',
    deleted: li.dataset.deleted === 'true',
    replyTo: li.dataset.replyTo ?? null,
    quote: li.querySelector('[data-testid="message-quote"]')?.textContent ?? null,
    reactions: [...li.querySelectorAll('[data-testid="reaction"]')].map((chip) => `${chip.dataset.emoji}×${chip.dataset.count}`),
    replies: li.querySelector('[data-testid="reply-count"]')?.textContent ?? null,
  })));
}

/** The seq of the stored message shown with exactly this content (waiting for it). */
async function seqOf(who, content) {
  await waitForMessage(who, content);
  return who.page.$$eval('[data-testid="messages"] > li[data-seq]', (items, text) => Number(items.find((li) =>
    li.querySelector('[data-testid="message-content"]')?.textContent === text).dataset.seq), content);
}

/** The message item with this seq. */
const messageAt = (who, seq) => who.page.locator(`[data-testid="messages"] > li[data-seq="${seq}"]`);

/** Waits until message `seq` shows `emoji` with `count` reactions, `me` telling whether `who` is one of them. */
async function reactionShown(who, seq, emoji, count, me) {
  await until(who, `message ${seq} shows ${emoji} × ${count} (me: ${me})`, ([at, face, n, mine]) => {
    const chip = document.querySelector(`li[data-seq="${at}"] [data-testid="reaction"][data-emoji="${face}"]`);
    if (n === 0) return chip === null;
    return chip?.dataset.count === String(n) && chip.dataset.me === String(mine)
      && chip.getAttribute('aria-pressed') === String(mine);
  }, [seq, emoji, count, me]);
}

async function roomShown(who, room) {
  await until(who, `room "${room}" is on screen`, (name) =>
    document.querySelector('[data-testid="active-room-name"]').textContent.includes(name), room);
}

async function openRoom(who, room) {
  await who.page.locator(`[data-testid="room-item"][data-room="${room}"]`).getByRole('button').click();
  await roomShown(who, room);
}

async function unreadBadge(who, room, count) {
  await until(who, `room "${room}" shows ${count || 'no'} unread`, ([name, n]) => {
    const badge = document.querySelector(`[data-testid="room-item"][data-room="${name}"] [data-testid="room-unread"]`);
    return n === 0 ? badge === null : badge?.textContent === String(n);
  }, [room, count]);
}

async function editMessage(who, seq, content) {
  const item = messageAt(who, seq);
  await item.hover();
  await item.getByTestId('message-edit').click();
  await item.getByTestId('edit-input').fill(content);
  await item.getByTestId('edit-input').press('Enter');
  await until(who, `message ${seq} shows its edit`, ([at, text]) => {
    const li = document.querySelector(`li[data-seq="${at}"]`);
    return li?.dataset.edited === 'true' && li.querySelector('[data-testid="message-content"]')?.textContent === text;
  }, [seq, content]);
}

async function deleteMessage(who, seq) {
  const item = messageAt(who, seq);
  await item.hover();
  await item.getByTestId('message-delete').click();
  await item.getByTestId('message-delete-confirm').click();
}

async function tombstone(who, seq) {
  await until(who, `message ${seq} is a tombstone`, (at) => {
    const li = document.querySelector(`li[data-seq="${at}"]`);
    return li?.dataset.deleted === 'true' && li.dataset.author === ''
      && li.querySelector('[data-testid="message-content"]')?.textContent === 'message deleted'
      && li.querySelector('[data-testid="message-author"], [data-testid="reaction"], [data-testid="message-edit"]') === null;
  }, seq);
}

async function react(who, seq, emoji) {
  const item = messageAt(who, seq);
  await item.hover();
  await item.locator(`[data-testid="react-button"][data-emoji="${emoji}"]`).click();
}

async function reply(who, seq, content) {
  const item = messageAt(who, seq);
  await item.hover();
  await item.getByTestId('message-reply').click();
  await byId(who, 'reply-target').waitFor({ state: 'visible', timeout: WAIT_MS });
  await send(who, content);
  await until(who, 'the reply target is cleared', () =>
    document.querySelector('[data-testid="reply-target"]').hidden);
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

test('edits, deletions, reactions and replies reach the other person live', async () => {
  await send(alice, 'please edit me');
  const edited = await seqOf(bob, 'please edit me');
  await editMessage(alice, edited, 'edited by alice');
  await until(bob, 'the edit is shown, marked edited', (at) => {
    const li = document.querySelector(`li[data-seq="${at}"]`);
    return li?.dataset.edited === 'true' && li.querySelector('[data-testid="message-edited"]') !== null
      && li.querySelector('[data-testid="message-content"]').textContent === 'edited by alice';
  }, edited);
  assert.equal(await messageAt(bob, edited).getByTestId('message-edit').count(), 0, 'only the author may edit');

  await react(bob, edited, '👍');
  await reactionShown(bob, edited, '👍', 1, true);
  await reactionShown(alice, edited, '👍', 1, false);
  await messageAt(alice, edited).locator('[data-testid="reaction"][data-emoji="👍"]').click();
  await reactionShown(alice, edited, '👍', 2, true);
  await reactionShown(bob, edited, '👍', 2, true);
  await messageAt(bob, edited).locator('[data-testid="reaction"][data-emoji="👍"]').click();
  await reactionShown(bob, edited, '👍', 1, false);
  await reactionShown(alice, edited, '👍', 1, true);

  await reply(bob, edited, 'a reply from bob');
  const answer = await seqOf(alice, 'a reply from bob');
  await until(alice, 'the reply quotes its parent, which counts it', ([at, parent, author]) => {
    const quote = document.querySelector(`li[data-seq="${at}"] [data-testid="message-quote"]`);
    return document.querySelector(`li[data-seq="${at}"]`).dataset.replyTo === String(parent)
      && quote?.querySelector('[data-testid="quote-author"]')?.textContent === author
      && quote.querySelector('[data-testid="quote-text"]').textContent === 'edited by alice'
      && document.querySelector(`li[data-seq="${parent}"] [data-testid="reply-count"]`)?.textContent === '1 reply';
  }, [answer, edited, alice.name]);

  // A reply whose parent is then deleted by its author quotes a deleted message.
  await send(bob, 'bob will delete this');
  const doomed = await seqOf(alice, 'bob will delete this');
  await reply(alice, doomed, 'replying before it goes');
  const orphan = await seqOf(bob, 'replying before it goes');
  await deleteMessage(bob, doomed);
  await tombstone(alice, doomed);
  await tombstone(bob, doomed);
  await until(alice, 'the reply now quotes a deleted message', (at) =>
    document.querySelector(`li[data-seq="${at}"] [data-testid="quote-text"]`)?.textContent === 'deleted message', orphan);

  // The room's owner may delete anyone's message; a member only their own.
  await send(bob, 'the owner removes this');
  const removed = await seqOf(alice, 'the owner removes this');
  assert.equal(await messageAt(bob, edited).getByTestId('message-delete').count(), 0, 'bob may not delete alice\'s');
  await deleteMessage(alice, removed);
  await tombstone(bob, removed);
  assert.deepEqual(await conversation(bob), await conversation(alice), 'both show the same conversation');
});

test('offline and back: an edit and a reaction made meanwhile are shown once', async () => {
  const edited = await seqOf(bob, 'edited by alice');
  const answer = await seqOf(bob, 'a reply from bob');
  // The newest entry bob has before dropping off is a reaction, not a message: the resume must start after it.
  await react(alice, answer, '😂');
  await reactionShown(bob, answer, '😂', 1, false);
  await bob.context.setOffline(true);
  await until(bob, 'the status shows the connection lost', () =>
    document.querySelector('[data-testid="connection-status"]').dataset.state !== 'online');
  await memberOnline(alice, bob.name, false);
  await editMessage(alice, edited, 'edited again while bob was away');
  await react(alice, answer, '🎉');
  await reactionShown(alice, answer, '🎉', 1, true);
  await react(alice, edited, '❤️');
  await reactionShown(alice, edited, '❤️', 1, true);

  await bob.context.setOffline(false);
  await until(bob, 'the socket is open again', () =>
    document.querySelector('[data-testid="connection-status"]').dataset.state === 'online');
  await until(bob, 'the edit made meanwhile is shown', ([at, text]) =>
    document.querySelector(`li[data-seq="${at}"] [data-testid="message-content"]`)?.textContent === text,
  [edited, 'edited again while bob was away']);
  await reactionShown(bob, answer, '🎉', 1, false);
  await reactionShown(bob, edited, '❤️', 1, false);
  await until(bob, 'the reply quotes the new text', (at) =>
    document.querySelector(`li[data-seq="${at}"] [data-testid="quote-text"]`)?.textContent
      === 'edited again while bob was away', answer);
  // The reactions from before the drop are counted once (the resume started after every entry already seen).
  await reactionShown(bob, edited, '👍', 1, false);
  await reactionShown(bob, answer, '😂', 1, false);
  assert.deepEqual(await conversation(bob), await conversation(alice), 'both show the same conversation');
  await bob.page.screenshot({ path: path.join(OUT_DIR, 'chat-conversation.png') });
});

test('unread badges, the new-messages divider, and read marks reaching another device', async () => {
  await byId(alice, 'create-room-name').fill(LOUNGE);
  await byId(alice, 'create-room-submit').click();
  await roomShown(alice, LOUNGE);
  await byId(bob, 'join-room-name').fill(LOUNGE);
  await byId(bob, 'join-room-submit').click();
  await roomShown(bob, LOUNGE);
  await send(alice, 'welcome to the lounge');
  await waitForMessage(bob, 'welcome to the lounge');
  await openRoom(bob, ROOM);
  await unreadBadge(bob, LOUNGE, 0);

  await send(alice, 'lounge news 1');
  await send(alice, 'the zebra crossing report');
  await unreadBadge(bob, LOUNGE, 2);
  await unreadBadge(bob, ROOM, 0);

  // A second device of bob's, signed in now: the server counts the unread messages for it.
  const device = await person('bob');
  device.name = bob.name;
  await device.page.goto(BASE_URL);
  await byId(device, 'login-username').fill(bob.name);
  await byId(device, 'login-password').fill(PASSWORD);
  await byId(device, 'login-submit').click();
  await byId(device, 'chat-view').waitFor({ state: 'visible', timeout: WAIT_MS });
  await roomShown(device, ROOM);
  await unreadBadge(device, LOUNGE, 2);

  await openRoom(bob, LOUNGE);
  await unreadBadge(bob, LOUNGE, 0);
  await until(bob, 'the divider sits before the first unread message', () => {
    const divider = document.querySelector('[data-testid="unread-divider"]');
    return divider?.nextElementSibling?.querySelector('[data-testid="message-content"]')?.textContent === 'lounge news 1';
  });
  // Bob has read the lounge here: the mark reaches his other device.
  await unreadBadge(device, LOUNGE, 0);
  assert.deepEqual(device.problems, []);
  await device.context.close();

  // Opened with nothing unread, a room shows no divider.
  await openRoom(bob, ROOM);
  assert.equal(await byId(bob, 'unread-divider').count(), 0);
});

test('search finds messages, highlights the words as text, and opens the room', async () => {
  await byId(bob, 'search-input').fill('zebra');
  await byId(bob, 'search-submit').click();
  const hit = bob.page.locator(`[data-testid="search-result"][data-room="${LOUNGE}"]`);
  await hit.waitFor({ timeout: WAIT_MS });
  assert.equal(await bob.page.getByTestId('search-result').count(), 1);
  assert.equal(await hit.getByTestId('search-snippet').textContent(), 'the zebra crossing report');
  assert.deepEqual(await hit.locator('mark').allTextContents(), ['zebra']);
  await hit.getByRole('button').click();
  await roomShown(bob, LOUNGE);
  await until(bob, 'the found message is shown', () => document.querySelector('li.flash [data-testid="message-content"]')
    ?.textContent === 'the zebra crossing report');

  // The markup message is found, and its snippet stays text.
  await byId(bob, 'search-input').fill('quotes');
  await byId(bob, 'search-submit').click();
  const markup = bob.page.locator(`[data-testid="search-result"][data-room="${ROOM}"]`);
  await markup.waitFor({ timeout: WAIT_MS });
  assert.match(await markup.getByTestId('search-snippet').textContent(), /<script>alert\(1\)<\/script>/);
  assert.deepEqual(await markup.locator('mark').allTextContents(), ['quotes']);
  assert.equal(await byId(bob, 'search-results').evaluate((list) => list.querySelectorAll('script, img').length), 0);
  await markup.getByRole('button').click();
  await roomShown(bob, ROOM);
  await until(bob, 'the markup message is brought into view', (text) =>
    document.querySelector('li.flash [data-testid="message-content"]')?.textContent === text, XSS);
  assert.equal(await bob.page.evaluate(() => window.__palaverXss === true), false);
  await openRoom(alice, ROOM);
});

/** The direct conversation with `other` in `who`'s sidebar (by their name). */
const dmItem = (who, other) => who.page.locator(`[data-testid="dm-item"][data-with="${other}"]`);

async function directShown(who, other) {
  await until(who, `the direct conversation with ${other} is on screen`, (name) =>
    document.querySelector('[data-testid="active-room-name"] .room-title')?.textContent === name
      && document.querySelector('[data-testid="direct-badge"]') !== null, other);
}

test('direct messages: opened from the member list, both ways, blocked and unblocked, resumed', async () => {
  await roomShown(alice, ROOM);
  await memberOnline(alice, bob.name, true);
  assert.equal(await alice.page.locator(`[data-testid="member"][data-username="${alice.name}"] [data-testid="member-message"]`)
    .count(), 0, 'no "message" action on oneself');
  await alice.page.locator(`[data-testid="member"][data-username="${bob.name}"]`).getByTestId('member-message').click();
  await directShown(alice, bob.name);
  assert.equal(await byId(alice, 'delete-room').isHidden(), true, 'a direct conversation has no delete button');
  assert.equal(await byId(alice, 'block-user').textContent(), `Block ${bob.name}`);
  await dmItem(alice, bob.name).waitFor({ timeout: WAIT_MS });
  assert.equal(await alice.page.locator('[data-testid="room-item"][data-room^="dm:"]').count(), 0, 'not among the rooms');
  await send(alice, 'hello bob, just us');
  await waitForMessage(alice, 'hello bob, just us');

  // Bob, who did not reload, finds it in his sidebar by Alice's name, with its unread count.
  await until(bob, 'the conversation with alice is listed with 1 unread', (name) => {
    const item = document.querySelector(`[data-testid="dm-item"][data-with="${name}"]`);
    return item?.querySelector('[data-testid="dm-name"]')?.textContent === name
      && item.querySelector('[data-testid="dm-unread"]')?.textContent === '1';
  }, alice.name);
  assert.equal(await bob.page.locator('[data-testid="room-item"][data-room^="dm:"]').count(), 0);
  await dmItem(bob, alice.name).getByRole('button').click();
  await directShown(bob, alice.name);
  await waitForMessage(bob, 'hello bob, just us');
  await until(bob, 'the conversation is read', (name) => document.querySelector(
    `[data-testid="dm-item"][data-with="${name}"] [data-testid="dm-unread"]`) === null, alice.name);
  await send(bob, 'hi alice, only you can read this');
  await waitForMessage(alice, 'hi alice, only you can read this');

  // Bob blocks Alice: her next message is refused, clearly, and never reaches him.
  await byId(bob, 'block-user').click();
  await until(bob, 'the toggle offers to unblock', (name) => {
    const button = document.querySelector('[data-testid="block-user"]');
    return button.textContent === `Unblock ${name}` && button.getAttribute('aria-pressed') === 'true';
  }, alice.name);
  await send(alice, 'are you still there?');
  await until(alice, 'the post is refused', () =>
    document.querySelector('[data-testid="messages"] > li[data-pending="failed"]') !== null);
  const refusal = `Refused by ${bob.name}, who does not accept direct messages from you`;
  assert.equal(await byId(alice, 'error-text').textContent(), `${refusal}.`);
  assert.equal(await alice.page.locator('li[data-pending="failed"] [data-testid="message-state"]').textContent(),
    `Not sent: ${refusal}`);
  // The blocker may still write; his message is the next in the conversation, so nothing of hers came between.
  await send(bob, 'bob can still write');
  await waitForMessage(alice, 'bob can still write');
  assert.deepEqual((await shownMessages(bob)).map(([, , content]) => content),
    ['hello bob, just us', 'hi alice, only you can read this', 'bob can still write']);

  // Unblocked, Alice's message (sent again) arrives.
  await byId(bob, 'block-user').click();
  await until(bob, 'the toggle offers to block', (name) =>
    document.querySelector('[data-testid="block-user"]').textContent === `Block ${name}`, alice.name);
  await byId(alice, 'message-retry').click();
  await waitForMessage(bob, 'are you still there?');
  await byId(alice, 'error-dismiss').click();
  assert.deepEqual(await shownMessages(bob), await shownMessages(alice), 'both show the same conversation');
  assert.deepEqual((await shownMessages(bob)).map(([seq]) => seq), [1, 2, 3, 4], 'the refused post took no seq');

  // Offline and back, the conversation is rejoined like a room and resumes after what was held.
  await bob.context.setOffline(true);
  await until(bob, 'the status shows the connection lost', () =>
    document.querySelector('[data-testid="connection-status"]').dataset.state !== 'online');
  await send(alice, 'sent while bob was offline');
  await waitForMessage(alice, 'sent while bob was offline');
  await bob.context.setOffline(false);
  await waitForMessage(bob, 'sent while bob was offline');
  assert.deepEqual((await shownMessages(bob)).map(([seq]) => seq), [1, 2, 3, 4, 5], 'each message once');
  await bob.page.screenshot({ path: path.join(OUT_DIR, 'chat-direct.png') });

  await openRoom(alice, ROOM);
  await openRoom(bob, ROOM);
});

test("a history page's as_of: a change the page already includes is not applied again", async () => {
  const merged = await alice.page.evaluate(async () => {
    const { RoomState } = await import('/static/js/room-state.js');
    const reaction = (seq, added) => ({ type: 'reaction', seq, target_seq: 3, username: 'carol', emoji: '👍', added });
    const count = (room) => room.messages.get(3).reactions.find((r) => r.emoji === '👍')?.count ?? 0;
    const page = { seq: 3, username: 'dave', content: 'paged in', reactions: [{ emoji: '👍', count: 2, me: false }], replies: 1 };
    const room = new RoomState('probe');
    // Heard before the page came: one the page includes (seq 9 ≤ as_of 10), one it does not (seq 12).
    room.apply(reaction(9, true), 'me');
    room.apply(reaction(12, true), 'me');
    room.add(page, 10);
    const afterPage = count(room);
    // Heard after the page: one it includes, one it does not.
    room.apply(reaction(10, true), 'me');
    const afterOld = count(room);
    room.apply(reaction(13, false), 'me');
    const afterNew = count(room);
    // A reply the page counts already (seq 8), and a newer one.
    room.add({ seq: 8, username: 'carol', content: 'counted', reply_to: 3 });
    room.add({ seq: 14, username: 'carol', content: 'new', reply_to: 3 });
    const replies = room.messages.get(3).replies;
    // A page without as_of: every change applies, as before.
    const plain = new RoomState('plain');
    plain.add(page);
    plain.apply(reaction(5, true), 'me');
    return { afterPage, afterOld, afterNew, replies, plain: count(plain) };
  });
  assert.deepEqual(merged, { afterPage: 3, afterOld: 3, afterNew: 2, replies: 2, plain: 3 });
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
