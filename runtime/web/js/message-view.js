// The message pane of the room on screen: stored messages in seq order, then our own still pending, with the
// reading position kept when older pages are put in above and the view kept at the bottom while reading live.

import { byTestId, el, shortTime } from './dom.js';

/** How close to the top (px) scrolling must come to fetch the next older page. */
const LOAD_OLDER_AT = 80;
/** How close to the bottom (px) counts as reading live: new messages then scroll into view. */
const STICK_TO_BOTTOM = 60;

/** Renders one room's messages; `onLoadOlder()`, `onRetry(id)`, `onDiscard(id)` report what the reader asks for. */
export class MessageView {
  constructor({ onLoadOlder, onRetry, onDiscard }) {
    this.list = byTestId('messages');
    this.scroller = byTestId('message-scroller');
    this.olderButton = byTestId('load-older');
    this.empty = byTestId('empty-room');
    this.onRetry = onRetry;
    this.onDiscard = onDiscard;
    this.room = null;
    this.me = '';
    /** seq → <li>, and client_msg_id → <li> for pending posts. */
    this.nodes = new Map();
    this.pendingNodes = new Map();
    /** Whether the reader is at the newest message; kept there when the pane changes size (phone keyboard, rotation). */
    this.stuck = true;
    this.scroller.addEventListener('scroll', () => {
      this.stuck = this.atBottom();
      if (this.room && this.scroller.scrollTop < LOAD_OLDER_AT) onLoadOlder();
    });
    new ResizeObserver(() => {
      if (this.stuck) this.scrollToBottom();
    }).observe(this.scroller);
    this.olderButton.addEventListener('click', () => onLoadOlder());
  }

  /** Shows `room` (or nothing), scrolled to the newest message. */
  show(room, me) {
    this.room = room;
    this.me = me;
    this.nodes.clear();
    this.pendingNodes.clear();
    this.list.replaceChildren();
    if (room) {
      for (const message of room.ordered()) {
        const node = this.messageNode(message);
        this.nodes.set(message.seq, node);
        this.list.append(node);
      }
    }
    this.renderPending();
    this.updateControls();
    this.scrollToBottom();
  }

  /** Puts in a message `room` just stored at `index` of its seq order. */
  added(room, index) {
    if (room !== this.room) return;
    const seq = room.seqs[index];
    const message = room.messages.get(seq);
    const stick = this.atBottom();
    const node = this.messageNode(message);
    const nextSeq = room.seqs[index + 1];
    const before = nextSeq !== undefined ? this.nodes.get(nextSeq) : this.firstPendingNode();
    this.list.insertBefore(node, before ?? null);
    this.nodes.set(seq, node);
    this.updateControls();
    if (stick) this.scrollToBottom();
  }

  /** Runs `change` (which puts in older messages) without moving what the reader is looking at. */
  keepingPosition(change) {
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    change();
    this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
  }

  /** Redraws our pending posts (after one was sent, stored, failed or discarded). */
  pendingChanged(room) {
    if (room !== this.room) return;
    const stick = this.atBottom();
    this.renderPending();
    this.updateControls();
    if (stick) this.scrollToBottom();
  }

  /** Shows or hides "load older" and the empty-room hint. */
  updateControls() {
    const room = this.room;
    this.olderButton.hidden = !room || !room.hasMore;
    this.olderButton.disabled = Boolean(room?.loadingOlder);
    this.olderButton.textContent = room?.loadingOlder ? 'Loading…' : 'Load older messages';
    this.empty.hidden = !room || room.seqs.length > 0 || room.pending.size > 0 || room.hasMore;
  }

  /** Whether the page does not fill the pane yet (so scrolling up cannot ask for more). */
  needsMore() {
    return Boolean(this.room?.hasMore) && this.scroller.scrollHeight <= this.scroller.clientHeight + LOAD_OLDER_AT;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stuck = true;
  }

  atBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < STICK_TO_BOTTOM;
  }

  firstPendingNode() {
    return this.pendingNodes.values().next().value;
  }

  renderPending() {
    for (const node of this.pendingNodes.values()) node.remove();
    this.pendingNodes.clear();
    if (!this.room) return;
    for (const [id, post] of this.room.pending) {
      const node = this.pendingNode(id, post);
      this.pendingNodes.set(id, node);
      this.list.append(node);
    }
  }

  messageNode(message) {
    const mine = message.username === this.me;
    return el('li', {
      class: mine ? 'message mine' : 'message',
      dataset: { testid: 'message', seq: message.seq, author: message.username },
    },
    el('div', { class: 'message-head' },
      el('span', { class: 'message-author', text: message.username, dataset: { testid: 'message-author' } }),
      el('time', {
        class: 'message-time',
        text: shortTime(message.timestamp),
        attrs: { datetime: message.timestamp, title: message.timestamp },
      })),
    el('div', { class: 'message-content', text: message.content, dataset: { testid: 'message-content' } }));
  }

  pendingNode(id, post) {
    const failed = post.state === 'failed';
    const label = failed ? `Not sent: ${post.error}` : post.state === 'waiting' ? 'Waiting for connection…' : 'Sending…';
    return el('li', {
      class: failed ? 'message mine pending failed' : 'message mine pending',
      dataset: { testid: 'message', pending: post.state, clientMsgId: id, author: this.me },
    },
    el('div', { class: 'message-head' },
      el('span', { class: 'message-author', text: this.me, dataset: { testid: 'message-author' } }),
      el('span', { class: 'message-state', text: label, dataset: { testid: 'message-state' } })),
    el('div', { class: 'message-content', text: post.content, dataset: { testid: 'message-content' } }),
    failed && el('div', { class: 'message-actions' },
      el('button', { text: 'Retry', attrs: { type: 'button' }, dataset: { testid: 'message-retry' }, on: { click: () => this.onRetry(id) } }),
      el('button', { text: 'Discard', attrs: { type: 'button' }, dataset: { testid: 'message-discard' }, on: { click: () => this.onDiscard(id) } })));
  }
}
