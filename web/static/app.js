// The clinician's page: routing between the visit list and a visit, the
// header's verification badge, the player bar and the search box.

import { api, forget, identity, int, signedOut } from './api.js';
import { h, when } from './dom.js';
import { EvidencePlayer } from './player.js';
import { VisitView } from './visit.js';
import { VisitList } from './visits.js';

const main = document.getElementById('main');
const audio = document.getElementById('audio');
const playerBar = document.getElementById('player');
const playerStatus = document.getElementById('player-status');
const stopButton = document.getElementById('player-stop');
const crumbs = document.getElementById('crumbs');
const account = document.getElementById('account');
const toastEl = document.getElementById('toast');

/**
 * Measure records, with the User Timing API, the time from a user's
 * activation (the input event's own timestamp) to the audio element's
 * "playing" event and to the first advance of its clock:
 * evidence:click-to-play and evidence:click-to-audio. docs/web.md.
 */
class Measure {
  constructor(audio) {
    this.audio = audio;
    this.pending = null;
    audio.addEventListener('playing', () => this.#playing());
  }

  start(event) {
    const t = event && typeof event.timeStamp === 'number' && event.timeStamp > 0 ? event.timeStamp : performance.now();
    this.pending = { start: t };
    performance.mark('evidence:activate', { startTime: t });
  }

  #playing() {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    performance.measure('evidence:click-to-play', { start: p.start, end: performance.now() });
    const from = this.audio.currentTime;
    const tick = () => {
      if (this.audio.paused) return;
      if (this.audio.currentTime > from + 0.001) {
        performance.measure('evidence:click-to-audio', { start: p.start, end: performance.now() });
        return;
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }
}

/** Badge is the header's verification state and its details panel. */
class Badge {
  constructor(el) {
    this.el = el;
    this.button = h('button', { type: 'button', class: 'badge', 'aria-expanded': 'false', 'aria-controls': 'verify-panel', id: 'verify-badge' });
    this.panel = h('div', { class: 'verify-panel', id: 'verify-panel', hidden: true, role: 'region', 'aria-label': 'Verification details' });
    this.button.addEventListener('click', () => this.toggle());
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !this.panel.hidden) {
        this.toggle(false);
        this.button.focus();
      }
    });
    document.addEventListener('click', (e) => {
      if (!this.panel.hidden && !this.el.contains(e.target)) this.toggle(false);
    });
  }

  show(on) {
    this.el.replaceChildren(...(on ? [this.button, this.panel] : []));
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.button.setAttribute('aria-expanded', String(open));
  }

  update(s) {
    const labels = {
      checking: 'Verifying…',
      verified: 'Verified',
      partial: 'Proofs verified',
      failed: 'Verification failed',
      unavailable: 'Not verified',
    };
    this.button.className = `badge badge-${s.state}`;
    this.button.dataset.state = s.state;
    this.button.replaceChildren(h('span', { class: 'badge-icon', 'aria-hidden': 'true' }), labels[s.state] || s.state);
    const cp = s.checkpoint;
    const rows = [];
    const summaryText = {
      checking: `Checking ${s.total} ledger entries of this visit in your browser…`,
      verified: `All ${s.total} ledger entries of this visit are in the log’s signed checkpoint. Checked in this browser.`,
      partial: `All ${s.total} entries are included in the checkpoint, but this browser cannot check its Ed25519 signature.`,
      failed: 'A check failed. Do not rely on this record until the log operator has explained it.',
      unavailable: 'This browser could not check the record.',
    }[s.state];
    rows.push(h('p', { class: 'verify-summary', text: summaryText }));
    if (s.errors.length) {
      rows.push(h('ul', { class: 'verify-errors' }, s.errors.slice(0, 8).map((e) => h('li', { text: e }))));
      if (s.errors.length > 8) rows.push(h('p', { class: 'hint', text: `and ${s.errors.length - 8} more.` }));
    }
    const dl = h('dl', { class: 'verify-facts' });
    const fact = (k, v) => dl.append(h('dt', { text: k }), h('dd', {}, v));
    fact('Entries', `${s.ok} of ${s.total} verified`);
    if (cp) {
      fact('Checkpoint', `${cp.origin}, tree size ${cp.size}`);
      fact('Signature', cp.signature === 'verified' ? 'Ed25519, valid' : 'not checked (no Ed25519 in this browser)');
    }
    if (s.key) fact('Log key', h('code', { class: 'key', text: s.key }));
    fact('Hash chain', `${s.chainLinks} links checked`);
    if (s.checkedAt) fact('Checked', when(s.checkedAt.toISOString(), true));
    rows.push(dl);
    rows.push(h('p', { class: 'hint', text: 'RFC 6962 inclusion proofs, checked with WebCrypto SHA-256 against the checkpoint; compare the log key with the one the server printed at start.' }));
    this.panel.replaceChildren(...rows);
  }
}

const app = {
  player: new EvidencePlayer(audio),
  measure: new Measure(audio),
  badge: new Badge(document.getElementById('verify')),
  view: null,
  search: null,

  mount(node) {
    main.replaceChildren(node);
  },

  showPlayer(on) {
    playerBar.hidden = !on;
    document.body.classList.toggle('has-player', on);
  },

  setPlayerStatus(text, playing) {
    playerStatus.textContent = text;
    if (playing !== undefined) stopButton.disabled = !playing;
  },

  toast(text, kind = 'info') {
    toastEl.textContent = text;
    toastEl.className = `toast toast-${kind}`;
    toastEl.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (toastEl.hidden = true), kind === 'error' ? 9000 : 5000);
  },

  navigate(path, { replace = false } = {}) {
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    route();
  },
};

stopButton.addEventListener('click', () => app.player.stop());
audio.addEventListener('error', () => {
  if (audio.getAttribute('src')) app.setPlayerStatus('The recording could not be loaded. Reload the page to try again.', false);
});
app.player.addEventListener('span', () => (stopButton.disabled = false));
app.player.addEventListener('done', () => (stopButton.disabled = true));
document.addEventListener('keydown', (e) => {
  // Escape stops playback, unless a form, dialog or panel wants it.
  if (e.key === 'Escape' && app.player.active && !e.target.closest('form,dialog,.verify-panel')) app.player.stop();
});

// Links marked data-nav navigate inside the page.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  app.navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', () => route());

function setCrumbs(items) {
  crumbs.replaceChildren(
    h(
      'ol',
      {},
      items.map((it, i) =>
        h('li', {}, it.href ? h('a', { href: it.href, 'data-nav': true, text: it.text }) : h('span', { 'aria-current': i === items.length - 1 ? 'page' : null, text: it.text })),
      ),
    ),
  );
}

let listView = null;

async function route() {
  if (app.view) app.view.destroy();
  app.view = null;
  if (listView) listView.destroy();
  listView = null;
  const m = /^\/encounters\/([^/]+)$/.exec(location.pathname);
  try {
    if (m) await showVisit(decodeURIComponent(m[1]));
    else await showList();
    // Move focus to the new content, for keyboard and screen reader users,
    // unless a sentence link already took it.
    if (!document.activeElement || document.activeElement === document.body) main.focus({ preventScroll: true });
  } catch (err) {
    if (app.view) app.view.destroy();
    app.view = null;
    if (err && err.status === 401) await showSignIn(identity().mode === 'token');
    else showError(err);
  }
  if (app.search) app.search.setVisit(app.view);
  showAccount();
}

const roleNames = { clinician: 'Clinician', auditor: 'Auditor', pipeline: 'Pipeline service', admin: 'Administrator' };

/** showAccount shows who the page acts as, and a way to sign out. */
function showAccount() {
  const who = identity();
  if (who.mode !== 'token') {
    account.replaceChildren();
    return;
  }
  const label = [roleNames[who.role] || who.role, who.subject].filter(Boolean).join(' · ');
  account.replaceChildren(
    h('span', { class: 'account-who', id: 'account-who', title: who.tenant ? `Organization ${who.tenant}` : null, text: label || 'Signed in' }),
    h('button', {
      type: 'button',
      class: 'btn btn-quiet',
      id: 'sign-out',
      text: 'Sign out',
      onclick: async () => {
        app.player.stop();
        await api.signOut();
        location.assign('/'); // a fresh page: nothing of the signed-in view stays
      },
    }),
  );
}

/**
 * showSignIn asks for an access token. A server started with --demo on
 * loopback offers its demo people: the page signs in as the demo
 * clinician at once, unless the user signed out in this tab.
 */
async function showSignIn(expired) {
  if (expired) forget(false);
  document.title = 'Sign in · Evidence Ledger';
  setCrumbs([{ text: 'Sign in' }]);
  app.badge.show(false);
  app.showPlayer(false);
  const roles = (await api.demoRoles()).filter((r) => r === 'clinician' || r === 'auditor');
  const status = h('p', { class: 'callout callout-error', id: 'sign-in-error', role: 'alert', hidden: true });
  const attempt = async (fn) => {
    status.hidden = true;
    try {
      await fn();
    } catch (err) {
      status.textContent = err && err.status === 401 ? 'That token was not accepted. Check it, or ask your administrator for a new one.' : `Sign-in failed: ${err && err.message ? err.message : err}`;
      status.hidden = false;
      return;
    }
    showAccount();
    searchProbed = false; // signed out, the probe found no search
    route().then(() => {
      if (!app.view) app.afterPaint();
    });
  };
  if (roles.includes('clinician') && !signedOut() && !expired) {
    await attempt(() => api.demoSignIn('clinician'));
    if (status.hidden) return;
  }
  const input = h('input', { type: 'password', id: 'token-input', class: 'token-input', autocomplete: 'off', spellcheck: 'false', placeholder: 'evt_…', required: true });
  const form = h(
    'form',
    { class: 'sign-in-form', id: 'sign-in-form', onsubmit: (e) => {
      e.preventDefault();
      attempt(() => api.signIn(input.value.trim()));
    } },
    h('label', { for: 'token-input', text: 'Access token' }),
    h('div', { class: 'sign-in-row' }, input, h('button', { type: 'submit', class: 'btn btn-primary', text: 'Sign in' })),
  );
  const demo = roles.length
    ? h(
        'div',
        { class: 'sign-in-demo' },
        h('h2', { text: 'Demo' }),
        h('p', { text: 'This server runs the demo visit. Sign in as one of its people:' }),
        h('div', { class: 'sign-in-row' }, roles.map((role) => h('button', { type: 'button', class: 'btn', id: `demo-${role}`, text: `Demo ${(roleNames[role] || role).toLowerCase()}`, onclick: () => attempt(() => api.demoSignIn(role)) }))),
      )
    : null;
  app.mount(
    h(
      'div',
      { class: 'list-page sign-in-page' },
      h('h1', { text: 'Sign in' }),
      h('p', { class: 'lead', text: expired ? 'Your session ended. Sign in again to continue.' : 'Evidence Ledger holds patient information. Sign in with the access token your administrator gave you; it is kept in this tab only.' }),
      form,
      status,
      demo,
    ),
  );
  input.focus();
}

async function showList() {
  document.title = 'Visits · Evidence Ledger';
  setCrumbs([{ text: 'Visits' }]);
  app.badge.show(false);
  app.showPlayer(false);
  listView = new VisitList(app);
  await listView.load();
}

async function showVisit(id) {
  setCrumbs([{ text: 'Visits', href: '/' }, { text: 'Visit' }]);
  app.badge.show(true);
  app.badge.update({ state: 'checking', total: 0, ok: 0, errors: [], chainLinks: 0 });
  const view = new VisitView(app, id);
  app.view = view;
  await view.load();
  const title = view.encounter.title || id;
  document.title = `${title} · Evidence Ledger`;
  setCrumbs([{ text: 'Visits', href: '/' }, { text: shorten(view.encounter.patient_ref || id, 48) }]);
}

function shorten(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function showError(err) {
  app.badge.show(false);
  app.showPlayer(false);
  const notFound = err && err.status === 404;
  app.mount(
    h(
      'div',
      { class: 'list-page' },
      h('h1', { text: notFound ? 'Visit not found' : 'Something went wrong' }),
      h('p', { class: 'callout callout-error', role: 'alert', text: notFound ? 'There is no visit at this address for your organization.' : `The page could not load: ${err && err.message ? err.message : err}` }),
      h('p', {}, h('a', { href: '/', 'data-nav': true, text: 'Back to the visit list' })),
    ),
  );
}

// Search appears only when the server has it; the probe waits until the
// first view is on screen.
let searchProbed = false;
app.afterPaint = () => {
  if (searchProbed) return;
  searchProbed = true;
  api.searchAvailable().then(async (ok) => {
    if (ok) {
      const { SearchBox } = await import('./search.js');
      app.search = new SearchBox(app, document.getElementById('search'));
      app.search.setVisit(app.view);
    }
    document.body.dataset.search = ok ? 'on' : 'off';
  });
};

route().then(() => {
  if (!app.view) app.afterPaint();
});

// For tests and measurements.
window.evidenceApp = app;
