package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"govshare/internal/policy"
	"govshare/internal/search"
	"govshare/internal/store"
)

// UseIndex connects the catalog to a search index: every publication,
// retirement and rating from now on updates it.
func (s *Service) UseIndex(idx search.Index) {
	s.index = idx
	s.OnChange(func(ctx context.Context, id int64) {
		if err := s.Reindex(ctx, id); err != nil && s.indexErr != nil {
			s.indexErr(id, err)
		}
	})
}

// OnIndexError receives index failures; the catalog itself has already
// committed, and a rebuild repairs the index.
func (s *Service) OnIndexError(fn func(id int64, err error)) { s.indexErr = fn }

// Reindex puts an entry's published version into the index, or removes it
// when it is not (or no longer) published.
func (s *Service) Reindex(ctx context.Context, id int64) error {
	if s.index == nil {
		return nil
	}
	d, ok, err := s.searchDocument(ctx, "e.id = ?", id)
	if err != nil {
		return err
	}
	if !ok {
		return s.index.Delete(ctx, id)
	}
	return s.index.Put(ctx, d)
}

const docQuery = `SELECT e.id, COALESCE(e.code, ''), e.dept_id, d.name, v.content, v.published_at, e.first_published_at,
	(SELECT COALESCE(SUM(r.stars), 0) FROM entry_ratings r WHERE r.entry_id = e.id)
	FROM entries e JOIN departments d ON d.id = e.dept_id
	JOIN entry_versions v ON v.entry_id = e.id AND v.version = e.published_version
	WHERE e.published_version > 0 AND e.state <> 'retired' AND `

func scanDocument(row interface{ Scan(...any) error }) (search.Document, error) {
	var d search.Document
	var content string
	var first sql.NullTime
	var pop int64
	var latest sql.NullTime
	if err := row.Scan(&d.ID, &d.Code, &d.DeptID, &d.DeptName, &content, &latest, &first, &pop); err != nil {
		return d, err
	}
	var c Content
	if err := json.Unmarshal([]byte(content), &c); err != nil {
		return d, fmt.Errorf("entry %d: %w", d.ID, err)
	}
	d.Name, d.Abstract, d.Keywords, d.ClassCode = c.Name, c.Abstract, c.Keywords, c.ClassCode
	d.ShareType, d.OpenType, d.UpdateCycle, d.FormatClass = string(c.ShareType), string(c.OpenType), c.UpdateCycle, c.FormatClass
	for _, m := range c.ShareMethods {
		d.ShareMethods = append(d.ShareMethods, string(m))
	}
	for _, it := range c.Items {
		d.ItemNames = append(d.ItemNames, it.Name)
	}
	d.PublishedAt = first.Time
	d.Popularity = float64(pop)
	return d, nil
}

func (s *Service) searchDocument(ctx context.Context, where string, arg any) (search.Document, bool, error) {
	d, err := scanDocument(s.db.QueryRow(ctx, docQuery+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	return d, err == nil, err
}

// EachSearchDocument streams the published catalog, a page at a time, for
// rebuilding the index: never the whole table in memory.
func (s *Service) EachSearchDocument(ctx context.Context, yield func(search.Document) error) error {
	var after int64
	for {
		rows, err := s.db.Query(ctx, docQuery+"e.id > ? ORDER BY e.id LIMIT 500", after)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			d, err := scanDocument(rows)
			if err != nil {
				rows.Close()
				return err
			}
			n++
			after = d.ID
			if err := yield(d); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n < 500 {
			return nil
		}
	}
}

// SearchResult is a page of published entries with the facet counts.
type SearchResult struct {
	Total   int                            `json:"total"`
	Entries []Entry                        `json:"entries"`
	Facets  map[string][]search.FacetValue `json:"facets"`
	TookMS  float64                        `json:"took_ms"`
}

// Search finds published entries. Everyone may search the published
// catalog; the index holds nothing else.
func (s *Service) Search(ctx context.Context, actor policy.Actor, q search.Query) (SearchResult, error) {
	if s.index == nil {
		return SearchResult{}, errors.New("catalog search: no index configured")
	}
	q.Text = strings.TrimSpace(q.Text)
	res, err := s.index.Search(ctx, q)
	if err != nil {
		return SearchResult{}, err
	}
	out := SearchResult{Total: res.Total, Facets: res.Facets, TookMS: float64(res.Took.Microseconds()) / 1000}
	if len(res.Hits) == 0 {
		out.Entries = []Entry{}
		return out, nil
	}
	args := make([]any, len(res.Hits))
	for i, h := range res.Hits {
		args[i] = h.ID
	}
	rows, err := s.db.Query(ctx, "SELECT "+entryCols+" FROM entries WHERE id IN ("+store.Placeholders(len(args))+")", args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	byID := map[int64]Entry{}
	for rows.Next() {
		e, err := s.scanEntry(rows)
		if err != nil {
			return out, err
		}
		byID[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	// Show what was published, in the index's order.
	ids := make([]int64, 0, len(res.Hits))
	for _, h := range res.Hits {
		if e, ok := byID[h.ID]; ok && e.PublishedVersion > 0 {
			ids = append(ids, h.ID)
		}
	}
	published, err := s.publishedContentOf(ctx, ids)
	if err != nil {
		return out, err
	}
	for _, id := range ids {
		e := byID[id]
		if c, ok := published[id]; ok {
			e.Draft = c
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}

func (s *Service) publishedContentOf(ctx context.Context, ids []int64) (map[int64]Content, error) {
	out := map[int64]Content{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.db.Query(ctx, `SELECT v.entry_id, v.content FROM entry_versions v JOIN entries e ON e.id = v.entry_id AND v.version = e.published_version
		WHERE v.entry_id IN (`+store.Placeholders(len(args))+")", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		var c Content
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, rows.Err()
}
