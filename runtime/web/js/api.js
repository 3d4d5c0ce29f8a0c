// The HTTP API (PROTOCOL §1) as the browser uses it: the HttpOnly session cookie authenticates, and every request
// that changes state carries the session's CSRF token in X-CSRF-Token (double submit with the palaver_csrf cookie).

/** A refused request: the HTTP status, the protocol's error code and its sentence. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let csrfToken = null;

/**
 * Fetches the CSRF token: the session's once logged in, else a placeholder that authorises nothing. A stale session
 * cookie (expired, or signed before a restart) gets none: the calls that need no session still work without it.
 */
export async function refreshCsrf() {
  try {
    const body = await call('GET', '/api/csrf');
    csrfToken = body.csrf_token;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    csrfToken = null;
  }
  return csrfToken;
}

async function call(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const retryAfter = Number(response.headers.get('retry-after')) || undefined;
    throw new ApiError(
      response.status,
      parsed?.code ?? 'http_error',
      parsed?.error ?? `The server answered ${response.status}.`,
      retryAfter,
    );
  }
  return parsed;
}

/** A state-changing call; a stale CSRF token (403 csrf_failed) is refreshed and the call tried once more. */
async function change(method, path, body) {
  if (!csrfToken) await refreshCsrf();
  try {
    return await call(method, path, body);
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'csrf_failed') throw error;
    await refreshCsrf();
    return call(method, path, body);
  }
}

/** `POST /api/register` → the new account. */
export function register(username, email, password) {
  return change('POST', '/api/register', { username, email, password });
}

/** `POST /api/login`: sets the session cookie; the session's CSRF token is fetched for what follows. */
export async function login(username, password) {
  const answer = await change('POST', '/api/login', { username, password });
  await refreshCsrf();
  return answer.user;
}

/** `POST /api/logout`: revokes the session (and closes its sockets). */
export async function logout() {
  try {
    await change('POST', '/api/logout');
  } finally {
    csrfToken = null;
  }
}

/** `GET /api/me` → the signed-in account, or `null` when the session is missing or expired. */
export async function me() {
  try {
    return await call('GET', '/api/me');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

/** `POST /api/ws-ticket` → a single-use ticket for `/ws?ticket=…`. */
export async function wsTicket() {
  const answer = await change('POST', '/api/ws-ticket');
  return answer.ticket;
}

/** `DELETE /api/rooms/{name}` (owner only); the members hear `room_deleted` over their sockets. */
export function deleteRoom(name) {
  return change('DELETE', `/api/rooms/${encodeURIComponent(name)}`);
}

/** A sentence for a person from a refused call, naming how long to wait when rate limited. */
export function describe(error) {
  if (error instanceof ApiError && error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : ' Try again in a moment.';
    return `Too many attempts (rate limit exceeded).${wait}`;
  }
  return error?.message ?? String(error);
}
