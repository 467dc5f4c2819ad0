// Strict decoding of ledger leaf data, format version 1 (docs/formats.md,
// "Leaf data"). The page decodes the bytes it hashed itself rather than
// trusting the server's decoded fields, so what it shows is what the log
// commits to.

export const KINDS = ['', 'encounter', 'audio', 'segment', 'model_output', 'alignment', 'edit', 'signoff', 'access', 'redaction', 'resolution'];

/** kindName maps a protojson EntryKind ("ENTRY_KIND_EDIT") to "edit". */
export function kindName(protoKind) {
  return String(protoKind || '').replace(/^ENTRY_KIND_/, '').toLowerCase();
}

export class LeafError extends Error {
  constructor(message) {
    super(message);
    this.name = 'LeafError';
  }
}

const ID_BYTE = /^[A-Za-z0-9._\-:@/+]+$/;
const MAX_LEAF = 341;

/**
 * decodeLeaf returns {kind, timeNs (BigInt), tenant, encounter, actor, seq
 * (BigInt), prev, commitment} or throws a LeafError.
 */
export function decodeLeaf(data) {
  if (!(data instanceof Uint8Array)) throw new LeafError('leaf data is not bytes');
  if (data.length > MAX_LEAF) throw new LeafError('leaf data is longer than 341 bytes');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  const need = (n) => {
    if (off + n > data.length) throw new LeafError('leaf data is truncated');
  };
  need(10);
  if (data[0] !== 1) throw new LeafError(`unknown leaf format version ${data[0]}`);
  const kindNum = data[1];
  if (kindNum < 1 || kindNum >= KINDS.length) throw new LeafError(`unknown entry kind ${kindNum}`);
  const timeNs = dv.getBigInt64(2);
  if (timeNs <= 0n) throw new LeafError('leaf time is not positive');
  off = 10;
  const id = (field, max) => {
    need(1);
    const n = data[off++];
    if (n < 1 || n > max) throw new LeafError(`leaf ${field} length ${n} is out of range`);
    need(n);
    const s = String.fromCharCode(...data.subarray(off, off + n));
    if (!ID_BYTE.test(s)) throw new LeafError(`leaf ${field} has a byte outside the identifier set`);
    off += n;
    return s;
  };
  const tenant = id('tenant', 64);
  const encounter = id('encounter', 64);
  const actor = id('actor', 128);
  need(72);
  const seq = dv.getBigUint64(off);
  const prev = data.slice(off + 8, off + 40);
  const commitment = data.slice(off + 40, off + 72);
  off += 72;
  if (off !== data.length) throw new LeafError('leaf data has trailing bytes');
  const prevZero = prev.every((b) => b === 0);
  if ((seq === 0n) !== prevZero) throw new LeafError('leaf chain link is inconsistent with its position');
  return { kind: KINDS[kindNum], timeNs, tenant, encounter, actor, seq, prev, commitment };
}

/** timestampNs parses an RFC 3339 timestamp (protojson) to Unix nanoseconds. */
export function timestampNs(ts) {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$/.exec(String(ts || ''));
  if (!m) return null;
  const secs = Date.parse(m[1] + 'Z') / 1000;
  if (!Number.isFinite(secs)) return null;
  return BigInt(secs) * 1000000000n + BigInt((m[2] || '').padEnd(9, '0') || '0');
}
