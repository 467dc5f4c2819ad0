// The visit view: the note by section next to the transcript. Activating
// a sentence (click, Enter or Space) highlights its evidence at character
// level in the transcript, scrolls to the first span and plays the spans
// in order; its panel shows the evidence and the provenance of every
// version, with each ledger entry's verification state.
//
// A contradicted sentence plays and highlights, instead of its evidence,
// the transcript words that contradict it; flagged sentences (contradicted
// or unmentioned) are marked and counted in the note's header, and their
// panel offers the resolution: edit the sentence (re-verified) or confirm
// it with a reason. The note cannot be signed until each is resolved.
//
// Stable hooks for automation (docs/web.md): [data-sentence-id] and
// [data-verdict] on each sentence, [data-resolved] on resolved flagged
// ones, [data-segment-id] on each transcript segment, .evidence-active on
// the active sentence's highlighted evidence, .evidence-conflict on the
// highlighted words that contradict it, .unsupported on sentences without
// evidence, #verdict-summary in the note's header, and the page's single
// <audio>.

import { api, int, identity } from './api.js';
import { h, clock, clockPrecise, spokenClock, when, speaker, speakerClass, scrollBehavior, kindLabel } from './dom.js';

// Until verify.js has loaded (after the first paint), every entry is
// pending.
const notYetVerifying = {
  result: () => ({ state: 'pending' }),
  summary: () => ({ state: 'checking', total: 0, ok: 0, errors: [], chainLinks: 0 }),
};

const EDIT_ACTIONS = { EDIT_ACTION_REPLACE: 'Edited', EDIT_ACTION_ADD: 'Added', EDIT_ACTION_DELETE: 'Deleted' };

/** verdictOf maps a protojson Verdict ("VERDICT_CONTRADICTED") to "contradicted". */
export function verdictOf(s) {
  return String(s.verdict || 'VERDICT_UNSPECIFIED').replace(/^VERDICT_/, '').toLowerCase();
}

function severityOf(s) {
  return String(s.severity || '').replace(/^SEVERITY_/, '').toLowerCase();
}

const FLAGGED = new Set(['contradicted', 'unmentioned']);

/** needsResolution reports a flagged sentence no clinician has resolved. */
function needsResolution(s) {
  return FLAGGED.has(verdictOf(s)) && !s.resolved;
}

const CONFLICT_KINDS = {
  CONFLICT_KIND_NEGATION: 'negation',
  CONFLICT_KIND_NUMBER: 'number',
  CONFLICT_KIND_DURATION_ONSET: 'duration or onset',
  CONFLICT_KIND_MEDICATION: 'medication',
  CONFLICT_KIND_DOSE_FREQUENCY: 'dose or frequency',
  CONFLICT_KIND_LATERALITY_SITE: 'side or site',
  CONFLICT_KIND_CONDITION: 'condition',
  CONFLICT_KIND_ATTRIBUTION: 'whose history',
  CONFLICT_KIND_SEVERITY_QUALITY: 'severity or quality',
};

/** utf16Slice returns text[start:end) by UTF-16 offsets, clamped. */
function utf16Slice(text, r) {
  const a = Math.max(0, Math.min(text.length, r.utf16_start | 0));
  const b = Math.max(a, Math.min(text.length, r.utf16_end | 0));
  return text.slice(a, b);
}

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
          'Demo visit adapted from PriMock57 (Papadopoulos Korfiatis et al., ACL 2022), CC BY 4.0, with synthesized audio; its current draft is a hand-written fixture with two deliberate errors (no model was run). ',
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
      const flags = { contradicted: 0, unmentioned: 0, unresolved: 0 };
      for (const sec of n.sections || []) {
        const list = h('ul', { class: 'sentences', role: 'list' });
        for (const s of sec.sentences || []) {
          count++;
          if ((s.provenance?.versions || []).length > 1 || s.provenance?.versions?.[0]?.kind === 'ENTRY_KIND_EDIT') edited++;
          const v = verdictOf(s);
          if (FLAGGED.has(v)) flags[v]++;
          if (needsResolution(s)) flags.unresolved++;
          list.append(this.#renderSentence(s, sec.name));
        }
        body.append(h('section', { class: 'note-section', 'aria-label': sec.name }, h('h3', { text: sec.name }), list));
      }
      const model = n.model ? `${n.model.name} ${n.model.version}` : 'a model';
      sub = `Drafted by ${model} · ${count} sentences · ${edited} edited`;
      this.flags = flags;
    }
    this.notePane.replaceChildren(
      h('div', { class: 'pane-head' }, h('h2', { id: 'note-heading', text: 'Note' }), h('p', { class: 'pane-sub', text: sub }), n && verdictSummary(this.flags)),
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
    const verdict = verdictOf(s);
    const flagged = FLAGGED.has(verdict);
    const open = needsResolution(s);
    const severity = severityOf(s);
    const marks = h('span', { class: 'sentence-marks' });
    if (flagged) {
      const label = verdict === 'contradicted' ? 'Contradicted' : 'Not mentioned';
      marks.append(h('span', { class: `chip ${open ? (verdict === 'contradicted' ? 'chip-danger' : 'chip-warn') : 'chip-muted'} chip-verdict`, text: severity ? `${label} · ${severity}` : label }));
      if (!open) marks.append(h('span', { class: 'chip chip-resolved', text: resolutionLabel(s.resolutions?.at(-1)) }));
    } else if (s.unsupported && s.acknowledged) marks.append(h('span', { class: 'chip chip-muted', text: 'Acknowledged' }));
    if (latest && latest.kind === 'ENTRY_KIND_EDIT') marks.append(h('span', { class: 'chip chip-edit', text: EDIT_ACTIONS[latest.action] || 'Edited', title: `by ${latest.actor}` }));
    const classes = ['sentence', `verdict-${verdict}`];
    if (s.unsupported) classes.push('unsupported');
    if (s.acknowledged) classes.push('acknowledged');
    if (open) classes.push('flagged');
    if (this.active === s.sentence_id) classes.push('active');
    const describedBy = flagged ? `why-${s.sentence_id}` : null;
    const text = h('span', { class: 'sentence-text' });
    markClaims(text, s);
    const dataset = { sentenceId: s.sentence_id, verdict };
    if (flagged && s.resolved) dataset.resolved = 'true';
    const el = h(
      'div',
      {
        class: classes.join(' '),
        role: 'button',
        tabindex: '-1',
        dataset,
        'aria-expanded': String(this.active === s.sentence_id),
        'aria-controls': `detail-${s.sentence_id}`,
        'aria-describedby': describedBy,
        onclick: (e) => {
          if (e.target.closest('a,button')) return;
          this.activate(s.sentence_id, { event: e });
        },
      },
      open && h('span', { class: `flag-icon flag-${verdict}`, 'aria-hidden': 'true' }),
      text,
      marks,
      flagged && h('span', { class: 'visually-hidden', id: describedBy, text: verdictSentence(s) }),
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
    if (play && spans.length && verdictOf(s) === 'contradicted') this.app.setPlayerStatus('Playing the words that contradict this sentence.', true);
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

  // #moments returns what activating s highlights and plays: the words
  // that contradict a contradicted sentence (not the evidence retrieved
  // for it, which a wrong sentence must not borrow credibility from), else
  // its evidence spans.
  #moments(s) {
    if (verdictOf(s) === 'contradicted' && (s.conflicts || []).length) return { list: s.conflicts, cls: 'evidence evidence-conflict' };
    return { list: s.evidence || [], cls: 'evidence evidence-active' };
  }

  #spans(s) {
    const all = this.#moments(s).list;
    return all.map((ev, i) => ({ startMs: int(ev.start_ms), endMs: int(ev.end_ms), rank: i + 1, of: all.length, ev }));
  }

  #highlight(s) {
    // Clear the previous sentence's marks.
    for (const { seg, textEl } of this.segments.values()) {
      if (textEl.childElementCount) textEl.textContent = seg.text;
    }
    this.playingMarks = [];
    const { list, cls } = this.#moments(s);
    const bySeg = new Map();
    list.forEach((ev, i) => {
      if (!bySeg.has(ev.segment_id)) bySeg.set(ev.segment_id, []);
      bySeg.get(ev.segment_id).push({ start: ev.utf16_start, end: ev.utf16_end, rank: i + 1 });
    });
    for (const [segId, spans] of bySeg) {
      const x = this.segments.get(segId);
      if (x) markText(x.textEl, x.seg.text, spans, cls);
    }
  }

  #scrollToEvidence() {
    const first = this.transcriptPane && this.transcriptPane.querySelector('mark.evidence[data-ranks~="1"]');
    if (!first || !first.offsetParent) return;
    const body = this.transcriptBody;
    const top = first.getBoundingClientRect().top - body.getBoundingClientRect().top + body.scrollTop;
    body.scrollTo({ top: Math.max(0, top - body.clientHeight / 3), behavior: scrollBehavior() });
  }

  #spanStarted({ index, span }) {
    for (const m of this.playingMarks) m.classList.remove('evidence-playing');
    const rank = String(index + 1);
    this.playingMarks = [...this.transcriptPane.querySelectorAll(`mark.evidence[data-ranks~="${rank}"]`)];
    for (const m of this.playingMarks) m.classList.add('evidence-playing');
    const x = this.sentences.get(this.active);
    if (x) {
      for (const b of x.detail.querySelectorAll('.evidence-item')) b.classList.toggle('playing', b.dataset.rank === rank);
      const ev = span && span.ev;
      if (ev) {
        const n = span.of;
        const what = ev.words !== undefined ? 'the contradicting words' : 'evidence';
        this.app.setPlayerStatus(`Playing ${what} ${index + 1} of ${n} · ${clockPrecise(int(ev.start_ms))}–${clockPrecise(int(ev.end_ms))} · ${speaker(ev.speaker_role)}`, true);
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
    if (this.confirming === id) {
      d.replaceChildren(this.#confirmForm(s));
      return;
    }
    const spans = s.evidence || [];
    const verdict = verdictOf(s);
    const open = needsResolution(s);
    const moments = this.#spans(s);
    const playLabel = verdict === 'contradicted' && (s.conflicts || []).length ? 'Play what was said' : moments.length === 1 ? 'Play evidence' : `Play all ${moments.length}`;
    const actions = h(
      'div',
      { class: 'detail-actions' },
      moments.length > 0 &&
        h('button', { type: 'button', class: 'btn btn-primary btn-play', onclick: (e) => this.activate(id, { event: e }) }, h('span', { class: 'icon-play', 'aria-hidden': 'true' }), playLabel),
      h('button', { type: 'button', class: 'btn btn-edit', onclick: () => this.#startEdit(id) }, open ? 'Edit to resolve' : 'Edit sentence'),
      open && h('button', { type: 'button', class: 'btn btn-confirm', onclick: () => this.#startConfirm(id) }, 'Confirm as written…'),
    );
    const parts = [actions];
    if (FLAGGED.has(verdict)) parts.push(this.#verdictCallout(s));
    else if (s.unsupported && s.acknowledged) {
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
      parts.push(h('h4', { text: verdict === 'contradicted' ? 'Related moments (retrieved, not support)' : 'Evidence' }), list);
    }
    parts.push(h('h4', { text: 'Provenance' }), this.#provenance(s));
    d.replaceChildren(...parts);
  }

  // #verdictCallout explains a flagged sentence: the words that contradict
  // it, or the parts nothing supports, and its resolutions.
  #verdictCallout(s) {
    const verdict = verdictOf(s);
    const severity = severityOf(s);
    const open = needsResolution(s);
    const box = h('div', { class: `callout verdict-callout ${open ? (verdict === 'contradicted' ? 'callout-danger' : 'callout-warn') : 'callout-muted'}` });
    if (verdict === 'contradicted') {
      box.append(h('p', {}, h('strong', { text: `Contradicted${severity ? ` (${severity})` : ''}. ` }), 'The visit says otherwise:'));
      const list = h('ul', { class: 'conflict-list' });
      (s.conflicts || []).forEach((c, i) => {
        const start = int(c.start_ms);
        const end = int(c.end_ms);
        list.append(
          h(
            'li',
            { class: 'conflict-item', dataset: { rank: String(i + 1), segmentId: c.segment_id } },
            h('span', { class: 'conflict-kind', text: CONFLICT_KINDS[c.kind] || 'conflict' }),
            h('span', {}, 'The note says ', h('q', { class: 'conflict-claim', text: utf16Slice(s.text, c.claim || {}) }), '; ', speaker(c.speaker_role).toLowerCase(), ' said ', h('q', { class: 'conflict-words', text: c.words })),
            h(
              'button',
              {
                type: 'button',
                class: 'evidence-play',
                'aria-label': `Play what was said: ${speaker(c.speaker_role)}, ${spokenClock(start)}`,
                onclick: (e) => {
                  this.app.measure.start(e);
                  this.player.play([{ startMs: start, endMs: end, rank: i + 1, of: 1, ev: c }]);
                },
              },
              h('span', { class: 'icon-play', 'aria-hidden': 'true' }),
              `${clockPrecise(start)}–${clockPrecise(end)}`,
            ),
          ),
        );
      });
      box.append(list);
    } else {
      const parts = (s.unsupported_ranges || []).map((r) => utf16Slice(s.text, r)).filter(Boolean);
      box.append(
        h('p', {}, h('strong', { text: `Not mentioned${severity ? ` (${severity})` : ''}. ` }), parts.length ? 'Nothing in the visit supports ' : 'Nothing in the visit supports this sentence.', ...parts.flatMap((t, i) => [i ? ' or ' : '', h('q', { class: 'unsupported-part', text: t })]), parts.length ? '.' : ''),
      );
    }
    if (open) box.append(h('p', { class: 'resolve-hint', text: 'Check it against the visit, then edit it (the new text is checked again) or confirm it as written with a reason. The note cannot be signed until you do.' }));
    for (const r of s.resolutions || []) box.append(h('p', { class: 'resolution' }, resolutionLine(r)));
    return box;
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
    for (const r of s.resolutions || []) {
      list.append(
        h(
          'li',
          { class: 'prov prov-resolution' },
          h('div', { class: 'prov-head' }, h('strong', { text: r.action === 'RESOLUTION_ACTION_EDIT' ? 'Resolved by editing' : 'Confirmed as written' }), ` by ${r.actor}, having seen the verdict ${String(r.verdict || '').replace(/^VERDICT_/, '').toLowerCase()}`),
          h('div', { class: 'prov-meta' }, h('time', { datetime: r.record_time, text: when(r.record_time, true) }), ' · ', leafChip(r.leaf_index, this.verifier)),
          r.reason && h('p', { class: 'prov-reason' }, h('span', { class: 'label', text: 'Reason: ' }), r.reason),
        ),
      );
    }
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
        // Editing a flagged sentence resolves it: the resolution entry
        // records the verdict seen, after the edit and its re-check.
        const resolving = needsResolution(s);
        const r = resolving
          ? await api.resolve(this.id, { sentence_id: s.sentence_id, verdict: s.verdict, alignment_index: s.provenance?.alignment_index || '0', action: 'RESOLUTION_ACTION_EDIT', text: newText, reason: reason.value.trim() })
          : await api.edit(this.id, { action: 'EDIT_ACTION_REPLACE', sentence_id: s.sentence_id, text: newText, reason: reason.value.trim() });
        this.editing = null;
        this.#applyNote(r.note);
        const ai = int(r.alignment_index);
        const now = this.#sentence(s.sentence_id);
        const again = now && needsResolution(now) ? ` The new text is ${verdictOf(now) === 'contradicted' ? 'contradicted' : 'not mentioned'} too: resolve it again.` : '';
        this.app.toast(`Edit recorded as entry #${int(r.edit_index)}${ai ? ` and checked again (entry #${ai})` : ''}${resolving ? `; resolution entry #${int(r.resolution_index)}.` : '.'}${again}`);
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

  #sentence(id) {
    for (const sec of this.note?.sections || []) for (const s of sec.sentences || []) if (s.sentence_id === id) return s;
    return null;
  }

  #startConfirm(id) {
    this.confirming = id;
    this.editing = null;
    this.#renderDetail(id);
    this.sentences.get(id).detail.querySelector('textarea').focus();
  }

  #confirmForm(s) {
    const reason = h('textarea', { id: 'confirm-reason', name: 'reason', rows: '2', required: true, maxlength: '1000', placeholder: 'e.g. Said at the end of the visit, after the recording stopped' });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Confirm as written');
    const verdict = verdictOf(s);
    const form = h(
      'form',
      { class: 'confirm-form', 'aria-label': 'Confirm the sentence as written' },
      h('p', { class: 'hint', text: `The checker found this sentence ${verdict === 'contradicted' ? 'contradicted by' : 'not mentioned in'} the visit. Confirming keeps it as written; the ledger records that you saw the verdict, and why you kept it.` }),
      h('label', { for: 'confirm-reason', text: 'Reason (required)' }),
      reason,
      error,
      h('div', { class: 'form-actions' }, save, h('button', { type: 'button', class: 'btn', onclick: () => this.#cancelConfirm() }, 'Cancel')),
    );
    form.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation();
        this.#cancelConfirm();
      }
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const why = reason.value.trim();
      if (!why) {
        showError(error, 'Give the reason you keep it as written.');
        return;
      }
      save.disabled = true;
      try {
        const r = await api.resolve(this.id, { sentence_id: s.sentence_id, verdict: s.verdict, alignment_index: s.provenance?.alignment_index || '0', action: 'RESOLUTION_ACTION_CONFIRM', reason: why });
        this.confirming = null;
        this.#applyNote(r.note);
        this.app.toast(`Confirmed; resolution recorded as entry #${int(r.resolution_index)}.`);
        const x = this.sentences.get(s.sentence_id);
        if (x) {
          this.activate(s.sentence_id, { play: false });
          this.#focusSentence(x.el);
        }
      } catch (err) {
        save.disabled = false;
        showError(error, `Not confirmed: ${err.message}`);
      }
    });
    return form;
  }

  #cancelConfirm() {
    const id = this.confirming;
    this.confirming = null;
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
    for (const sec of this.note.sections || []) for (const s of sec.sentences || []) if (needsResolution(s)) pending.push({ s, section: sec.name });
    const items = pending.map(({ s, section }) =>
      h(
        'li',
        { dataset: { sentenceId: s.sentence_id } },
        h('span', { class: `chip ${verdictOf(s) === 'contradicted' ? 'chip-danger' : 'chip-warn'}`, text: verdictOf(s) === 'contradicted' ? 'Contradicted' : 'Not mentioned' }),
        ' ',
        h('span', { class: 'label', text: `${section}: ` }),
        s.text,
        ' ',
        h('button', { type: 'button', class: 'btn btn-link', onclick: () => { dialog.close(); this.focusSentence(s.sentence_id, { play: false }); } }, 'Review'),
      ),
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
          ? [h('p', { class: 'pending-note', text: `${pending.length} flagged sentence${pending.length === 1 ? ' is' : 's are'} unresolved. The ledger refuses a sign-off until each is edited or confirmed with a reason.` }), h('ul', { class: 'pending-list' }, items)]
          : h('p', { text: 'No flagged sentence is left unresolved.' }),
        h('label', { for: 'sign-statement', text: 'Statement' }),
        statement,
        error,
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', value: 'sign' }, 'Sign note'), h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, 'Cancel')),
      ),
    );
    dialog.addEventListener('close', () => dialog.remove());
    dialog.querySelector('form').addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const r = await api.sign(this.id, { note_hash: this.note.note_hash, statement: statement.value.trim() });
        dialog.close();
        this.#applyNote(r.note);
        this.app.toast(`Signed. Sign-off recorded as entry #${int((r.receipt?.leaf_indexes || []).at(-1))}.`);
      } catch (err) {
        // The server's refusal, as it gave it: the count and the sentences.
        showError(error, `Not signed: ${err.message.replace(/^encounter: failed precondition: /, '')}`);
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
  focusSentence(id, { play = true } = {}) {
    const x = this.sentences.get(id);
    if (!x) return false;
    this.#showTab('note');
    this.activate(id, { play });
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

/** verdictSummary is the note header's count of flagged sentences. */
function verdictSummary(flags) {
  const f = flags || { contradicted: 0, unmentioned: 0, unresolved: 0 };
  const el = h('p', {
    class: `verdict-summary${f.unresolved ? ' has-open' : ''}`,
    id: 'verdict-summary',
    dataset: { contradicted: String(f.contradicted), unmentioned: String(f.unmentioned), unresolved: String(f.unresolved) },
    'aria-live': 'polite',
  });
  if (!f.contradicted && !f.unmentioned) {
    el.append(h('span', { class: 'chip chip-ok', text: 'Every sentence checked against the visit' }));
    return el;
  }
  if (f.contradicted) el.append(h('span', { class: 'chip chip-danger', text: `${f.contradicted} contradicted` }), ' ');
  if (f.unmentioned) el.append(h('span', { class: 'chip chip-warn', text: `${f.unmentioned} not mentioned` }), ' ');
  el.append(h('span', { class: 'verdict-open', text: f.unresolved ? `${f.unresolved} to resolve before signing` : 'all resolved' }));
  return el;
}

/** markClaims renders a sentence's text with its contradicted claims or unsupported parts marked. */
function markClaims(el, s) {
  const v = verdictOf(s);
  const ranges = v === 'contradicted' ? (s.conflicts || []).map((c) => c.claim || {}) : v === 'unmentioned' ? s.unsupported_ranges || [] : [];
  const whole = ranges.length === 1 && (ranges[0].utf16_start | 0) === 0 && (ranges[0].utf16_end | 0) >= s.text.length;
  if (!ranges.length || whole) {
    el.textContent = s.text;
    return;
  }
  markText(el, s.text, ranges.map((r, i) => ({ start: r.utf16_start, end: r.utf16_end, rank: i + 1 })), v === 'contradicted' ? 'claim claim-conflict' : 'claim claim-unsupported');
}

function verdictSentence(s) {
  const v = verdictOf(s);
  const what = v === 'contradicted' ? 'Contradicted by the visit transcript' : 'Not mentioned in the visit transcript';
  return s.resolved ? `${what}; resolved.` : `${what}; needs resolving before signing.`;
}

function resolutionLabel(r) {
  if (!r) return 'Resolved';
  return r.action === 'RESOLUTION_ACTION_EDIT' ? 'Resolved by edit' : `Confirmed by ${r.actor}`;
}

function resolutionLine(r) {
  const verb = r.action === 'RESOLUTION_ACTION_EDIT' ? 'Edited' : 'Confirmed as written';
  return [h('strong', { text: `${verb} ` }), `by ${r.actor} · ${when(r.record_time)}`, r.reason ? ` · “${r.reason}”` : ''];
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
