// What the client knows of one joined room: its messages keyed by seq (so a message heard twice, live and in a
// replay, is kept once), the messages of ours still on their way, and the cursors for resuming and paging back.

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
    this.members = [];
    /** username → timer that hides their "is typing". */
    this.typing = new Map();
  }

  /**
   * Adds a stored message; returns its index in seq order, or -1 when it is already known (a duplicate from a replay
   * or a resend).
   */
  add(message) {
    const seq = Number(message.seq);
    if (!Number.isSafeInteger(seq) || seq < 1) return -1;
    if (this.messages.has(seq)) return -1;
    this.messages.set(seq, { ...message, seq });
    this.lastSeq = Math.max(this.lastSeq, seq);
    let index = this.seqs.length;
    // Live messages arrive in order, so the search almost always ends at once.
    while (index > 0 && this.seqs[index - 1] > seq) index -= 1;
    this.seqs.splice(index, 0, seq);
    return index;
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

/** A fresh id for an outgoing post: the server stores a repeat of the same id once (idempotent resend). */
export function newClientMsgId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
