// The sign-in page: log in, or create an account and be logged in with it. The server validates everything; its
// sentences are shown as they are.

import * as api from './api.js';
import { byTestId } from './dom.js';
import { clearError, showError } from './notify.js';

/** Shows the sign-in page; `onSignedIn(user)` runs once a login succeeds. */
export function showAuth(onSignedIn) {
  byTestId('chat-view').hidden = true;
  byTestId('auth-view').hidden = false;
  const login = byTestId('login-form');
  const register = byTestId('register-form');

  login.onsubmit = async (event) => {
    event.preventDefault();
    const { username, password } = login.elements;
    await attempt(login, async () => {
      const user = await api.login(username.value.trim(), password.value);
      login.reset();
      onSignedIn(user);
    });
  };

  register.onsubmit = async (event) => {
    event.preventDefault();
    const { username, email, password } = register.elements;
    await attempt(register, async () => {
      await api.register(username.value.trim(), email.value.trim(), password.value);
      const user = await api.login(username.value.trim(), password.value);
      register.reset();
      onSignedIn(user);
    });
  };
  login.elements.username.focus();
}

/** Runs `work` with the form's button disabled, showing any refusal in the alert banner. */
async function attempt(form, work) {
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  clearError();
  try {
    await work();
  } catch (error) {
    showError(api.describe(error));
  } finally {
    button.disabled = false;
  }
}
