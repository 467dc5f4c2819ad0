package prompt_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evidenceledger/evidence/encounter"
	"github.com/evidenceledger/evidence/pipeline/prompt"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/replies")

// TestParseGolden parses every testdata/replies/*.txt and compares the
// note (or the error) with the .golden file beside it.
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/replies/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no replies: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			d, err := prompt.Parse(string(in))
			if err != nil {
				if !errors.Is(err, prompt.ErrNotNote) {
					t.Fatalf("error %v does not wrap ErrNotNote", err)
				}
				got = []byte("error: " + err.Error() + "\n")
			} else {
				got, _ = json.MarshalIndent(d, "", "  ")
				got = append(got, '\n')
			}
			golden := strings.TrimSuffix(f, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestSplitSentencesKeepsAbbreviations(t *testing.T) {
	d, err := prompt.Parse("Subjective: Seen by Dr. Lee on Monday. Takes e.g. paracetamol. Pain 7/10! Worse at night? Yes.")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range d.Sections[0].Sentences {
		got = append(got, s.ID+"="+s.Text)
	}
	want := []string{"S1=Seen by Dr. Lee on Monday.", "S2=Takes e.g. paracetamol.", "S3=Pain 7/10!", "S4=Worse at night?", "S5=Yes."}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestIDsAreStableAndUnique(t *testing.T) {
	reply := `{"Subjective":["a."],"Social history":["b.","c."],"Objective":["d."],"Plan":["e."],"Safety net":["f."]}`
	d1, err := prompt.Parse(reply)
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := prompt.Parse(reply)
	seen := map[string]bool{}
	var ids []string
	for i, sec := range d1.Sections {
		for j, s := range sec.Sentences {
			if seen[s.ID] {
				t.Errorf("id %s repeats", s.ID)
			}
			seen[s.ID] = true
			ids = append(ids, s.ID)
			if d2.Sections[i].Sentences[j].ID != s.ID {
				t.Errorf("ids differ between parses")
			}
		}
	}
	if got, want := strings.Join(ids, ","), "S1,S2-1,S2-2,O1,P1,S5-1"; got != want {
		t.Errorf("ids %s, want %s", got, want)
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("word ", prompt.MaxSentenceBytes/5+10)
	if _, err := prompt.Parse(`{"Plan":["` + long + `"]}`); !errors.Is(err, prompt.ErrNotNote) {
		t.Errorf("long sentence: %v", err)
	}
	many := make([]string, prompt.MaxSentences+1)
	for i := range many {
		many[i] = "x."
	}
	b, _ := json.Marshal(map[string][]string{"Plan": many})
	if _, err := prompt.Parse(string(b)); !errors.Is(err, prompt.ErrNotNote) {
		t.Errorf("too many sentences: %v", err)
	}
	if _, err := prompt.Parse(strings.Repeat("a", prompt.MaxReplyBytes+1)); !errors.Is(err, prompt.ErrNotNote) {
		t.Errorf("too long: %v", err)
	}
	if _, err := prompt.Parse("Plan: \xff\xfe"); !errors.Is(err, prompt.ErrNotNote) {
		t.Errorf("bad UTF-8: %v", err)
	}
}

// TestErrorsHoldNoReplyText checks that a rejected reply's text never
// reaches the error.
func TestErrorsHoldNoReplyText(t *testing.T) {
	for _, r := range []string{"secret-word-1 only prose", `{"sections": "secret-word-1"}`, `{"Plan": [42, "secret-word-1"]}`, "<think>secret-word-1"} {
		_, err := prompt.Parse(r)
		if err == nil {
			t.Fatalf("%q parsed", r)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q leaks reply text", err)
		}
	}
}

func TestBuild(t *testing.T) {
	system, user := prompt.Build([]encounter.Segment{
		{ID: "s1", Role: "clinician", StartMS: 61_500, Text: "Any chest\npain?"},
		{ID: "s2", Role: "patient", StartMS: 65_000, Text: "No."},
	})
	if system != prompt.System {
		t.Error("system message differs from System")
	}
	want := "Transcript of the consultation:\n[01:01] CLINICIAN: Any chest pain?\n[01:05] PATIENT: No.\n"
	if user != want {
		t.Errorf("user message %q, want %q", user, want)
	}
	if len(prompt.TemplateSHA256) != 64 {
		t.Errorf("TemplateSHA256 %q", prompt.TemplateSHA256)
	}
	if got := prompt.Text(nil); !strings.HasPrefix(got, prompt.System+"\n\n") {
		t.Errorf("Text does not start with the system message")
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// meets the ledger's limits, with unique ids.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/replies/*.txt")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, reply string) {
		d, err := prompt.Parse(reply)
		if err != nil {
			if !errors.Is(err, prompt.ErrNotNote) {
				t.Fatalf("error %v does not wrap ErrNotNote", err)
			}
			return
		}
		ids := map[string]bool{}
		total := 0
		for _, sec := range d.Sections {
			if sec.Name == "" || len(sec.Name) > prompt.MaxSectionNameBytes || len(sec.Sentences) == 0 {
				t.Fatalf("bad section %q with %d sentences", sec.Name, len(sec.Sentences))
			}
			for _, s := range sec.Sentences {
				if ids[s.ID] || s.ID == "" {
					t.Fatalf("id %q empty or repeated", s.ID)
				}
				ids[s.ID] = true
				if strings.TrimSpace(s.Text) == "" || len(s.Text) > prompt.MaxSentenceBytes {
					t.Fatalf("bad sentence of %d bytes", len(s.Text))
				}
				total++
			}
		}
		if total > prompt.MaxSentences {
			t.Fatalf("%d sentences", total)
		}
		again, err := prompt.Parse(reply)
		if err != nil {
			t.Fatal("second parse failed")
		}
		a, _ := json.Marshal(d)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatal("Parse is not deterministic")
		}
	})
}
