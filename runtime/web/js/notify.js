// Telling the person what went wrong (an alert banner that stays until dismissed or replaced) and what happened (a
// short-lived status notice). Both take plain text only.

import { byTestId } from './dom.js';

const NOTICE_MS = 5000;
let noticeTimer = null;

/** `text` as a sentence: the server's words start in lower case and have no full stop. */
export function sentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return trimmed;
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1) + (/[.!?)…]$/.test(trimmed) ? '' : '.');
}

/** Shows an error sentence in the alert banner. */
export function showError(text) {
  const banner = byTestId('error-banner');
  byTestId('error-text').textContent = sentence(text);
  banner.hidden = false;
}

/** Hides the alert banner. */
export function clearError() {
  byTestId('error-banner').hidden = true;
  byTestId('error-text').textContent = '';
}

/** Shows a passing notice (a room was deleted, you left a room). */
export function showNotice(text) {
  const notice = byTestId('notice');
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice.hidden = true;
  }, NOTICE_MS);
}

/** Wires the banner's dismiss button and the Escape key. */
export function initNotify() {
  byTestId('error-dismiss').addEventListener('click', clearError);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !byTestId('error-banner').hidden) clearError();
  });
}

/** The sentence for a refused WebSocket command (PROTOCOL §5): the server's words, as a sentence. */
export function commandErrorText(error) {
  if (error?.code === 'rate_limited') {
    return 'Rate limit exceeded: you are sending too fast. Wait a moment and try again.';
  }
  return sentence(error?.message ?? error);
}
