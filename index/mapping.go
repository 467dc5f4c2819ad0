package index

import (
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/single"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/mapping"
	bleveindex "github.com/blevesearch/bleve_index_api"

	"github.com/evidenceledger/evidence/ledger"
)

// Field names. The text itself is indexed but not stored: hits read it
// back from the log, so the index never serves text the log does not hold.
// There is no tenant field: each tenant has its own index.
const (
	fieldEncounter  = "encounter"
	fieldKind       = "kind"
	fieldSpeaker    = "speaker"
	fieldFacet      = "facet" // kind "/" speaker, as a doc value: one visit for both facets
	fieldModel      = "model"
	fieldSentence   = "sentence_id"
	fieldSection    = "section" // stored only
	fieldSuperseded = "superseded"
	fieldTime       = "time"
	fieldText       = "text"
	fieldOrd        = "ord" // the document id again, as a doc value for sorting
	fieldID         = "_id"
)

// doc is one indexed document: a transcript segment, or one version of a
// note sentence (from a model output or an edit).
type doc struct {
	leaf       int64
	tenant     string
	encounter  string
	kind       ledger.Kind
	time       time.Time
	speaker    string // segments
	model      string // model outputs
	sentenceID string // sentences
	section    string // sentences
	superseded bool   // a sentence version no longer in the current note
	text       string
}

// docID returns the document id of a leaf's document: the leaf index in
// decimal, prefixed by a letter that encodes its number of digits ('a' + n),
// so that ids sort as their leaf indexes do ("d1234" < "e10000"). A note
// sentence appends "/" and its sentence id.
func docID(leaf int64, sentenceID string) string {
	s := strconv.FormatInt(leaf, 10)
	id := string(rune('a'+len(s))) + s
	if sentenceID != "" {
		id += "/" + sentenceID
	}
	return id
}

// parseDocID is the inverse of docID.
func parseDocID(id string) (leaf int64, sentenceID string, ok bool) {
	if len(id) < 2 {
		return 0, "", false
	}
	n := int(id[0]) - 'a'
	if n < 1 || n > 19 || len(id) < 1+n {
		return 0, "", false
	}
	leaf, err := strconv.ParseInt(id[1:1+n], 10, 64)
	if err != nil || leaf < 0 || docID(leaf, "") != id[:1+n] {
		return 0, "", false
	}
	rest := id[1+n:]
	if rest == "" {
		return leaf, "", true
	}
	if !strings.HasPrefix(rest, "/") || len(rest) == 1 {
		return 0, "", false
	}
	return leaf, rest[1:], true
}

func (d *doc) id() string { return docID(d.leaf, d.sentenceID) }

var (
	keywordAnalyzer  analysis.Analyzer = &analysis.DefaultAnalyzer{Tokenizer: single.NewSingleTokenTokenizer()}
	clinicalAnalyzer analysis.Analyzer = &analysis.DefaultAnalyzer{Tokenizer: clinicalTokenizer{}}
	timeAnalyzer     analysis.Analyzer = &analysis.DefaultAnalyzer{Tokenizer: timeTokenizer{}}
)

// Doc values (for facets and sorting) are stored one document per chunk
// and uncompressed: matches are spread over the index, and reading one
// value must not decode a chunk of a thousand.
const (
	filterOpts = bleveindex.IndexField | bleveindex.SkipFreqNorm
	facetOpts  = filterOpts | bleveindex.DocValues | bleveindex.SkipDVChunking | bleveindex.SkipDVCompression
	textOpts   = bleveindex.IndexField | bleveindex.IncludeTermVectors
)

// document builds the bleve document for d. Its fields match newMapping.
func (d *doc) document() *document.Document {
	bd := document.NewDocument(d.id())
	kw := func(name, value string, opts bleveindex.FieldIndexingOptions) {
		if value != "" {
			bd.AddField(document.NewTextFieldCustom(name, nil, []byte(value), opts, keywordAnalyzer))
		}
	}
	kw(fieldOrd, bd.ID(), facetOpts)
	kw(fieldEncounter, d.encounter, facetOpts)
	kw(fieldKind, d.kind.String(), filterOpts)
	kw(fieldSpeaker, d.speaker, filterOpts)
	kw(fieldFacet, d.kind.String()+"/"+d.speaker, facetOpts)
	kw(fieldModel, d.model, filterOpts)
	kw(fieldSentence, d.sentenceID, filterOpts)
	if d.section != "" {
		bd.AddField(document.NewTextFieldCustom(fieldSection, nil, []byte(d.section), bleveindex.StoreField, keywordAnalyzer))
	}
	if d.sentenceID != "" {
		bd.AddField(document.NewBooleanFieldWithIndexingOptions(fieldSuperseded, nil, d.superseded, bleveindex.IndexField|bleveindex.StoreField))
	}
	if !d.time.Before(minBucketTime) && d.time.Before(maxBucketTime) {
		bd.AddField(document.NewTextFieldCustom(fieldTime, nil, []byte(d.time.UTC().Format(timeLayout)), filterOpts, timeAnalyzer))
	}
	bd.AddField(document.NewTextFieldCustom(fieldText, nil, []byte(d.text), textOpts, clinicalAnalyzer))
	return bd
}

// newMapping is the index mapping stored with the index. Documents are
// built directly (doc.document), so the mapping records the schema for
// readers and for bleve's query machinery; it indexes nothing dynamically.
func newMapping() *mapping.IndexMappingImpl {
	kw := func(docValues bool) *mapping.FieldMapping {
		f := mapping.NewKeywordFieldMapping()
		f.Store, f.IncludeInAll, f.IncludeTermVectors, f.DocValues, f.SkipFreqNorm = false, false, false, docValues, true
		return f
	}
	dm := mapping.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt(fieldOrd, kw(true))
	dm.AddFieldMappingsAt(fieldEncounter, kw(true))
	dm.AddFieldMappingsAt(fieldKind, kw(false))
	dm.AddFieldMappingsAt(fieldSpeaker, kw(false))
	dm.AddFieldMappingsAt(fieldFacet, kw(true))
	dm.AddFieldMappingsAt(fieldModel, kw(false))
	dm.AddFieldMappingsAt(fieldSentence, kw(false))
	section := mapping.NewKeywordFieldMapping()
	section.Index, section.Store, section.IncludeInAll, section.DocValues = false, true, false, false
	dm.AddFieldMappingsAt(fieldSection, section)
	sup := mapping.NewBooleanFieldMapping()
	sup.Store, sup.IncludeInAll, sup.DocValues = true, false, false
	dm.AddFieldMappingsAt(fieldSuperseded, sup)
	dm.AddFieldMappingsAt(fieldTime, kw(false)) // time buckets (timebucket.go)
	text := mapping.NewTextFieldMapping()
	text.Analyzer, text.Store, text.IncludeInAll, text.IncludeTermVectors, text.DocValues = AnalyzerName, false, false, true, false
	dm.AddFieldMappingsAt(fieldText, text)

	im := mapping.NewIndexMapping()
	im.DefaultMapping = dm
	im.DefaultAnalyzer = keyword.Name
	im.DefaultField = fieldText
	im.StoreDynamic, im.IndexDynamic, im.DocValuesDynamic = false, false, false
	return im
}
