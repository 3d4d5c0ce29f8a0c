// The message pane of the room on screen: stored messages in seq order, then our own still pending, with the
// reading position kept when older pages are put in above and the view kept at the bottom while reading live. Each
// message shows its current state (edited, deleted as a tombstone, its reactions, the quote of the message it
// replies to) and the actions the reader may take on it; a divider marks where the unread messages began.

import { byTestId, el, shortTime } from './dom.js';

/** The quick reactions offered on every message. */
export const QUICK_EMOJIS = ['👍', '❤️', '😂', '🎉'];
/** How much of a parent's text a reply's quote shows. */
const QUOTE_CHARS = 80;

/** How close to the top (px) scrolling must come to fetch the next older page. */
const LOAD_OLDER_AT = 80;
/** How close to the bottom (px) counts as reading live: new messages then scroll into view. */
const STICK_TO_BOTTOM = 60;

/**
 * Renders one room's messages. Callbacks report what the reader asks for: `onLoadOlder()`, `onRetry(id)`,
 * `onDiscard(id)` for pending posts; `onReact(seq, emoji, add)`, `onReply(seq)`, `onEdit(seq, content)` (resolves
 * true once stored), `onDelete(seq)` for stored messages; `onSeeNewest()` when the newest message is in view.
 */
export class MessageView {
  constructor({ onLoadOlder, onRetry, onDiscard, onReact, onReply, onEdit, onDelete, onSeeNewest }) {
    this.list = byTestId('messages');
    this.scroller = byTestId('message-scroller');
    this.olderButton = byTestId('load-older');
    this.empty = byTestId('empty-room');
    this.onRetry = onRetry;
    this.onDiscard = onDiscard;
    this.onReact = onReact;
    this.onReply = onReply;
    this.onEdit = onEdit;
    this.onDelete = onDelete;
    this.onSeeNewest = onSeeNewest;
    this.room = null;
    this.me = '';
    /** Whether the reader owns the room on screen (and so may delete anyone's message). */
    this.owner = false;
    /** The message being edited: { seq, draft }; and the seq whose deletion is being confirmed. */
    this.editing = null;
    this.confirmingDelete = null;
    /** New messages start after this seq (the read point when the room was opened), or `null`: no divider. */
    this.dividerAfter = null;
    this.divider = el('li', { class: 'divider', dataset: { testid: 'unread-divider' }, attrs: { role: 'separator' } },
      el('span', { text: 'New messages' }));
    /** seq → <li>, and client_msg_id → <li> for pending posts. */
    this.nodes = new Map();
    this.pendingNodes = new Map();
    /** Whether the reader is at the newest message; kept there when the pane changes size (phone keyboard, rotation). */
    this.stuck = true;
    this.scroller.addEventListener('scroll', () => {
      this.stuck = this.atBottom();
      if (this.stuck) this.onSeeNewest();
      if (this.room && this.scroller.scrollTop < LOAD_OLDER_AT) onLoadOlder();
    });
    new ResizeObserver(() => {
      if (this.stuck) this.scrollToBottom();
    }).observe(this.scroller);
    this.olderButton.addEventListener('click', () => onLoadOlder());
  }

  /**
   * Shows `room` (or nothing), scrolled to the newest message. `dividerAfter`: the read point when the room was
   * opened (the divider goes before the first message after it), or `null`.
   */
  show(room, me, { owner = false, dividerAfter = null } = {}) {
    if (room !== this.room) {
      this.editing = null;
      this.confirmingDelete = null;
    }
    this.room = room;
    this.me = me;
    this.owner = owner;
    this.dividerAfter = dividerAfter;
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
    this.placeDivider();
    this.renderPending();
    this.updateControls();
    this.scrollToBottom();
  }

  /** Whether the reader owns the room: the delete action then shows on every message. */
  setOwner(owner) {
    if (owner === this.owner || !this.room) return;
    this.owner = owner;
    for (const seq of this.room.seqs) this.redraw(seq);
  }

  /** Redraws message `seq` of `room` after a change (edit, deletion, reaction), and the quotes of its replies. */
  updated(room, seq) {
    if (room !== this.room) return;
    if (this.editing?.seq === seq && room.messages.get(seq)?.deleted) this.editing = null;
    this.redraw(seq);
    for (const reply of room.repliesTo(seq)) this.redraw(reply.seq);
    // A deleted reply no longer counts towards its parent's replies.
    const message = room.messages.get(seq);
    if (message?.reply_to !== undefined) this.redraw(Number(message.reply_to));
    this.placeDivider();
  }

  redraw(seq) {
    const old = this.nodes.get(seq);
    const message = this.room?.messages.get(seq);
    if (!old || !message) return;
    const stick = this.atBottom();
    const node = this.messageNode(message);
    old.replaceWith(node);
    this.nodes.set(seq, node);
    if (stick) this.scrollToBottom();
  }

  /** Puts the "new messages" divider before the first message by someone else after the read point. */
  placeDivider() {
    const room = this.room;
    const first = room && this.dividerAfter !== null
      ? room.seqs.find((seq) => seq > this.dividerAfter && room.messages.get(seq).username !== this.me)
      : undefined;
    if (first === undefined) {
      this.divider.remove();
      return;
    }
    const node = this.nodes.get(first);
    if (node && node.previousSibling !== this.divider) this.list.insertBefore(this.divider, node);
  }

  /** Brings message `seq` into view and marks it for a moment (a search result, a quote's parent). */
  reveal(seq) {
    const node = this.nodes.get(seq);
    if (!node) return false;
    node.scrollIntoView({ block: 'center' });
    this.stuck = this.atBottom();
    node.classList.add('flash');
    setTimeout(() => node.classList.remove('flash'), 2000);
    return true;
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
    // A reply put in before its quoted parent arrived shows the parent once it is here; a parent shows its count.
    for (const reply of room.repliesTo(seq)) this.redraw(reply.seq);
    if (message.reply_to !== undefined) this.redraw(Number(message.reply_to));
    this.placeDivider();
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
    if (this.room) this.onSeeNewest();
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
    const classes = ['message'];
    if (mine && !message.deleted) classes.push('mine');
    if (message.deleted) classes.push('deleted');
    // A tombstone names nobody: replayed, a deleted message has neither author nor content.
    const dataset = { testid: 'message', seq: message.seq, author: message.deleted ? '' : message.username ?? '' };
    if (message.deleted) dataset.deleted = 'true';
    else if (message.edited_at) dataset.edited = 'true';
    if (message.reply_to !== undefined && !message.deleted) dataset.replyTo = message.reply_to;
    if (message.deleted) {
      return el('li', { class: classes.join(' '), dataset },
        el('div', { class: 'message-content tombstone', text: 'message deleted', dataset: { testid: 'message-content' } }));
    }
    const editing = this.editing?.seq === message.seq;
    return el('li', { class: classes.join(' '), dataset },
      el('div', { class: 'message-head' },
        el('span', { class: 'message-author', text: message.username, dataset: { testid: 'message-author' } }),
        el('time', {
          class: 'message-time',
          text: shortTime(message.timestamp),
          attrs: { datetime: message.timestamp, title: message.timestamp },
        }),
        message.edited_at && el('span', {
          class: 'message-state',
          text: '(edited)',
          dataset: { testid: 'message-edited' },
          attrs: { title: `edited ${message.edited_at}` },
        })),
      message.reply_to !== undefined && this.quoteNode(Number(message.reply_to)),
      editing
        ? this.editorNode(message)
        : el('div', { class: 'message-content', text: message.content, dataset: { testid: 'message-content' } }),
      this.reactionsNode(message),
      !editing && this.actionsNode(message, mine));
  }

  /** The quote of the message a reply answers: its author and the start of its text. */
  quoteNode(parentSeq) {
    const parent = this.room?.messages.get(parentSeq);
    let author = null;
    let text = 'an earlier message';
    if (parent?.deleted) text = 'deleted message';
    else if (parent) {
      author = parent.username;
      text = parent.content.length > QUOTE_CHARS ? `${parent.content.slice(0, QUOTE_CHARS)}…` : parent.content;
    }
    return el('button', {
      class: 'message-quote',
      attrs: { type: 'button', title: 'Show the message replied to' },
      dataset: { testid: 'message-quote', parent: parentSeq },
      on: { click: () => this.reveal(parentSeq) },
    },
    author && el('span', { class: 'quote-author', text: author, dataset: { testid: 'quote-author' } }),
    el('span', { class: 'quote-text', text, dataset: { testid: 'quote-text' } }));
  }

  /** The message's reactions (each a toggle of one's own) and its reply count. */
  reactionsNode(message) {
    const chips = message.reactions.map((reaction) => el('button', {
      class: reaction.me ? 'reaction me' : 'reaction',
      attrs: {
        type: 'button',
        'aria-pressed': reaction.me ? 'true' : 'false',
        'aria-label': `${reaction.emoji} ${reaction.count}${reaction.me ? ', including you' : ''}`,
      },
      dataset: { testid: 'reaction', emoji: reaction.emoji, count: reaction.count, me: reaction.me },
      on: { click: () => this.onReact(message.seq, reaction.emoji, !reaction.me) },
    },
    el('span', { text: reaction.emoji }),
    el('span', { class: 'reaction-count', text: reaction.count, dataset: { testid: 'reaction-count' } })));
    const replies = message.replies > 0 && el('span', {
      class: 'reply-count',
      text: message.replies === 1 ? '1 reply' : `${message.replies} replies`,
      dataset: { testid: 'reply-count' },
    });
    if (chips.length === 0 && !replies) return null;
    return el('div', { class: 'reactions', dataset: { testid: 'reactions' } }, ...chips, replies);
  }

  /** What the reader may do with a stored message: react, reply, and (their own, or as owner) edit and delete. */
  actionsNode(message, mine) {
    const seq = message.seq;
    if (this.confirmingDelete === seq) {
      return el('div', { class: 'message-actions confirming' },
        el('span', { text: 'Delete this message?' }),
        el('button', {
          class: 'danger',
          text: 'Delete',
          attrs: { type: 'button' },
          dataset: { testid: 'message-delete-confirm' },
          on: { click: () => { this.confirmingDelete = null; this.redraw(seq); this.onDelete(seq); } },
        }),
        el('button', {
          text: 'Cancel',
          attrs: { type: 'button' },
          dataset: { testid: 'message-delete-cancel' },
          on: { click: () => { this.confirmingDelete = null; this.redraw(seq); } },
        }));
    }
    const has = new Map(message.reactions.map((reaction) => [reaction.emoji, reaction.me]));
    return el('div', { class: 'message-actions' },
      ...QUICK_EMOJIS.map((emoji) => el('button', {
        class: 'quick-react',
        text: emoji,
        attrs: { type: 'button', 'aria-label': `React ${emoji}`, 'aria-pressed': has.get(emoji) ? 'true' : 'false' },
        dataset: { testid: 'react-button', emoji },
        on: { click: () => this.onReact(seq, emoji, !has.get(emoji)) },
      })),
      el('button', {
        text: 'Reply',
        attrs: { type: 'button' },
        dataset: { testid: 'message-reply' },
        on: { click: () => this.onReply(seq) },
      }),
      mine && el('button', {
        text: 'Edit',
        attrs: { type: 'button' },
        dataset: { testid: 'message-edit' },
        on: { click: () => this.startEditing(seq) },
      }),
      (mine || this.owner) && el('button', {
        class: 'danger',
        text: 'Delete',
        attrs: { type: 'button' },
        dataset: { testid: 'message-delete' },
        on: { click: () => { this.confirmingDelete = seq; this.redraw(seq); } },
      }));
  }

  startEditing(seq) {
    const message = this.room?.messages.get(seq);
    if (!message || message.deleted) return;
    const previous = this.editing?.seq;
    this.editing = { seq, draft: message.content };
    if (previous !== undefined && previous !== seq) this.redraw(previous);
    this.redraw(seq);
    this.nodes.get(seq)?.querySelector('textarea')?.focus();
  }

  stopEditing(seq) {
    if (this.editing?.seq !== seq) return;
    this.editing = null;
    this.redraw(seq);
  }

  /** The inline editor of one's own message: Enter saves, Shift+Enter is a new line, Escape cancels. */
  editorNode(message) {
    const seq = message.seq;
    const input = el('textarea', {
      class: 'edit-input',
      attrs: { rows: 2, 'aria-label': 'Edit message' },
      dataset: { testid: 'edit-input' },
    });
    input.value = this.editing.draft;
    const save = async () => {
      const content = input.value;
      if (!content.trim()) return;
      if (content === message.content) {
        this.stopEditing(seq);
        return;
      }
      saveButton.disabled = true;
      const stored = await this.onEdit(seq, content);
      if (stored) this.stopEditing(seq);
      else saveButton.disabled = false;
    };
    const saveButton = el('button', {
      class: 'primary',
      text: 'Save',
      attrs: { type: 'button' },
      dataset: { testid: 'edit-save' },
      on: { click: save },
    });
    input.addEventListener('input', () => {
      if (this.editing?.seq === seq) this.editing.draft = input.value;
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        save();
      } else if (event.key === 'Escape') {
        event.stopPropagation();
        this.stopEditing(seq);
      }
    });
    return el('div', { class: 'message-editor' },
      input,
      el('div', { class: 'message-actions' },
        saveButton,
        el('button', {
          text: 'Cancel',
          attrs: { type: 'button' },
          dataset: { testid: 'edit-cancel' },
          on: { click: () => this.stopEditing(seq) },
        })));
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
