// In-browser verification of a visit's entries against the log's latest
// signed checkpoint. Nothing here trusts the server's word: the page
// hashes each entry's leaf data itself (RFC 6962 leaf hash), decodes it
// (leaf.js) and compares it with what it shows, checks the inclusion proof
// against the root of a checkpoint whose Ed25519 signature it verified with
// the log's key, proves that checkpoints of different sizes are consistent,
// and walks the encounter's hash chain (seq and prev) across the entries it
// has.
//
// The trust anchor is the verifier key. The page takes it from the server
// and shows it, so it can be compared with the key evidenced prints at
// start; an auditor's offline tools pin it.

import { cryptoAvailable, fromBase64, leafHash, verifyConsistency, verifyInclusion, bytesEqual, toHex } from './merkle.js';
import { openCheckpoint, parseVerifierKey } from './checkpoint.js';
import { decodeLeaf, kindName, timestampNs } from './leaf.js';
import { int } from './api.js';
import { kindLabel } from './dom.js';

/** VerificationError is a failed check, phrased for the clinician. */
class VerificationError extends Error {}

/**
 * LogVerifier checks one encounter's entries. Its state is read with
 * summary() and result(index); onchange is called after every change.
 */
export class LogVerifier {
  constructor(api, encounterId) {
    this.api = api;
    this.encounterId = encounterId;
    this.onchange = () => {};
    this.results = new Map(); // index -> {state, error, leaf, kind}
    this.expect = new Map();
    this.checkpoints = new Map(); // size -> {root, signature}
    this.consistent = new Map(); // "a-b" -> Promise
    this.anchor = null;
    this.key = null;
    this.fatal = null;
    this.chain = { state: 'pending', links: 0, error: null };
    this.ready = null;
    this.checkedAt = null;
  }

  /** start fetches and verifies the latest checkpoint, then every entry of expectations. */
  start(expectations) {
    for (const [i, e] of expectations) this.expect.set(i, e);
    for (const i of expectations.keys()) this.results.set(i, { state: 'pending' });
    this.ready = this.#run([...expectations.keys()], true);
    return this.ready;
  }

  /**
   * add verifies new entries (after an edit or a sign-off) against a fresh
   * checkpoint, which must be consistent with the one checked before.
   */
  add(expectations) {
    const fresh = [];
    for (const [i, e] of expectations) {
      if (this.results.has(i) && this.results.get(i).state !== 'failed') continue;
      this.expect.set(i, e);
      this.results.set(i, { state: 'pending' });
      fresh.push(i);
    }
    if (fresh.length === 0) return this.ready;
    const prev = this.ready || Promise.resolve();
    this.ready = prev.then(() => this.#run(fresh, true));
    this.onchange();
    return this.ready;
  }

  async #run(indexes, refreshAnchor) {
    if (!cryptoAvailable()) {
      this.fatal = 'This page is not served from a secure origin (HTTPS or localhost), so the browser offers no cryptography to check proofs with.';
      this.onchange();
      return;
    }
    try {
      if (!this.key) {
        const info = await this.api.logInfo();
        this.key = await parseVerifierKey(info.verifier_key);
        this.origin = info.origin;
      }
      if (refreshAnchor) {
        const resp = await this.api.checkpoint();
        const cp = await this.#openCheckpoint(resp.checkpoint);
        if (this.anchor && cp.size !== this.anchor.size) await this.#consistent(this.anchor.size, cp.size);
        if (!this.anchor || cp.size >= this.anchor.size) this.anchor = cp;
      }
    } catch (err) {
      this.fatal = `The log's signed checkpoint could not be verified: ${describe(err)}`;
      for (const i of indexes) this.results.set(i, { state: 'failed', skipped: true, error: 'Not checked: the checkpoint could not be verified.' });
      this.onchange();
      return;
    }
    this.onchange();
    await pool(indexes, 6, (i) => this.#verifyEntry(i));
    await this.#checkChain();
    this.checkedAt = new Date();
    this.onchange();
  }

  async #openCheckpoint(sc) {
    if (!sc || !sc.note) throw new VerificationError('the server sent no signed checkpoint');
    const cp = await openCheckpoint(fromBase64(sc.note), this.key);
    // The JSON fields beside the note must say what the signed text says.
    if (int(sc.tree_size) !== cp.size || !bytesEqual(fromBase64(sc.root_hash || ''), cp.root)) {
      throw new VerificationError('the checkpoint fields differ from its signed text');
    }
    const known = this.checkpoints.get(cp.size);
    if (known && !bytesEqual(known.root, cp.root)) {
      throw new VerificationError(`two signed checkpoints of size ${cp.size} have different roots: the log forked`);
    }
    this.checkpoints.set(cp.size, cp);
    return cp;
  }

  // #consistent proves that the checkpoints of sizes a and b (both opened)
  // describe one append-only log.
  #consistent(a, b) {
    const [from, to] = a < b ? [a, b] : [b, a];
    const k = `${from}-${to}`;
    if (!this.consistent.has(k)) {
      this.consistent.set(
        k,
        (async () => {
          const r = await this.api.consistency(from, to);
          if (int(r.from_tree_size) !== from || int(r.to_tree_size) !== to) {
            throw new VerificationError(`the server proved sizes ${r.from_tree_size}..${r.to_tree_size}, not ${from}..${to}`);
          }
          await verifyConsistency(from, to, this.checkpoints.get(from).root, this.checkpoints.get(to).root, (r.hashes || []).map(fromBase64));
        })(),
      );
    }
    return this.consistent.get(k);
  }

  async #verifyEntry(index) {
    const exp = this.expect.get(index) || {};
    const what = `Entry #${index}${exp.kind ? ` (${kindLabel(exp.kind)})` : ''}`;
    try {
      const r = await this.api.entry(index);
      const entry = r.entry || {};
      const proof = r.proof;
      if (int(entry.leaf_index) !== index) throw new VerificationError(`the server sent entry #${entry.leaf_index} instead`);
      const data = fromBase64(entry.leaf_data || '');
      const leaf = decodeLeaf(data);
      const lh = await leafHash(data);
      if (!proof) throw new VerificationError('the server sent no inclusion proof');
      if (int(proof.leaf_index) !== index) throw new VerificationError('the inclusion proof is for another entry');
      if (proof.leaf_hash && !bytesEqual(fromBase64(proof.leaf_hash), lh)) {
        throw new VerificationError('the inclusion proof is for different leaf data');
      }
      const size = int(proof.tree_size);
      let cp = this.checkpoints.get(size);
      if (!cp) {
        // The log grew since the page's checkpoint: check the newer one
        // and that it extends ours.
        cp = await this.#openCheckpoint(r.checkpoint);
        if (cp.size !== size) throw new VerificationError('the inclusion proof is for a tree size no signed checkpoint covers');
      }
      if (this.anchor && cp.size !== this.anchor.size) await this.#consistent(this.anchor.size, cp.size);
      await verifyInclusion(index, size, lh, (proof.hashes || []).map(fromBase64), cp.root);
      checkExpectation(leaf, exp, this.encounterId);
      this.results.set(index, { state: 'ok', leaf, leafHash: lh, kind: leaf.kind, size });
    } catch (err) {
      this.results.set(index, { state: 'failed', error: `${what}: ${describe(err)}` });
    }
    this.onchange();
  }

  // #checkChain walks the encounter's chain across the entries held: each
  // entry's prev must be the leaf hash of the entry one before it.
  async #checkChain() {
    const bySeq = new Map();
    for (const [index, r] of this.results) {
      if (r.state !== 'ok') continue;
      const seq = r.leaf.seq;
      const other = bySeq.get(seq);
      if (other && other.index !== index) {
        this.chain = { state: 'failed', links: 0, error: `Entries #${other.index} and #${index} claim the same place (${seq}) in the visit's hash chain.` };
        return;
      }
      bySeq.set(seq, { index, ...r });
    }
    let links = 0;
    for (const [seq, r] of bySeq) {
      const before = bySeq.get(seq - 1n);
      if (!before) continue;
      if (before.index >= r.index) {
        this.chain = { state: 'failed', links, error: `Entry #${r.index} comes after #${before.index} in the visit's chain but before it in the log.` };
        return;
      }
      if (!bytesEqual(r.leaf.prev, before.leafHash)) {
        this.chain = { state: 'failed', links, error: `Entry #${r.index} does not link to entry #${before.index}: the visit's hash chain is broken.` };
        return;
      }
      links++;
    }
    this.chain = { state: 'ok', links, error: null };
  }

  result(index) {
    return this.results.get(index) || { state: 'unknown' };
  }

  /**
   * summary is the badge's state: "checking", "verified", "partial" (proofs
   * verified, signature not checkable here), "failed" or "unavailable".
   */
  summary() {
    const all = [...this.results.values()];
    const failed = all.filter((r) => r.state === 'failed');
    const pending = all.filter((r) => r.state === 'pending');
    const base = {
      total: all.length,
      ok: all.length - failed.length - pending.length,
      checkpoint: this.anchor,
      key: this.key && this.key.text,
      chainLinks: this.chain.links,
      checkedAt: this.checkedAt,
    };
    if (!cryptoAvailable()) return { ...base, state: 'unavailable', errors: [this.fatal] };
    const errors = [];
    if (this.fatal) errors.push(this.fatal);
    for (const r of failed) if (!r.skipped) errors.push(r.error);
    if (this.chain.state === 'failed') errors.push(this.chain.error);
    if (errors.length) return { ...base, state: 'failed', errors };
    if (pending.length || this.chain.state === 'pending') return { ...base, state: 'checking', errors };
    if (this.anchor && this.anchor.signature !== 'verified') return { ...base, state: 'partial', errors };
    return { ...base, state: 'verified', errors };
  }
}

function checkExpectation(leaf, exp, encounterId) {
  if (leaf.encounter !== encounterId) throw new VerificationError(`the log records it for another visit (${leaf.encounter})`);
  if (exp.kind && leaf.kind !== exp.kind) {
    throw new VerificationError(`the log records a ${kindLabel(leaf.kind)}, but the page shows a ${kindLabel(exp.kind)}`);
  }
  if (exp.actor && leaf.actor !== exp.actor) {
    throw new VerificationError(`the log records it by ${leaf.actor}, but the page shows ${exp.actor}`);
  }
  if (exp.timeNs !== undefined && exp.timeNs !== null && leaf.timeNs !== exp.timeNs) {
    throw new VerificationError('the log records a different time than the page shows');
  }
}

const KNOWN_ERRORS = new Set(['ProofError', 'CheckpointError', 'LeafError']);

// describe phrases an error as the end of a sentence.
function describe(err) {
  if (err instanceof VerificationError || KNOWN_ERRORS.has(err && err.name)) return `${err.message}.`;
  if (err && err.name === 'APIError') return `the server refused the request (${err.message}).`;
  if (err && err.name === 'TypeError') return 'the server could not be reached.';
  return `${String((err && err.message) || err)}.`;
}

async function pool(items, n, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}

/**
 * expectationsFor lists what the page shows of each entry of a visit: its
 * kind, and where shown, its actor and record time.
 */
export function expectationsFor(note, transcript) {
  const m = new Map();
  const put = (index, e) => {
    const i = Number(index);
    if (!Number.isSafeInteger(i) || i < 0) return;
    const known = Object.entries(e).filter(([, v]) => v !== undefined && v !== null && v !== '');
    m.set(i, { ...(m.get(i) || {}), ...Object.fromEntries(known) });
  };
  // 0 is the protobuf default of an unset index; leaf 0 is never a note's
  // model output or alignment (every visit opens with its own entry).
  const set = (index) => int(index) > 0;
  for (const a of transcript.audio || []) put(a.leaf_index, { kind: 'audio' });
  for (const g of transcript.segments || []) put(g.leaf_index, { kind: 'segment', timeNs: tsNs(g.record_time) });
  if (note) {
    if (set(note.model_output_index)) put(note.model_output_index, { kind: 'model_output' });
    for (const sec of note.sections || []) {
      for (const s of sec.sentences || []) {
        const p = s.provenance || {};
        for (const v of p.versions || []) put(v.leaf_index, { kind: kindName(v.kind), actor: v.actor, timeNs: tsNs(v.record_time) });
        if (set(p.alignment_index)) put(p.alignment_index, { kind: 'alignment' });
        for (const r of s.resolutions || []) put(r.leaf_index, { kind: 'resolution', actor: r.actor, timeNs: tsNs(r.record_time) });
      }
    }
    for (const so of note.signoffs || []) put(so.leaf_index, { kind: 'signoff', actor: so.actor, timeNs: tsNs(so.record_time) });
  }
  return m;
}

function tsNs(ts) {
  return ts ? timestampNs(ts) : null;
}

export { toHex };
