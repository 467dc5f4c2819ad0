// The search box: full-text search over this visit or across visits,
// through GET /api/v1/search?q=&encounter= (protojson of SearchResponse:
// hits with leaf_index, encounter_id, segment_id or sentence_id,
// start_ms/end_ms and highlights in UTF-16 offsets). The page shows the box
// only when the server answers that route (app.js). Choosing a transcript
// hit plays its stretch of audio; choosing a note hit opens the sentence
// and plays its evidence.

import { api, int } from './api.js';
import { h, clock, speaker } from './dom.js';
import { markText } from './visit.js';

export class SearchBox {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.input = root.querySelector('#search-input');
    this.scope = root.querySelector('#search-scope');
    this.results = root.querySelector('#search-results');
    this.view = null;
    this.titles = null; // encounter id -> title, for hits in other visits
    this.timer = 0;
    this.controller = null;
    root.hidden = false;
    this.input.addEventListener('input', () => this.#schedule());
    this.scope.addEventListener('change', () => this.#run());
    root.querySelector('form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#run();
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown') {
        const first = this.results.querySelector('.hit');
        if (first) {
          e.preventDefault();
          first.focus();
        }
      } else if (e.key === 'Escape') this.close();
    });
    this.results.addEventListener('keydown', (e) => {
      const hits = [...this.results.querySelectorAll('.hit')];
      const i = hits.indexOf(document.activeElement);
      if (e.key === 'ArrowDown' && i < hits.length - 1) {
        e.preventDefault();
        hits[i + 1].focus();
      } else if (e.key === 'ArrowUp') {
        e.preventDefault();
        (i > 0 ? hits[i - 1] : this.input).focus();
      } else if (e.key === 'Escape') {
        this.close();
        this.input.focus();
      }
    });
    document.addEventListener('click', (e) => {
      if (!this.root.contains(e.target)) this.close();
    });
  }

  /** setVisit scopes the box to the open visit (or none, on the list). */
  setVisit(view) {
    this.view = view;
    this.scope.hidden = !view;
    if (!view) this.scope.value = 'all';
    this.input.placeholder = view ? 'Search this visit' : 'Search all visits';
    this.close();
  }

  close() {
    this.results.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
  }

  #schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.#run(), 180);
  }

  async #run() {
    const q = this.input.value.trim();
    if (this.controller) this.controller.abort();
    if (!q) {
      this.close();
      return;
    }
    this.controller = new AbortController();
    const encounter = this.view && this.scope.value === 'visit' ? this.view.id : '';
    try {
      const r = await api.search(q, encounter, { signal: this.controller.signal });
      const hits = r.hits || [];
      if (!this.titles && hits.some((x) => !this.view || x.encounter_id !== this.view.id)) {
        this.titles = new Map();
        try {
          for (const e of (await api.encounters()).encounters || []) this.titles.set(e.encounter_id, e.title || e.encounter_id);
        } catch {
          // Ids will do.
        }
      }
      this.#show(hits, q);
    } catch (err) {
      if (err.name === 'AbortError') return;
      this.#message(`Search failed: ${err.message}`);
    }
  }

  #message(text) {
    this.results.replaceChildren(h('p', { class: 'search-empty', role: 'status', text }));
    this.results.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
  }

  #show(hits, q) {
    if (!hits.length) {
      this.#message(`No matches for “${q}”.`);
      return;
    }
    const list = h('ul', { class: 'hit-list', role: 'list', 'aria-label': `${hits.length} results` });
    for (const hit of hits.slice(0, 50)) list.append(h('li', {}, this.#hit(hit)));
    this.results.replaceChildren(h('p', { class: 'visually-hidden', role: 'status', text: `${hits.length} results` }), list);
    this.results.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
  }

  #hit(hit) {
    const isSentence = Boolean(hit.sentence_id);
    const text = h('span', { class: 'hit-text' });
    markText(text, hit.text || '', (hit.highlights || []).map((x) => ({ start: x.utf16_start, end: x.utf16_end, rank: 0 })), 'search-mark');
    const where = isSentence
      ? `Note${hit.section ? ` · ${hit.section}` : ''}${hit.superseded ? ' · earlier version' : ''}`
      : `${speaker(hit.speaker_role || hit.speaker)} · ${clock(int(hit.start_ms))}`;
    const other = !this.view || hit.encounter_id !== this.view.id;
    return h(
      'button',
      { type: 'button', class: 'hit', dataset: { hitLeaf: String(int(hit.leaf_index)), hitKind: isSentence ? 'sentence' : 'segment' }, onclick: (e) => this.#open(hit, e) },
      h('span', { class: 'hit-meta', text: other ? `${where} · ${(this.titles && this.titles.get(hit.encounter_id)) || hit.encounter_id}` : where }),
      text,
    );
  }

  async #open(hit, event) {
    this.close();
    if (!this.view || this.view.id !== hit.encounter_id) {
      this.app.navigate(`/encounters/${encodeURIComponent(hit.encounter_id)}`);
      // route() replaces the view; wait for it to load.
      for (let i = 0; i < 100 && !(this.app.view && this.app.view.id === hit.encounter_id && this.app.view.root); i++) await new Promise((r) => setTimeout(r, 30));
      this.view = this.app.view;
      if (!this.view) return;
    }
    // A note hit opens its sentence (an earlier version shows in its
    // provenance); a transcript hit plays its stretch of the visit.
    if (hit.sentence_id && this.view.focusSentence(hit.sentence_id)) return;
    if (hit.segment_id) {
      this.view.revealSegment(hit.segment_id, hit.highlights);
      this.view.playRange(int(hit.start_ms), int(hit.end_ms), `Playing search result at ${clock(int(hit.start_ms))}`, event);
    }
  }
}
