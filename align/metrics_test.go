package align

import (
	"sort"
)

// A compact re-implementation of the alignscore metrics (hit@1, R@5, P, R, F1), used only to
// choose selection thresholds during training. Reported numbers come from alignscore itself.

type ival struct{ s, e float64 }

func unionIvals(ivs []ival) []ival {
	if len(ivs) == 0 {
		return nil
	}
	c := append([]ival(nil), ivs...)
	sort.Slice(c, func(i, j int) bool {
		if c[i].s != c[j].s {
			return c[i].s < c[j].s
		}
		return c[i].e < c[j].e
	})
	out := []ival{c[0]}
	for _, iv := range c[1:] {
		last := &out[len(out)-1]
		if iv.s <= last.e {
			last.e = max(last.e, iv.e)
			continue
		}
		out = append(out, iv)
	}
	return out
}

func mostlyInside(iv ival, u []ival) bool {
	if iv.e-iv.s <= 0 {
		for _, x := range u {
			if x.s <= iv.s && iv.s <= x.e {
				return true
			}
		}
		return false
	}
	t := 0.0
	for _, x := range u {
		lo, hi := max(iv.s, x.s), min(iv.e, x.e)
		if hi > lo {
			t += hi - lo
		}
	}
	return 2*t >= iv.e-iv.s
}

type sentMetrics struct {
	hit1, r5, p, r, f1 float64
	hasP               bool
}

// scoreSentence scores predicted intervals against gold; precision counts a prediction
// mostly inside goldAlt, the gold with its alternatives (alt_gold).
func scoreSentence(gold, goldAlt, pred []ival) sentMetrics {
	var m sentMetrics
	g := unionIvals(gold)
	ga := unionIvals(goldAlt)
	if len(pred) > 0 && mostlyInside(pred[0], g) {
		m.hit1 = 1
	}
	recall := func(ps []ival) float64 {
		u := unionIvals(ps)
		n := 0
		for _, gi := range gold {
			if len(u) > 0 && mostlyInside(gi, u) {
				n++
			}
		}
		return float64(n) / float64(len(gold))
	}
	m.r5 = recall(pred[:min(5, len(pred))])
	if len(pred) > 0 {
		m.hasP = true
		n := 0
		for _, p := range pred {
			if mostlyInside(p, ga) {
				n++
			}
		}
		m.p = float64(n) / float64(len(pred))
		m.r = recall(pred)
		if m.p+m.r > 0 {
			m.f1 = 2 * m.p * m.r / (m.p + m.r)
		}
	}
	return m
}

type aggMetrics struct {
	Hit1, R5, P, R, F1, Cov float64
	N                       int
}

func aggregate(ms []sentMetrics) aggMetrics {
	var a aggMetrics
	np := 0
	for _, m := range ms {
		a.Hit1 += m.hit1
		a.R5 += m.r5
		a.R += m.r
		a.F1 += m.f1
		if m.hasP {
			a.P += m.p
			np++
			a.Cov++
		}
	}
	n := float64(len(ms))
	a.N = len(ms)
	a.Hit1 /= n
	a.R5 /= n
	a.R /= n
	a.F1 /= n
	a.Cov /= n
	if np > 0 {
		a.P /= float64(np)
	}
	return a
}

func sortFloats(v []float64) { sort.Float64s(v) }
