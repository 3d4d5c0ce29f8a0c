// What the client knows of one joined room: its messages keyed by seq (so a message heard twice, live and in a
// replay, is kept once) in their current state (edits, deletions, reactions and reply counts applied), the messages
// of ours still on their way, the read point, and the cursors for resuming and paging back.
//
// Every entry of the room's log has a seq of its own: a message, and also an edit, a deletion or a reaction, which
// names its message with `target_seq` (PROTOCOL §6.1). The newest seq seen counts them all, so a resume asks only for
// what followed and a change is never applied twice.
//
// A history page shows its messages as of the page's `as_of` (PROTOCOL §5.3): every change with a seq up to it is in
// them already. So a change reaching a paged-in message applies only when its seq is greater (a reaction heard live
// just after the page that counts it is not counted twice), and a change that arrived before the page, for a message
// not held yet, is kept and applied when the page brings that message, again only when its seq is greater.

/** One joined room. */
export class RoomState {
  constructor(name, isPrivate = false) {
    this.name = name;
    this.private = isPrivate;
    /** seq → message, and the seqs in ascending order. */
    this.messages = new Map();
    this.seqs = [];
    /** client_msg_id → { content, state: 'sending' | 'waiting' | 'failed', error } for our unacknowledged posts. */
    this.pending = new Map();
    /** The newest seq this client has (from the welcome, history, live messages); a resume asks for what follows. */
    this.lastSeq = 0;
    /** Whether the server has welcomed us once: from then on, reconnecting resumes with `after_seq`. */
    this.welcomed = false;
    /** Cursor and flag for the next older page. */
    this.nextBefore = null;
    this.hasMore = false;
    this.loadingOlder = false;
    this.unread = 0;
    /** The seq the user has read through (PROTOCOL §6.5), as the server last said; and the newest mark sent. */
    this.readSeq = 0;
    this.markedSeq = 0;
    /** The newest seq the reader has had in view here (what the next mark says). */
    this.seenSeq = 0;
    this.members = [];
    /** username → timer that hides their "is typing". */
    this.typing = new Map();
    /** Whether this is a direct room (PROTOCOL §3.6), and then the other person's username. */
    this.direct = false;
    this.with = null;
    /** Changes heard for messages older than those held, oldest first: [{ frame, me }] (a page may bring them). */
    this.unapplied = [];
  }

  /**
   * Adds a stored message; returns its index in seq order, or -1 when it is already known (a duplicate from a replay
   * or a resend). `asOf`: for a message of a history page, the page's `as_of` (the message's state includes every
   * change up to that seq); absent for a live or replayed message, and for a page without one.
   */
  add(message, asOf) {
    const seq = Number(message.seq);
    if (!Number.isSafeInteger(seq) || seq < 1) return -1;
    if (this.messages.has(seq)) return -1;
    const stored = { ...message, seq };
    delete stored.asOf;
    if (Number.isSafeInteger(asOf)) stored.asOf = asOf;
    if (stored.deleted) stored.content = '';
    stored.reactions = Array.isArray(message.reactions) ? message.reactions.map((r) => ({ ...r })) : [];
    stored.replies = Number(message.replies) || 0;
    this.messages.set(seq, stored);
    this.noteSeq(seq);
    // A live reply counts towards its parent's replies (history counts them itself: a parent paged in later
    // arrives with its count, and a paged-in parent counts the replies up to its page's as_of).
    const parent = this.replyParent(stored);
    if (parent && !stored.deleted && after(parent, seq)) parent.replies += 1;
    let index = this.seqs.length;
    // Live messages arrive in order, so the search almost always ends at once.
    while (index > 0 && this.seqs[index - 1] > seq) index -= 1;
    this.seqs.splice(index, 0, seq);
    if (stored.asOf !== undefined) this.applyKept(seq);
    return index;
  }

  /** Applies the kept changes of message `seq`, just paged in, that its page does not include yet. */
  applyKept(seq) {
    const kept = this.unapplied.filter((entry) => Number(entry.frame.target_seq) === seq);
    if (kept.length === 0) return;
    this.unapplied = this.unapplied.filter((entry) => Number(entry.frame.target_seq) !== seq);
    for (const { frame, me } of kept) this.apply(frame, me);
  }

  /** Takes note of an entry's seq (a message or a change): the newest one is where a resume starts. */
  noteSeq(seq) {
    const n = Number(seq);
    if (Number.isSafeInteger(n)) this.lastSeq = Math.max(this.lastSeq, n);
  }

  /** The held message `message` replies to, if any. */
  replyParent(message) {
    return message.reply_to !== undefined ? this.messages.get(Number(message.reply_to)) ?? null : null;
  }

  /**
   * Applies a `message_edited`, `message_deleted` or `reaction` entry; returns the changed message, or `null` when
   * it is not held (a message older than the pages loaded: history shows it in its current state) or nothing
   * changed. `me` is the reader, whose own reactions are marked.
   */
  apply(frame, me) {
    this.noteSeq(frame.seq);
    const target = Number(frame.target_seq);
    const message = this.messages.get(target);
    if (!message) {
      // Older than what is held: a page fetched later may bring the message without this change in it.
      if (this.oldestSeq === null || target < this.oldestSeq) {
        this.unapplied.push({ frame, me });
        if (this.unapplied.length > KEPT_CHANGES) this.unapplied.shift();
      }
      return null;
    }
    // Already in the message's state: its history page was read after this change.
    if (!after(message, Number(frame.seq))) return null;
    if (message.deleted) return null;
    if (frame.type === 'message_edited') {
      message.content = String(frame.content ?? '');
      message.edited_at = frame.edited_at;
    } else if (frame.type === 'message_deleted') {
      message.deleted = true;
      message.content = '';
      message.reactions = [];
      const parent = this.replyParent(message);
      if (parent && parent.replies > 0 && after(parent, Number(frame.seq))) parent.replies -= 1;
    } else if (frame.type === 'reaction') {
      applyReaction(message, frame.emoji, frame.added === true, frame.username === me);
    } else {
      return null;
    }
    return message;
  }

  /** The held messages whose quote shows message `seq` (their quote changes with it). */
  repliesTo(seq) {
    return this.ordered().filter((message) => Number(message.reply_to) === seq);
  }

  /** Moves the known read point forward (never back, as the server does). */
  noteRead(seq) {
    const n = Number(seq);
    if (Number.isSafeInteger(n) && n > this.readSeq) this.readSeq = n;
  }

  /**
   * The unread messages after the read point counted from what is held (others' messages, not deleted), or `null`
   * before the room is joined or when the held pages do not reach back to the read point (then only the server can
   * count them).
   */
  unreadHeld(me) {
    if (!this.welcomed) return null;
    const covered = !this.hasMore || (this.oldestSeq !== null && this.oldestSeq <= this.readSeq + 1);
    if (!covered) return this.readSeq >= this.lastSeq ? 0 : null;
    let count = 0;
    for (const seq of this.seqs) {
      const message = this.messages.get(seq);
      if (seq > this.readSeq && !message.deleted && message.username !== me) count += 1;
    }
    return count;
  }

  /** The oldest seq held, or `null`. */
  get oldestSeq() {
    return this.seqs.length ? this.seqs[0] : null;
  }

  /** The messages in seq order. */
  ordered() {
    return this.seqs.map((seq) => this.messages.get(seq));
  }
}

/** How many changes for messages not held yet are kept for the pages that may bring them. */
const KEPT_CHANGES = 500;

/**
 * Whether the entry `seq` is news to `message`: always for a live or replayed message, and for a paged-in one when
 * the seq is greater than its page's `as_of`.
 */
function after(message, seq) {
  return message.asOf === undefined || !Number.isSafeInteger(seq) || seq > message.asOf;
}

/** Adds (or takes back) one reaction to a message's aggregated counts: `[{emoji, count, me}]`. */
function applyReaction(message, emoji, added, mine) {
  let entry = message.reactions.find((reaction) => reaction.emoji === emoji);
  if (added) {
    if (!entry) {
      entry = { emoji, count: 0, me: false };
      message.reactions.push(entry);
    }
    entry.count += 1;
    if (mine) entry.me = true;
  } else if (entry) {
    entry.count -= 1;
    if (mine) entry.me = false;
    if (entry.count <= 0) message.reactions.splice(message.reactions.indexOf(entry), 1);
  }
}

/** A fresh id for an outgoing post: the server stores a repeat of the same id once (idempotent resend). */
export function newClientMsgId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
