// The page's client of the JSON gateway (grpcapi/gateway): protojson of the
// evidence.v1 messages, with int64 as strings and bytes as base64.
//
// Identity: a bearer token kept in sessionStorage ("evidence.token"), set
// by the sign-in screen (app.js), sent as Authorization on every request.
// sessionStorage lives as long as the tab and is not shared with other
// tabs or sites. Without a token the page sends the development headers
// (X-Evidence-Tenant: demo, and X-Evidence-Actor when "evidence.actor" is
// set), which only a development harness believes; evidenced answers 401,
// and the page shows the sign-in screen.
//
// Audio: an <audio> element cannot send a header, so signing in also
// starts a session (POST /api/v1/session) whose HttpOnly, SameSite=Strict
// cookie, scoped to /api/v1/, the audio route accepts. The page renews it
// on every load (sessions live in the server's memory), and waits for it
// before it gives the player a recording's URL (audioReady).

const TOKEN_KEY = 'evidence.token';
const ACTOR_KEY = 'evidence.actor';
const IDENTITY_KEY = 'evidence.identity';
const SIGNED_OUT_KEY = 'evidence.signedOut';

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the server answered ${status}`);
    this.name = 'APIError';
    this.status = status;
    this.code = (body && body.code) || '';
    this.violations = (body && body.field_violations) || [];
    this.preconditions = (body && body.precondition_violations) || [];
  }
}

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** identity describes who the page acts as, for display. */
export function identity() {
  const s = storage();
  const token = s && s.getItem(TOKEN_KEY);
  if (token) {
    let who = null;
    try {
      who = JSON.parse(s.getItem(IDENTITY_KEY) || 'null');
    } catch {
      who = null;
    }
    return { mode: 'token', ...(who || {}) };
  }
  return { mode: 'development', tenant: 'demo', actor: (s && s.getItem(ACTOR_KEY)) || 'anonymous' };
}

/** signedIn records a token and the identity the server returned for it. */
function signedIn(token, who) {
  const s = storage();
  if (!s) return;
  s.setItem(TOKEN_KEY, token);
  s.setItem(IDENTITY_KEY, JSON.stringify(who || {}));
  s.removeItem(SIGNED_OUT_KEY);
}

/** forget drops the token, and notes that the user signed out on purpose. */
export function forget(signedOut) {
  const s = storage();
  if (!s) return;
  s.removeItem(TOKEN_KEY);
  s.removeItem(IDENTITY_KEY);
  if (signedOut) s.setItem(SIGNED_OUT_KEY, '1');
}

/** signedOut reports whether the user signed out in this tab. */
export function signedOut() {
  const s = storage();
  return Boolean(s && s.getItem(SIGNED_OUT_KEY));
}

// The audio session: renewed on every load when there is a token.
let session = null;
function startSession() {
  const s = storage();
  const token = s && s.getItem(TOKEN_KEY);
  if (!token) return Promise.resolve(false);
  return fetch('/api/v1/session', { method: 'POST', headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' }, cache: 'no-store' })
    .then((r) => r.ok)
    .catch(() => false);
}
session = startSession();

export function authHeaders() {
  const s = storage();
  const token = s && s.getItem(TOKEN_KEY);
  if (token) return { Authorization: `Bearer ${token}` };
  const h = { 'X-Evidence-Tenant': 'demo' };
  const actor = s && s.getItem(ACTOR_KEY);
  if (actor) h['X-Evidence-Actor'] = actor;
  return h;
}

// Responses the boot module asked for before the page's modules loaded;
// each is used once.
const early = new Map();

/** prefetch starts a GET now, for request() to take over later. */
export function prefetch(path) {
  if (!early.has(path)) early.set(path, request('GET', path));
}

async function request(method, path, body, { signal } = {}) {
  if (method === 'GET' && early.has(path)) {
    const p = early.get(path);
    early.delete(path);
    return p;
  }
  const headers = { Accept: 'application/json', ...authHeaders() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
  let json = null;
  const ct = resp.headers.get('Content-Type') || '';
  if (ct.startsWith('application/json')) json = await resp.json();
  if (!resp.ok) throw new APIError(resp.status, json);
  if (json === null) throw new APIError(resp.status, { message: 'the server did not answer with JSON' });
  return json;
}

const enc = encodeURIComponent;

export const paths = {
  encounter: (id) => `/api/v1/encounters/${enc(id)}`,
  transcript: (id) => `/api/v1/encounters/${enc(id)}/transcript`,
  note: (id) => `/api/v1/encounters/${enc(id)}/note`,
};

export const api = {
  logInfo: () => request('GET', '/api/v1/log'),
  checkpoint: () => request('GET', '/api/v1/checkpoint'),
  entry: (index) => request('GET', `/api/v1/entries/${index}?proof=1`),
  consistency: (from, to) => request('GET', `/api/v1/proofs/consistency?from=${from}&to=${to}`),
  /** encounters lists visits: params are ListEncounters' query parameters (docs/api.md). */
  encounters: (params = {}) => request('GET', `/api/v1/encounters?${new URLSearchParams({ page_size: 200, ...params })}`),
  encounter: (id) => request('GET', paths.encounter(id)),
  transcript: (id) => request('GET', paths.transcript(id)),
  note: (id) => request('GET', paths.note(id)),
  edit: (id, req) => request('POST', `/api/v1/encounters/${enc(id)}/edits`, req),
  resolve: (id, req) => request('POST', `/api/v1/encounters/${enc(id)}/resolutions`, req),
  sign: (id, req) => request('POST', `/api/v1/encounters/${enc(id)}/signoff`, req),
  search: (q, encounterId, opts) =>
    request('GET', `/api/v1/search?q=${enc(q)}${encounterId ? `&encounter=${enc(encounterId)}` : ''}`, undefined, opts),
  /**
   * searchAvailable probes the search route: the box is shown only when
   * the server has one. An unknown route is a 404 (or 405) from the mux; a
   * gateway route without a search service behind it answers the gRPC
   * code Unimplemented.
   */
  async searchAvailable() {
    try {
      const resp = await fetch('/api/v1/search?q=&page_size=1', { headers: { Accept: 'application/json', ...authHeaders() }, cache: 'no-store' });
      if (resp.status === 401 || resp.status === 404 || resp.status === 405 || resp.status === 501) return false;
      if (resp.ok) return true;
      const body = (resp.headers.get('Content-Type') || '').startsWith('application/json') ? await resp.json() : null;
      return !(body && body.code === 'Unimplemented');
    } catch {
      return false;
    }
  },
  /**
   * audioURL is the recording's URL for the <audio> element, which sends
   * the session cookie (see audioReady) rather than a header.
   */
  audioURL: (id, leaf) => `/api/v1/encounters/${enc(id)}/audio${leaf !== undefined && leaf !== null ? `?leaf=${leaf}` : ''}`,
};

/** audioReady resolves once the audio session cookie is in place. */
api.audioReady = () => session;

/**
 * signIn checks a pasted token with the server, keeps it and starts the
 * audio session. It rejects with an APIError (401 for a bad token).
 */
api.signIn = async (token) => {
  const resp = await fetch('/api/v1/session', { method: 'POST', headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' }, cache: 'no-store' });
  const json = (resp.headers.get('Content-Type') || '').startsWith('application/json') ? await resp.json() : null;
  if (!resp.ok) throw new APIError(resp.status, json);
  signedIn(token, json && json.identity);
  session = Promise.resolve(true);
  return json.identity;
};

/** demoRoles returns the roles the server offers demo sign-in for, or []. */
api.demoRoles = async () => {
  try {
    const resp = await fetch('/api/v1/session/demo', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!resp.ok) return [];
    const json = await resp.json();
    return Array.isArray(json.roles) ? json.roles : [];
  } catch {
    return [];
  }
};

/** demoSignIn signs in as a demo role: the server returns its token. */
api.demoSignIn = async (role) => {
  const resp = await fetch('/api/v1/session/demo', { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify({ role }), cache: 'no-store' });
  const json = (resp.headers.get('Content-Type') || '').startsWith('application/json') ? await resp.json() : null;
  if (!resp.ok) throw new APIError(resp.status, json);
  signedIn(json.token, json.identity);
  session = Promise.resolve(true);
  return json.identity;
};

/** signOut ends the audio session and forgets the token. */
api.signOut = async () => {
  try {
    await fetch('/api/v1/session', { method: 'DELETE', headers: authHeaders(), cache: 'no-store' });
  } catch {
    // The token is forgotten either way.
  }
  forget(true);
  session = Promise.resolve(false);
};

/** int reads a protojson int64 (a string) as a number. */
export function int(v) {
  if (v === undefined || v === null || v === '') return 0;
  return Number(v);
}
