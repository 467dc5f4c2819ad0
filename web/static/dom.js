// Building DOM from data without innerHTML, so that transcript and note
// text can never become markup, and the formats the page shows.

/**
 * h creates an element. attrs: "class", "text", "on<event>" handlers,
 * "dataset" (an object), booleans (true sets an empty attribute, false or
 * null omits it) and any other attribute. Children are nodes, strings or
 * arrays of them; null and false are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) if (dv !== undefined && dv !== null) el.dataset[dk] = dv;
    }
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** clock formats milliseconds as m:ss, or h:mm:ss past an hour. */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const s = total % 60;
  const m = Math.floor(total / 60) % 60;
  const hrs = Math.floor(total / 3600);
  const ss = String(s).padStart(2, '0');
  return hrs ? `${hrs}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** clockPrecise formats milliseconds as m:ss.t (tenths). */
export function clockPrecise(ms) {
  const tenths = Math.floor((Math.max(0, ms) % 1000) / 100);
  return `${clock(ms)}.${tenths}`;
}

/** spokenClock is clock() for screen readers: "1 minute 5 seconds". */
export function spokenClock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  const parts = [];
  if (m) parts.push(`${m} minute${m === 1 ? '' : 's'}`);
  parts.push(`${s} second${s === 1 ? '' : 's'}`);
  return parts.join(' ');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n) => String(n).padStart(2, '0');

/**
 * when formats a timestamp in local time as "26 Nov 2026, 17:07" (with
 * ":46" seconds when asked): day before month, a 24-hour clock, never
 * ambiguous. (Intl would localise it, but loading its data costs a new
 * tab tens of milliseconds before the first paint.)
 */
export function when(ts, seconds = false) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  const t = `${two(d.getHours())}:${two(d.getMinutes())}${seconds ? `:${two(d.getSeconds())}` : ''}`;
  return `${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()}, ${t}`;
}

export const SPEAKERS = {
  SPEAKER_ROLE_CLINICIAN: 'Clinician',
  SPEAKER_ROLE_PATIENT: 'Patient',
  SPEAKER_ROLE_OTHER: 'Other',
  SPEAKER_ROLE_UNSPECIFIED: 'Speaker',
};

export function speaker(role, label) {
  return label || SPEAKERS[role] || 'Speaker';
}

export function speakerClass(role) {
  return String(role || 'SPEAKER_ROLE_UNSPECIFIED').replace('SPEAKER_ROLE_', '').toLowerCase();
}

/** prefersReducedMotion says whether to scroll without animation. */
export function scrollBehavior() {
  return window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth';
}

const KIND_LABEL = {
  encounter: 'visit record',
  audio: 'recording',
  segment: 'transcript segment',
  model_output: 'model output',
  alignment: 'alignment',
  edit: 'clinician edit',
  signoff: 'sign-off',
  access: 'access record',
  redaction: 'redaction',
  resolution: 'resolution of a flagged sentence',
};

/** kindLabel names a kind of ledger entry ("segment") for people. */
export function kindLabel(kind) {
  return KIND_LABEL[kind] || kind;
}
