package align_test

import (
	"fmt"

	"github.com/evidenceledger/evidence/align"
)

func Example() {
	segments := []align.Segment{
		{ID: "d1", Speaker: "clinician", StartMS: 0, EndMS: 2500, Text: "What brings you in today?"},
		{ID: "p1", Speaker: "patient", StartMS: 2600, EndMS: 7000, Text: "I've had diarrhoea for three days."},
		{ID: "d2", Speaker: "clinician", StartMS: 7100, EndMS: 8800, Text: "Any blood in your stool?"},
		{ID: "p2", Speaker: "patient", StartMS: 8900, EndMS: 9400, Text: "No."},
	}
	idx, err := align.NewIndex(segments)
	if err != nil {
		panic(err)
	}
	for _, text := range []string{"3/7 hx of diarrhoea.", "No blood in stool.", "Fractured femur."} {
		spans := idx.Align(align.Sentence{ID: "s", Text: text})
		fmt.Printf("%-22s", text)
		if len(spans) == 0 {
			fmt.Print(" unsupported")
		}
		for _, sp := range spans {
			fmt.Printf(" %s@%d-%dms", sp.SegmentID, sp.StartMS, sp.EndMS)
		}
		fmt.Println()
	}
	// Output:
	// 3/7 hx of diarrhoea.   p1@2600-7000ms
	// No blood in stool.     d2@7100-8800ms p2@8900-9400ms
	// Fractured femur.       unsupported
}
