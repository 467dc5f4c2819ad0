package clinicaltext

import (
	_ "embed"
	"fmt"
	"strings"
)

// Category says what kind of thing a term names. A term may have several.
type Category uint8

// Categories.
const (
	Drug      Category = 1 << iota // a medicine, a drug class or a medical device taken as one (inhaler)
	Condition                      // a disease, disorder, injury or diagnosis
	Symptom                        // a symptom or sign
	Body                           // a body part, organ, tissue or body substance
	Relative                       // a relative or another person close to the patient
	Procedure                      // a test, scan, operation or referral
	Habit                          // smoking, alcohol, recreational drugs
)

//go:embed wordnet.tsv
var wordnetTSV string

//go:embed concepts.tsv
var conceptsTSV string

// concepts holds the parsed concept tables, keyed by stemmed term ("heart attack" as
// "heart attack" of stems).
type concepts struct {
	cat      map[string]Category
	classes  map[string][]string // drug -> its classes and other names, stemmed
	group    map[string]string   // stemmed word or phrase -> group name
	value    map[string]string   // stemmed word or phrase -> the value it names in its group
	maxWords int                 // longest key, in words
}

var conc = mustParseConcepts()

func mustParseConcepts() *concepts {
	c := &concepts{cat: map[string]Category{}, classes: map[string][]string{}, group: map[string]string{}, value: map[string]string{}}
	if err := c.parse("wordnet.tsv", wordnetTSV); err != nil {
		panic("clinicaltext: " + err.Error())
	}
	if err := c.parse("concepts.tsv", conceptsTSV); err != nil {
		panic("clinicaltext: " + err.Error())
	}
	return c
}

var categoryNames = map[string]Category{"drug": Drug, "condition": Condition, "symptom": Symptom,
	"body": Body, "relative": Relative, "procedure": Procedure, "habit": Habit, "none": 0}

// stemPhrase stems each word of a phrase (words joined by spaces, "_" or "-") and joins the
// stems with single spaces, as phrase keys are stored.
func stemPhrase(p string) string {
	f := strings.FieldsFunc(strings.ToLower(p), func(r rune) bool { return r == ' ' || r == '_' })
	for i, w := range f {
		f[i] = Stem(w)
	}
	return strings.Join(f, " ")
}

func (c *concepts) parse(name, src string) error {
	hand := name == "concepts.tsv" // hand-written entries override derived ones
	overridden := map[string]bool{}
	for n, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s", name, n+1, why) }
		if len(f) < 2 {
			return bad("want at least 2 tab-separated fields")
		}
		switch {
		case len(f) == 2: // wordnet.tsv: lemma category
			k, ok := categoryNames[f[1]]
			if !ok {
				return bad("unknown category " + f[1])
			}
			c.addCat(stemPhrase(f[0]), k)
		case f[0] == "cat" && len(f) == 3:
			k, ok := categoryNames[f[2]]
			if !ok {
				return bad("unknown category " + f[2])
			}
			key := stemPhrase(f[1])
			if hand && !overridden[key] {
				c.cat[key] = 0 // the hand-written categories replace WordNet's
				overridden[key] = true
			}
			c.addCat(key, k)
			if raw := strings.ToLower(f[1]); raw != key && !strings.ContainsAny(raw, " _") {
				c.addCat(raw, k) // abbreviations are analysed unstemmed ("IBS" is "ibs")
			}
		case (f[0] == "isa" || f[0] == "same") && len(f) == 3:
			c.addClass(stemPhrase(f[1]), stemPhrase(f[2]))
			if f[0] == "same" {
				c.addClass(stemPhrase(f[2]), stemPhrase(f[1]))
				c.addCat(stemPhrase(f[1]), Drug)
			}
		case len(f) == 3 && f[1] == "isa": // wordnet.tsv: lemma isa class
			c.addClass(stemPhrase(f[0]), stemPhrase(f[2]))
		case f[0] == "group" && len(f) >= 4:
			for _, val := range f[2:] {
				syns := strings.Split(val, "|")
				canon := stemPhrase(syns[0])
				for _, w := range syns {
					key := stemPhrase(w)
					if g, dup := c.group[key]; dup && (g != f[1] || c.value[key] != canon) {
						return bad(fmt.Sprintf("%q is in groups %s and %s", w, g, f[1]))
					}
					c.group[key], c.value[key] = f[1], canon
					c.maxWords = max(c.maxWords, strings.Count(key, " ")+1)
				}
			}
		default:
			return bad("unknown entry " + f[0])
		}
	}
	return nil
}

func (c *concepts) addCat(key string, k Category) {
	if key == "" {
		return
	}
	c.cat[key] |= k
	c.maxWords = max(c.maxWords, strings.Count(key, " ")+1)
}

func (c *concepts) addClass(term, class string) {
	if term == "" || class == "" || term == class {
		return
	}
	for _, x := range c.classes[term] {
		if x == class {
			return
		}
	}
	c.classes[term] = append(c.classes[term], class)
}

// CategoryOf returns the categories of an analysed term (a stem, as Analyze returns it) or
// of a phrase of such terms joined by single spaces ("heart attack" as "heart attack").
func CategoryOf(term string) Category { return conc.cat[term] }

// DrugClasses returns the classes and other names of a drug given as an analysed term:
// for "amoxicillin", "penicillin", "antibiot" and more; for "nurofen", "ibuprofen".
// The slice must not be modified.
func DrugClasses(term string) []string { return conc.classes[term] }

// GroupOf returns the attribute group of an analysed term or phrase ("dry" and "product" are
// values of the group "cough"; "left" and "right" of "side"), or "" when it has none. Two
// different values of one group describe the same thing in incompatible ways.
func GroupOf(term string) string { return conc.group[term] }

// ValueOf returns the value an analysed term or phrase names within its group: synonyms give
// the same value ("crampy" and "colicky"; "productive" and "phlegm"), or "" when it has none.
func ValueOf(term string) string { return conc.value[term] }

// MaxConceptWords is the number of words of the longest phrase CategoryOf or GroupOf knows.
func MaxConceptWords() int { return conc.maxWords }

//go:embed wordrank.tsv
var wordRankTSV string

var wordRank = func() map[string]uint8 {
	m := make(map[string]uint8, 40000)
	for _, line := range strings.Split(wordRankTSV, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		w, r, ok := strings.Cut(line, "\t")
		n := 0
		for _, c := range r {
			n = n*10 + int(c-'0')
		}
		if !ok || n < 1 || n > 255 {
			panic("clinicaltext: wordrank.tsv: bad line " + line)
		}
		m[w] = uint8(n)
	}
	return m
}()

// WordRank says how common an analysed term is in general English: its frequency rank in
// thousands (1 for the 1,000 most frequent words, up to 60), or 0 when it is rarer than that
// or not an English word (most drug names, many clinical terms).
func WordRank(term string) int { return int(wordRank[term]) }

// drugSuffixes end many generic drug names (International Nonproprietary Name stems).
var drugSuffixes = []string{"cillin", "mycin", "cyclin", "floxacin", "azol", "prazol", "tidin", "pril",
	"sartan", "statin", "olol", "dipin", "triptan", "oxetin", "xetin", "zepam", "zolam", "codon",
	"morphon", "profen", "fenac", "coxib", "parin", "gliptin", "gliflozin", "glutid", "formin",
	"lukast", "terol", "solon", "tadol", "setron", "zosin", "tropium", "nazol", "vudin", "navir",
	"semid", "thiazid", "azepin", "ipramin", "triptylin", "peridon", "apin", "oxacin"}

// procedureSuffixes end names of tests, operations and the specialties and specialists a
// patient is referred to ("colonoscopy", "appendectomy", "angiogram", "cardiologist").
var procedureSuffixes = []string{"scopi", "ectomi", "otomi", "ostomi", "plasti", "gram", "graphi", "olog", "ologist", "therapi", "therapist"}

// LooksLikeProcedure reports whether an analysed term that no table names is probably a test,
// an operation or a specialty: at least seven letters, not among general English's 15,000
// most frequent words, ending like one.
func LooksLikeProcedure(term string) bool {
	if r := wordRank[term]; len(term) < 7 || conc.cat[term] != 0 || r != 0 && r <= 15 {
		return false
	}
	for _, s := range procedureSuffixes {
		if strings.HasSuffix(term, s) {
			return true
		}
	}
	return false
}

// LooksLikeDrug reports whether an analysed term that no table names is probably a drug: a
// word rarer than general English's 60,000 most frequent that ends like a generic drug name
// ("tapentadol", "dapagliflozin").
func LooksLikeDrug(term string) bool {
	if len(term) < 6 || wordRank[term] != 0 || conc.cat[term] != 0 {
		return false
	}
	for _, s := range drugSuffixes {
		if strings.HasSuffix(term, s) {
			return true
		}
	}
	return false
}
