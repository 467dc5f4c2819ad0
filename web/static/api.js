// The page's client of the JSON gateway (grpcapi/gateway): protojson of the
// evidence.v1 messages, with int64 as strings and bytes as base64.
//
// Identity: a bearer token kept in sessionStorage ("evidence.token") when
// the sign-in screen has set one; otherwise the development headers
// (X-Evidence-Tenant: demo, and X-Evidence-Actor when "evidence.actor" is
// set), which the development server accepts.

const TOKEN_KEY = 'evidence.token';
const ACTOR_KEY = 'evidence.actor';

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the server answered ${status}`);
    this.name = 'APIError';
    this.status = status;
    this.code = (body && body.code) || '';
    this.violations = (body && body.field_violations) || [];
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
  if (token) return { mode: 'token' };
  return { mode: 'development', tenant: 'demo', actor: (s && s.getItem(ACTOR_KEY)) || 'anonymous' };
}

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
  encounters: (pageToken = '') => request('GET', `/api/v1/encounters?page_size=200${pageToken ? `&page_token=${enc(pageToken)}` : ''}`),
  encounter: (id) => request('GET', paths.encounter(id)),
  transcript: (id) => request('GET', paths.transcript(id)),
  note: (id) => request('GET', paths.note(id)),
  edit: (id, req) => request('POST', `/api/v1/encounters/${enc(id)}/edits`, req),
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
      if (resp.status === 404 || resp.status === 405 || resp.status === 501) return false;
      if (resp.ok) return true;
      const body = (resp.headers.get('Content-Type') || '').startsWith('application/json') ? await resp.json() : null;
      return !(body && body.code === 'Unimplemented');
    } catch {
      return false;
    }
  },
  /**
   * audioURL is the recording's URL for the <audio> element. An element
   * cannot send headers: until tokens land, the audio route takes the
   * development identity; the sign-in work must give it a credential the
   * element can carry (a cookie, or a short-lived URL).
   */
  audioURL: (id, leaf) => `/api/v1/encounters/${enc(id)}/audio${leaf !== undefined && leaf !== null ? `?leaf=${leaf}` : ''}`,
};

/** int reads a protojson int64 (a string) as a number. */
export function int(v) {
  if (v === undefined || v === null || v === '') return 0;
  return Number(v);
}
