// RFC 6962 Merkle tree hashing and the proof verification algorithms of
// RFC 9162 section 2.1.3.2 (inclusion) and 2.1.4.2 (consistency), on
// WebCrypto SHA-256. Pure functions over Uint8Array; no I/O.
//
// Tree sizes and indexes are JavaScript numbers (exact to 2^53), so the
// bit operations are written with division rather than 32-bit operators.

const subtle = globalThis.crypto && globalThis.crypto.subtle;

/** A ProofError says which check of a proof failed. */
export class ProofError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProofError';
  }
}

/** Whether this browser can hash: WebCrypto exists only in secure contexts. */
export function cryptoAvailable() {
  return Boolean(subtle);
}

export async function sha256(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const buf = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    buf.set(p, off);
    off += p.length;
  }
  return new Uint8Array(await subtle.digest('SHA-256', buf));
}

const LEAF_PREFIX = Uint8Array.of(0);
const NODE_PREFIX = Uint8Array.of(1);

/** leafHash is SHA-256(0x00 || data). */
export function leafHash(data) {
  return sha256(LEAF_PREFIX, data);
}

/** nodeHash is SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  return sha256(NODE_PREFIX, left, right);
}

export function bytesEqual(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

const odd = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2);

function isPowerOfTwo(n) {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}

function checkHashes(hashes, what) {
  for (const h of hashes) {
    if (!(h instanceof Uint8Array) || h.length !== 32) throw new ProofError(`${what} holds a hash that is not 32 bytes`);
  }
}

/**
 * rootFromInclusionProof computes the root that an inclusion proof leads to
 * (RFC 9162 section 2.1.3.2, steps 1 to 6), or throws a ProofError.
 */
export async function rootFromInclusionProof(index, size, leaf, path) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    throw new ProofError(`leaf index ${index} is outside a tree of size ${size}`);
  }
  checkHashes([leaf, ...path], 'the inclusion proof');
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) throw new ProofError('the inclusion proof is longer than the tree is deep');
    if (odd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError('the inclusion proof is shorter than the tree is deep');
  return r;
}

/** verifyInclusion throws a ProofError unless the proof leads to root. */
export async function verifyInclusion(index, size, leaf, path, root) {
  const got = await rootFromInclusionProof(index, size, leaf, path);
  if (!bytesEqual(got, root)) throw new ProofError('the inclusion proof does not lead to the signed root hash');
}

/**
 * verifyConsistency checks that the tree of size2 with root2 extends the
 * tree of size1 with root1 (RFC 9162 section 2.1.4.2), or throws a
 * ProofError.
 */
export async function verifyConsistency(size1, size2, root1, root2, path) {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size2 < size1) {
    throw new ProofError(`cannot prove that size ${size2} extends size ${size1}`);
  }
  checkHashes(path, 'the consistency proof');
  if (size1 === size2) {
    if (path.length !== 0) throw new ProofError('a consistency proof between equal sizes must be empty');
    if (!bytesEqual(root1, root2)) throw new ProofError('two signed checkpoints of the same size have different roots');
    return;
  }
  if (size1 === 0) {
    if (path.length !== 0) throw new ProofError('a consistency proof from the empty tree must be empty');
    return;
  }
  if (path.length === 0) throw new ProofError('the consistency proof is empty');
  let proof = path;
  // Step 2: when size1 is an exact power of two, its root is a node of the
  // larger tree, and the proof leaves it out.
  if (isPowerOfTwo(size1)) proof = [root1, ...path];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = proof[0];
  let sr = proof[0];
  for (const c of proof.slice(1)) {
    if (sn === 0) throw new ProofError('the consistency proof is too long');
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError('the consistency proof is too short');
  if (!bytesEqual(fr, root1)) throw new ProofError(`the consistency proof does not lead to the signed root of size ${size1}`);
  if (!bytesEqual(sr, root2)) throw new ProofError(`the consistency proof does not lead to the signed root of size ${size2}`);
}

export function fromBase64(s) {
  if (typeof s !== 'string') throw new TypeError('not base64');
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toBase64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
