// The panels around the conversation: the room list (public and private, online counts, unread, which one is on
// screen), the search results, the member list with presence, and the "is typing" line.

import { byTestId, el, shortTime } from './dom.js';

/** Redraws the room list. `rooms`: the server's list; `joined`: name → RoomState; `onSelect(room)` on a click. */
export function renderRoomList(rooms, joined, activeName, onSelect) {
  const list = byTestId('room-list');
  const sorted = [...rooms].sort((a, b) => a.name.localeCompare(b.name));
  const items = sorted.map((room) => {
    const state = joined.get(room.name);
    const online = Number(room.members_online) || 0;
    const button = el('button', {
      attrs: {
        type: 'button',
        'aria-label': `${room.name}, ${room.private ? 'private' : 'public'}, ${online} online${state ? ', joined' : ''}`,
      },
      on: { click: () => onSelect(room) },
    },
    el('span', { class: 'room-name', text: room.name, dataset: { testid: 'room-name' } }),
    room.private && el('span', { class: 'badge', text: 'private', attrs: { 'aria-hidden': 'true' } }),
    state && state.unread > 0 && el('span', {
      class: 'unread',
      text: state.unread,
      dataset: { testid: 'room-unread' },
      attrs: { 'aria-label': `${state.unread} unread` },
    }),
    el('span', { class: 'room-meta', text: `${online} online`, dataset: { testid: 'room-online' } }));
    return el('li', {
      dataset: {
        testid: 'room-item',
        room: room.name,
        private: Boolean(room.private),
        joined: Boolean(state),
      },
      attrs: { 'aria-current': room.name === activeName ? 'true' : undefined },
    }, button);
  });
  if (items.length === 0) items.push(el('li', { class: 'empty', text: 'No rooms yet: create one below.' }));
  list.replaceChildren(...items);
}

/**
 * Shows search results (`append`: after those shown, the next page). Each is a button that opens the message's
 * room: `onOpen(result)`. `more`: whether a next page exists.
 */
export function renderSearchResults(results, { append, more, onOpen }) {
  const list = byTestId('search-results');
  const items = results.map((result) => el('li', {
    dataset: { testid: 'search-result', room: result.room, seq: result.seq },
  },
  el('button', { attrs: { type: 'button' }, on: { click: () => onOpen(result) } },
    el('span', { class: 'result-head' },
      el('span', { class: 'result-room', text: result.room, dataset: { testid: 'search-result-room' } }),
      el('span', { class: 'message-author', text: result.username }),
      el('time', { class: 'message-time', text: shortTime(result.timestamp), attrs: { datetime: result.timestamp } })),
    el('span', { class: 'result-snippet', dataset: { testid: 'search-snippet' } }, ...highlighted(result.snippet)))));
  if (append) list.append(...items);
  else list.replaceChildren(...items);
  if (!list.children.length) list.append(el('li', { class: 'empty', text: 'No messages match.', dataset: { testid: 'search-empty' } }));
  list.hidden = false;
  byTestId('search-more').hidden = !more;
}

/**
 * A search snippet as children for `el`: the words between `**` marks (PROTOCOL §5.4) as <mark> elements, the rest
 * as strings (text nodes). Nothing in the snippet is parsed as markup.
 */
function highlighted(snippet) {
  const parts = String(snippet ?? '').split('**');
  // An unpaired mark (the message itself had `**`) is text: only complete pairs highlight.
  const paired = parts.length % 2 === 1 ? parts.length : parts.length - 1;
  const nodes = [];
  for (let i = 0; i < parts.length; i += 1) {
    if (i >= paired) nodes.push(`**${parts[i]}`);
    else if (i % 2 === 1) nodes.push(el('mark', { text: parts[i] }));
    else if (parts[i]) nodes.push(parts[i]);
  }
  return nodes;
}

/** Redraws the member list of the room on screen (online first, then by name). */
export function renderMembers(members, me) {
  const list = byTestId('member-list');
  const sorted = [...members].sort((a, b) => Number(b.online) - Number(a.online) || a.username.localeCompare(b.username));
  list.replaceChildren(...sorted.map((member) => el('li', {
    dataset: { testid: 'member', username: member.username, online: Boolean(member.online) },
    attrs: { title: member.online ? 'online' : 'offline' },
  },
  el('span', { class: 'presence', attrs: { 'aria-hidden': 'true' } }),
  el('span', { text: member.username }),
  member.username === me && el('span', { class: 'hint', text: '(you)' }),
  el('span', { class: 'visually-hidden', text: member.online ? ' online' : ' offline' }))));
}

/** The "is typing" line for the given usernames. */
export function renderTyping(usernames) {
  const line = byTestId('typing-indicator');
  const names = [...usernames];
  if (names.length === 0) line.textContent = '';
  else if (names.length === 1) line.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) line.textContent = `${names[0]} and ${names[1]} are typing…`;
  else line.textContent = 'Several people are typing…';
}
