// Package ledger is the append-only, verifiable log at the heart of Evidence
// Ledger.
//
// Every recorded fact (a transcript segment, a model output, a clinician
// edit, a sign-off, an access) is one leaf of one global Merkle tree hashed as
// RFC 6962 specifies: a leaf hash is SHA-256(0x00 || leaf data) and an
// interior node is SHA-256(0x01 || left || right). The leaf data is the small
// canonical encoding documented in docs/formats.md (see Leaf). It commits to
// the entry's payload with SHA-256(salt || payload) and links to the previous
// leaf of the same encounter, forming a hash chain per encounter.
//
// Payloads are stored apart from their leaves, so destroying a payload (or
// the key it was sealed with) leaves every proof valid.
//
// Tree hashes are stored as tiles of height 8, the layout of C2SP
// tlog-tiles, so that a proof costs O(log n) reads. After every group commit
// the log signs a C2SP tlog-checkpoint as a C2SP signed note with Ed25519;
// checkpoints verify with golang.org/x/mod/sumdb/note and parse with
// github.com/transparency-dev/formats/log. Inclusion and consistency proofs
// are plain RFC 6962 proofs that verify with
// github.com/transparency-dev/merkle/proof.
//
// Durability contract: Append MUST NOT return an index until the leaf, its
// payload, the tree nodes it adds and a signed checkpoint covering it have
// been written in one atomic, synced storage batch. Concurrent appends are
// group-committed: one batch and one sync serve many entries.
package ledger
