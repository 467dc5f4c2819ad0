// The visit list: a page at a time from the encounter summaries, the most
// recently written visit first, with filters, loading the next page as the
// end of the list comes into view (or on its button). docs/web.md.

import { api, int } from './api.js';
import { h, when } from './dom.js';

const PAGE = 50;

const STATUS = {
  NOTE_STATUS_NONE: { text: 'No note yet', chip: 'chip-muted' },
  NOTE_STATUS_DRAFTED: { text: 'Drafted', chip: 'chip-draft' },
  NOTE_STATUS_SIGNED: { text: 'Signed', chip: 'chip-ok' },
};

const SINCE = { '': 'Any time', '24h': 'Last 24 hours', '7d': 'Last 7 days', '30d': 'Last 30 days' };
const SINCE_MS = { '24h': 864e5, '7d': 7 * 864e5, '30d': 30 * 864e5 };

/**
 * filtersFrom reads the list's filters from the address: ?status=, ?since=
 * and ?unresolved=1. The patient reference is not put in the address
 * (which browsers keep in their history); it lives in the form only.
 */
function filtersFrom(search) {
  const q = new URLSearchParams(search);
  const status = ['drafted', 'signed', 'none'].includes(q.get('status')) ? q.get('status') : '';
  const since = q.get('since') in SINCE ? q.get('since') : '';
  return { status, since, unresolved: q.get('unresolved') === '1', patient: '' };
}

function addressOf(f) {
  const q = new URLSearchParams();
  if (f.status) q.set('status', f.status);
  if (f.since) q.set('since', f.since);
  if (f.unresolved) q.set('unresolved', '1');
  const s = q.toString();
  return s ? `/?${s}` : '/';
}

export class VisitList {
  constructor(app) {
    this.app = app;
    this.filters = filtersFrom(location.search);
    this.gen = 0; // each listing (a change of filters) has its own
    this.shown = 0;
    this.token = '';
    this.loading = false;
    this.observer = null;
  }

  async load() {
    const f = this.filters;
    const status = h(
      'select',
      { id: 'filter-status', onchange: () => this.#change({ status: status.value }) },
      [['', 'Any status'], ['drafted', 'Drafted'], ['signed', 'Signed'], ['none', 'No note yet']].map(([v, t]) => h('option', { value: v, text: t, selected: f.status === v })),
    );
    const since = h(
      'select',
      { id: 'filter-since', onchange: () => this.#change({ since: since.value }) },
      Object.entries(SINCE).map(([v, t]) => h('option', { value: v, text: t, selected: f.since === v })),
    );
    const unresolved = h('input', { type: 'checkbox', id: 'filter-unresolved', checked: f.unresolved, onchange: () => this.#change({ unresolved: unresolved.checked }) });
    const patient = h('input', { type: 'search', id: 'filter-patient', placeholder: 'Exact reference', autocomplete: 'off', spellcheck: 'false' });
    const form = h(
      'form',
      {
        class: 'visit-filters',
        id: 'visit-filters',
        role: 'search',
        'aria-label': 'Filter visits',
        onsubmit: (e) => {
          e.preventDefault();
          this.#change({ patient: patient.value.trim() });
        },
      },
      h('label', { class: 'filter' }, h('span', { text: 'Note' }), status),
      h('label', { class: 'filter' }, h('span', { text: 'Updated' }), since),
      h('label', { class: 'filter' }, h('span', { text: 'Patient ref' }), patient),
      h('label', { class: 'filter filter-check' }, unresolved, h('span', { text: 'Unresolved flags only' })),
      h('button', { type: 'submit', class: 'btn', text: 'Apply' }),
    );
    patient.addEventListener('search', () => {
      if (patient.value === '' && this.filters.patient !== '') this.#change({ patient: '' });
    });
    this.list = h('ul', { class: 'visit-list', id: 'visit-list', role: 'list', 'aria-busy': 'true' });
    this.count = h('p', { class: 'visit-count', id: 'visit-count', role: 'status' });
    this.more = h('button', { type: 'button', class: 'btn visit-more', id: 'visit-more', text: 'Load more visits', hidden: true, onclick: () => this.#next() });
    this.error = h('p', { class: 'callout callout-error', role: 'alert', hidden: true });
    this.app.mount(
      h(
        'div',
        { class: 'list-page' },
        h('h1', { text: 'Visits' }),
        h('p', { class: 'lead', text: 'The most recently updated first. Open a visit to review its AI-drafted note; select any sentence to hear the moment in the conversation that supports it.' }),
        form,
        this.count,
        this.list,
        this.error,
        this.more,
      ),
    );
    await this.#next();
    performance.mark('evidence:list-ready');
    requestAnimationFrame(() => setTimeout(() => performance.mark('evidence:list-painted'), 0));
    // Load the next page as the button comes near the viewport.
    if ('IntersectionObserver' in window) {
      this.observer = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting) && !this.more.hidden) this.#next();
      }, { rootMargin: '400px 0px' });
      this.observer.observe(this.more);
    }
  }

  destroy() {
    this.gen++;
    if (this.observer) this.observer.disconnect();
  }

  /** change applies new filters: the address, then a new listing. */
  #change(changes) {
    Object.assign(this.filters, changes);
    const addr = addressOf(this.filters);
    if (addr !== location.pathname + location.search) history.replaceState(null, '', addr);
    this.gen++;
    this.shown = 0;
    this.token = '';
    this.list.replaceChildren();
    this.#next();
  }

  async #next() {
    if (this.loading && this.loadingGen === this.gen) return;
    const gen = this.gen;
    this.loading = true;
    this.loadingGen = gen;
    this.list.setAttribute('aria-busy', 'true');
    this.error.hidden = true;
    const f = this.filters;
    const q = { page_size: PAGE };
    if (this.token) q.page_token = this.token;
    if (f.status) q.note_status = f.status;
    if (f.unresolved) q.has_unresolved_flags = '1';
    if (f.patient) q.patient_ref = f.patient;
    if (f.since) q.update_time_start = new Date(Date.now() - SINCE_MS[f.since]).toISOString();
    let r;
    try {
      r = await api.encounters(q);
    } catch (err) {
      if (gen !== this.gen) return;
      this.loading = false;
      if (err && err.status === 401) throw err;
      this.error.textContent = `The visit list could not load: ${err && err.message ? err.message : err}`;
      this.error.hidden = false;
      this.list.setAttribute('aria-busy', 'false');
      return;
    }
    if (gen !== this.gen) return; // the filters changed meanwhile
    this.loading = false;
    const encs = r.encounters || [];
    this.list.append(...encs.map((e) => this.#card(e)));
    this.shown += encs.length;
    this.token = r.next_page_token || '';
    this.more.hidden = !this.token;
    this.list.setAttribute('aria-busy', 'false');
    const filtered = f.status || f.unresolved || f.patient || f.since;
    if (this.shown === 0 && !this.token) {
      this.count.textContent = filtered ? 'No visits match these filters.' : 'No visits are recorded yet. Start the server with --demo to load the demo visit.';
      this.count.className = 'visit-count empty';
    } else {
      this.count.textContent = `Showing ${int(this.shown)} visit${this.shown === 1 ? '' : 's'}${this.token ? ', more below' : ''}.`;
      this.count.className = 'visit-count';
    }
    // A page the server cut short (its scan bound) with nothing shown yet:
    // keep going.
    if (this.token && encs.length === 0) this.#next();
    // Observing afresh reports whether the button is still near the
    // viewport (an observer reports only changes), so a tall screen fills.
    else if (this.observer && this.token) {
      this.observer.unobserve(this.more);
      this.observer.observe(this.more);
    }
  }

  #card(e) {
    const st = STATUS[e.note_status] || STATUS.NOTE_STATUS_NONE;
    const chips = [];
    if (e.redacted) chips.push(h('span', { class: 'chip chip-warn', text: 'Shredded' }));
    else chips.push(h('span', { class: `chip ${st.chip}`, text: st.text }));
    const unresolved = Number(e.unresolved_sentences || 0);
    const flagged = Number(e.flagged_sentences || 0);
    if (unresolved > 0) chips.push(h('span', { class: 'chip chip-warn', text: `${unresolved} unresolved flag${unresolved === 1 ? '' : 's'}` }));
    else if (flagged > 0) chips.push(h('span', { class: 'chip chip-muted', text: `${flagged} flag${flagged === 1 ? '' : 's'} resolved` }));
    const title = e.redacted ? 'Shredded visit' : e.title || e.encounter_id;
    return h(
      'li',
      {},
      h(
        'a',
        { class: 'visit-card', href: `/encounters/${encodeURIComponent(e.encounter_id)}`, 'data-nav': true, dataset: { encounterId: e.encounter_id, status: e.note_status, unresolved: String(unresolved) } },
        h('span', { class: 'visit-card-head' }, h('span', { class: 'visit-card-title', text: title }), h('span', { class: 'visit-card-chips' }, chips)),
        h('span', {
          class: 'visit-card-meta',
          text: [e.patient_ref && `Patient ref ${e.patient_ref}`, e.update_time && `Updated ${when(e.update_time)}`, `${int(e.entry_count)} ledger ${Number(e.entry_count) === 1 ? 'entry' : 'entries'}`].filter(Boolean).join(' · '),
        }),
      ),
    );
  }
}
