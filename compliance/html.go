package compliance

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"time"
)

//go:embed report.html.tmpl
var templates embed.FS

var reportTemplate = template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 UTC") },
	"clock": func(ms int64) string {
		return fmt.Sprintf("%d:%02d.%03d", ms/60000, ms/1000%60, ms%1000)
	},
	"score": func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
}).ParseFS(templates, "report.html.tmpl"))

// HTML renders the report as one self-contained, printable HTML page for
// people: the note sentence by sentence with origin, edits, evidence and
// audio times, the sign-offs, the access trail, and the ledger entries with
// their leaf hashes. The proofs are in the JSON report, which
// evidencectl verify-report checks.
func (r *Report) HTML() ([]byte, error) {
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
