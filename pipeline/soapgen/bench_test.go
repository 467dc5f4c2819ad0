package soapgen

import "testing"

// BenchmarkGenerate measures one full consultation (testdata/consultation.txt,
// 45 segments, synthetic), the unit of work of one inference call.
func BenchmarkGenerate(b *testing.B) {
	segs := loadScript(b, "testdata/consultation.txt")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(segs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGeneratePrimock57 measures the real consultations when the
// shared data is present: one op is all 49 consultations.
func BenchmarkGeneratePrimock57(b *testing.B) {
	encs := loadPrimock(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range encs {
			if _, err := Generate(e.Segments, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
