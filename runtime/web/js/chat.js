// The chat screen: turns server frames into room state and the person's actions into commands. After every
// (re)connection each joined room is joined again with `after_seq` = the newest seq held, so the server replays what
// was missed; messages are kept by seq, so nothing is missed or shown twice. Our own posts stay pending until acked
// and are resent with the same client_msg_id (stored once by the server) if the connection dropped first
// (outbox.js).
// Edits, deletions and reactions are entries of the room's log too (their own seq, naming the message with
// target_seq): they advance the newest seq held and are applied in order, live or replayed. The read point is marked
// as the person sees the newest messages; unread counts come from the server, then from the messages held.
// History pages carry `as_of`: the room state merges them with live entries by it (room-state.js). Direct
// conversations are rooms too (joined, resumed and counted the same way); direct.js shows them and their block
// toggle, search.js the search panel.

import * as api from './api.js';
import { Connection } from './connection.js';
import { DirectMessages, isDirect, peerFromName } from './direct.js';
import { byTestId, el } from './dom.js';
import { MessageView } from './message-view.js';
import { clearError, commandErrorText, showError, showNotice } from './notify.js';
import { CONNECTION_ERRORS, Outbox } from './outbox.js';
import { RoomState } from './room-state.js';
import { Search } from './search.js';
import { bindRoomForms, renderMembers, renderRoomList, renderTyping } from './sidebar.js';

/** How often the room list (online counts) is refreshed while connected. */
const ROOM_LIST_EVERY_MS = 30000;
/** Typing notices are sent at most this often, and shown this long after the last one. */
const TYPING_SEND_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;
/** History page size (the server's default). */
const PAGE = 50;
/** The read point is marked this long after the newest messages came into view (one mark for a burst). */
const MARK_READ_AFTER_MS = 400;
/** How many older pages are fetched at most to bring a search result into view. */
const REVEAL_MAX_PAGES = 20;

/** The signed-in chat. */
export class Chat {
  /** `onSessionLost()` runs when the server no longer accepts the session (expired, revoked). */
  constructor(user, onSessionLost) {
    this.onSessionLost = onSessionLost;
    this.me = user.username;
    this.userId = user.id;
    /** The room whose deletion the owner is being asked to confirm, if any. */
    this.confirmingDelete = null;
    /** name → RoomState for the rooms joined. */
    this.rooms = new Map();
    this.roomList = [];
    this.active = null;
    this.lastTypingSent = 0;
    this.debounced = new Map();
    this.conn = new Connection({
      onFrame: (frame) => this.onFrame(frame),
      onOpen: () => this.onOpen(),
      onStatus: (state, detail) => this.setStatus(state, detail),
      onSessionLost: () => this.sessionLost(),
    });
    /** The message the next post replies to: { room, seq }, or `null`. */
    this.replyTarget = null;
    /** Where "new messages" begin in the room on screen (its read point when opened with unread), or `null`. */
    this.dividerAfter = null;
    const request = (type, data, options) => this.conn.request(type, data, options);
    this.search = new Search({
      request,
      activeRoom: () => this.active,
      onOpen: (result) => this.openResult(result),
      roomLabel: (name) => this.roomLabel(name),
    });
    this.direct = new DirectMessages({
      me: this.me,
      request,
      onOpened: (name) => this.activate(name),
      onBlockChanged: () => this.renderRoomHead(),
    });
    this.view = new MessageView({
      onLoadOlder: () => this.loadOlder(this.activeRoom()),
      onRetry: (id) => this.outbox.retry(this.activeRoom(), id),
      onDiscard: (id) => this.outbox.discard(this.activeRoom(), id),
      onReact: (seq, emoji, add) => this.react(seq, emoji, add),
      onReply: (seq) => this.setReplyTarget(seq),
      onEdit: (seq, content) => this.edit(seq, content),
      onDelete: (seq) => this.deleteMessage(seq),
      onSeeNewest: () => this.seeNewest(),
    });
    this.outbox = new Outbox({
      conn: this.conn,
      me: this.me,
      view: this.view,
      isShown: (room) => room.name === this.active,
      errorText: (error, room) => this.direct.postErrorText(error, room) ?? commandErrorText(error),
    });
  }

  /** Shows the chat and connects; rooms joined before (in this browser) are joined again. */
  start() {
    byTestId('current-user').textContent = this.me;
    this.bindControls();
    for (const name of this.savedRooms()) this.rooms.set(name, this.newRoom(name));
    this.active = this.savedActive();
    this.renderAll();
    this.conn.start();
    this.roomListTimer = setInterval(() => this.refreshRooms(), ROOM_LIST_EVERY_MS);
  }

  activeRoom() {
    return this.active ? this.rooms.get(this.active) ?? null : null;
  }

  /** The state of a room joined now, a direct one knowing its other person (from the list, else from its name). */
  newRoom(name, isPrivate = this.isPrivate(name)) {
    const room = new RoomState(name, isPrivate);
    if (isDirect({ name })) {
      room.direct = true;
      room.with = this.roomList.find((entry) => entry.name === name)?.with ?? peerFromName(name, this.me);
    }
    return room;
  }

  /** The name a room is shown by: a direct room's is the other person's. */
  roomLabel(name) {
    const room = this.rooms.get(name) ?? this.roomList.find((entry) => entry.name === name);
    if (!isDirect(room ?? { name })) return name;
    return room?.with ?? peerFromName(name, this.me);
  }

  // ---- connection ------------------------------------------------------------------------------------------------

  setStatus(state, detail = '') {
    const status = byTestId('connection-status');
    status.dataset.state = state;
    status.textContent = state === 'online' ? 'Online' : state === 'connecting' ? 'Connecting…' : 'Offline, reconnecting…';
    status.title = detail;
  }

  sessionLost() {
    clearInterval(this.roomListTimer);
    this.onSessionLost();
    showError('Your session has ended. Please log in again.');
  }

  /** After every (re)connection: the room list, then each joined room resumed in turn, then our queued posts. */
  async onOpen() {
    this.refreshRooms();
    for (const room of [...this.rooms.values()]) {
      await this.resume(room);
    }
    // Again, now that our own presence is counted.
    if (this.rooms.size > 0) this.refreshRooms();
  }

  /** Takes up a room the server says we are a member of, as if this browser had remembered it. */
  restore(room) {
    const state = this.newRoom(room.name, room.private);
    state.noteRead(room.last_read_seq);
    state.unread = Number(room.unread) || 0;
    this.rooms.set(room.name, state);
    this.saveRooms();
    this.renderRooms();
    this.resume(state);
  }

  async resume(room) {
    const data = { name: room.name };
    if (room.welcomed) data.after_seq = room.lastSeq;
    try {
      await this.conn.request('join_room', data, { until: 'welcome' });
    } catch (error) {
      if (CONNECTION_ERRORS.has(error.code)) return;
      if (error.code === 'invalid_request' && data.after_seq !== undefined) {
        // Too far behind to replay: start over from the room's end, with history paged in as usual.
        this.rooms.set(room.name, this.newRoom(room.name, room.private));
        if (this.active === room.name) this.view.show(this.rooms.get(room.name), this.me);
        await this.resume(this.rooms.get(room.name));
        return;
      }
      this.forget(room.name);
      if (error.code === 'room_not_found') showNotice(`Room "${room.name}" no longer exists.`);
      else showError(`Could not rejoin "${room.name}": ${commandErrorText(error)}`);
      return;
    }
    this.outbox.flush(room);
  }

  // ---- frames ----------------------------------------------------------------------------------------------------

  onFrame(frame) {
    switch (frame.type) {
      case 'welcome': return this.onWelcome(frame);
      case 'message': return this.onMessage(frame);
      case 'message_edited':
      case 'message_deleted':
      case 'reaction': return this.onChange(frame);
      case 'read': return this.onRead(frame);
      case 'joined':
      case 'left': return this.onPresence(frame);
      case 'typing': return this.onTyping(frame);
      case 'members': return this.onMembers(frame);
      case 'rooms': return this.onRooms(frame);
      case 'room_created': return this.debounce('rooms', () => this.refreshRooms(), 100);
      case 'room_deleted': return this.onRoomDeleted(frame);
      case 'left_room': return this.forget(frame.room);
      case 'dm_opened': return this.onDirectOpened(frame);
      case 'error':
        // Errors of commands that were waited for are shown by their caller; the others here.
        if (!frame.id) showError(commandErrorText(frame));
        return undefined;
      default: return undefined;
    }
  }

  onWelcome(frame) {
    let room = this.rooms.get(frame.room);
    if (!room) {
      room = this.newRoom(frame.room);
      this.rooms.set(frame.room, room);
      this.saveRooms();
    }
    if (!room.welcomed) {
      // The first welcome says where the room stood; older messages are paged in from there.
      room.welcomed = true;
      const lastSeq = Number(frame.last_seq) || 0;
      room.lastSeq = Math.max(room.lastSeq, lastSeq);
      room.nextBefore = lastSeq + 1;
      room.hasMore = lastSeq > 0;
      this.loadOlder(room);
    }
    this.conn.send('list_members', { name: room.name });
    if (!this.activeRoom()) this.activate(room.name);
    else this.renderRooms();
  }

  /**
   * A direct conversation is open and this connection is subscribed to it (opened here, on another device, or by
   * the other person): it is joined like a room, without an `after_seq`, for the welcome that says where it stands.
   * The opener's reply repeats the event, which changes nothing then.
   */
  onDirectOpened(frame) {
    if (typeof frame.room !== 'string') return;
    let room = this.rooms.get(frame.room);
    const fresh = !room;
    if (fresh) {
      room = this.newRoom(frame.room, true);
      this.rooms.set(frame.room, room);
      this.saveRooms();
    }
    room.direct = true;
    if (typeof frame.with === 'string') room.with = frame.with;
    this.renderRooms();
    if (fresh) this.resume(room);
    // The list gives the conversation's read point and unread count.
    this.debounce('rooms', () => this.refreshRooms(), 100);
  }

  onMessage(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    const mine = frame.username === this.me;
    if (mine && frame.client_msg_id && room.pending.delete(frame.client_msg_id)) this.view.pendingChanged(room);
    this.stopTyping(room, frame.username);
    const index = room.add(frame);
    if (index < 0) return;
    if (room.name === this.active) {
      this.view.added(room, index);
    } else if (!mine && !frame.deleted && room.seqs[index] > room.readSeq) {
      room.unread += 1;
      this.recountUnread(room);
      this.renderRooms();
    }
  }

  /** An edit, deletion or reaction (live or replayed): applied to the message it names, if held. */
  onChange(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    const message = room.apply(frame, this.me);
    if (!message) return;
    if (room.name === this.active) {
      this.view.updated(room, message.seq);
      if (frame.type === 'message_deleted' && this.replyTarget?.seq === message.seq) this.setReplyTarget(null);
    } else if (frame.type === 'message_deleted') {
      this.recountUnread(room);
      this.renderRooms();
    }
  }

  /** The user's read point moved (this device's mark, or another device's). */
  onRead(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    room.noteRead(frame.seq);
    this.recountUnread(room);
    this.renderRooms();
  }

  /** The unread count of a room not on screen, from the messages held when they reach back to the read point. */
  recountUnread(room) {
    if (room.name === this.active) {
      room.unread = 0;
      return;
    }
    const held = room.unreadHeld(this.me);
    if (held !== null) room.unread = held;
  }

  /**
   * The newest messages of the room on screen are in view (and the page is visible): it is read through the newest
   * seq held, marked shortly after (one mark for a burst; still sent if the reader moves to another room meanwhile).
   */
  seeNewest() {
    const room = this.activeRoom();
    if (!room || document.visibilityState === 'hidden' || !this.view.atBottom()) return;
    room.seenSeq = Math.max(room.seenSeq, room.lastSeq);
    if (room.seenSeq <= Math.max(room.readSeq, room.markedSeq)) return;
    this.debounce(`mark_read:${room.name}`, () => this.markRead(room), MARK_READ_AFTER_MS);
  }

  /** Sends `mark_read` with the newest seq the reader has seen in `room`, unless the server has it already. */
  async markRead(room) {
    if (this.rooms.get(room.name) !== room || !this.conn.open) return;
    const seq = room.seenSeq;
    if (seq <= Math.max(room.readSeq, room.markedSeq)) return;
    room.markedSeq = seq;
    try {
      await this.conn.request('mark_read', { room: room.name, seq }, { until: 'read' });
    } catch (error) {
      // Marked again when next seen.
      room.markedSeq = room.readSeq;
      if (!CONNECTION_ERRORS.has(error.code)) showError(commandErrorText(error));
    }
  }

  onPresence(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    if (frame.type === 'left') this.stopTyping(room, frame.username);
    this.debounce(`members:${room.name}`, () => this.conn.send('list_members', { name: room.name }), 150);
    this.debounce('rooms', () => this.refreshRooms(), 300);
  }

  onTyping(frame) {
    const room = this.rooms.get(frame.room);
    if (!room || frame.username === this.me) return;
    clearTimeout(room.typing.get(frame.username));
    room.typing.set(frame.username, setTimeout(() => this.stopTyping(room, frame.username), TYPING_SHOWN_MS));
    if (room.name === this.active) renderTyping(room.typing.keys());
  }

  stopTyping(room, username) {
    if (!room.typing.has(username)) return;
    clearTimeout(room.typing.get(username));
    room.typing.delete(username);
    if (room.name === this.active) renderTyping(room.typing.keys());
  }

  onMembers(frame) {
    const room = this.rooms.get(frame.room);
    if (!room || !Array.isArray(frame.members)) return;
    room.members = frame.members;
    if (room.name === this.active) this.renderMembers();
  }

  onRooms(frame) {
    if (!Array.isArray(frame.rooms)) return;
    this.roomList = frame.rooms;
    for (const listed of frame.rooms) {
      const room = this.rooms.get(listed.name);
      if (!room || !listed.member) continue;
      if (listed.direct && typeof listed.with === 'string') room.with = listed.with;
      room.noteRead(listed.last_read_seq);
      if (!room.welcomed && room.name !== this.active) {
        // Not joined yet on this connection: the server's count is all there is.
        room.unread = Number(listed.unread) || 0;
      } else if (!room.welcomed && Number(listed.unread) > 0 && this.dividerAfter === null) {
        // The room on screen at start: its unread messages begin after the read point.
        this.dividerAfter = room.readSeq;
        this.view.dividerAfter = room.readSeq;
        this.view.placeDivider();
      }
      this.recountUnread(room);
    }
    if (!this.membershipsRestored) {
      // The first list since starting: rooms this user is a member of but this browser does not remember (joined on
      // another device, or storage cleared) are joined again. Members rejoin without a password.
      this.membershipsRestored = true;
      for (const room of frame.rooms) {
        if (room.member && !this.rooms.has(room.name)) this.restore(room);
      }
    }
    for (const room of this.rooms.values()) room.private = this.isPrivate(room.name);
    this.renderRooms();
    this.renderRoomHead();
  }

  onRoomDeleted(frame) {
    if (this.rooms.has(frame.room)) {
      showNotice(`Room "${frame.room}" was deleted by ${frame.by}.`);
      this.forget(frame.room);
    }
    this.refreshRooms();
  }

  // ---- what the person does --------------------------------------------------------------------------------------

  refreshRooms() {
    this.conn.send('list_rooms', {});
  }

  /**
   * A click in the room list: show a joined room, join a public one, ask for a private one's password, open a
   * direct conversation again.
   */
  select(room) {
    if (this.rooms.has(room.name)) {
      this.activate(room.name);
    } else if (isDirect(room)) {
      this.direct.open(room.with ?? peerFromName(room.name, this.me));
    } else if (!room.private) {
      this.join(room.name);
    } else {
      const form = byTestId('join-room-form');
      form.elements.name.value = room.name;
      form.elements.password.value = '';
      form.elements.password.focus();
      byTestId('join-hint').textContent = `"${room.name}" is private: enter its password to join.`;
    }
  }

  async join(name, password) {
    if (this.rooms.has(name)) {
      this.activate(name);
      return true;
    }
    const data = { name };
    if (password) data.password = password;
    return this.enter('join_room', data);
  }

  async create(name, isPrivate, password) {
    const data = { name, private: isPrivate };
    if (isPrivate) data.password = password;
    return this.enter('create_room', data);
  }

  /** Sends `command` (joining or creating room `data.name`), which ends with the room's welcome; shows the room. */
  async enter(command, data) {
    try {
      await this.conn.request(command, data, { until: 'welcome' });
    } catch (error) {
      showError(commandErrorText(error));
      return false;
    }
    clearError();
    this.activate(data.name);
    this.refreshRooms();
    return true;
  }

  async leave() {
    const room = this.activeRoom();
    if (!room) return;
    try {
      await this.conn.request('leave_room', { name: room.name }, { until: 'left_room' });
    } catch (error) {
      showError(commandErrorText(error));
      return;
    }
    showNotice(`You left "${room.name}".`);
    this.refreshRooms();
  }

  async deleteActive() {
    const room = this.activeRoom();
    if (!room) return;
    try {
      await api.deleteRoom(room.name);
    } catch (error) {
      showError(api.describe(error));
    }
  }

  /** Posts `content` to the room on screen; it shows as pending until the server acknowledges it. */
  send(content) {
    const room = this.activeRoom();
    if (!room || !content.trim()) return false;
    // The others stop showing us typing when the message arrives: the next keystroke announces the next one.
    this.lastTypingSent = 0;
    const replyTo = this.replyTarget?.room === room.name ? this.replyTarget.seq : undefined;
    this.setReplyTarget(null);
    this.outbox.queue(room, content, replyTo);
    return true;
  }

  /** Fetches the next older page of `room` (newest first from the server), keeping the reader's place. */
  async loadOlder(room) {
    if (!room || !room.hasMore || room.loadingOlder || !this.conn.open) return;
    room.loadingOlder = true;
    if (room === this.activeRoom()) this.view.updateControls();
    let page;
    try {
      page = await this.conn.request(
        'get_messages',
        { name: room.name, before_seq: room.nextBefore, limit: PAGE },
        { until: 'history' },
      );
    } catch (error) {
      room.loadingOlder = false;
      if (room === this.activeRoom()) this.view.updateControls();
      if (!CONNECTION_ERRORS.has(error.code)) showError(commandErrorText(error));
      return;
    }
    room.loadingOlder = false;
    if (this.rooms.get(room.name) !== room) return;
    const messages = Array.isArray(page.messages) ? page.messages : [];
    // The page's messages include every change up to as_of: live changes are applied to them only after it.
    const asOf = Number.isSafeInteger(page.as_of) ? page.as_of : undefined;
    this.view.keepingPosition(() => {
      for (const message of messages) {
        const index = room.add(message, asOf);
        if (index >= 0) this.view.added(room, index);
      }
    });
    const oldest = messages.reduce((min, message) => Math.min(min, Number(message.seq)), room.nextBefore);
    room.nextBefore = Number.isSafeInteger(page.next_before) ? page.next_before : oldest;
    room.hasMore = Boolean(page.has_more) && room.nextBefore > 1;
    this.recountUnread(room);
    this.renderRooms();
    if (room === this.activeRoom()) {
      this.view.updateControls();
      if (this.view.needsMore()) this.loadOlder(room);
    }
  }

  /** Adds (`add`) or takes back one's reaction `emoji` on message `seq` of the room on screen. */
  async react(seq, emoji, add) {
    const room = this.activeRoom();
    if (!room) return;
    try {
      await this.conn.request(add ? 'react' : 'unreact', { room: room.name, seq, emoji }, { until: 'ack' });
    } catch (error) {
      showError(commandErrorText(error));
    }
  }

  /** Replaces the content of one's own message `seq`; resolves whether the edit was stored. */
  async edit(seq, content) {
    const room = this.activeRoom();
    if (!room) return false;
    try {
      await this.conn.request('edit_message', { room: room.name, seq, content }, { until: 'ack' });
      return true;
    } catch (error) {
      showError(commandErrorText(error));
      return false;
    }
  }

  /** Deletes message `seq` (one's own, or any as the room's owner); it becomes a tombstone for everyone. */
  async deleteMessage(seq) {
    const room = this.activeRoom();
    if (!room) return;
    try {
      await this.conn.request('delete_message', { room: room.name, seq }, { until: 'ack' });
    } catch (error) {
      showError(commandErrorText(error));
    }
  }

  /** Sets (or with `null` clears) the message of the room on screen that the next post replies to. */
  setReplyTarget(seq) {
    const room = this.activeRoom();
    const message = seq === null || !room ? null : room.messages.get(seq);
    this.replyTarget = message && !message.deleted ? { room: room.name, seq } : null;
    const bar = byTestId('reply-target');
    bar.hidden = !this.replyTarget;
    byTestId('reply-target-author').textContent = message?.username ?? '';
    byTestId('reply-target-text').textContent = message ? message.content : '';
    if (this.replyTarget) byTestId('message-input').focus();
  }

  /** A search result clicked: its room on screen, older pages fetched until the message is there, shown. */
  async openResult(result) {
    if (!this.rooms.has(result.room) && !(await this.join(result.room))) return;
    this.activate(result.room);
    const room = this.rooms.get(result.room);
    const seq = Number(result.seq);
    for (let pages = 0; room && !room.messages.has(seq) && pages < REVEAL_MAX_PAGES; pages += 1) {
      if (!room.welcomed || room.loadingOlder) {
        await new Promise((resolve) => { setTimeout(resolve, 100); });
      } else if (room.hasMore) {
        await this.loadOlder(room);
      } else {
        break;
      }
      if (this.active !== result.room) return;
    }
    this.view.reveal(seq);
  }

  typing() {
    const room = this.activeRoom();
    const now = Date.now();
    if (!room || now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    this.lastTypingSent = now;
    this.conn.send('typing', { room: room.name });
  }

  // ---- screen ----------------------------------------------------------------------------------------------------

  activate(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    if (this.active !== name) {
      this.dividerAfter = room.unread > 0 ? room.readSeq : null;
      if (this.replyTarget?.room !== name) this.setReplyTarget(null);
    }
    this.active = name;
    room.unread = 0;
    localStorage.setItem(this.key('active'), name);
    this.renderAll();
    this.showPanel('chat');
    byTestId('message-input').focus();
    if (this.view.needsMore()) this.loadOlder(room);
  }

  /** Drops a room we are no longer in (left, deleted, or refused on rejoin). */
  forget(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    for (const timer of room.typing.values()) clearTimeout(timer);
    this.rooms.delete(name);
    this.saveRooms();
    if (this.replyTarget?.room === name) this.setReplyTarget(null);
    if (this.active === name) {
      this.dividerAfter = null;
      this.active = this.rooms.keys().next().value ?? null;
      if (this.active) localStorage.setItem(this.key('active'), this.active);
      else localStorage.removeItem(this.key('active'));
    }
    this.renderAll();
  }

  renderAll() {
    const room = this.activeRoom();
    this.view.show(room, this.me, { owner: this.owns(room), dividerAfter: this.dividerAfter });
    this.renderMembers();
    renderTyping(room ? room.typing.keys() : []);
    this.renderRooms();
    this.renderRoomHead();
    const input = byTestId('message-input');
    input.disabled = !room;
    byTestId('send-button').disabled = !room;
  }

  /** The members of the room on screen, each other one with a "message" action (but in a direct conversation). */
  renderMembers() {
    const room = this.activeRoom();
    const onMessage = room && !room.direct ? (username) => this.direct.open(username) : null;
    renderMembers(room ? room.members : [], this.me, onMessage);
  }

  renderRooms() {
    // Joined rooms the list has not caught up with yet are shown too.
    const listed = new Set(this.roomList.map((room) => room.name));
    const extra = [...this.rooms.values()]
      .filter((room) => !listed.has(room.name))
      .map((room) => ({ name: room.name, private: room.private, members_online: 0, direct: room.direct, with: room.with }));
    const all = [...this.roomList, ...extra];
    const select = (room) => this.select(room);
    renderRoomList(all.filter((room) => !isDirect(room)), this.rooms, this.active, select);
    this.direct.renderList(all.filter((room) => isDirect(room)), this.rooms, this.active, select);
  }

  renderRoomHead() {
    const room = this.activeRoom();
    const listed = room && this.roomList.find((entry) => entry.name === room.name);
    const heading = byTestId('active-room-name');
    heading.replaceChildren(
      el('span', { class: 'room-title', text: room ? this.roomLabel(room.name) : 'No room selected' }),
      ...(room?.direct ? [el('span', { class: 'badge', text: 'direct', dataset: { testid: 'direct-badge' } })]
        : room?.private ? [el('span', { class: 'badge', text: 'private' })] : []),
    );
    byTestId('leave-room').hidden = !room;
    this.direct.renderHead(room);
    // A direct conversation cannot be deleted (PROTOCOL §3.6), nor has it an owner who moderates it.
    const deletable = Boolean(listed && !room.direct && listed.created_by === this.userId);
    byTestId('delete-room').hidden = !deletable;
    this.view.setOwner(deletable);
    // A room list or member update re-renders the head while the owner is confirming: the question stays open
    // unless it no longer applies (another room is shown, or this one cannot be deleted by them).
    if (!deletable || this.confirmingDelete !== room?.name) this.closeDeleteConfirm();
  }

  closeDeleteConfirm() {
    this.confirmingDelete = null;
    byTestId('delete-confirm').hidden = true;
  }

  showPanel(panel) {
    byTestId('chat-view').dataset.panel = panel;
  }

  /** Whether the signed-in user owns `room` (and so may delete any message in it). */
  owns(room) {
    if (!room || room.direct) return false;
    const listed = this.roomList.find((entry) => entry.name === room.name);
    return Boolean(listed && listed.created_by === this.userId);
  }

  isPrivate(name) {
    return Boolean(this.roomList.find((room) => room.name === name)?.private);
  }

  // ---- controls --------------------------------------------------------------------------------------------------

  bindControls() {
    const composer = byTestId('composer');
    const input = byTestId('message-input');
    composer.addEventListener('submit', (event) => {
      event.preventDefault();
      if (this.send(input.value)) input.value = '';
      input.focus();
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
    input.addEventListener('input', () => {
      if (input.value.trim()) this.typing();
    });

    bindRoomForms({
      onJoin: (name, password) => this.join(name, password),
      onCreate: (name, isPrivate, password) => this.create(name, isPrivate, password),
    });

    byTestId('reply-cancel').addEventListener('click', () => this.setReplyTarget(null));
    document.addEventListener('visibilitychange', () => this.view.onSeeNewest());

    this.search.bind();
    this.direct.bind();

    byTestId('refresh-rooms').addEventListener('click', () => this.refreshRooms());
    byTestId('leave-room').addEventListener('click', () => this.leave());
    byTestId('delete-room').addEventListener('click', () => {
      this.confirmingDelete = this.activeRoom()?.name ?? null;
      byTestId('delete-confirm').hidden = false;
      byTestId('delete-confirm-no').focus();
    });
    byTestId('delete-confirm-no').addEventListener('click', () => this.closeDeleteConfirm());
    byTestId('delete-confirm-yes').addEventListener('click', () => {
      this.closeDeleteConfirm();
      this.deleteActive();
    });
    for (const tab of document.querySelectorAll('[data-panel-target]')) {
      tab.addEventListener('click', () => this.showPanel(tab.dataset.panelTarget));
    }
  }

  // ---- remembered between visits ---------------------------------------------------------------------------------

  key(what) {
    return `palaver.${what}.${this.me}`;
  }

  savedRooms() {
    try {
      const names = JSON.parse(localStorage.getItem(this.key('rooms')) ?? '[]');
      return Array.isArray(names) ? names.filter((name) => typeof name === 'string') : [];
    } catch {
      return [];
    }
  }

  saveRooms() {
    localStorage.setItem(this.key('rooms'), JSON.stringify([...this.rooms.keys()]));
  }

  savedActive() {
    const name = localStorage.getItem(this.key('active'));
    return name && this.rooms.has(name) ? name : null;
  }

  debounce(key, action, ms) {
    if (this.debounced.has(key)) return;
    this.debounced.set(key, setTimeout(() => {
      this.debounced.delete(key);
      action();
    }, ms));
  }
}
