package search

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/search/query"
)

// textField is a full-text field and how much a match in it counts.
type textField struct {
	name  string
	boost float64
}

// textFields are searched by Query.Text. A match in the name counts most:
// a consumer typing 户籍 wants 户籍登记信息 before an entry that mentions
// household registration somewhere in its abstract.
var textFields = []textField{
	{"name", 4},
	{"keywords", 2},
	{"items", 1.5},
	{"dept_name", 1.5},
	{"abstract", 1},
}

// queryPart is one piece of the query text every match must contain: a run
// of Chinese characters, or a Latin word or number.
type queryPart struct {
	cjk  []string // the characters of a Chinese run, one string each
	word string   // a lowercased Latin word or number
}

// splitQuery cuts text into parts with the same tokenizer, width folding and
// lowercasing the index uses, so a part always names terms the index holds.
// Adjacent Chinese characters stay together: 户籍登记 is one part.
func splitQuery(a analysis.Analyzer, text string) []queryPart {
	if utf8.RuneCountInString(text) > MaxQueryRunes {
		text = string([]rune(text)[:MaxQueryRunes])
	}
	var parts []queryPart
	lastEnd := -1
	for _, tok := range a.Analyze([]byte(text)) {
		if tok.Type != analysis.Ideographic {
			parts = append(parts, queryPart{word: string(tok.Term)})
			lastEnd = -1
			continue
		}
		var chars []string
		for _, r := range string(tok.Term) {
			chars = append(chars, string(r))
		}
		if n := len(parts); n > 0 && parts[n-1].cjk != nil && tok.Start == lastEnd {
			parts[n-1].cjk = append(parts[n-1].cjk, chars...)
		} else {
			parts = append(parts, queryPart{cjk: chars})
		}
		lastEnd = tok.End
	}
	return parts
}

// fieldQuery matches part in one field. The index holds every Chinese
// character and every pair of adjacent characters, so:
//   - one character is a term query on the unigram (户 finds 户籍 and 户外);
//   - two characters are a term query on the bigram (户籍 finds 户籍登记信息,
//     not 户外广告: 户 and 籍 both present but not adjacent is no match);
//   - longer runs need every adjacent pair in the same field (or the same
//     keyword, the same item name): 户籍登记 needs 户籍, 籍登 and 登记.
//     That is LIKE '%户籍登记%' in all but contrived texts (籍登 elsewhere in
//     the field), and the bench counts any difference; a phrase query
//     would make it exact but needs positions, which double the work of
//     these queries and grow the index.
//
// A Latin word of three or more letters matches as a prefix (soci → social),
// a shorter one exactly.
func fieldQuery(p queryPart, field string, boost float64) query.Query {
	var q interface {
		query.Query
		SetBoost(float64)
	}
	switch {
	case len(p.cjk) == 1 || len(p.cjk) == 2:
		t := bleve.NewTermQuery(strings.Join(p.cjk, ""))
		t.SetField(field)
		q = t
	case len(p.cjk) > 2:
		bigrams := make([]string, len(p.cjk)-1)
		for i := range bigrams {
			bigrams[i] = p.cjk[i] + p.cjk[i+1]
		}
		qs := make([]query.Query, len(bigrams))
		for i, bg := range bigrams {
			t := bleve.NewTermQuery(bg)
			t.SetField(field)
			qs[i] = t
		}
		q = bleve.NewConjunctionQuery(qs...)
	case utf8.RuneCountInString(p.word) >= 3:
		t := bleve.NewPrefixQuery(p.word)
		t.SetField(field)
		q = t
	default:
		t := bleve.NewTermQuery(p.word)
		t.SetField(field)
		q = t
	}
	q.SetBoost(boost)
	return q
}

// textQuery is the query for Query.Text: every part must match, each in any
// of the text fields. Text that reads like a resource or classification code
// also matches entries whose resource code starts with it. It returns nil
// when text holds nothing searchable.
func textQuery(a analysis.Analyzer, text string) query.Query {
	parts := splitQuery(a, text)
	if len(parts) == 0 {
		return nil
	}
	all := make([]query.Query, 0, len(parts))
	for _, p := range parts {
		anyField := make([]query.Query, 0, len(textFields))
		for _, f := range textFields {
			anyField = append(anyField, fieldQuery(p, f.name, f.boost))
		}
		all = append(all, bleve.NewDisjunctionQuery(anyField...))
	}
	var q query.Query = bleve.NewConjunctionQuery(all...)
	if code := strings.TrimSpace(text); looksLikeCode(code) {
		cq := bleve.NewPrefixQuery(code)
		cq.SetField("code")
		cq.SetBoost(8)
		q = bleve.NewDisjunctionQuery(q, cq)
	}
	return q
}

// looksLikeCode reports whether s could be (the start of) a resource code:
// at least three characters of digits, ASCII letters, '-' and '/', with a digit.
func looksLikeCode(s string) bool {
	if len(s) < 3 || len(s) > 64 {
		return false
	}
	digit := false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '/':
		default:
			return false
		}
	}
	return digit
}

// filterQueries are the exact-value filters of q. They carry no weight in
// the score: filtering by share type must not reorder the matches.
func filterQueries(q Query) []query.Query {
	var fs []query.Query
	term := func(name, value string) {
		if value == "" {
			return
		}
		t := bleve.NewTermQuery(facetKey(name) + value)
		t.SetField(facetsField)
		t.SetBoost(0)
		fs = append(fs, t)
	}
	if q.ClassPrefix != "" {
		p := bleve.NewPrefixQuery(q.ClassPrefix)
		p.SetField("class_code")
		p.SetBoost(0)
		fs = append(fs, p)
	}
	if q.DeptID != 0 {
		term(FacetDept, strconv.FormatInt(q.DeptID, 10))
	}
	term(FacetKind, q.Kind)
	term(FacetShareType, q.ShareType)
	term(FacetShareMethod, q.ShareMethod)
	term(FacetOpenType, q.OpenType)
	term(FacetUpdateCycle, q.UpdateCycle)
	term(FacetTag, q.Tag)
	term(FacetFormatClass, q.FormatClass)
	return fs
}
