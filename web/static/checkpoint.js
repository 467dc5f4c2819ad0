// C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 signatures,
// and C2SP tlog-checkpoint bodies (https://c2sp.org/tlog-checkpoint),
// verified with WebCrypto. The verifier key is in the standard
// "name+hash+base64(0x01 || public key)" form of golang.org/x/mod/sumdb/note.

import { bytesEqual, fromBase64, sha256 } from './merkle.js';

export class CheckpointError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CheckpointError';
  }
}

const ED25519 = 0x01;
const enc = new TextEncoder();

/** parseVerifierKey parses "name+hash+key" and checks the key hash. */
export async function parseVerifierKey(vkey) {
  // The key's base64 may itself hold "+": split at the first two only.
  const text = String(vkey);
  const i = text.indexOf('+');
  const j = text.indexOf('+', i + 1);
  if (i < 0 || j < 0) throw new CheckpointError('the verifier key is not in name+hash+key form');
  const [name, hashHex, keyB64] = [text.slice(0, i), text.slice(i + 1, j), text.slice(j + 1)];
  if (!name || /[\s+]/.test(name)) throw new CheckpointError('the verifier key has a bad name');
  if (!/^[0-9a-f]{8}$/.test(hashHex)) throw new CheckpointError('the verifier key has a bad key hash');
  let key;
  try {
    key = fromBase64(keyB64);
  } catch {
    throw new CheckpointError('the verifier key is not base64');
  }
  if (key.length !== 33 || key[0] !== ED25519) throw new CheckpointError('the verifier key is not an Ed25519 key');
  const hash = await keyHash(name, key);
  if (hexOf(hash) !== hashHex) throw new CheckpointError('the verifier key hash does not match its key');
  return { name, hash, publicKey: key.slice(1), text };
}

// keyHash is the first four bytes of SHA-256(name || "\n" || alg || key).
async function keyHash(name, algAndKey) {
  return (await sha256(enc.encode(name + '\n'), algAndKey)).slice(0, 4);
}

function hexOf(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** splitNote splits a signed note into its text and signature lines. */
export function splitNote(noteBytes) {
  const text = new TextDecoder('utf-8', { fatal: true }).decode(noteBytes);
  const i = text.lastIndexOf('\n\n');
  if (i < 0 || !text.endsWith('\n')) throw new CheckpointError('the checkpoint is not a signed note');
  const body = text.slice(0, i + 1);
  const sigs = [];
  for (const line of text.slice(i + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new CheckpointError('the checkpoint has a malformed signature line');
    sigs.push({ name: m[1], sig: fromBase64(m[2]) });
  }
  if (sigs.length === 0) throw new CheckpointError('the checkpoint has no signature');
  return { body, bodyBytes: enc.encode(body), sigs };
}

/** ed25519Supported reports whether WebCrypto can verify Ed25519 here. */
export async function ed25519Supported() {
  try {
    await crypto.subtle.importKey('raw', new Uint8Array(32), { name: 'Ed25519' }, false, ['verify']);
    return true;
  } catch {
    return false;
  }
}

/**
 * verifyNoteSignature checks the note's signature by key. It returns
 * "verified", or "unsupported" when this browser cannot verify Ed25519,
 * and throws a CheckpointError when the signature is missing or wrong.
 */
export async function verifyNoteSignature(note, key) {
  const sig = note.sigs.find((s) => s.name === key.name && s.sig.length === 68 && bytesEqual(s.sig.slice(0, 4), key.hash));
  if (!sig) throw new CheckpointError(`the checkpoint is not signed by ${key.name}`);
  let cryptoKey;
  try {
    cryptoKey = await crypto.subtle.importKey('raw', key.publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch {
    return 'unsupported';
  }
  const ok = await crypto.subtle.verify({ name: 'Ed25519' }, cryptoKey, sig.sig.slice(4), note.bodyBytes);
  if (!ok) throw new CheckpointError('the checkpoint signature is invalid');
  return 'verified';
}

/** parseCheckpoint parses a tlog-checkpoint body strictly. */
export function parseCheckpoint(body) {
  const lines = body.split('\n');
  // body ends with "\n", so the last element is "".
  if (lines.length < 4 || lines[lines.length - 1] !== '') throw new CheckpointError('the checkpoint body is malformed');
  const [origin, sizeText, rootText] = lines;
  if (!origin) throw new CheckpointError('the checkpoint has no origin');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new CheckpointError('the checkpoint tree size is malformed');
  }
  let root;
  try {
    root = fromBase64(rootText);
  } catch {
    throw new CheckpointError('the checkpoint root hash is not base64');
  }
  if (root.length !== 32) throw new CheckpointError('the checkpoint root hash is not 32 bytes');
  return { origin, size: Number(sizeText), root };
}

/**
 * openCheckpoint verifies a signed checkpoint with key and returns its
 * origin, size, root and signature status ("verified" or "unsupported").
 * It throws a CheckpointError on any failure, including an origin other
 * than the key's name.
 */
export async function openCheckpoint(noteBytes, key) {
  const note = splitNote(noteBytes);
  const signature = await verifyNoteSignature(note, key);
  const cp = parseCheckpoint(note.body);
  if (cp.origin !== key.name) throw new CheckpointError(`the checkpoint is for ${cp.origin}, not ${key.name}`);
  return { ...cp, signature, text: note.body };
}
