// Search (PROTOCOL §5.4): the search form in the sidebar, its results with the matching words highlighted (as text:
// nothing in a snippet is parsed as markup), the next page on request, and a click on a result that asks the chat to
// bring that message into view.

import { byTestId, el, shortTime } from './dom.js';
import { clearError, commandErrorText, showError } from './notify.js';

/** Search results per page. */
const SEARCH_PAGE = 20;

/**
 * The search panel. `request(type, data, options)` sends a command and resolves with its reply; `activeRoom()` is
 * the name of the room on screen (or `null`), for "this room only"; `onOpen(result)` runs when a result is clicked;
 * `roomLabel(name)` is how a result's room is named (a direct room by the other person).
 */
export class Search {
  constructor({ request, activeRoom, onOpen, roomLabel }) {
    this.request = request;
    this.activeRoom = activeRoom;
    this.onOpen = onOpen;
    this.roomLabel = roomLabel;
    /** The last search: { query, room, next }. */
    this.last = null;
  }

  /** Wires the form and its "more results" button. */
  bind() {
    const form = byTestId('search-form');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const query = form.elements.query.value.trim();
      if (!query) return;
      const onlyHere = form.elements.here.checked ? this.activeRoom() : null;
      this.run(query, onlyHere ?? undefined);
    });
    byTestId('search-more').addEventListener('click', () => {
      const last = this.last;
      if (last?.next !== null && last?.next !== undefined) this.run(last.query, last.room, last.next);
    });
  }

  /** Sends a search (`cursor`: the next page of the last one) and shows the results. */
  async run(query, roomName, cursor) {
    const data = { query, limit: SEARCH_PAGE };
    if (roomName) data.room = roomName;
    if (cursor !== undefined && cursor !== null) data.cursor = cursor;
    let answer;
    try {
      answer = await this.request('search', data, { until: 'search_results' });
    } catch (error) {
      showError(commandErrorText(error));
      return;
    }
    clearError();
    const results = Array.isArray(answer.results) ? answer.results : [];
    const append = cursor !== undefined && cursor !== null;
    this.last = { query, room: roomName, next: answer.next ?? null };
    renderResults(results, { append, more: this.last.next !== null, onOpen: this.onOpen, roomLabel: this.roomLabel });
  }
}

/**
 * Shows search results (`append`: after those shown, the next page). Each is a button that opens the message's
 * room: `onOpen(result)`. `more`: whether a next page exists; `roomLabel(name)`: the name shown for a room.
 */
function renderResults(results, { append, more, onOpen, roomLabel }) {
  const list = byTestId('search-results');
  const items = results.map((result) => el('li', {
    dataset: { testid: 'search-result', room: result.room, seq: result.seq },
  },
  el('button', { attrs: { type: 'button' }, on: { click: () => onOpen(result) } },
    el('span', { class: 'result-head' },
      el('span', { class: 'result-room', text: roomLabel(result.room), dataset: { testid: 'search-result-room' } }),
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
