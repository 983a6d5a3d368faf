package search

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"
	bolterrors "go.etcd.io/bbolt/errors"
)

// mappingVersion names the index layout. Change it whenever the mapping or
// the analysis changes: an index built under another version is discarded
// on open and rebuilt from the database.
const mappingVersion = "govshare-search-1"

// versionKey holds mappingVersion inside the index once a Rebuild has
// completed; an index without it was never finished.
var versionKey = []byte("govshare.mapping_version")

const (
	// textAnalyzer indexes Chinese as single characters plus adjacent
	// pairs, and Latin words and numbers whole, lowercased, with full-width
	// forms folded to half-width (ＧＤＰ = gdp).
	textAnalyzer = "govshare_cjk"
	// queryAnalyzer is textAnalyzer without the pairs; splitQuery forms
	// the pairs itself.
	queryAnalyzer = "govshare_cjk_query"
	bigramFilter  = "govshare_cjk_bigram"
)

// facets lists the facets of every search, the key their values carry in
// the facets field, and how many values each returns (most frequent first).
//
// All facet values of a document live in one multi-valued field as
// "key:value". Counting facets means visiting the doc values of every match,
// and one field visited once costs far less than nine.
var facets = []struct {
	name string
	key  string
	size int
}{
	{FacetClass, "c:", 100}, {FacetDept, "d:", 100}, {FacetKind, "k:", 3}, {FacetShareType, "s:", 3},
	{FacetShareMethod, "m:", 4}, {FacetOpenType, "o:", 3}, {FacetUpdateCycle, "u:", 10},
	{FacetTag, "t:", 30}, {FacetFormatClass, "f:", 10},
}

// maxFacetValues bounds the distinct facet values one search counts.
const maxFacetValues = 1 << 20

// facetsField holds the facet values; filters match on it too.
const facetsField = "facets"

// facetKey returns the key of a facet's values.
func facetKey(name string) string {
	for _, f := range facets {
		if f.name == name {
			return f.key
		}
	}
	panic("search: no facet " + name)
}

// Bleve is the embedded index: a Bleve (scorch) index in a folder of its own
// under the data folder, or in memory.
type Bleve struct {
	idx   bleve.Index
	query analysis.Analyzer
	dir   string
	fresh atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

var _ Index = (*Bleve)(nil)

// OpenBleve opens the index in dir, or an in-memory index when dir is "".
// When dir holds no index, an index of an older mapping version or one whose
// rebuild never completed, the index is created empty and Fresh reports
// true: the caller then fills it with Rebuild. A dir that exists and holds
// something other than an index is refused, never deleted.
func OpenBleve(dir string) (*Bleve, error) {
	if dir == "" {
		return create("")
	}
	switch _, err := os.Stat(filepath.Join(dir, "index_meta.json")); {
	case errors.Is(err, fs.ErrNotExist):
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return nil, fmt.Errorf("open search index: %s is not empty and holds no index; move it away", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("open search index: %w", err)
		}
		return create(dir)
	case err != nil:
		return nil, fmt.Errorf("open search index: %w", err)
	}
	// A second process holding the index would otherwise make Open wait
	// forever on the lock.
	idx, err := bleve.OpenUsing(dir, map[string]any{"bolt_timeout": "10s"})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open search index %s: in use by another process", dir)
	}
	if err == nil {
		var v []byte
		if v, err = idx.GetInternal(versionKey); err == nil && string(v) == mappingVersion {
			b := &Bleve{idx: idx, dir: dir}
			if b.query, err = queryAnalyzerOf(idx); err != nil {
				idx.Close()
				return nil, err
			}
			return b, nil
		}
		idx.Close()
	}
	// Old, half-built or unreadable: the index is derived data, start over.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("open search index: discard %s: %w", dir, err)
	}
	return create(dir)
}

func create(dir string) (*Bleve, error) {
	m, err := newMapping()
	if err != nil {
		return nil, err
	}
	idx, err := bleve.NewUsing(dir, m, scorch.Name, scorch.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("create search index %s: %w", dir, err)
	}
	b := &Bleve{idx: idx, dir: dir}
	b.fresh.Store(true)
	if b.query, err = queryAnalyzerOf(idx); err != nil {
		idx.Close()
		return nil, err
	}
	return b, nil
}

func queryAnalyzerOf(idx bleve.Index) (analysis.Analyzer, error) {
	a := idx.Mapping().AnalyzerNamed(queryAnalyzer)
	if a == nil {
		return nil, fmt.Errorf("search index: analyzer %s missing from the mapping", queryAnalyzer)
	}
	return a, nil
}

// Fresh reports whether the index was created empty by OpenBleve and must be
// filled from the database. It stays true until a Rebuild completes, so a
// rebuild cut short by a crash is started again on the next open.
func (b *Bleve) Fresh() bool { return b.fresh.Load() }

// markBuilt records that the index holds every document.
func (b *Bleve) markBuilt() error {
	if err := b.idx.SetInternal(versionKey, []byte(mappingVersion)); err != nil {
		return fmt.Errorf("search index: mark built: %w", err)
	}
	b.fresh.Store(false)
	return nil
}

func newMapping() (*mapping.IndexMappingImpl, error) {
	m := bleve.NewIndexMapping()
	m.ScoringModel = "bm25"
	if err := m.AddCustomTokenFilter(bigramFilter, map[string]any{
		"type": cjk.BigramName, "output_unigram": true,
	}); err != nil {
		return nil, fmt.Errorf("search mapping: %w", err)
	}
	for name, filters := range map[string][]any{
		textAnalyzer:  {cjk.WidthName, lowercase.Name, bigramFilter},
		queryAnalyzer: {cjk.WidthName, lowercase.Name},
	} {
		if err := m.AddCustomAnalyzer(name, map[string]any{
			"type": custom.Name, "tokenizer": unicode.Name, "token_filters": filters,
		}); err != nil {
			return nil, fmt.Errorf("search mapping: %w", err)
		}
	}

	doc := bleve.NewDocumentStaticMapping()
	text := func() *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = textAnalyzer
		f.Store = false
		f.IncludeInAll = false
		f.IncludeTermVectors = false // queries need no positions: see fieldQuery
		f.DocValues = false
		return f
	}
	exact := func(docValues bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Analyzer = keyword.Name
		f.Store = false
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		f.DocValues = docValues
		return f
	}
	for _, name := range []string{"name", "abstract", "keywords", "items", "dept_name"} {
		doc.AddFieldMappingsAt(name, text())
	}
	doc.AddFieldMappingsAt("code", exact(false))
	doc.AddFieldMappingsAt("class_code", exact(false))
	doc.AddFieldMappingsAt(facetsField, exact(true))
	published := bleve.NewDateTimeFieldMapping()
	published.Store, published.IncludeInAll = false, false
	doc.AddFieldMappingsAt("published", published)
	popularity := bleve.NewNumericFieldMapping()
	popularity.Store, popularity.IncludeInAll = false, false
	doc.AddFieldMappingsAt("popularity", popularity)

	m.DefaultMapping = doc
	m.DefaultAnalyzer = keyword.Name
	m.StoreDynamic, m.IndexDynamic, m.DocValuesDynamic = false, false, false
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("search mapping: %w", err)
	}
	return m, nil
}

// fields is the indexed form of d.
func fields(d Document) map[string]any {
	kind := d.Kind
	if kind == "" {
		kind = kindOf(d.ClassCode)
	}
	var values []string
	add := func(name string, vs ...string) {
		key := facetKey(name)
		for _, v := range vs {
			// An empty value is no value: it must not be counted as "".
			if v != "" {
				values = append(values, key+v)
			}
		}
	}
	add(FacetClass, classFacet(d.ClassCode))
	if d.DeptID != 0 {
		add(FacetDept, strconv.FormatInt(d.DeptID, 10))
	}
	add(FacetKind, kind)
	add(FacetShareType, d.ShareType)
	add(FacetShareMethod, d.ShareMethods...)
	add(FacetOpenType, d.OpenType)
	add(FacetUpdateCycle, d.UpdateCycle)
	add(FacetTag, d.Keywords...)
	add(FacetFormatClass, d.FormatClass)
	// Facets count each value once per entry.
	values = slices.Compact(slices.Sorted(slices.Values(values)))

	f := map[string]any{
		"name":       d.Name,
		"abstract":   d.Abstract,
		"keywords":   d.Keywords,
		"items":      d.ItemNames,
		"dept_name":  d.DeptName,
		facetsField:  values,
		"popularity": d.Popularity,
	}
	if d.Code != "" {
		f["code"] = d.Code
	}
	if d.ClassCode != "" {
		f["class_code"] = d.ClassCode
	}
	if !d.PublishedAt.IsZero() {
		f["published"] = d.PublishedAt.UTC()
	}
	return f
}

func docID(id int64) string { return strconv.FormatInt(id, 10) }

// Put adds or replaces docs in one batch.
func (b *Bleve) Put(ctx context.Context, docs ...Document) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(docs) == 0 {
		return nil
	}
	batch := b.idx.NewBatch()
	for _, d := range docs {
		if err := batch.Index(docID(d.ID), fields(d)); err != nil {
			return fmt.Errorf("index document %d: %w", d.ID, err)
		}
	}
	if err := b.idx.Batch(batch); err != nil {
		return fmt.Errorf("index %d documents: %w", len(docs), err)
	}
	return nil
}

// Delete removes ids in one batch.
func (b *Bleve) Delete(ctx context.Context, ids ...int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	batch := b.idx.NewBatch()
	for _, id := range ids {
		batch.Delete(docID(id))
	}
	if err := b.idx.Batch(batch); err != nil {
		return fmt.Errorf("delete %d documents: %w", len(ids), err)
	}
	return nil
}

// Search runs q and counts every facet over all its matches.
func (b *Bleve) Search(ctx context.Context, q Query) (Result, error) {
	from, size, err := q.page()
	if err != nil {
		return Result{}, err
	}
	must := filterQueries(q)
	order := q.Sort
	if tq := textQuery(b.query, q.Text); tq != nil {
		must = append([]query.Query{tq}, must...)
	} else if order == SortRelevance {
		// Nothing to be relevant to: browsing shows the newest first.
		order = SortDate
	}
	var bq query.Query
	switch len(must) {
	case 0:
		bq = bleve.NewMatchAllQuery()
	case 1:
		bq = must[0]
	default:
		bq = bleve.NewConjunctionQuery(must...)
	}
	req := bleve.NewSearchRequestOptions(bq, size, from, false)
	switch order {
	case SortRelevance:
		req.SortBy([]string{"-_score"})
	// No "_id" tie-break: it reads every match's stored id. Ties keep the
	// index's own order, stable while the index does not change.
	case SortDate:
		req.SortBy([]string{"-published"})
		req.Score = "none"
	case SortPopularity:
		req.SortBy([]string{"-popularity", "-published"})
		req.Score = "none"
	default:
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownSort, q.Sort)
	}
	req.AddFacet(facetsField, bleve.NewFacetRequest(facetsField, maxFacetValues))
	res, err := b.idx.SearchInContext(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("search %q: %w", q.Text, err)
	}
	out := Result{
		Total:  int(res.Total),
		Hits:   make([]Hit, 0, len(res.Hits)),
		Facets: make(map[string][]FacetValue, len(facets)),
		Took:   res.Took,
	}
	for _, h := range res.Hits {
		id, err := strconv.ParseInt(h.ID, 10, 64)
		if err != nil {
			return Result{}, fmt.Errorf("search: document id %q: %w", h.ID, err)
		}
		out.Hits = append(out.Hits, Hit{ID: id, Score: h.Score})
	}
	for _, f := range facets {
		out.Facets[f.name] = []FacetValue{}
	}
	if fr := res.Facets[facetsField]; fr != nil && fr.Terms != nil {
		// Terms come most frequent first; each facet keeps its first values.
		for _, t := range fr.Terms.Terms() {
			for _, f := range facets {
				if v, ok := strings.CutPrefix(t.Term, f.key); ok {
					if len(out.Facets[f.name]) < f.size {
						out.Facets[f.name] = append(out.Facets[f.name], FacetValue{Value: v, Count: t.Count})
					}
					break
				}
			}
		}
	}
	return out, nil
}

// Count is the number of documents in the index.
func (b *Bleve) Count() (uint64, error) {
	n, err := b.idx.DocCount()
	if err != nil {
		return 0, fmt.Errorf("count search index: %w", err)
	}
	return n, nil
}

// Close flushes the index to disk and releases it. Closing twice is
// harmless (Bleve itself panics on it).
func (b *Bleve) Close() error {
	b.closeOnce.Do(func() {
		if err := b.idx.Close(); err != nil {
			b.closeErr = fmt.Errorf("close search index: %w", err)
		}
	})
	return b.closeErr
}

// settle waits until every batch so far is persisted and merged on disk, so
// that sizes and build times measure the finished index. An in-memory index is always
// settled.
func (b *Bleve) settle(ctx context.Context) error {
	if b.dir == "" {
		return nil
	}
	for {
		stats, _ := b.idx.StatsMap()["index"].(map[string]any)
		if busy, ok := stats["index_bgthreads_active"].(bool); !ok || !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// compact merges the index into one segment and waits until it is on disk:
// after a rebuild, one segment searches faster and takes less room than the
// many small ones the batches left. An in-memory index has no merger and
// is left as it is.
func (b *Bleve) compact(ctx context.Context) error {
	if b.dir == "" {
		return nil
	}
	adv, err := b.idx.Advanced()
	if err != nil {
		return fmt.Errorf("compact search index: %w", err)
	}
	if s, ok := adv.(*scorch.Scorch); ok {
		if err := s.ForceMerge(ctx, nil); err != nil {
			return fmt.Errorf("compact search index: %w", err)
		}
	}
	return b.settle(ctx)
}

// diskSize is the bytes the index occupies on disk (0 in memory).
func (b *Bleve) diskSize() (int64, error) {
	if b.dir == "" {
		return 0, nil
	}
	var total int64
	err := filepath.WalkDir(b.dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}
