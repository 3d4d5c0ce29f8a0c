// Direct messages (PROTOCOL §3.6): the one room between two people, named `dm:<a>:<b>` on the wire and shown by the
// other person's name. Opening one (`open_dm`) subscribes every connection of both people and tells them
// (`dm_opened`), so a conversation the other person opens appears here without a reload; after that it is a room
// like any other (the chat joins, resumes and counts it as one). This module keeps the sidebar's list of them, the
// block/unblock toggle for the other person, and the words for a refusal.
//
// The server answers block_user/unblock_user but has no command that lists one's blocks, so the toggle shows what
// this browser last set (kept per user in localStorage); blocking and unblocking are idempotent on the server.

import { byTestId, el } from './dom.js';
import { clearError, commandErrorText, showError, showNotice } from './notify.js';

/** Whether `name` is a direct room's: no other room name has a `:` (PROTOCOL §3.6, §7). */
export function isDirectName(name) {
  return typeof name === 'string' && name.startsWith('dm:');
}

/** Whether a room (listed, or joined) is a direct conversation. */
export function isDirect(room) {
  return Boolean(room) && (room.direct === true || isDirectName(room.name));
}

/** The other person of the direct room `name` as far as the name tells (lower-cased): the one that is not `me`. */
export function peerFromName(name, me) {
  const [, first = '', second = ''] = String(name).split(':');
  return first === me.toLowerCase() ? second : first;
}

/** Whether a refused command is the other person's block (PROTOCOL §3.6: `forbidden`, about direct messages). */
function isRefusal(error) {
  return error?.code === 'forbidden' && /direct messages/.test(String(error.message ?? ''));
}

/** The words for the other person's block (a username keeps its case: it does not start the sentence). */
function refusedBy(username) {
  return `Refused by ${username}, who does not accept direct messages from you`;
}

/**
 * The direct-message side of the chat. `request(type, data, options)` sends a command and resolves with its reply;
 * `me` is the signed-in username; `onOpened(room)` runs when a conversation this person opened is ready to show;
 * `onBlockChanged()` when the block toggle's state changed.
 */
export class DirectMessages {
  constructor({ me, request, onOpened, onBlockChanged }) {
    this.me = me;
    this.request = request;
    this.onOpened = onOpened;
    this.onBlockChanged = onBlockChanged;
    this.blocked = new Set(this.savedBlocks());
    /** The direct room shown in the header (for the toggle), or `null`. */
    this.shown = null;
  }

  bind() {
    byTestId('block-user').addEventListener('click', () => {
      if (this.shown?.with) this.setBlocked(this.shown.with, !this.isBlocked(this.shown.with));
    });
  }

  /** The name a direct room is shown by: the other person's. */
  label(room) {
    return room.with ?? peerFromName(room.name, this.me);
  }

  /** The "message" action on a member: opens (or opens again) the conversation with `username` and shows it. */
  async open(username) {
    let answer;
    try {
      answer = await this.request('open_dm', { username }, { until: 'dm_opened' });
    } catch (error) {
      showError(isRefusal(error) ? refusedBy(username) : commandErrorText(error));
      return;
    }
    clearError();
    this.onOpened(answer.room);
  }

  /** The words for a post refused in direct room `room`, or `null` when the refusal is not the block. */
  postErrorText(error, room) {
    if (!room.direct || !isRefusal(error)) return null;
    return refusedBy(this.label(room));
  }

  isBlocked(username) {
    return this.blocked.has(String(username).toLowerCase());
  }

  /** Blocks (or unblocks) `username`: their messages in the conversation with them are refused from then on. */
  async setBlocked(username, block) {
    const button = byTestId('block-user');
    button.disabled = true;
    try {
      await this.request(block ? 'block_user' : 'unblock_user', { username }, { until: block ? 'blocked' : 'unblocked' });
    } catch (error) {
      showError(commandErrorText(error));
      return;
    } finally {
      button.disabled = false;
    }
    if (block) this.blocked.add(username.toLowerCase());
    else this.blocked.delete(username.toLowerCase());
    this.saveBlocks();
    showNotice(block
      ? `Blocked ${username}: their direct messages to you are refused.`
      : `Unblocked ${username}: they can send you direct messages again.`);
    this.onBlockChanged();
  }

  /** The header's parts for the room on screen: the block toggle shows only in a direct conversation. */
  renderHead(room) {
    this.shown = room?.direct ? room : null;
    const button = byTestId('block-user');
    button.hidden = !this.shown;
    if (!this.shown) return;
    const name = this.label(room);
    const blocked = this.isBlocked(name);
    button.textContent = blocked ? `Unblock ${name}` : `Block ${name}`;
    button.dataset.blocked = String(blocked);
    button.setAttribute('aria-pressed', String(blocked));
  }

  /**
   * Redraws the sidebar's direct conversations, by the other person's name. `rooms`: the direct rooms (listed or
   * joined), each `{name, with?}`; `joined`: name → RoomState; `onSelect(room)` on a click.
   */
  renderList(rooms, joined, activeName, onSelect) {
    const list = byTestId('dm-list');
    const entries = rooms.map((room) => ({ room, name: joined.get(room.name)?.with ?? room.with ?? this.label(room) }));
    entries.sort((a, b) => a.name.localeCompare(b.name));
    const items = entries.map(({ room, name }) => {
      const state = joined.get(room.name);
      const unread = state ? state.unread : 0;
      return el('li', {
        dataset: { testid: 'dm-item', room: room.name, with: name },
        attrs: { 'aria-current': room.name === activeName ? 'true' : undefined },
      },
      el('button', {
        attrs: { type: 'button', 'aria-label': `Direct messages with ${name}${unread > 0 ? `, ${unread} unread` : ''}` },
        on: { click: () => onSelect(room) },
      },
      el('span', { class: 'room-name', text: name, dataset: { testid: 'dm-name' } }),
      unread > 0 && el('span', { class: 'unread', text: unread, dataset: { testid: 'dm-unread' }, attrs: { 'aria-hidden': 'true' } })));
    });
    if (items.length === 0) items.push(el('li', { class: 'empty', text: 'None yet: "Message" a member to start one.' }));
    list.replaceChildren(...items);
  }

  // ---- remembered between visits -------------------------------------------------------------------------------

  key() {
    return `palaver.blocked.${this.me}`;
  }

  savedBlocks() {
    try {
      const names = JSON.parse(localStorage.getItem(this.key()) ?? '[]');
      return Array.isArray(names) ? names.filter((name) => typeof name === 'string') : [];
    } catch {
      return [];
    }
  }

  saveBlocks() {
    localStorage.setItem(this.key(), JSON.stringify([...this.blocked]));
  }
}
