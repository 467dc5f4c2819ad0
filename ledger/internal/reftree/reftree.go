// Package reftree is a slow, obviously correct RFC 6962 Merkle tree used by
// tests to cross-check the ledger's tiled tree. It follows the recursive
// definitions of RFC 6962 section 2.1 literally: MTH, PATH and PROOF/SUBPROOF.
// Keep it simple rather than fast.
package reftree

import "crypto/sha256"

// Hash is a SHA-256 hash.
type Hash = [32]byte

// LeafHash is SHA-256(0x00 || data).
func LeafHash(data []byte) Hash {
	return sha256.Sum256(append([]byte{0}, data...))
}

func nodeHash(l, r Hash) Hash {
	b := append([]byte{1}, l[:]...)
	return sha256.Sum256(append(b, r[:]...))
}

// split returns k, the largest power of two smaller than n (n > 1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// Root returns MTH(D[0:n]) for the leaf hashes.
func Root(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := split(len(leaves))
	return nodeHash(Root(leaves[:k]), Root(leaves[k:]))
}

// InclusionProof returns PATH(m, D[0:n]).
func InclusionProof(m int, leaves []Hash) []Hash {
	n := len(leaves)
	if n <= 1 {
		return nil
	}
	k := split(n)
	if m < k {
		return append(InclusionProof(m, leaves[:k]), Root(leaves[k:]))
	}
	return append(InclusionProof(m-k, leaves[k:]), Root(leaves[:k]))
}

// ConsistencyProof returns PROOF(m, D[0:n]) for 0 < m <= n.
func ConsistencyProof(m int, leaves []Hash) []Hash {
	return subproof(m, leaves, true)
}

func subproof(m int, leaves []Hash, complete bool) []Hash {
	n := len(leaves)
	if m == n {
		if complete {
			return nil
		}
		return []Hash{Root(leaves)}
	}
	k := split(n)
	if m <= k {
		return append(subproof(m, leaves[:k], complete), Root(leaves[k:]))
	}
	return append(subproof(m-k, leaves[k:], false), Root(leaves[:k]))
}
