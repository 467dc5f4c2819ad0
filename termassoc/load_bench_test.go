package termassoc

import "testing"

// BenchmarkDecode measures loading the embedded table (done once, on first use).
func BenchmarkDecode(b *testing.B) {
	for b.Loop() {
		if _, err := decode(assocBin); err != nil {
			b.Fatal(err)
		}
	}
}
