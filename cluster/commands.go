package cluster

import (
	"encoding/binary"
	"errors"

	"github.com/evidenceledger/evidence/ledger"
)

// Raft commands: the data of every raft log entry the cluster proposes.
// docs/formats.md ("Raft commands") specifies them, and testdata/commands
// holds golden vectors (go test ./cluster -run TestCommandGolden -update
// rewrites them). Every node decodes them strictly; a command that does not
// decode is recorded at its index and applies nothing, alike on every node.
//
//	append   'P' count (4, BE), then count ledger proposals (ledger.ParseProposal)
//	write    'W' count (4, BE), then count ops: flags (1), key length (4, BE),
//	             key, value length (4, BE), value
//	purge    'U' prefix (the rest of the entry, not empty)
const (
	cmdAppend = 'P'
	cmdWrite  = 'W'
	cmdPurge  = 'U'
)

// Write op flags.
const (
	opDelete     = 1 << 0
	opCreateOnly = 1 << 1 // set only if the key is absent: first writer wins
	opFlags      = opDelete | opCreateOnly
)

var (
	errMalformedAppend = errors.New("cluster: malformed append command")
	errMalformedWrite  = errors.New("cluster: malformed write command")
	errMalformedPurge  = errors.New("cluster: malformed purge command")
)

// encodeAppend makes an append command of encoded proposals.
func encodeAppend(ps [][]byte) []byte {
	n := 5
	for _, p := range ps {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, cmdAppend)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = append(b, p...)
	}
	return b
}

// decodeAppend parses an append command after its type byte.
func decodeAppend(data []byte) ([]*ledger.Proposal, error) {
	if len(data) < 4 {
		return nil, errMalformedAppend
	}
	n := binary.BigEndian.Uint32(data)
	data = data[4:]
	if n == 0 || uint64(n) > uint64(len(data)) {
		return nil, errMalformedAppend
	}
	ps := make([]*ledger.Proposal, 0, n)
	for range n {
		p, rest, err := ledger.ParseProposal(data)
		if err != nil {
			return nil, err
		}
		ps, data = append(ps, p), rest
	}
	if len(data) != 0 {
		return nil, errMalformedAppend
	}
	return ps, nil
}

// encodeWrite makes a write command.
func encodeWrite(ops []ledger.WriteOp) []byte {
	n := 5
	for _, op := range ops {
		n += 9 + len(op.Key) + len(op.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, cmdWrite)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ops)))
	for _, op := range ops {
		var flags byte
		if op.Delete {
			flags |= opDelete
		}
		if op.CreateOnly {
			flags |= opCreateOnly
		}
		b = append(b, flags)
		b = binary.BigEndian.AppendUint32(b, uint32(len(op.Key)))
		b = append(b, op.Key...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(op.Value)))
		b = append(b, op.Value...)
	}
	return b
}

// decodeWrite parses a write command after its type byte. A key is never
// empty, a delete has no value, and a delete is never create-only.
func decodeWrite(data []byte) ([]ledger.WriteOp, error) {
	if len(data) < 4 {
		return nil, errMalformedWrite
	}
	n := binary.BigEndian.Uint32(data)
	data = data[4:]
	if uint64(n) > uint64(len(data))/9 {
		return nil, errMalformedWrite
	}
	ops := make([]ledger.WriteOp, n)
	for i := range ops {
		if len(data) < 5 {
			return nil, errMalformedWrite
		}
		flags := data[0]
		kl := binary.BigEndian.Uint32(data[1:])
		data = data[5:]
		if flags&^opFlags != 0 || flags == opDelete|opCreateOnly || kl == 0 || uint64(len(data)) < uint64(kl)+4 {
			return nil, errMalformedWrite
		}
		op := &ops[i]
		op.Delete, op.CreateOnly = flags&opDelete != 0, flags&opCreateOnly != 0
		op.Key = data[:kl:kl]
		vl := binary.BigEndian.Uint32(data[kl:])
		data = data[kl+4:]
		if uint64(len(data)) < uint64(vl) || (op.Delete && vl != 0) {
			return nil, errMalformedWrite
		}
		op.Value = data[:vl:vl]
		data = data[vl:]
	}
	if len(data) != 0 {
		return nil, errMalformedWrite
	}
	return ops, nil
}

// encodePurge makes a purge command.
func encodePurge(prefix []byte) []byte { return append([]byte{cmdPurge}, prefix...) }

// decodePurge parses a purge command after its type byte.
func decodePurge(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, errMalformedPurge
	}
	return data, nil
}
