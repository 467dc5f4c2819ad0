// The visit view: the note by section next to the transcript. Activating
// a sentence (click, Enter or Space) highlights its evidence at character
// level in the transcript, scrolls to the first span and plays the spans
// in order; its panel shows the evidence and the provenance of every
// version, with each ledger entry's verification state.
//
// Stable hooks for automation (docs/web.md): [data-sentence-id] on each
// sentence, [data-segment-id] on each transcript segment, .evidence-active
// on the active sentence's highlighted evidence, .unsupported on sentences
// without evidence, and the page's single <audio>.

import { api, int, identity } from './api.js';
import { h, clock, clockPrecise, spokenClock, when, speaker, speakerClass, scrollBehavior, kindLabel } from './dom.js';

// Until verify.js has loaded (after the first paint), every entry is
// pending.
const notYetVerifying = {
  result: () => ({ state: 'pending' }),
  summary: () => ({ state: 'checking', total: 0, ok: 0, errors: [], chainLinks: 0 }),
};

const EDIT_ACTIONS = { EDIT_ACTION_REPLACE: 'Edited', EDIT_ACTION_ADD: 'Added', EDIT_ACTION_DELETE: 'Deleted' };

export class VisitView {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.player = app.player;
    this.note = null;
    this.transcript = null;
    this.encounter = null;
    this.segments = new Map(); // segment_id -> {seg, el, textEl}
    this.sentences = new Map(); // sentence_id -> {s, section, el, item}
    this.active = null;
    this.editing = null;
    this.verifier = notYetVerifying;
    this.verifying = null; // the verify.js module, once asked for
    this.playingMarks = [];
    this.onSpan = (e) => this.#spanStarted(e.detail);
    this.onDone = (e) => this.#playbackDone(e.detail);
    this.onError = (e) => this.app.toast(e.detail.message, 'error');
  }

  async load() {
    const [enc, transcript, note] = await Promise.all([
      api.encounter(this.id),
      api.transcript(this.id),
      api.note(this.id).catch((err) => {
        // A visit with no model output yet has no note to show.
        if (err.status === 409 || err.status === 404) return { note: null };
        throw err;
      }),
    ]);
    this.encounter = enc.encounter;
    this.transcript = transcript;
    this.note = note.note && (note.note.sections || []).length ? note.note : null;
    this.render();
  }

  destroy() {
    this.player.removeEventListener('span', this.onSpan);
    this.player.removeEventListener('done', this.onDone);
    this.player.removeEventListener('error', this.onError);
    this.player.stop();
  }

  // ---- rendering -------------------------------------------------------

  render() {
    const enc = this.encounter;
    const recording = this.#recording();
    this.player.addEventListener('span', this.onSpan);
    this.player.addEventListener('done', this.onDone);
    this.player.addEventListener('error', this.onError);
    if (recording) {
      // The element sends the audio session cookie: wait until it is set.
      api.audioReady().then(() => {
        if (this.app.view !== this) return;
        this.player.load({ url: api.audioURL(this.id, int(recording.leaf_index)), startMs: int(recording.start_ms), durationMs: int(recording.duration_ms) });
      });
    }
    this.app.showPlayer(Boolean(recording));

    this.notePane = h('section', { class: 'pane note-pane', id: 'note-pane', 'aria-labelledby': 'note-heading' });
    this.transcriptPane = h('section', { class: 'pane transcript-pane', id: 'transcript-pane', 'aria-labelledby': 'transcript-heading' });
    this.statusEl = h('div', { class: 'visit-status' });
    const tabs = h(
      'div',
      { class: 'view-tabs', role: 'tablist', 'aria-label': 'Show' },
      h('button', { type: 'button', role: 'tab', id: 'tab-note', 'aria-controls': 'note-pane', 'aria-selected': 'true', onclick: () => this.#showTab('note') }, 'Note'),
      h('button', { type: 'button', role: 'tab', id: 'tab-transcript', 'aria-controls': 'transcript-pane', 'aria-selected': 'false', tabindex: '-1', onclick: () => this.#showTab('transcript') }, 'Transcript'),
    );
    tabs.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        const next = document.querySelector('[role=tab][aria-selected=false]');
        this.#showTab(next.id === 'tab-note' ? 'note' : 'transcript');
        next.focus();
      }
    });
    this.metaEl = h('p', { class: 'visit-meta', text: this.#meta() });
    const head = h(
      'div',
      { class: 'visit-head' },
      h('div', { class: 'visit-id' }, h('h1', { class: 'visit-title', text: enc.title || enc.encounter_id, title: enc.title || null }), this.metaEl),
      this.statusEl,
    );
    const body = h('div', { class: 'visit', dataset: { view: 'note' } }, head, tabs, h('div', { class: 'panes' }, this.notePane, this.transcriptPane));
    if (isDemo(enc)) {
      body.append(
        h(
          'p',
          { class: 'attribution' },
          'Demo visit adapted from PriMock57 (Papadopoulos Korfiatis et al., ACL 2022), CC BY 4.0, with synthesized audio. ',
          h('a', { href: '/demo/attribution', target: '_blank', rel: 'noopener' }, 'Attribution and changes'),
        ),
      );
    }
    this.root = body;
    this.app.mount(body);
    this.#renderTranscript();
    this.#renderNote();
    this.#renderStatus();
    const linked = decodeURIComponent(location.hash.slice(1));
    if (linked && this.sentences.has(linked)) {
      // A link to a sentence opens it; playing waits for the user.
      this.activate(linked, { play: false });
      this.sentences.get(linked).el.scrollIntoView({ block: 'center' });
    }
    performance.mark('evidence:visit-ready');
    // The frame after the one that paints the visit (docs/web.md). The
    // verification and the rest start only then, so as not to delay it.
    requestAnimationFrame(() =>
      setTimeout(() => {
        performance.mark('evidence:visit-painted');
        this.verifying = import('./verify.js').then((v) => {
          this.verifier = new v.LogVerifier(api, this.id);
          this.verifier.onchange = () => this.#verificationChanged();
          this.verifier.start(v.expectationsFor(this.note, this.transcript));
          return v;
        });
        this.app.afterPaint();
      }, 0),
    );
  }

  #meta() {
    const enc = this.encounter;
    const recording = this.#recording();
    const segCount = (this.transcript.segments || []).length;
    return [
      enc.patient_ref && `Patient ref ${enc.patient_ref}`,
      enc.create_time && `Opened ${when(enc.create_time)}`,
      recording && `${clock(int(recording.duration_ms))} recording`,
      `${segCount} transcript segment${segCount === 1 ? '' : 's'}`,
      `${int(enc.entry_count)} ledger entries`,
    ]
      .filter(Boolean)
      .join(' · ');
  }

  #recording() {
    const audio = this.transcript.audio || [];
    return audio.length ? audio[audio.length - 1] : null;
  }

  #showTab(which) {
    this.root.dataset.view = which;
    for (const t of this.root.querySelectorAll('[role=tab]')) {
      const on = t.id === `tab-${which}`;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
    }
    if (which === 'transcript') this.#scrollToEvidence();
  }

  #renderStatus() {
    const n = this.note;
    this.statusEl.replaceChildren();
    if (!n) {
      this.statusEl.append(h('span', { class: 'status status-draft', text: 'No note yet' }));
      return;
    }
    const last = (n.signoffs || []).at(-1);
    if (n.signed && last) {
      this.statusEl.append(h('span', { class: 'status status-signed' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), `Signed by ${last.actor} · ${when(last.record_time)}`));
    } else {
      this.statusEl.append(
        h('span', { class: 'status status-draft' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), last ? 'Changed since it was signed' : 'Draft · not signed'),
        h('button', { type: 'button', class: 'btn btn-primary', onclick: () => this.#openSign() }, 'Sign note…'),
      );
    }
  }

  #renderTranscript() {
    const segs = [...(this.transcript.segments || [])].sort((a, b) => int(a.start_ms) - int(b.start_ms) || int(a.leaf_index) - int(b.leaf_index));
    this.segments.clear();
    const list = h('ol', { class: 'segments', 'aria-label': 'Transcript segments' });
    for (const seg of segs) {
      const textEl = h('p', { class: 'seg-text', text: seg.text });
      const start = int(seg.start_ms);
      const el = h(
        'li',
        { class: `segment speaker-${speakerClass(seg.speaker_role)}`, dataset: { segmentId: seg.segment_id }, id: `seg-${seg.segment_id}` },
        h(
          'div',
          { class: 'seg-meta' },
          h('button', {
            type: 'button',
            class: 'seg-time',
            tabindex: this.segments.size === 0 ? '0' : '-1',
            text: clock(start),
            'aria-label': `Play from ${spokenClock(start)}, ${speaker(seg.speaker_role, seg.speaker_label)}`,
            onclick: (e) => this.playSegment(seg, e),
          }),
          h('span', { class: 'seg-speaker', text: speaker(seg.speaker_role, seg.speaker_label) }),
        ),
        textEl,
      );
      this.segments.set(seg.segment_id, { seg, el, textEl });
      list.append(el);
    }
    this.transcriptPane.replaceChildren(
      h(
        'div',
        { class: 'pane-head' },
        h('h2', { id: 'transcript-heading', text: 'Transcript' }),
        h('p', { class: 'pane-sub', text: segs.length ? `${segs.length} segments · times from the start of the visit` : 'No transcript recorded' }),
      ),
      h('div', { class: 'pane-body transcript-body', tabindex: '-1' }, list),
    );
    this.transcriptBody = this.transcriptPane.querySelector('.transcript-body');
    // One tab stop for the transcript; the arrow keys move between segments.
    list.addEventListener('keydown', (e) => {
      const all = [...list.querySelectorAll('.seg-time')];
      const i = all.indexOf(e.target);
      if (i < 0) return;
      let j = -1;
      if (e.key === 'ArrowDown') j = Math.min(all.length - 1, i + 1);
      else if (e.key === 'ArrowUp') j = Math.max(0, i - 1);
      else if (e.key === 'Home') j = 0;
      else if (e.key === 'End') j = all.length - 1;
      if (j < 0) return;
      e.preventDefault();
      all[i].tabIndex = -1;
      all[j].tabIndex = 0;
      all[j].focus();
    });
  }

  #renderNote() {
    const n = this.note;
    this.sentences.clear();
    const body = h('div', { class: 'pane-body note-body' });
    let sub = 'No note has been drafted for this visit yet.';
    if (n) {
      let count = 0;
      let edited = 0;
      let unsupported = 0;
      for (const sec of n.sections || []) {
        const list = h('ul', { class: 'sentences', role: 'list' });
        for (const s of sec.sentences || []) {
          count++;
          if ((s.provenance?.versions || []).length > 1 || s.provenance?.versions?.[0]?.kind === 'ENTRY_KIND_EDIT') edited++;
          if (s.unsupported && !s.acknowledged) unsupported++;
          list.append(this.#renderSentence(s, sec.name));
        }
        body.append(h('section', { class: 'note-section', 'aria-label': sec.name }, h('h3', { text: sec.name }), list));
      }
      const model = n.model ? `${n.model.name} ${n.model.version}` : 'a model';
      sub = `Drafted by ${model} · ${count} sentences · ${edited} edited · ${unsupported ? `${unsupported} without evidence` : 'all supported'}`;
      this.unsupportedCount = unsupported;
    }
    this.notePane.replaceChildren(
      h('div', { class: 'pane-head' }, h('h2', { id: 'note-heading', text: 'Note' }), h('p', { class: 'pane-sub', text: sub })),
      body,
    );
    this.noteBody = body;
    body.addEventListener('keydown', (e) => this.#noteKeys(e));
    // One tab stop for the note: the active sentence, or the first.
    const first = this.sentences.get(this.active) || this.sentences.values().next().value;
    if (first) first.el.tabIndex = 0;
    this.#verificationChanged();
  }

  #renderSentence(s, section) {
    const versions = s.provenance?.versions || [];
    const latest = versions.at(-1);
    const flagged = s.unsupported && !s.acknowledged;
    const marks = h('span', { class: 'sentence-marks' });
    if (flagged) marks.append(h('span', { class: 'chip chip-warn', text: 'No evidence' }));
    else if (s.unsupported) marks.append(h('span', { class: 'chip chip-muted', text: 'Acknowledged' }));
    if (latest && latest.kind === 'ENTRY_KIND_EDIT') marks.append(h('span', { class: 'chip chip-edit', text: EDIT_ACTIONS[latest.action] || 'Edited', title: `by ${latest.actor}` }));
    const classes = ['sentence'];
    if (s.unsupported) classes.push('unsupported');
    if (s.acknowledged) classes.push('acknowledged');
    if (this.active === s.sentence_id) classes.push('active');
    const describedBy = flagged ? `why-${s.sentence_id}` : null;
    const el = h(
      'div',
      {
        class: classes.join(' '),
        role: 'button',
        tabindex: '-1',
        dataset: { sentenceId: s.sentence_id },
        'aria-expanded': String(this.active === s.sentence_id),
        'aria-controls': `detail-${s.sentence_id}`,
        'aria-describedby': describedBy,
        onclick: (e) => {
          if (e.target.closest('a,button')) return;
          this.activate(s.sentence_id, { event: e });
        },
      },
      flagged && h('span', { class: 'flag-icon', 'aria-hidden': 'true' }),
      h('span', { class: 'sentence-text', text: s.text }),
      marks,
      flagged && h('span', { class: 'visually-hidden', id: describedBy, text: 'Unsupported: no evidence was found in the transcript.' }),
    );
    const detail = h('div', { class: 'detail', id: `detail-${s.sentence_id}`, role: 'region', 'aria-label': 'Evidence and provenance', hidden: this.active !== s.sentence_id });
    const item = h('li', { class: 'sentence-item' }, el, detail);
    this.sentences.set(s.sentence_id, { s, section, el, item, detail });
    if (this.active === s.sentence_id) this.#renderDetail(s.sentence_id);
    return item;
  }

  #noteKeys(e) {
    const el = e.target.closest('.sentence');
    if (!el) return;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      this.activate(el.dataset.sentenceId, { event: e });
      return;
    }
    const all = [...this.sentences.values()].map((x) => x.el);
    const i = all.indexOf(el);
    let j = -1;
    if (e.key === 'ArrowDown') j = Math.min(all.length - 1, i + 1);
    else if (e.key === 'ArrowUp') j = Math.max(0, i - 1);
    else if (e.key === 'Home') j = 0;
    else if (e.key === 'End') j = all.length - 1;
    if (j < 0) return;
    e.preventDefault();
    this.#focusSentence(all[j]);
  }

  #focusSentence(el) {
    for (const x of this.sentences.values()) x.el.tabIndex = -1;
    el.tabIndex = 0;
    el.focus();
  }

  // ---- activation ------------------------------------------------------

  /**
   * activate makes a sentence the active one: its evidence highlighted,
   * the transcript scrolled to the first span and, unless play is false,
   * its spans played in order.
   */
  activate(id, { event = null, play = true } = {}) {
    const x = this.sentences.get(id);
    if (!x) return;
    const s = x.s;
    const spans = this.#spans(s);
    if (play && spans.length && !this.#recording()) {
      this.player.stop();
      this.app.setPlayerStatus('This visit has no recording to play.');
    } else if (play && spans.length) {
      // Start the audio before touching the DOM: the seek is the slow part.
      this.app.measure.start(event);
      this.player.play(spans);
    } else if (play) {
      this.player.stop();
      this.app.setPlayerStatus(s.unsupported ? 'This sentence has no evidence in the transcript, so there is nothing to play.' : 'Nothing to play.');
    }
    if (this.active !== id) {
      // An unsaved edit of another sentence is dropped.
      if (this.editing && this.editing !== id) this.editing = null;
      const prev = this.sentences.get(this.active);
      if (prev) {
        prev.el.classList.remove('active');
        prev.el.setAttribute('aria-expanded', 'false');
        prev.detail.hidden = true;
        prev.detail.replaceChildren();
      }
      this.active = id;
    }
    x.el.classList.add('active');
    x.el.setAttribute('aria-expanded', 'true');
    // The address names the sentence, so it can be shared or reloaded.
    if (location.hash !== `#${id}`) history.replaceState(history.state, '', `#${encodeURIComponent(id)}`);
    for (const y of this.sentences.values()) y.el.tabIndex = -1;
    x.el.tabIndex = 0;
    this.#renderDetail(id);
    this.#highlight(s);
    this.#scrollToEvidence();
    if (event && event.type === 'keydown') x.el.focus();
  }

  #spans(s) {
    const all = s.evidence || [];
    return all.map((ev, i) => ({ startMs: int(ev.start_ms), endMs: int(ev.end_ms), rank: i + 1, of: all.length, ev }));
  }

  #highlight(s) {
    // Clear the previous sentence's marks.
    for (const { seg, textEl } of this.segments.values()) {
      if (textEl.childElementCount) textEl.textContent = seg.text;
    }
    this.playingMarks = [];
    const bySeg = new Map();
    (s.evidence || []).forEach((ev, i) => {
      if (!bySeg.has(ev.segment_id)) bySeg.set(ev.segment_id, []);
      bySeg.get(ev.segment_id).push({ start: ev.utf16_start, end: ev.utf16_end, rank: i + 1 });
    });
    for (const [segId, spans] of bySeg) {
      const x = this.segments.get(segId);
      if (x) markText(x.textEl, x.seg.text, spans);
    }
  }

  #scrollToEvidence() {
    const first = this.transcriptPane && this.transcriptPane.querySelector('mark.evidence-active[data-ranks~="1"]');
    if (!first || !first.offsetParent) return;
    const body = this.transcriptBody;
    const top = first.getBoundingClientRect().top - body.getBoundingClientRect().top + body.scrollTop;
    body.scrollTo({ top: Math.max(0, top - body.clientHeight / 3), behavior: scrollBehavior() });
  }

  #spanStarted({ index, span }) {
    for (const m of this.playingMarks) m.classList.remove('evidence-playing');
    const rank = String(index + 1);
    this.playingMarks = [...this.transcriptPane.querySelectorAll(`mark.evidence-active[data-ranks~="${rank}"]`)];
    for (const m of this.playingMarks) m.classList.add('evidence-playing');
    const x = this.sentences.get(this.active);
    if (x) {
      for (const b of x.detail.querySelectorAll('.evidence-item')) b.classList.toggle('playing', b.dataset.rank === rank);
      const ev = span && span.ev;
      if (ev) {
        const n = span.of;
        this.app.setPlayerStatus(`Playing evidence ${index + 1} of ${n} · ${clockPrecise(int(ev.start_ms))}–${clockPrecise(int(ev.end_ms))} · ${speaker(ev.speaker_role)}`, true);
      }
    }
  }

  #playbackDone({ completed }) {
    for (const m of this.playingMarks) m.classList.remove('evidence-playing');
    this.playingMarks = [];
    for (const b of this.root.querySelectorAll('.evidence-item.playing')) b.classList.remove('playing');
    this.app.setPlayerStatus(completed ? 'Finished playing the evidence.' : 'Stopped.', false);
  }

  playSegment(seg, event) {
    this.app.measure.start(event);
    this.player.play([{ startMs: int(seg.start_ms), endMs: int(seg.end_ms) }]);
    this.app.setPlayerStatus(`Playing ${speaker(seg.speaker_role, seg.speaker_label)} at ${clock(int(seg.start_ms))}`, true);
  }

  /** playRange plays one stretch of the visit, such as a search hit. */
  playRange(startMs, endMs, label, event) {
    this.app.measure.start(event);
    this.player.play([{ startMs, endMs }]);
    this.app.setPlayerStatus(label, true);
  }

  /** revealSegment scrolls a segment into view and marks it briefly. */
  revealSegment(segId, highlights) {
    const x = this.segments.get(segId);
    if (!x) return;
    if (this.root.dataset.view === 'note' && getComputedStyle(this.transcriptPane).display === 'none') this.#showTab('transcript');
    if (highlights && highlights.length) markText(x.textEl, x.seg.text, highlights.map((hl) => ({ start: hl.utf16_start, end: hl.utf16_end, rank: 0 })), 'search-hit');
    x.el.classList.add('flash');
    setTimeout(() => x.el.classList.remove('flash'), 1600);
    const body = this.transcriptBody;
    const top = x.el.getBoundingClientRect().top - body.getBoundingClientRect().top + body.scrollTop;
    body.scrollTo({ top: Math.max(0, top - body.clientHeight / 3), behavior: scrollBehavior() });
  }

  // ---- the sentence panel ----------------------------------------------

  #renderDetail(id) {
    const x = this.sentences.get(id);
    if (!x) return;
    const s = x.s;
    const d = x.detail;
    d.hidden = false;
    if (this.editing === id) {
      d.replaceChildren(this.#editForm(s));
      return;
    }
    const spans = s.evidence || [];
    const actions = h(
      'div',
      { class: 'detail-actions' },
      spans.length > 0 &&
        h('button', { type: 'button', class: 'btn btn-primary', onclick: (e) => this.activate(id, { event: e }) }, h('span', { class: 'icon-play', 'aria-hidden': 'true' }), spans.length === 1 ? 'Play evidence' : `Play all ${spans.length}`),
      h('button', { type: 'button', class: 'btn', onclick: () => this.#startEdit(id) }, 'Edit sentence'),
    );
    const parts = [actions];
    if (s.unsupported && !s.acknowledged) {
      parts.push(h('p', { class: 'callout callout-warn' }, h('strong', { text: 'No supporting evidence. ' }), 'The aligner found no moment in the transcript that supports this sentence. Check it against the visit, edit it, or acknowledge it when you sign.'));
    } else if (s.unsupported) {
      parts.push(h('p', { class: 'callout callout-muted' }, h('strong', { text: 'Unsupported, acknowledged. ' }), 'The signer acknowledged that this sentence has no evidence in the transcript.'));
    }
    if (spans.length) {
      const list = h('ol', { class: 'evidence-list' });
      spans.forEach((ev, i) => {
        const start = int(ev.start_ms);
        const end = int(ev.end_ms);
        list.append(
          h(
            'li',
            { class: 'evidence-item', dataset: { rank: String(i + 1), segmentId: ev.segment_id } },
            h(
              'button',
              {
                type: 'button',
                class: 'evidence-play',
                'aria-label': `Play evidence ${i + 1}: ${speaker(ev.speaker_role)}, ${spokenClock(start)}`,
                onclick: (e) => {
                  this.app.measure.start(e);
                  this.player.play([{ startMs: start, endMs: end }]);
                },
              },
              h('span', { class: 'icon-play', 'aria-hidden': 'true' }),
              `${clockPrecise(start)}–${clockPrecise(end)}`,
            ),
            h('span', { class: `who speaker-${speakerClass(ev.speaker_role)}`, text: speaker(ev.speaker_role) }),
            h('q', { class: 'evidence-quote', text: ev.text }),
            h('span', { class: 'score', title: 'Alignment score, 0 to 1', text: Number(ev.score || 0).toFixed(2) }),
          ),
        );
      });
      parts.push(h('h4', { text: 'Evidence' }), list);
    }
    parts.push(h('h4', { text: 'Provenance' }), this.#provenance(s));
    d.replaceChildren(...parts);
  }

  #provenance(s) {
    const p = s.provenance || {};
    const versions = p.versions || [];
    const list = h('ol', { class: 'provenance' });
    versions.forEach((v, i) => {
      const isModel = v.kind === 'ENTRY_KIND_MODEL_OUTPUT';
      const who = isModel ? `model ${v.model ? `${v.model.name} ${v.model.version}` : v.actor}` : v.actor;
      const verb = isModel ? 'Drafted' : EDIT_ACTIONS[v.action] || 'Edited';
      const before = i > 0 ? versions[i - 1].text : null;
      list.append(
        h(
          'li',
          { class: `prov prov-${isModel ? 'model' : 'edit'}` },
          h('div', { class: 'prov-head' }, h('strong', { text: verb }), ` by ${who}`),
          h('div', { class: 'prov-meta' }, h('time', { datetime: v.record_time, text: when(v.record_time, true) }), ' · ', leafChip(v.leaf_index, this.verifier)),
          v.reason && h('p', { class: 'prov-reason' }, h('span', { class: 'label', text: 'Reason: ' }), v.reason),
          before !== null && before !== v.text
            ? h('div', { class: 'diff' }, h('div', { class: 'diff-row' }, h('span', { class: 'label', text: 'Before' }), h('del', { text: before })), h('div', { class: 'diff-row' }, h('span', { class: 'label', text: 'After' }), h('ins', { text: v.text })))
            : null,
        ),
      );
    });
    if (p.alignment_method || int(p.alignment_index) > 0) {
      list.append(
        h(
          'li',
          { class: 'prov prov-align' },
          h('div', { class: 'prov-head' }, h('strong', { text: 'Aligned' }), ' with ', h('code', { text: p.alignment_method || 'unknown method' })),
          h('div', { class: 'prov-meta' }, leafChip(p.alignment_index, this.verifier), ` · ${(s.evidence || []).length} span${(s.evidence || []).length === 1 ? '' : 's'}`),
        ),
      );
    }
    const segLeaves = [];
    const seen = new Set();
    for (const ev of s.evidence || []) {
      const seg = this.segments.get(ev.segment_id);
      if (seg && !seen.has(ev.segment_id)) {
        seen.add(ev.segment_id);
        segLeaves.push(int(seg.seg.leaf_index));
      }
    }
    if (segLeaves.length) {
      const rec = this.#recording();
      list.append(
        h(
          'li',
          { class: 'prov prov-source' },
          h('div', { class: 'prov-head' }, h('strong', { text: 'Sources' }), ' in the transcript and recording'),
          h('div', { class: 'prov-meta leaf-list' }, ...segLeaves.flatMap((l) => [leafChip(l, this.verifier), ' ']), rec && leafChip(rec.leaf_index, this.verifier, 'recording')),
        ),
      );
    }
    return list;
  }

  // ---- editing ---------------------------------------------------------

  #startEdit(id) {
    this.editing = id;
    this.#renderDetail(id);
    const ta = this.sentences.get(id).detail.querySelector('textarea');
    ta.focus();
    ta.setSelectionRange(ta.value.length, ta.value.length);
  }

  #editForm(s) {
    const who = identity();
    const text = h('textarea', { id: 'edit-text', name: 'text', rows: '3', required: true, maxlength: '2000' });
    text.value = s.text;
    const reason = h('input', { id: 'edit-reason', name: 'reason', type: 'text', maxlength: '500', placeholder: 'e.g. Corrected the dose from the recording' });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save edit');
    const form = h(
      'form',
      { class: 'edit-form', 'aria-label': 'Edit sentence' },
      h('label', { for: 'edit-text', text: 'Sentence' }),
      text,
      h('label', { for: 'edit-reason', text: 'Reason for the change' }),
      reason,
      error,
      h('div', { class: 'form-actions' }, save, h('button', { type: 'button', class: 'btn', onclick: () => this.#cancelEdit() }, 'Cancel')),
      h('p', { class: 'hint', text: `The edit is added to the ledger as a new entry and the sentence is re-aligned; the earlier text stays on record.${who.mode === 'development' ? ` Recorded as ${who.actor} (development sign-in).` : ''}` }),
    );
    form.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        this.#cancelEdit();
      } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const newText = text.value.trim();
      if (!newText) {
        showError(error, 'Enter the sentence text.');
        return;
      }
      if (newText === s.text) {
        showError(error, 'The text is unchanged.');
        return;
      }
      save.disabled = true;
      save.textContent = 'Saving…';
      try {
        const r = await api.edit(this.id, { action: 'EDIT_ACTION_REPLACE', sentence_id: s.sentence_id, text: newText, reason: reason.value.trim() });
        this.editing = null;
        this.#applyNote(r.note);
        const ai = int(r.alignment_index);
        this.app.toast(`Edit recorded as entry #${int(r.edit_index)}${ai ? ` and re-aligned (entry #${ai})` : ''}.`);
        const x = this.sentences.get(r.sentence_id || s.sentence_id);
        if (x) {
          this.activate(x.s.sentence_id, { play: false });
          this.#focusSentence(x.el);
        }
      } catch (err) {
        save.disabled = false;
        save.textContent = 'Save edit';
        showError(error, `The edit was not saved: ${err.message}`);
      }
    });
    return form;
  }

  #cancelEdit() {
    const id = this.editing;
    this.editing = null;
    this.#renderDetail(id);
    const x = this.sentences.get(id);
    if (x) this.#focusSentence(x.el);
  }

  // #applyNote shows a new version of the note (after an edit or a
  // sign-off) and verifies the entries it adds.
  #applyNote(note) {
    // The evidence being played belonged to the earlier version.
    this.player.stop();
    this.note = note;
    const scroll = this.noteBody ? this.noteBody.scrollTop : 0;
    this.#renderNote();
    this.noteBody.scrollTop = scroll;
    this.#renderStatus();
    if (this.verifying) this.verifying.then((v) => this.verifier.add(v.expectationsFor(this.note, this.transcript)));
    api.encounter(this.id).then((r) => {
      this.encounter = r.encounter;
      this.metaEl.textContent = this.#meta();
    }, () => {});
  }

  // ---- sign-off --------------------------------------------------------

  #openSign() {
    const pending = [];
    for (const sec of this.note.sections || []) for (const s of sec.sentences || []) if (s.unsupported && !s.acknowledged) pending.push({ s, section: sec.name });
    const boxes = pending.map(({ s, section }) =>
      h('li', {}, h('label', { class: 'check' }, h('input', { type: 'checkbox', value: s.sentence_id }), h('span', {}, h('span', { class: 'label', text: `${section}: ` }), s.text))),
    );
    const statement = h('input', { type: 'text', id: 'sign-statement', maxlength: '500' });
    statement.value = 'I reviewed this note against the visit.';
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'sign-title' },
      h(
        'form',
        { method: 'dialog', class: 'sign-form' },
        h('h2', { id: 'sign-title', text: 'Sign this note' }),
        pending.length
          ? [h('p', { text: `${pending.length} sentence${pending.length === 1 ? ' has' : 's have'} no evidence in the transcript. Acknowledge each one to sign, or cancel and edit ${pending.length === 1 ? 'it' : 'them'}.` }), h('ul', { class: 'ack-list' }, boxes)]
          : h('p', { text: 'Every sentence has evidence in the transcript.' }),
        h('label', { for: 'sign-statement', text: 'Statement' }),
        statement,
        error,
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', value: 'sign' }, 'Sign note'), h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, 'Cancel')),
      ),
    );
    dialog.addEventListener('close', () => dialog.remove());
    dialog.querySelector('form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const ack = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
      if (ack.length !== pending.length) {
        showError(error, 'Acknowledge every sentence without evidence first.');
        return;
      }
      try {
        const r = await api.sign(this.id, { note_hash: this.note.note_hash, acknowledged_sentence_ids: ack, statement: statement.value.trim() });
        dialog.close();
        this.#applyNote(r.note);
        this.app.toast(`Signed. Sign-off recorded as entry #${int((r.receipt?.leaf_indexes || []).at(-1))}.`);
      } catch (err) {
        showError(error, `Not signed: ${err.message}`);
      }
    });
    document.body.append(dialog);
    dialog.showModal();
  }

  // ---- verification ----------------------------------------------------

  #verificationChanged() {
    if (!this.root) return;
    for (const el of this.root.querySelectorAll('[data-leaf]')) paintLeaf(el, this.verifier);
    this.app.badge.update(this.verifier.summary());
  }

  /** activateFromSearch opens a sentence found by search. */
  focusSentence(id) {
    const x = this.sentences.get(id);
    if (!x) return false;
    this.#showTab('note');
    this.activate(id, { play: true });
    this.#focusSentence(x.el);
    x.el.scrollIntoView({ block: 'center', behavior: scrollBehavior() });
    return true;
  }
}

function isDemo(enc) {
  return String(enc.patient_ref || '').startsWith('demo-') || /PriMock57/.test(enc.title || '');
}

function showError(el, msg) {
  el.textContent = msg;
  el.hidden = false;
}

/**
 * markText renders text into el with the spans (UTF-16 offsets, half-open)
 * marked. Overlapping spans merge into one mark that lists every rank.
 */
export function markText(el, text, spans, cls = 'evidence evidence-active') {
  const clean = spans
    .map((s) => ({ start: Math.max(0, Math.min(text.length, s.start | 0)), end: Math.max(0, Math.min(text.length, s.end | 0)), ranks: [s.rank] }))
    .filter((s) => s.end > s.start)
    .sort((a, b) => a.start - b.start || a.end - b.end);
  const merged = [];
  for (const s of clean) {
    const last = merged.at(-1);
    if (last && s.start < last.end) {
      last.end = Math.max(last.end, s.end);
      last.ranks.push(...s.ranks);
    } else merged.push({ ...s, ranks: [...s.ranks] });
  }
  const parts = [];
  let at = 0;
  for (const m of merged) {
    if (m.start > at) parts.push(text.slice(at, m.start));
    parts.push(h('mark', { class: cls, dataset: { ranks: m.ranks.join(' '), start: String(m.start), end: String(m.end) } }, text.slice(m.start, m.end)));
    at = m.end;
  }
  if (at < text.length) parts.push(text.slice(at));
  el.replaceChildren(...parts);
}

function leafChip(index, verifier, label) {
  const i = int(index);
  const el = h('span', { class: 'leaf', dataset: { leaf: String(i) } }, h('span', { class: 'leaf-icon', 'aria-hidden': 'true' }), label ? `${label} #${i}` : `entry #${i}`);
  paintLeaf(el, verifier);
  return el;
}

function paintLeaf(el, verifier) {
  const r = verifier.result(Number(el.dataset.leaf));
  const state = r.state === 'ok' ? 'ok' : r.state === 'failed' ? 'failed' : 'pending';
  if (el.dataset.state === state) return;
  el.dataset.state = state;
  el.title =
    state === 'ok'
      ? `Ledger ${kindLabel(r.kind)} #${el.dataset.leaf}: included in the signed checkpoint (checked in this browser)`
      : state === 'failed'
        ? r.error
        : 'Checking this entry’s inclusion proof…';
  const sr = el.querySelector('.visually-hidden') || el.appendChild(h('span', { class: 'visually-hidden' }));
  sr.textContent = state === 'ok' ? ', verified' : state === 'failed' ? ', verification failed' : ', checking';
}
