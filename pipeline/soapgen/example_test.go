package soapgen_test

import (
	"fmt"

	"github.com/evidenceledger/evidence/align"
	"github.com/evidenceledger/evidence/pipeline/soapgen"
)

func ExampleGenerate() {
	segments := []align.Segment{
		{ID: "d1", Speaker: "clinician", StartMS: 0, EndMS: 2000, Text: "Hello, how can I help you today?"},
		{ID: "p1", Speaker: "patient", StartMS: 2100, EndMS: 6000, Text: "I've had a sore throat for <UNSURE>three</UNSURE> days."},
		{ID: "d2", Speaker: "clinician", StartMS: 6100, EndMS: 7000, Text: "Any fever?"},
		{ID: "p2", Speaker: "patient", StartMS: 7100, EndMS: 7500, Text: "No."},
		{ID: "d3", Speaker: "clinician", StartMS: 7600, EndMS: 12000, Text: "I think it's a viral infection. Take paracetamol, two tablets four times a day."},
	}
	note, err := soapgen.Generate(segments, soapgen.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("model:", soapgen.ModelID)
	for _, s := range note.Sections {
		for _, sen := range s.Sentences {
			fmt.Printf("%s %s\n", sen.ID, sen.Text)
		}
	}
	// Output:
	// model: soapgen/1.0.0
	// S1 Presents with sore throat for 3 days.
	// S2 Denies fever.
	// O1 No examination findings recorded.
	// A1 Likely viral illness.
	// P1 Paracetamol 2 tablets 4 times a day.
}
