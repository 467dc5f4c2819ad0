package demo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline/prompt"
)

func mustLoad(t testing.TB) *Visit {
	t.Helper()
	v, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return v
}

func TestLoadEmbeddedVisit(t *testing.T) {
	v := mustLoad(t)
	if v.EncounterID != "day1_consultation01" {
		t.Errorf("EncounterID = %q, want day1_consultation01", v.EncounterID)
	}
	if v.Audio.Codec != "opus" || v.Audio.Container != "ogg" || v.Audio.SampleRateHz != 48000 || v.Audio.Channels != 1 {
		t.Errorf("Audio = %s/%s %d Hz %d ch, want opus/ogg 48000 Hz 1 ch",
			v.Audio.Codec, v.Audio.Container, v.Audio.SampleRateHz, v.Audio.Channels)
	}
	if n := len(v.Audio.Data); n == 0 || n >= 3<<20 {
		t.Errorf("audio is %d bytes, want 1 byte to 3 MiB", n)
	}
	count := map[string]int{}
	for _, s := range v.Segments {
		count[s.Role]++
		if strings.ContainsAny(s.Text, "<>") {
			t.Errorf("segment %s still has markup: %q", s.ID, s.Text)
		}
		if !strings.HasPrefix(s.ID, v.EncounterID+"-") {
			t.Errorf("segment %s does not belong to %s", s.ID, v.EncounterID)
		}
	}
	if count[encounter.RoleClinician] == 0 || count[encounter.RolePatient] == 0 {
		t.Errorf("segments per speaker = %v, want both clinician and patient", count)
	}
	if len(v.Note.Sentences) < 5 {
		t.Errorf("note has %d sentences, want several", len(v.Note.Sentences))
	}
	for _, want := range []string{"PriMock57", "CC BY 4.0", "creativecommons.org/licenses/by/4.0", "espeak-ng"} {
		if !strings.Contains(v.Attribution, want) {
			t.Errorf("Attribution does not mention %q", want)
		}
	}
}

func TestSegmentsSortedAndWithinAudio(t *testing.T) {
	v := mustLoad(t)
	ids := map[string]bool{}
	for i, s := range v.Segments {
		if s.StartMS < 0 || s.EndMS < s.StartMS || s.EndMS > v.Audio.DurationMS {
			t.Errorf("segment %s: [%d, %d] ms not within [0, %d]", s.ID, s.StartMS, s.EndMS, v.Audio.DurationMS)
		}
		if ids[s.ID] {
			t.Errorf("segment %s: duplicate id", s.ID)
		}
		ids[s.ID] = true
		if i > 0 && s.StartMS < v.Segments[i-1].StartMS {
			t.Errorf("segment %s starts at %d, before %s at %d", s.ID, s.StartMS, v.Segments[i-1].ID, v.Segments[i-1].StartMS)
		}
	}
	// The recording lasts as long as the transcript: its end is the last segment's end.
	var last int64
	for _, s := range v.Segments {
		last = max(last, s.EndMS)
	}
	if d := v.Audio.DurationMS - last; d < 0 || d > 1000 {
		t.Errorf("audio lasts %d ms, transcript ends at %d ms", v.Audio.DurationMS, last)
	}
}

func TestEdits(t *testing.T) {
	v := mustLoad(t)
	if len(v.Edits) != 3 {
		t.Fatalf("got %d edits, want 3", len(v.Edits))
	}
	for i, e := range v.Edits {
		switch e.Section {
		case Subjective, Objective, Assessment, Plan:
		default:
			t.Errorf("edit %d: section %q", i, e.Section)
		}
		switch {
		case e.Action == Replace && e.Match != "":
		case e.Action == Add && e.Match == "":
		default:
			t.Errorf("edit %d: action %q with match %q", i, e.Action, e.Match)
		}
	}
}

// oggPage is one page of an Ogg bitstream (RFC 3533, section 6).
type oggPage struct {
	headerType byte
	granule    int64
	serial     uint32
	sequence   uint32
	payload    []byte
}

// oggCRC is the Ogg page checksum: CRC-32 with polynomial 0x04c11db7, not
// reflected, initial value 0, no final XOR. hash/crc32 only does the reflected
// form, so this is the obviously-correct bitwise version.
func oggCRC(b []byte) uint32 {
	var crc uint32
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// readOggPages splits data into pages, checking each page's structure and CRC.
func readOggPages(data []byte) ([]oggPage, error) {
	var pages []oggPage
	for off := 0; off < len(data); {
		h := data[off:]
		if len(h) < 27 || string(h[:4]) != "OggS" {
			return nil, fmt.Errorf("offset %d: no Ogg page header", off)
		}
		if h[4] != 0 {
			return nil, fmt.Errorf("offset %d: stream structure version %d", off, h[4])
		}
		nseg := int(h[26])
		if len(h) < 27+nseg {
			return nil, fmt.Errorf("offset %d: truncated segment table", off)
		}
		size := 27 + nseg
		for _, lace := range h[27 : 27+nseg] {
			size += int(lace)
		}
		if len(h) < size {
			return nil, fmt.Errorf("offset %d: truncated page", off)
		}
		page := append([]byte(nil), h[:size]...)
		want := binary.LittleEndian.Uint32(page[22:26])
		clear(page[22:26])
		if got := oggCRC(page); got != want {
			return nil, fmt.Errorf("offset %d: CRC %08x, header says %08x", off, got, want)
		}
		pages = append(pages, oggPage{
			headerType: h[5],
			granule:    int64(binary.LittleEndian.Uint64(h[6:14])),
			serial:     binary.LittleEndian.Uint32(h[14:18]),
			sequence:   binary.LittleEndian.Uint32(h[18:22]),
			payload:    h[27+nseg : size],
		})
		off += size
	}
	return pages, nil
}

// opusHead is the Opus identification header (RFC 7845, section 5.1).
type opusHead struct {
	version      byte
	channels     byte
	preSkip      uint16
	inputRateHz  uint32
	outputGainQ8 int16
	mapping      byte
}

func parseOpusHead(p []byte) (opusHead, error) {
	if len(p) < 19 || string(p[:8]) != "OpusHead" {
		return opusHead{}, errors.New(`packet is not an "OpusHead" identification header`)
	}
	return opusHead{
		version:      p[8],
		channels:     p[9],
		preSkip:      binary.LittleEndian.Uint16(p[10:12]),
		inputRateHz:  binary.LittleEndian.Uint32(p[12:16]),
		outputGainQ8: int16(binary.LittleEndian.Uint16(p[16:18])),
		mapping:      p[18],
	}, nil
}

func TestAudioIsValidOggOpus(t *testing.T) {
	v := mustLoad(t)
	pages, err := readOggPages(v.Audio.Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) < 3 {
		t.Fatalf("%d Ogg pages, want headers and audio", len(pages))
	}

	// First page: beginning of stream, granule 0, exactly the 19-byte OpusHead.
	first := pages[0]
	if first.headerType != 0x02 || first.granule != 0 || len(first.payload) != 19 {
		t.Errorf("first page: header type %#x, granule %d, %d bytes; want BOS only, 0, 19",
			first.headerType, first.granule, len(first.payload))
	}
	head, err := parseOpusHead(first.payload)
	if err != nil {
		t.Fatal(err)
	}
	if head.version != 1 || head.mapping != 0 || head.outputGainQ8 != 0 {
		t.Errorf("OpusHead version %d, mapping family %d, gain %d; want 1, 0, 0", head.version, head.mapping, head.outputGainQ8)
	}
	if int(head.channels) != v.Audio.Channels || head.channels != 1 {
		t.Errorf("OpusHead channels = %d, metadata says %d, want 1", head.channels, v.Audio.Channels)
	}
	if int(head.inputRateHz) != v.Audio.SampleRateHz || head.inputRateHz != 48000 {
		t.Errorf("OpusHead input sample rate = %d Hz, metadata says %d, want 48000", head.inputRateHz, v.Audio.SampleRateHz)
	}
	if !strings.HasPrefix(string(pages[1].payload), "OpusTags") {
		t.Errorf("second page does not start with the OpusTags comment header")
	}

	// One logical stream, pages in sequence, ending with an end-of-stream page.
	for i, p := range pages {
		if p.serial != first.serial || p.sequence != uint32(i) {
			t.Fatalf("page %d: serial %d sequence %d, want serial %d sequence %d", i, p.serial, p.sequence, first.serial, i)
		}
		if i > 0 && p.headerType&0x02 != 0 {
			t.Errorf("page %d: beginning-of-stream flag after the first page", i)
		}
	}
	last := pages[len(pages)-1]
	if last.headerType&0x04 == 0 {
		t.Errorf("last page lacks the end-of-stream flag")
	}

	// The final granule position counts 48 kHz samples including the pre-skip
	// (RFC 7845, section 4), so it gives the playable duration exactly; opusenc
	// keeps the input's length, so only rounding to whole milliseconds remains.
	durationMS := (last.granule - int64(head.preSkip)) * 1000 / 48000
	if d := durationMS - v.Audio.DurationMS; d < -20 || d > 20 {
		t.Errorf("Ogg stream lasts %d ms, metadata says %d ms", durationMS, v.Audio.DurationMS)
	}
	t.Logf("Ogg/Opus: %d pages, %d ms, pre-skip %d, %d bytes", len(pages), durationMS, head.preSkip, len(v.Audio.Data))
}

func TestLoadReturnsIndependentCopies(t *testing.T) {
	a := mustLoad(t)
	a.Segments[0].Text = "changed"
	a.Edits[0].Text = "changed"
	a.Audio.Data[0] = 'X'
	b := mustLoad(t)
	if b.Segments[0].Text == "changed" || b.Edits[0].Text == "changed" || b.Audio.Data[0] != 'O' {
		t.Error("a change to one loaded Visit is visible in the next")
	}
}

func TestLoadConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := Load(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// validFS is a minimal valid visit that each rejection case breaks once.
func validFS() fstest.MapFS {
	return fstest.MapFS{
		SegmentsFile: {Data: []byte(`{"encounter_id":"e","title":"t",
			"audio":{"codec":"opus","container":"ogg","sample_rate_hz":48000,"channels":1,"duration_ms":5000},
			"segments":[
			  {"segment_id":"e-d1","speaker":"clinician","start_ms":0,"end_ms":1000,"text":"Hello."},
			  {"segment_id":"e-p1","speaker":"patient","start_ms":500,"end_ms":2000,"text":"Hi."}]}`)},
		AudioFile:       {Data: []byte("OggS\x00\x02rest")},
		NoteFile:        {Data: []byte(`{"presenting_complaint":"pc","sentences":[{"text":"3/7 hx."}]}`)},
		EditsFile:       {Data: []byte(`[{"section":"Plan","action":"replace","match":"review","text":"x.","reason":"y"},{"section":"Subjective","action":"add","text":"x.","reason":"y"}]`)},
		LLMReplyFile:    {Data: []byte(`{"sections":[{"name":"Plan","sentences":["Review in a week."]}]}`)},
		AttributionFile: {Data: []byte("# Attribution\n")},
	}
}

func TestLoadRejectsInvalidData(t *testing.T) {
	if _, err := load(validFS()); err != nil {
		t.Fatalf("valid visit rejected: %v", err)
	}
	edit := func(file, old, new string) func(fstest.MapFS) {
		return func(m fstest.MapFS) {
			s := string(m[file].Data)
			if !strings.Contains(s, old) {
				panic(fmt.Sprintf("%s does not contain %q", file, old))
			}
			m[file] = &fstest.MapFile{Data: []byte(strings.Replace(s, old, new, 1))}
		}
	}
	tests := []struct {
		name   string
		break_ func(fstest.MapFS)
		file   string
	}{
		{"unknown field", edit(SegmentsFile, `"title":"t"`, `"title":"t","extra":1`), SegmentsFile},
		{"trailing data", edit(SegmentsFile, `"text":"Hi."}]}`, `"text":"Hi."}]}{}`), SegmentsFile},
		{"not JSON", edit(NoteFile, `{`, `[`), NoteFile},
		{"no encounter id", edit(SegmentsFile, `"encounter_id":"e"`, `"encounter_id":""`), SegmentsFile},
		{"no audio metadata", edit(SegmentsFile, `"audio":{"codec":"opus","container":"ogg","sample_rate_hz":48000,"channels":1,"duration_ms":5000},`, ``), SegmentsFile},
		{"wrong codec", edit(SegmentsFile, `"codec":"opus"`, `"codec":"vorbis"`), SegmentsFile},
		{"wrong sample rate", edit(SegmentsFile, `"sample_rate_hz":48000`, `"sample_rate_hz":44100`), SegmentsFile},
		{"zero channels", edit(SegmentsFile, `"channels":1`, `"channels":0`), SegmentsFile},
		{"zero duration", edit(SegmentsFile, `"duration_ms":5000`, `"duration_ms":0`), SegmentsFile},
		{"negative start", edit(SegmentsFile, `"start_ms":0`, `"start_ms":-1`), SegmentsFile},
		{"missing start", edit(SegmentsFile, `"start_ms":0,`, ``), SegmentsFile},
		{"end before start", edit(SegmentsFile, `"end_ms":2000`, `"end_ms":400`), SegmentsFile},
		{"end after audio", edit(SegmentsFile, `"end_ms":2000`, `"end_ms":5001`), SegmentsFile},
		{"duplicate id", edit(SegmentsFile, `"e-p1"`, `"e-d1"`), SegmentsFile},
		{"unsorted", edit(SegmentsFile, `"start_ms":0,`, `"start_ms":600,`), SegmentsFile},
		{"same start, ids unsorted", func(m fstest.MapFS) {
			edit(SegmentsFile, `"start_ms":500`, `"start_ms":0`)(m)
			edit(SegmentsFile, `"e-p1"`, `"e-a1"`)(m)
		}, SegmentsFile},
		{"unknown speaker", edit(SegmentsFile, `"speaker":"patient"`, `"speaker":"nurse"`), SegmentsFile},
		{"empty text", edit(SegmentsFile, `"text":"Hi."`, `"text":" "`), SegmentsFile},
		{"no segments", edit(SegmentsFile, `"segments":[`, `"segments":[],"x":[`), SegmentsFile},
		{"empty audio", func(m fstest.MapFS) { m[AudioFile] = &fstest.MapFile{} }, AudioFile},
		{"not Ogg", func(m fstest.MapFS) { m[AudioFile] = &fstest.MapFile{Data: []byte("RIFF....WAVE")} }, AudioFile},
		{"missing audio", func(m fstest.MapFS) { delete(m, AudioFile) }, AudioFile},
		{"empty sentence", edit(NoteFile, `"3/7 hx."`, `""`), NoteFile},
		{"no presenting complaint", edit(NoteFile, `"pc"`, `""`), NoteFile},
		{"bad section", edit(EditsFile, `"section":"Plan"`, `"section":"History"`), EditsFile},
		{"bad action", edit(EditsFile, `"action":"add"`, `"action":"delete"`), EditsFile},
		{"replace without match", edit(EditsFile, `"match":"review",`, ``), EditsFile},
		{"add with match", edit(EditsFile, `"action":"add",`, `"action":"add","match":"x",`), EditsFile},
		{"no reason", edit(EditsFile, `"reason":"y"}]`, `"reason":""}]`), EditsFile},
		{"no edits", func(m fstest.MapFS) { m[EditsFile] = &fstest.MapFile{Data: []byte(`[]`)} }, EditsFile},
		{"empty attribution", func(m fstest.MapFS) { m[AttributionFile] = &fstest.MapFile{Data: []byte("\n")} }, AttributionFile},
		{"a reply that is no note", edit(LLMReplyFile, `"sentences":["Review in a week."]`, `"sentences":[]`), LLMReplyFile},
		{"missing reply", func(m fstest.MapFS) { delete(m, LLMReplyFile) }, LLMReplyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validFS()
			tt.break_(m)
			v, err := load(m)
			var de *DataError
			if !errors.As(err, &de) {
				t.Fatalf("load = %v, %v; want a *DataError", v, err)
			}
			if de.File != tt.file {
				t.Errorf("error names %s, want %s: %v", de.File, tt.file, err)
			}
			if tt.name == "missing audio" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v does not wrap fs.ErrNotExist", err)
			}
		})
	}
}

// FuzzLoadSegments checks that any segments.json either is rejected or yields
// segments that satisfy the documented invariants.
func FuzzLoadSegments(f *testing.F) {
	real, err := fs.ReadFile(visitFS, "visit/"+SegmentsFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(validFS()[SegmentsFile].Data)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := validFS()
		m[SegmentsFile] = &fstest.MapFile{Data: data}
		v, err := load(m)
		if err != nil {
			var de *DataError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DataError", err)
			}
			return
		}
		seen := map[string]bool{}
		for i, s := range v.Segments {
			if s.StartMS < 0 || s.EndMS < s.StartMS || s.EndMS > v.Audio.DurationMS || seen[s.ID] {
				t.Fatalf("accepted invalid segment %+v", s)
			}
			if i > 0 && s.StartMS < v.Segments[i-1].StartMS {
				t.Fatalf("accepted unsorted segment %+v", s)
			}
			seen[s.ID] = true
		}
	})
}

func ExampleLoad() {
	v, err := Load()
	if err != nil {
		fmt.Println(err)
		return
	}
	s := v.Segments[0]
	fmt.Printf("%s: %d segments, %d note sentences, %d edits\n", v.EncounterID, len(v.Segments), len(v.Note.Sentences), len(v.Edits))
	fmt.Printf("%s %d-%d ms: %s\n", s.Role, s.StartMS, s.EndMS, s.Text)
	fmt.Println(v.Note.Sentences[0].Text)
	// Output:
	// day1_consultation01: 102 segments, 22 note sentences, 3 edits
	// clinician 2533-12500 ms: Hello? Hi. Um, should we start? Yeah, okay. Hello how um. Good morning sir, how can I help you this morning?
	// 3/7 hx of diarrhea, mainly watery.
}

// The second draft takes the OpenAI-compatible backend's path from the
// fixture server, and says what it is.
func TestLLMDraftThroughOpenAIBackend(t *testing.T) {
	v, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	d, err := draftWithLLM(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	if d.Model.Name != LLMModel || d.Model.Version != LLMFingerprint || d.Parameters["source"] != LLMSource ||
		d.Parameters["stream"] != "true" || d.PromptSHA256 != prompt.TemplateSHA256 {
		t.Fatalf("draft identity %+v %v", d.Model, d.Parameters)
	}
	want, err := prompt.Parse(v.LLMReply)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Note, want) {
		t.Fatalf("the backend's note differs from the fixture's")
	}
	var texts []string
	for _, sec := range d.Note.Sections {
		for _, s := range sec.Sentences {
			texts = append(texts, s.Text)
		}
	}
	all := strings.Join(texts, "\n")
	for _, e := range []string{"right-sided lower abdominal pain", "No known drug allergies."} {
		if !strings.Contains(all, e) {
			t.Errorf("the fixture lacks its deliberate error %q", e)
		}
	}
}
