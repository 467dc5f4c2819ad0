package align

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/clinicaltext"
)

func TestZZDebug(t *testing.T) {
	if os.Getenv("VDEBUG") == "" {
		t.Skip()
	}
	segs, _ := devSegments(t, "testdata/clinical/segments.jsonl")
	x, err := NewIndex(segs[os.Getenv("VENC")])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strings.Split(os.Getenv("VDEBUG"), "|") {
		toks := clinicaltext.Analyze(s)
		r := read(s, toks)
		spans := x.Align(Sentence{Text: s})
		ev := x.evidenceOf(spans)
		fmt.Printf("%q\n  evidence:", s)
		for k, v := range ev {
			fmt.Printf(" %s:%d", x.segs[k].ID, v)
		}
		fmt.Println()
		for _, f := range r.facts {
			c := x.checkFact(&f, ev)
			w := ""
			if c.st != stAbsent {
				g := x.tr.readings[c.where.seg].facts[c.where.fact]
				w = fmt.Sprintf("%s %q neg=%v oth=%v ask=%v", x.segs[c.where.seg].ID, g.term, g.neg, g.other, g.asked)
			}
			fmt.Printf("  %-14s cat=%07b grp=%-8s neg=%v oth=%v ask=%v exp=%v ph=%v w=%.2f st=%d %s\n", f.term, f.cat, f.group, f.neg, f.other, f.asked, f.expansion, f.phrase, claimWeight(&f), c.st, w)
		}
		for _, q := range r.quants {
			fmt.Printf("  Q %v\n", q)
		}
		a := x.analyse(Sentence{Text: s}, toks, spans)
		fmt.Printf("  feat %v p=%.3f\n", a.feat, defaultVerdictModel.prob(&a.feat))
		for _, c := range a.conflicts {
			fmt.Printf("  conflict %s %q vs %q\n", c.Kind, s[c.Claim.Start:c.Claim.End], c.Words)
		}
	}
}

func TestZZDump(t *testing.T) {
	if os.Getenv("VDUMP") == "" {
		t.Skip()
	}
	for _, e := range loadVerifyExamples(t, "train") {
		if os.Getenv("VDUMP") == "orig" && e.label.Class != "original" || os.Getenv("VDUMP") != "orig" && e.label.Class != os.Getenv("VDUMP") {
			continue
		}
		if e.label.Class == "original" && (e.label.Verdict != "supported" || e.label.Doubtful && os.Getenv("VDOUBT") == "") {
			continue
		}
		p := defaultVerdictModel.prob(&e.a.feat)
		var cs []string
		for _, c := range e.a.conflicts {
			cs = append(cs, fmt.Sprintf("[%s %q vs %q]", c.Kind, e.a.text[c.Claim.Start:c.Claim.End], c.Words))
		}
		var us []string
		for _, u := range e.a.unsupported {
			us = append(us, fmt.Sprintf("<%s %.2f>", u.f.term, u.weight))
		}
		fmt.Printf("%.2f %s %q %s %s\n", p, e.label.SentenceID, e.a.text, strings.Join(cs, " "), strings.Join(us, " "))
	}
}

func TestZZStats(t *testing.T) {
	if os.Getenv("VSTATS") == "" {
		t.Skip()
	}
	ex := loadVerifyExamples(t, "train")
	type cnt struct{ orig, alt int }
	by := map[string]*cnt{}
	var nOrig, nAlt int
	for _, e := range ex {
		isOrig := e.label.Class == "original"
		if isOrig && (e.label.Verdict != "supported" || e.label.Doubtful) {
			continue
		}
		if isOrig {
			nOrig++
		} else {
			nAlt++
		}
		seen := map[string]bool{}
		for _, c := range e.a.conflicts {
			seen[string(c.Kind)] = true
		}
		if e.a.feat[vFirmNegation] > 0 {
			seen["firmneg"] = true
		}
		if e.a.feat[vMaxAbsent] >= 0.6 {
			seen["absent>=0.6"] = true
		}
		if e.a.feat[vMaxAbsent] >= 0.8 {
			seen["absent>=0.8"] = true
		}
		if e.a.feat[vOutOfWindow] >= 0.5 {
			seen["outwin>=0.5"] = true
		}
		if e.a.feat[vAbsentQuantity] > 0 {
			seen["absentQ"] = true
		}
		for k := range seen {
			if by[k] == nil {
				by[k] = &cnt{}
			}
			if isOrig {
				by[k].orig++
			} else {
				by[k].alt++
			}
		}
	}
	for k, c := range by {
		fmt.Printf("%-20s orig %3d (%.3f)  alt %3d (%.3f)\n", k, c.orig, float64(c.orig)/float64(nOrig), c.alt, float64(c.alt)/float64(nAlt))
	}
}

func TestZZAgg(t *testing.T) {
	if os.Getenv("VAGG") == "" {
		t.Skip()
	}
	for _, split := range []string{"train", "test"} {
		var n, byConf, byLR int
		kinds := map[ConflictKind]int{}
		for _, e := range loadVerifyExamples(t, split) {
			if e.label.Class != "original" || e.label.Verdict != "supported" {
				continue
			}
			n++
			if len(e.a.conflicts) > 0 {
				byConf++
				for _, c := range e.a.conflicts {
					kinds[c.Kind]++
				}
			} else if defaultVerdictModel.prob(&e.a.feat) >= defaultVerdictModel.Threshold {
				byLR++
			}
		}
		fmt.Printf("%s: originals %d, flagged by conflicts %d (%.3f), by the model %d (%.3f) %v\n", split, n, byConf, float64(byConf)/float64(n), byLR, float64(byLR)/float64(n), kinds)
	}
}
