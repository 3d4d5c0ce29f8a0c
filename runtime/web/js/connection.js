// The WebSocket, kept open: a single-use ticket per attempt (browsers cannot send an Authorization header), the
// `palaver.v1.json` sub-protocol, commands with correlation ids, and reconnection with capped, jittered backoff.
// What to do after a reconnect (resume each room) belongs to the chat, which is told through `onOpen`.

import { ApiError, wsTicket } from './api.js';

/** The sub-protocol that selects structured JSON frames (PROTOCOL §5). */
export const PROTOCOL = 'palaver.v1.json';

/** Backoff between attempts: doubles from the first to the last, each with ±25 % jitter so clients spread out. */
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
/** A command unanswered this long fails (the socket is likely dead; the close will follow). */
const REQUEST_TIMEOUT_MS = 15000;

/** A command the server refused: its `code` and `message` (PROTOCOL §5). */
export class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'CommandError';
    this.code = code;
  }
}

/**
 * One logical connection to the server, across many sockets. Callbacks: `onFrame(frame)` for every frame received,
 * `onOpen()` after each (re)connection, `onStatus(state, detail)` with `connecting`, `online` or `offline`, and
 * `onSessionLost()` when the server no longer accepts the session.
 */
export class Connection {
  constructor({ onFrame, onOpen, onStatus, onSessionLost }) {
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onStatus = onStatus;
    this.onSessionLost = onSessionLost;
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.connecting = false;
    this.nextId = 1;
    this.waiting = new Map();
    this.onBrowserOffline = () => this.drop('offline');
    this.onBrowserOnline = () => this.reconnectNow();
  }

  /** Starts connecting, and keeps the connection up until `stop`. */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    // A socket on a dead network can look open for a long time; the browser knows sooner.
    window.addEventListener('offline', this.onBrowserOffline);
    window.addEventListener('online', this.onBrowserOnline);
    this.connect();
  }

  /** Closes for good (logout). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('offline', this.onBrowserOffline);
    window.removeEventListener('online', this.onBrowserOnline);
    if (this.socket) this.socket.close(1000, 'bye');
    this.socket = null;
    this.failWaiting('disconnected');
  }

  /** Whether commands can be sent now. */
  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  async connect() {
    if (this.stopped || this.connecting) return;
    clearTimeout(this.timer);
    this.onStatus('connecting');
    let ticket;
    this.connecting = true;
    try {
      ticket = await wsTicket();
    } catch (error) {
      this.connecting = false;
      if (error instanceof ApiError && error.status === 401) {
        this.stop();
        this.onSessionLost();
        return;
      }
      this.retryLater(error.message);
      return;
    }
    this.connecting = false;
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`;
    let socket;
    try {
      socket = new WebSocket(url, PROTOCOL);
    } catch (error) {
      this.retryLater(String(error));
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.onStatus('online');
      this.onOpen();
    });
    socket.addEventListener('message', (event) => {
      if (socket !== this.socket || typeof event.data !== 'string') return;
      this.receive(event.data);
    });
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.failWaiting('disconnected');
      this.retryLater(closeReason(event.code));
    });
  }

  /** Drops the current socket (the browser went offline); reconnection follows the usual backoff. */
  drop(reason) {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.close(1000, reason);
    this.failWaiting('disconnected');
    this.retryLater(reason === 'offline' ? 'You are offline.' : reason);
  }

  /** Skips the wait: the network is back. */
  reconnectNow() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.connect();
  }

  retryLater(detail) {
    if (this.stopped) return;
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.onStatus('offline', `${detail} Reconnecting in ${Math.ceil(delay / 1000)} s…`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    this.onFrame(frame);
    const id = typeof frame.id === 'string' ? frame.id : null;
    const waiter = id && this.waiting.get(id);
    if (!waiter) return;
    if (frame.type === 'error') {
      this.waiting.delete(id);
      clearTimeout(waiter.timer);
      waiter.reject(new CommandError(frame.code, frame.message));
    } else if (!waiter.until || waiter.until === frame.type) {
      this.waiting.delete(id);
      clearTimeout(waiter.timer);
      waiter.resolve(frame);
    }
  }

  /** Sends a command without waiting for its answer; returns its id, or `null` when no socket is open. */
  send(type, data, id = `c${this.nextId++}`) {
    if (!this.open) return null;
    this.socket.send(JSON.stringify({ type, id, data }));
    return id;
  }

  /**
   * Sends a command and resolves with its reply (the first frame carrying its id, or the first of type `until`);
   * rejects with a `CommandError` when the server refuses it, or when the socket goes away first.
   */
  request(type, data, { until, id } = {}) {
    return new Promise((resolve, reject) => {
      const sent = this.send(type, data, id);
      if (!sent) {
        reject(new CommandError('disconnected', 'Not connected to the server.'));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(sent);
        reject(new CommandError('timeout', 'The server did not answer in time.'));
      }, REQUEST_TIMEOUT_MS);
      this.waiting.set(sent, { resolve, reject, until, timer });
    });
  }

  failWaiting(code) {
    for (const waiter of this.waiting.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new CommandError(code, 'The connection was lost.'));
    }
    this.waiting.clear();
  }
}

/** What a close code means to a person (PROTOCOL §2). */
function closeReason(code) {
  switch (code) {
    case 1001: return 'The server is restarting.';
    case 1008: return 'The server closed the connection (too many requests, or the session ended).';
    case 1009: return 'A frame was too large for the server.';
    case 1013: return 'The connection fell behind.';
    default: return 'The connection was lost.';
  }
}
