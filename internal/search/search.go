// Package search is the catalog's full-text index: Chinese fuzzy search over
// entry names, abstracts, keywords, data item names and provider departments,
// with the facets and filters consumers browse by. The catalog talks to the
// Index interface only, so the embedded Bleve index behind it can be replaced
// by a search cluster without touching the catalog.
//
// The index is derived data: the database is the truth, and an index that is
// missing, stale in format or half-built is rebuilt from it (see Fresh and
// Rebuild).
package search

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Document is what the index knows about one published catalog entry.
type Document struct {
	ID           int64
	Code         string // resource code (信息资源代码)
	Name         string
	Abstract     string
	Keywords     []string
	ItemNames    []string // data item names (信息项名称)
	DeptID       int64    // provider department
	DeptName     string
	ClassCode    string // classification code (信息资源分类代码)
	Kind         string // base | theme | dept; derived from ClassCode when empty
	ShareType    string
	ShareMethods []string
	OpenType     string
	UpdateCycle  string
	FormatClass  string
	PublishedAt  time.Time
	Popularity   float64
}

// Sort orders of a Query.
const (
	SortRelevance  = ""           // best match first; newest first among equals
	SortDate       = "date"       // newest publication first
	SortPopularity = "popularity" // most popular first
)

// Names of the facets every Result carries.
const (
	FacetClass       = "class"        // classification at 项 level (first three digits)
	FacetDept        = "dept"         // provider department id
	FacetKind        = "kind"         // base library / theme / department resource
	FacetShareType   = "share_type"   // 共享类型
	FacetShareMethod = "share_method" // 共享方式
	FacetOpenType    = "open_type"    // 开放类型
	FacetUpdateCycle = "update_cycle" // 更新周期
	FacetTag         = "tag"          // keywords as exact values
	FacetFormatClass = "format_class" // 格式分类
)

// Paging limits. Deep paging is refused rather than made slow: nobody reads
// the ten-thousandth result of a catalog search, they refine the query.
const (
	DefaultSize = 20
	MaxSize     = 100
	MaxWindow   = 10000 // From+Size
	// MaxQueryRunes bounds the work one query can ask for.
	MaxQueryRunes = 100
)

// Domain errors the web layer maps to codes.
var (
	ErrPageTooDeep = errors.New("search: from+size beyond the result window")
	ErrUnknownSort = errors.New("search: unknown sort order")
)

// Query is one catalog search. Empty fields do not filter; an empty Text
// matches every entry.
type Query struct {
	Text        string
	ClassPrefix string // classification code prefix: "101" matches 101…
	DeptID      int64
	Kind        string
	ShareType   string
	ShareMethod string
	OpenType    string
	UpdateCycle string
	Tag         string
	FormatClass string
	Sort        string // SortRelevance, SortDate or SortPopularity
	From, Size  int
}

// page returns the validated window of q: a zero or negative Size means
// DefaultSize, Size is capped at MaxSize.
func (q Query) page() (from, size int, err error) {
	from, size = max(q.From, 0), q.Size
	switch {
	case size <= 0:
		size = DefaultSize
	case size > MaxSize:
		size = MaxSize
	}
	if from+size > MaxWindow {
		return 0, 0, fmt.Errorf("%w: from %d + size %d > %d", ErrPageTooDeep, from, size, MaxWindow)
	}
	return from, size, nil
}

// Hit is one matching entry.
type Hit struct {
	ID    int64
	Score float64
}

// FacetValue is one value of a facet and how many matching entries have it.
type FacetValue struct {
	Value string
	Count int
}

// Result is one page of matches with the facet counts of all matches.
type Result struct {
	Total  int
	Hits   []Hit
	Facets map[string][]FacetValue
	Took   time.Duration
}

// Index is the catalog's search index. Implementations are safe for
// concurrent use.
type Index interface {
	// Put adds documents, replacing any with the same ID.
	Put(ctx context.Context, docs ...Document) error
	// Delete removes documents; unknown IDs are ignored.
	Delete(ctx context.Context, ids ...int64) error
	Search(ctx context.Context, q Query) (Result, error)
	Count() (uint64, error)
	Close() error
}

// kindOf derives the resource kind from a classification code, as the
// catalog does: 1… base, 2… theme, anything else department.
func kindOf(classCode string) string {
	switch {
	case classCode == "":
		return ""
	case classCode[0] == '1':
		return "base"
	case classCode[0] == '2':
		return "theme"
	}
	return "dept"
}

// classFacet is the classification value a document is counted under: its
// 项 (the root digit plus two), e.g. 101 人口基础信息.
func classFacet(classCode string) string {
	if len(classCode) > 3 {
		return classCode[:3]
	}
	return classCode
}
