package ledger

import "encoding/binary"

// Storage key layout. Every key starts with a one-byte table prefix; the
// layout is documented in docs/formats.md and changing it needs a migration.
const (
	prefixLeaf       = 'l' // 'l' index(8)               -> leaf data
	prefixPayload    = 'p' // 'p' commitment(32)         -> salt(32) || sealed payload
	prefixTile       = 't' // 't' level(1) n(8)          -> tile record
	prefixCheckpoint = 'c' // 'c' size(8)                -> signed checkpoint note
	prefixEncounter  = 'e' // 'e' tenant 0 encounter 0 index(8) -> empty
	prefixHead       = 'h' // 'h' tenant 0 encounter     -> head record
	keyState         = "s" // the latest signed checkpoint, read at open
)

func leafKey(index int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLeaf}, uint64(index))
}

func payloadKey(commitment Hash) []byte {
	return append([]byte{prefixPayload}, commitment[:]...)
}

func tileKey(id tileID) []byte {
	b := []byte{prefixTile, byte(id.L)}
	return binary.BigEndian.AppendUint64(b, uint64(id.N))
}

func checkpointKey(size int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCheckpoint}, uint64(size))
}

// encounterName is the part of encounter keys that names one encounter.
// Identifiers never contain 0x00 (see CheckID), so the separators make the
// encoding unambiguous and keep one tenant's encounters contiguous.
func encounterName(prefix byte, tenant, encounter string) []byte {
	b := make([]byte, 0, 1+len(tenant)+1+len(encounter)+1+8)
	b = append(b, prefix)
	b = append(b, tenant...)
	b = append(b, 0)
	b = append(b, encounter...)
	return b
}

func encounterIndexKey(tenant, encounter string, index int64) []byte {
	b := append(encounterName(prefixEncounter, tenant, encounter), 0)
	return binary.BigEndian.AppendUint64(b, uint64(index))
}

func headKey(tenant, encounter string) []byte {
	return encounterName(prefixHead, tenant, encounter)
}
