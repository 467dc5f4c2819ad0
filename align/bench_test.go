package align

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkAlign aligns real note sentences against a real transcript of about 1,000
// segments (an AMI meeting from align-dev) and reports sentences/s and the per-sentence
// 99th-percentile latency. It skips when the shared data is absent.
//
//	go test ./align -run '^$' -bench BenchmarkAlign -benchtime 5s -cpu 1
func BenchmarkAlign(b *testing.B) {
	segs, order := devSegments(b, devPath(b, "align-dev", "segments.jsonl"))
	sents := readJSONL[devSentence](b, devPath(b, "align-dev", "sentences.jsonl"))
	// The meeting closest to 1,000 segments, and all align-dev sentences as queries.
	enc := order[0]
	for _, e := range order {
		if abs(len(segs[e])-1000) < abs(len(segs[enc])-1000) {
			enc = e
		}
	}
	x, err := NewIndex(segs[enc])
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("encounter %s: %d segments; %d query sentences", enc, len(segs[enc]), len(sents))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		s := sents[i%len(sents)]
		t0 := time.Now()
		x.Align(Sentence{ID: s.SentenceID, Section: s.Section, Text: s.Text})
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sentences/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "sentences/cpu-s")
	}
}

// BenchmarkNewIndex measures building the index of a ~1,000-segment transcript.
func BenchmarkNewIndex(b *testing.B) {
	segs, order := devSegments(b, devPath(b, "align-dev", "segments.jsonl"))
	enc := order[0]
	for _, e := range order {
		if abs(len(segs[e])-1000) < abs(len(segs[enc])-1000) {
			enc = e
		}
	}
	for b.Loop() {
		if _, err := NewIndex(segs[enc]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAlignSynthetic runs without the shared data (as in CI): a synthetic transcript of
// 1,000 segments built from the test visit.
func BenchmarkAlignSynthetic(b *testing.B) {
	base := visit()
	var segs []Segment
	for r := 0; len(segs) < 1000; r++ {
		for _, s := range base {
			s.ID = s.ID + "-" + string(rune('a'+r%26)) + string(rune('a'+r/26))
			s.StartMS += int64(r) * 100000
			s.EndMS += int64(r) * 100000
			segs = append(segs, s)
		}
	}
	x, err := NewIndex(segs)
	if err != nil {
		b.Fatal(err)
	}
	q := []Sentence{{Text: "3/7 hx of diarrhoea, opening bowels x6/day."}, {Text: "No blood in stool."}, {Text: "PMH: asthma, uses inhaler."}}
	for i := 0; b.Loop(); i++ {
		x.Align(q[i%len(q)])
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// BenchmarkAlignNote aligns whole notes (AlignNote, the path of Align and batch.Run): the
// align-dev notes of all meetings, each against the same ~1,000-segment transcript, and
// reports sentences/s.
func BenchmarkAlignNote(b *testing.B) {
	segs, order := devSegments(b, devPath(b, "align-dev", "segments.jsonl"))
	sents := readJSONL[devSentence](b, devPath(b, "align-dev", "sentences.jsonl"))
	enc := order[0]
	for _, e := range order {
		if abs(len(segs[e])-1000) < abs(len(segs[enc])-1000) {
			enc = e
		}
	}
	x, err := NewIndex(segs[enc])
	if err != nil {
		b.Fatal(err)
	}
	var notes [][]Sentence
	byEnc := map[string]int{}
	for _, s := range sents {
		k, ok := byEnc[s.EncounterID]
		if !ok {
			k = len(notes)
			byEnc[s.EncounterID] = k
			notes = append(notes, nil)
		}
		notes[k] = append(notes[k], Sentence{ID: s.SentenceID, Section: s.Section, Text: s.Text})
	}
	n := 0
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		n += len(x.AlignNote(notes[i%len(notes)]))
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sentences/s")
	if cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "sentences/cpu-s")
	}
}

// BenchmarkCheckNote aligns and checks whole notes on a PriMock57-size transcript (the
// consultations of testdata/verify/primock57 with their originals and altered sentences),
// index built once per consultation outside the timer, and reports sentences/s.
func BenchmarkCheckNote(b *testing.B) {
	segs, _ := devSegments(b, "testdata/clinical/segments.jsonl")
	var notes [][]Sentence
	var idx []*Index
	byEnc := map[string]int{}
	for _, s := range readJSONL[devSentence](b, "testdata/verify/primock57/sentences.jsonl") {
		k, ok := byEnc[s.EncounterID]
		if !ok {
			x, err := NewIndex(segs[s.EncounterID])
			if err != nil {
				b.Fatal(err)
			}
			k = len(notes)
			byEnc[s.EncounterID] = k
			notes = append(notes, nil)
			idx = append(idx, x)
		}
		notes[k] = append(notes[k], Sentence{ID: s.SentenceID, Section: s.Section, Text: s.Text})
	}
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(notes)
		n += len(idx[k].CheckNote(notes[k]))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sentences/s")
}

// BenchmarkNewIndexPriMock builds the index (retrieval and the checker's reading of every
// segment) of each PriMock57 consultation.
func BenchmarkNewIndexPriMock(b *testing.B) {
	segs, order := devSegments(b, "testdata/clinical/segments.jsonl")
	var encs [][]Segment
	for _, e := range order {
		if strings.HasPrefix(e, "day") {
			encs = append(encs, segs[e])
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := NewIndex(encs[i%len(encs)]); err != nil {
			b.Fatal(err)
		}
	}
}
