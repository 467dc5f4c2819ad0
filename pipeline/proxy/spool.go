package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The spool is the recorder's durable queue: every finished call is
// written to it (one write(2), no fsync) before the proxied response
// completes, and acknowledged once the ledger holds it. After a crash of
// the process, calls without an acknowledgement are recorded again at the
// next start. The file survives a process crash because the kernel holds
// the written bytes; it does not survive a power loss until the ledger's
// own fsync covers the call (see docs/pipeline.md, "Recording semantics").
//
// Layout: a directory of segment files named <number>.spool, each a
// sequence of frames:
//
//	length  uint32 big-endian, of kind and body
//	crc     uint32 big-endian, CRC-32C of kind and body
//	kind    byte: 3 a sealed call, 2 an acknowledgement, 1 a call in
//	        plaintext (written by earlier versions and by recorders
//	        without a Sealer; still read)
//	body    for a sealed call: 16-byte call id, tenant length (1 byte),
//	        tenant, then the call as JSON sealed with Sealer.SealRecord
//	        under the tenant's key, bound to the call id;
//	        for a call in plaintext: 16-byte call id, then the call as JSON;
//	        for an acknowledgement: the 16-byte call id
//
// A segment is read up to its first short or corrupt frame, which is the
// tail a crash tore. Segments are deleted oldest first, once every call in
// them is acknowledged and a newer segment is active.

const (
	frameCall       byte = 1
	frameAck        byte = 2
	frameSealedCall byte = 3

	// segmentBytes is the size past which a new segment is started.
	segmentBytes = 4 << 20
	// maxFrameBytes caps a frame, and so a spooled call.
	maxFrameBytes = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spooled is a call read back from the spool.
type spooled struct {
	seg    uint64
	id     [16]byte
	body   []byte // the call's JSON, or its sealed form
	tenant string // set for a sealed call
	sealed bool
}

type spool struct {
	dir string
	mu  struct {
		sync.Mutex
		f           *os.File
		active      uint64
		size        int64
		outstanding map[uint64]int // unacknowledged calls per segment
		err         error          // set once a write failed
	}
}

func segmentName(n uint64) string { return fmt.Sprintf("%016d.spool", n) }

// openSpool opens the spool in dir, creating it, and returns the calls
// that were never acknowledged, oldest first.
func openSpool(dir string) (*spool, []spooled, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var segs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".spool")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	s := &spool{dir: dir}
	s.mu.outstanding = map[uint64]int{}
	acked := map[[16]byte]bool{}
	var calls []spooled
	for _, n := range segs {
		frames, err := readSegment(filepath.Join(dir, segmentName(n)))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range frames {
			var id [16]byte
			copy(id[:], f.body)
			switch f.kind {
			case frameCall:
				calls = append(calls, spooled{seg: n, id: id, body: f.body[16:]})
			case frameSealedCall:
				t := int(f.body[16])
				calls = append(calls, spooled{seg: n, id: id, tenant: string(f.body[17 : 17+t]), body: f.body[17+t:], sealed: true})
			case frameAck:
				acked[id] = true
			}
		}
	}
	var pending []spooled
	for _, c := range calls {
		if !acked[c.id] {
			pending = append(pending, c)
			s.mu.outstanding[c.seg]++
		}
	}
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	for _, n := range segs {
		s.mu.outstanding[n] += 0 // track every segment, so that it is deleted in order
	}
	if err := s.rotateLocked(next); err != nil {
		return nil, nil, err
	}
	s.gcLocked()
	return s, pending, nil
}

type frame struct {
	kind byte
	body []byte
}

// readSegment reads a segment's frames up to the first torn one.
func readSegment(path string) ([]frame, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []frame
	for len(data) >= 9 {
		n := binary.BigEndian.Uint32(data)
		sum := binary.BigEndian.Uint32(data[4:])
		if n < 1 || n > maxFrameBytes || uint64(len(data)-8) < uint64(n) {
			break
		}
		body := data[8 : 8+n]
		if crc32.Checksum(body, castagnoli) != sum {
			break
		}
		kind := body[0]
		if (kind == frameCall && n < 17) || (kind == frameAck && n != 17) || (kind == frameSealedCall && (n < 18 || n < 18+uint32(body[17]))) ||
			(kind != frameCall && kind != frameAck && kind != frameSealedCall) {
			break
		}
		out = append(out, frame{kind: kind, body: body[1:]})
		data = data[8+n:]
	}
	return out, nil
}

// rotateLocked starts segment n.
func (s *spool) rotateLocked(n uint64) error {
	f, err := os.OpenFile(filepath.Join(s.dir, segmentName(n)), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if s.mu.f != nil {
		// The finished segment is synced so that its calls survive a power
		// loss too, whatever the ledger did.
		s.mu.f.Sync()
		s.mu.f.Close()
	}
	s.mu.f, s.mu.active, s.mu.size = f, n, 0
	s.mu.outstanding[n] += 0
	return nil
}

func (s *spool) writeLocked(kind byte, id [16]byte, body []byte) error {
	if s.mu.err != nil {
		return s.mu.err
	}
	n := 1 + 16 + len(body)
	if n > maxFrameBytes {
		return fmt.Errorf("proxy: spooled call of %d bytes exceeds %d", n, maxFrameBytes)
	}
	buf := make([]byte, 8, 8+n)
	buf = append(buf, kind)
	buf = append(buf, id[:]...)
	buf = append(buf, body...)
	binary.BigEndian.PutUint32(buf, uint32(n))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(buf[8:], castagnoli))
	if _, err := s.mu.f.Write(buf); err != nil {
		s.mu.err = fmt.Errorf("proxy: spool write: %w", err)
		return s.mu.err
	}
	s.mu.size += int64(len(buf))
	return nil
}

// add spools a call and returns its segment. kind is frameCall or
// frameSealedCall, and body the frame's body after the call id.
func (s *spool) add(kind byte, id [16]byte, body []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.size >= segmentBytes {
		if err := s.rotateLocked(s.mu.active + 1); err != nil {
			s.mu.err = err
			return 0, err
		}
	}
	if err := s.writeLocked(kind, id, body); err != nil {
		return 0, err
	}
	s.mu.outstanding[s.mu.active]++
	return s.mu.active, nil
}

// ack records that the call in segment seg is in the ledger.
func (s *spool) ack(seg uint64, id [16]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.writeLocked(frameAck, id, nil)
	s.mu.outstanding[seg]--
	s.gcLocked()
	return err
}

// gcLocked deletes the oldest segments while all their calls are
// acknowledged and they are not active.
func (s *spool) gcLocked() {
	for {
		oldest := uint64(0)
		for n := range s.mu.outstanding {
			if oldest == 0 || n < oldest {
				oldest = n
			}
		}
		if oldest == 0 || oldest == s.mu.active || s.mu.outstanding[oldest] > 0 {
			return
		}
		if err := os.Remove(filepath.Join(s.dir, segmentName(oldest))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return
		}
		delete(s.mu.outstanding, oldest)
	}
}

// pending returns how many spooled calls are not acknowledged.
func (s *spool) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.mu.outstanding {
		n += c
	}
	return n
}

// close syncs and closes the active segment.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.f == nil {
		return nil
	}
	err := s.mu.f.Sync()
	if cerr := s.mu.f.Close(); err == nil {
		err = cerr
	}
	s.mu.f = nil
	if s.mu.err == nil {
		s.mu.err = io.ErrClosedPipe
	}
	return err
}
