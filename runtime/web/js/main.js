// Palaver's browser client, started by index.html: signed in (a valid session cookie) → the chat; else → sign-in.

import * as api from './api.js';
import { showAuth } from './auth.js';
import { Chat } from './chat.js';
import { byTestId } from './dom.js';
import { initNotify, showError } from './notify.js';

let chat = null;

function enterChat(user) {
  byTestId('auth-view').hidden = true;
  byTestId('chat-view').hidden = false;
  chat = new Chat(user, () => {
    // The page is reloaded on the next login, so the old chat's state cannot leak into the new one.
    chat = null;
    showAuth(() => location.assign('/'));
  });
  chat.start();
}

async function logout() {
  if (chat) chat.conn.stop();
  try {
    await api.logout();
  } catch (error) {
    showError(api.describe(error));
  }
  // A fresh page: no state of the old session survives.
  location.assign('/');
}

async function boot() {
  initNotify();
  byTestId('logout-button').addEventListener('click', logout);
  let user = null;
  try {
    user = await api.me();
    if (user) await api.refreshCsrf();
  } catch (error) {
    showError(api.describe(error));
  }
  if (user) enterChat(user);
  else showAuth(enterChat);
}

boot();
