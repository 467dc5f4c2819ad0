package align

import (
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/evidenceledger/evidence/clinicaltext"
	"github.com/evidenceledger/evidence/termassoc"
)

// BM25 parameters (Robertson and Zaragoza's usual defaults).
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// Index holds one encounter's segments, analysed and inverted for repeated alignment.
// It is immutable after NewIndex and safe for concurrent use.
type Index struct {
	segs     []Segment
	info     []segInfo
	vocab    map[string]int32
	postings [][]posting // by term id
	idf      []float64   // by term id
	avgLen   float64
	model    *model
	segIndex map[string]int // segment id -> position
	// Speaker turns: runs of one speaker's segments, indexed like segments.
	turnPostings [][]posting // by term id; posting.seg is the turn number
	turnLen      []int
	avgTurnLen   float64
	scratch      sync.Pool  // *scratch
	tr           transcript // what each segment says, for the claim checker
	// Set by readRoles (roles.go) and for semantic bridges.
	nSpeakers int
	patient   []bool // by speaker: the label names the patient
	labelled  speakerRoles
	hasLabels bool
	maxIDF    float64
	assoc     func(dst []termassoc.Neighbour, term string) []termassoc.Neighbour
}

type posting struct {
	seg int32
	tf  float32
}

// segInfo is what alignment needs to know about one segment.
type segInfo struct {
	toks       []clinicaltext.Token // analysed tokens (content terms only)
	termIDs    []int32              // term id of each of toks
	length     int                  // number of content terms
	speaker    int32                // speaker number, by first appearance
	question   bool                 // the turn asks something
	shortTurn  bool                 // at most shortTurnTerms content terms
	negated    bool                 // the turn holds a negation cue
	replyTo    int32                // index of the question this turn answers, or -1
	spoken     bool                 // the turn has at least one word besides markup
	bareAnswer bool                 // the turn opens with an answer word (see isBareAnswer)
	turn       int32                // speaker turn number (see linkTurns)
	words      [][2]int             // byte range of each Word in Text, or nil
}

// shortTurnTerms is the most content terms a turn may have and still count as a short
// answer ("No.", "Yeah, about three days.").
const shortTurnTerms = 4

// bareAnswerTerms is the most content terms an answer may have and still need its question
// to make sense ("No.", "Nope, nothing like that.", "Yes, twice.").
const bareAnswerTerms = 2

// replyWindowMS is how soon after a question a reply must start to count as its answer.
const replyWindowMS = 5000

// NewIndex validates the segments of one encounter and builds an index over them.
// Segments should be in time order (as the batch format requires); neighbour and
// question-answer context follow the order given.
func NewIndex(segments []Segment) (*Index, error) {
	if err := validateSegments(segments); err != nil {
		return nil, err
	}
	x := &Index{
		segs:     segments,
		info:     make([]segInfo, len(segments)),
		vocab:    make(map[string]int32),
		model:    defaultModel,
		segIndex: make(map[string]int, len(segments)),
	}
	speakers := map[string]int32{}
	var df []int32
	analysed := make([][]clinicaltext.Token, len(segments))
	// Conversations repeat short turns ("Yeah.", "Okay."): analyse each distinct text once.
	// The token slices are shared read-only.
	type analysis struct{ raw, toks []clinicaltext.Token }
	seen := make(map[string]analysis)
	totalLen := 0
	for i, s := range segments {
		x.segIndex[s.ID] = i
		in := &x.info[i]
		in.replyTo = -1
		sp, ok := speakers[s.Speaker]
		if !ok {
			sp = int32(len(speakers))
			speakers[s.Speaker] = sp
		}
		in.speaker = sp
		counts := map[int32]int{}
		a, ok := seen[s.Text]
		if !ok {
			raw := clinicaltext.Tokenize(s.Text)
			a = analysis{raw, clinicaltext.AnalyzeTokens(s.Text, raw)}
			if len(s.Text) <= 64 {
				seen[s.Text] = a
			}
		}
		raw := a.raw
		analysed[i] = a.toks
		for _, t := range analysed[i] {
			if t.Flags&clinicaltext.Negation != 0 {
				in.negated = true
			}
			if t.Flags&clinicaltext.Question != 0 {
				in.question = true
			}
			if t.Flags&clinicaltext.Stop != 0 {
				continue
			}
			id, ok := x.vocab[t.Term]
			if !ok {
				id = int32(len(x.vocab))
				x.vocab[t.Term] = id
				x.postings = append(x.postings, nil)
				df = append(df, 0)
			}
			in.toks = append(in.toks, t)
			in.termIDs = append(in.termIDs, id)
			if t.Flags&clinicaltext.Expansion == 0 {
				in.length++
			}
			counts[id]++
		}
		if !in.question {
			in.question = startsLikeQuestion(raw)
		}
		in.spoken = len(raw) > 0
		in.bareAnswer = isBareAnswer(raw)
		in.shortTurn = in.length <= shortTurnTerms
		for id, c := range counts {
			x.postings[id] = append(x.postings[id], posting{seg: int32(i), tf: float32(c)})
			df[id]++
		}
		totalLen += in.length
		in.words = mapWords(s.Text, s.Words)
	}
	x.avgLen = math.Max(1, float64(totalLen)/float64(len(segments)))
	n := float64(len(segments))
	x.idf = make([]float64, len(df))
	for id, d := range df {
		x.idf[id] = math.Log(1 + (n-float64(d)+0.5)/(float64(d)+0.5))
	}
	// Postings were appended from a map; sort each by segment for determinism.
	for _, p := range x.postings {
		sortPostings(p)
	}
	x.linkReplies()
	x.linkTurns(len(df))
	x.buildTranscript(analysed)
	x.readRoles()
	nTurns := len(x.turnLen)
	x.scratch.New = func() any {
		sc := newScratch(len(segments))
		sc.turn = make([]float64, nTurns)
		return sc
	}
	return x, nil
}

func sortPostings(p []posting) {
	// Insertion order is already by segment because segments are visited in order;
	// this only guards the invariant.
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j-1].seg > p[j].seg; j-- {
			p[j-1], p[j] = p[j], p[j-1]
		}
	}
}

// linkReplies marks each turn that answers a question: the first turn by another speaker
// that starts within replyWindowMS of the question's end, looking at most three turns ahead.
func (x *Index) linkReplies() {
	for q := range x.info {
		if !x.info[q].question {
			continue
		}
		for a := q + 1; a < len(x.info) && a <= q+3; a++ {
			if x.info[a].speaker == x.info[q].speaker || !x.info[a].spoken {
				continue // same speaker, or a turn that is only <UNIN/> or similar
			}
			if x.segs[a].StartMS-x.segs[q].EndMS > replyWindowMS {
				break
			}
			x.info[a].replyTo = int32(q)
			break
		}
	}
}

// turnGapMS is the longest pause inside one speaker turn.
const turnGapMS = 3000

// linkTurns groups segments into speaker turns: a segment continues the turn of the same
// speaker's previous segment when it starts within turnGapMS of it and only short segments
// (at most shortTurnTerms content terms: backchannels) of others lie between. ASR and
// dialogue-act segmentation cut one turn into fragments; the turn is the better unit of
// meaning.
func (x *Index) linkTurns(nTerms int) {
	lastOf := map[int32]int{} // speaker -> index of their last segment
	turnOf := func(i int) int32 { return x.info[i].turn }
	interrupted := -1 // index of the last substantial segment
	counts := []map[int32]int{}
	for i := range x.info {
		in := &x.info[i]
		sp := in.speaker
		prev, ok := lastOf[sp]
		if ok && interrupted <= prev && x.segs[i].StartMS-x.segs[prev].EndMS <= turnGapMS {
			in.turn = turnOf(prev)
		} else {
			in.turn = int32(len(counts))
			counts = append(counts, map[int32]int{})
			x.turnLen = append(x.turnLen, 0)
		}
		for _, id := range in.termIDs {
			counts[in.turn][id]++
		}
		x.turnLen[in.turn] += in.length
		lastOf[sp] = i
		if in.length > shortTurnTerms {
			interrupted = i
		}
	}
	x.turnPostings = make([][]posting, nTerms)
	total := 0
	for t, c := range counts {
		ids := make([]int32, 0, len(c))
		for id := range c {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			x.turnPostings[id] = append(x.turnPostings[id], posting{seg: int32(t), tf: float32(c[id])})
		}
		total += x.turnLen[t]
	}
	x.avgTurnLen = math.Max(1, float64(total)/float64(max(1, len(counts))))
}

var questionStarts = map[string]bool{
	"any": true, "anything": true, "do": true, "does": true, "did": true, "have": true,
	"has": true, "had": true, "is": true, "are": true, "was": true, "were": true, "can": true,
	"could": true, "would": true, "will": true, "how": true, "what": true, "when": true,
	"where": true, "which": true, "who": true, "why": true, "shall": true, "should": true,
}

// startsLikeQuestion reports whether the turn's last clause (of its surface tokens) opens
// with a question word; ASR output often lacks the question mark.
func startsLikeQuestion(toks []clinicaltext.Token) bool {
	last := -1
	for i, t := range toks {
		if t.Flags&clinicaltext.ClauseStart != 0 {
			last = i
		}
	}
	if last < 0 {
		return false
	}
	for i := last; i < len(toks) && i < last+3; i++ {
		w := strings.ToLower(toks[i].Term)
		if questionStarts[w] {
			return true
		}
		if !fillers[w] {
			return false
		}
	}
	return false
}

var fillers = map[string]bool{"um": true, "uh": true, "so": true, "and": true, "okay": true, "ok": true, "erm": true, "er": true, "right": true, "and,": true}

// isBareAnswer reports whether a turn (its surface tokens) is a bare yes/no answer ("No.",
// "Yeah", "Nope").
func isBareAnswer(toks []clinicaltext.Token) bool {
	for _, t := range toks {
		switch strings.ToLower(t.Term) {
		case "yes", "yeah", "yep", "yup", "no", "nope", "nah", "never", "none", "nothing", "correct", "right", "mhm", "not", "definitely", "sometimes", "occasionally", "once", "twice":
			return true
		case "um", "uh", "erm", "oh", "well", "so", "mm", "hmm":
			continue // fillers before the answer word
		}
		return false
	}
	return false
}

// mapWords finds each word's byte range in text, in order. It returns nil when some word
// cannot be found, so callers fall back to segment times.
func mapWords(text string, words []Word) [][2]int {
	if len(words) == 0 {
		return nil
	}
	out := make([][2]int, len(words))
	cur := 0
	for i, w := range words {
		wt := strings.TrimSpace(w.Text)
		if wt == "" {
			return nil
		}
		k := strings.Index(text[cur:], wt)
		if k < 0 {
			return nil
		}
		out[i] = [2]int{cur + k, cur + k + len(wt)}
		cur += k + len(wt)
	}
	return out
}

// scratch is per-call working memory, pooled per Index.
type scratch struct {
	bm25, sec, prf, comb []float64 // scores of the sentence, section and feedback queries
	bridge               []float64 // score of the sentence's semantic bridges
	mask                 []uint64  // bit q set when query term q occurs in the segment
	mark                 []bool    // the segment is in touched
	touched              []int32
	turn                 []float64 // BM25 of speaker turns
	turnTouched          []int32
}

func newScratch(n int) *scratch {
	return &scratch{bm25: make([]float64, n), sec: make([]float64, n), prf: make([]float64, n),
		comb: make([]float64, n), bridge: make([]float64, n), mask: make([]uint64, n), mark: make([]bool, n)}
}

func (s *scratch) reset() {
	for _, i := range s.touched {
		s.bm25[i], s.sec[i], s.prf[i], s.comb[i], s.bridge[i], s.mask[i], s.mark[i] = 0, 0, 0, 0, 0, 0, false
	}
	s.touched = s.touched[:0]
	for _, t := range s.turnTouched {
		s.turn[t] = 0
	}
	s.turnTouched = s.turnTouched[:0]
}
