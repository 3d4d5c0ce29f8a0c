// Our own posts on their way: each is pending (sending, waiting for the connection, or refused) until the server
// acknowledges it, and is sent again after a reconnect with the same client_msg_id, which the server stores once
// (PROTOCOL §6.3). A refused post stays, marked not sent, until it is retried or discarded.

import { commandErrorText, showError } from './notify.js';
import { newClientMsgId } from './room-state.js';

/** Commands that fail only because the socket went away: they are retried after the reconnect. */
export const CONNECTION_ERRORS = new Set(['disconnected', 'timeout']);

/**
 * Posts to rooms. `conn`: the connection; `me`: the signed-in username; `view`: the message pane; `isShown(room)`:
 * whether the room is on screen; `errorText(error, room)`: the words for a refusal.
 */
export class Outbox {
  constructor({ conn, me, view, isShown, errorText = (error) => commandErrorText(error) }) {
    this.conn = conn;
    this.me = me;
    this.view = view;
    this.isShown = isShown;
    this.errorText = errorText;
  }

  /** Puts `content` (replying to message `replyTo`, if given) on its way to `room`. */
  queue(room, content, replyTo) {
    const id = newClientMsgId();
    room.pending.set(id, { content, state: 'sending', replyTo });
    this.view.pendingChanged(room);
    this.view.scrollToBottom();
    this.post(room, id);
  }

  async post(room, id) {
    const post = room.pending.get(id);
    if (!post) return;
    if (!this.conn.open) {
      post.state = 'waiting';
      this.view.pendingChanged(room);
      return;
    }
    post.state = 'sending';
    try {
      const data = { room: room.name, content: post.content, client_msg_id: id };
      if (post.replyTo !== undefined) data.reply_to = post.replyTo;
      const ack = await this.conn.request('room_message', data, { id: `m-${id}`, until: 'ack' });
      this.acked(room, id, ack);
    } catch (error) {
      const still = room.pending.get(id);
      if (!still) return;
      if (CONNECTION_ERRORS.has(error.code)) {
        still.state = 'waiting';
      } else {
        still.state = 'failed';
        still.error = this.errorText(error, room);
        showError(still.error);
      }
      this.view.pendingChanged(room);
    }
  }

  /** The ack normally follows our own message; if it came alone, the message is built from what we sent. */
  acked(room, id, ack) {
    const post = room.pending.get(id);
    if (!post) return;
    room.pending.delete(id);
    this.view.pendingChanged(room);
    const message = {
      seq: ack.seq,
      username: this.me,
      content: post.content,
      timestamp: new Date().toISOString(),
      client_msg_id: id,
    };
    if (post.replyTo !== undefined) message.reply_to = post.replyTo;
    const index = room.add(message);
    if (index >= 0 && this.isShown(room)) this.view.added(room, index);
  }

  /** Sends again what was waiting for the connection (after a (re)join of `room`). */
  flush(room) {
    for (const [id, post] of room.pending) {
      if (post.state !== 'failed') this.post(room, id);
    }
  }

  retry(room, id) {
    const post = room?.pending.get(id);
    if (!post) return;
    post.state = 'sending';
    post.error = undefined;
    this.view.pendingChanged(room);
    this.post(room, id);
  }

  discard(room, id) {
    if (room?.pending.delete(id)) this.view.pendingChanged(room);
  }
}
