// The panels around the conversation: the room list (public and private, online counts, unread, which one is on
// screen) with its join and create forms, the member list with presence and a "message" action on each other
// member, and the "is typing" line.

import { byTestId, el } from './dom.js';
import { showError } from './notify.js';

/**
 * Wires the join and create forms: `onJoin(name, password)` and `onCreate(name, isPrivate, password)` resolve
 * whether it worked (the form is then cleared).
 */
export function bindRoomForms({ onJoin, onCreate }) {
  const joinForm = byTestId('join-room-form');
  joinForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = joinForm.elements.name.value.trim();
    if (!name) return;
    if (await onJoin(name, joinForm.elements.password.value)) {
      joinForm.reset();
      byTestId('join-hint').textContent = '';
    }
  });

  const createForm = byTestId('create-room-form');
  const passwordLabel = createForm.querySelector('.create-password');
  createForm.elements.private.addEventListener('change', () => {
    passwordLabel.hidden = !createForm.elements.private.checked;
  });
  createForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = createForm.elements.name.value.trim();
    const isPrivate = createForm.elements.private.checked;
    const password = createForm.elements.password.value;
    if (!name) return;
    if (isPrivate && !password) {
      showError('A private room needs a password.');
      return;
    }
    if (await onCreate(name, isPrivate, password)) {
      createForm.reset();
      passwordLabel.hidden = true;
    }
  });
}

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
 * Redraws the member list of the room on screen (online first, then by name). `onMessage(username)`, when given,
 * is offered on every member but oneself: it opens a direct conversation with them.
 */
export function renderMembers(members, me, onMessage = null) {
  const list = byTestId('member-list');
  const sorted = [...members].sort((a, b) => Number(b.online) - Number(a.online) || a.username.localeCompare(b.username));
  list.replaceChildren(...sorted.map((member) => el('li', {
    dataset: { testid: 'member', username: member.username, online: Boolean(member.online) },
    attrs: { title: member.online ? 'online' : 'offline' },
  },
  el('span', { class: 'presence', attrs: { 'aria-hidden': 'true' } }),
  el('span', { text: member.username }),
  member.username === me && el('span', { class: 'hint', text: '(you)' }),
  el('span', { class: 'visually-hidden', text: member.online ? ' online' : ' offline' }),
  member.username !== me && onMessage && el('button', {
    class: 'link member-message',
    text: 'Message',
    dataset: { testid: 'member-message' },
    attrs: { type: 'button', 'aria-label': `Send ${member.username} a direct message` },
    on: { click: () => onMessage(member.username) },
  }))));
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
