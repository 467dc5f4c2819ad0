// Package devsplit defines the train / held-out split of the align-dev data set used to
// train and evaluate the alignment engine's reranker.
//
// The split is by AMI meeting series (the first six characters of the encounter id, e.g.
// "ES2002" for ES2002a-d), so that the four meetings of one team never fall on both sides:
// a series is held out when the 32-bit FNV-1a hash of its name is 0 modulo 5. On align-dev
// this holds out 5 of 30 series (20 meetings, 563 sentences) and trains on 25 series
// (97 meetings, 2,531 sentences).
package devsplit

import "hash/fnv"

// Series returns the meeting series of an encounter id.
func Series(encounterID string) string {
	if len(encounterID) >= 6 {
		return encounterID[:6]
	}
	return encounterID
}

// HeldOut reports whether an encounter belongs to the held-out part.
func HeldOut(encounterID string) bool {
	h := fnv.New32a()
	h.Write([]byte(Series(encounterID)))
	return h.Sum32()%5 == 0
}
