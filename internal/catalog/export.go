package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"

	"govshare/internal/policy"
	"govshare/internal/store"
)

// ExportFilter chooses the entries an export writes.
type ExportFilter struct {
	// IDs, when set, are the entries to write, in this order; each must be
	// visible to the actor.
	IDs []int64
	// Otherwise every entry Entries lists for DeptID and State; retired
	// entries only when State asks for them.
	DeptID int64
	State  State
}

// ExportXLSX writes entries in the template layout, so a file exported
// here imports back unchanged. A published entry is written as its live
// published version, an unpublished one as its working copy.
func (s *Service) ExportXLSX(ctx context.Context, actor policy.Actor, f ExportFilter, w io.Writer) error {
	n := 0
	counted := func(yield func(Content, error) bool) {
		for c, err := range s.exportContents(ctx, actor, f) {
			if err == nil {
				n++
			}
			if !yield(c, err) {
				return
			}
		}
	}
	if err := WriteXLSX(w, counted); err != nil {
		return err
	}
	return s.record(ctx, actor, "catalog.entry.export", "catalog_entry", "", map[string]any{"format": "xlsx", "entries": n})
}

// ExportJSON returns the contents ExportXLSX would write.
func (s *Service) ExportJSON(ctx context.Context, actor policy.Actor, f ExportFilter) ([]Content, error) {
	var out []Content
	for c, err := range s.exportContents(ctx, actor, f) {
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, s.record(ctx, actor, "catalog.entry.export", "catalog_entry", "", map[string]any{"format": "json", "entries": len(out)})
}

// exportContents yields the content of each chosen entry, a page at a time.
func (s *Service) exportContents(ctx context.Context, actor policy.Actor, f ExportFilter) iter.Seq2[Content, error] {
	return func(yield func(Content, error) bool) {
		if len(f.IDs) > 0 {
			for _, id := range f.IDs {
				e, err := s.Entry(ctx, actor, id)
				if err != nil {
					yield(Content{}, err)
					return
				}
				if err := s.publishedContents(ctx, []*Entry{&e}); err != nil {
					yield(Content{}, err)
					return
				}
				if !yield(e.Draft, nil) {
					return
				}
			}
			return
		}
		var after int64
		for {
			page, err := s.Entries(ctx, actor, Filter{DeptID: f.DeptID, State: f.State, Limit: 500, After: after})
			if err != nil {
				yield(Content{}, err)
				return
			}
			if len(page) == 0 {
				return
			}
			after = page[len(page)-1].ID
			var chosen []*Entry
			for i := range page {
				if page[i].State != Retired || f.State == Retired {
					chosen = append(chosen, &page[i])
				}
			}
			if err := s.publishedContents(ctx, chosen); err != nil {
				yield(Content{}, err)
				return
			}
			for _, e := range chosen {
				if !yield(e.Draft, nil) {
					return
				}
			}
		}
	}
}

// publishedContents replaces the working copy of every published entry
// with its live published version, in one query.
func (s *Service) publishedContents(ctx context.Context, entries []*Entry) error {
	byID := map[int64]*Entry{}
	var args []any
	for _, e := range entries {
		if e.PublishedVersion > 0 {
			byID[e.ID] = e
			args = append(args, e.ID)
		}
	}
	if len(args) == 0 {
		return nil
	}
	rows, err := s.db.Query(ctx, `SELECT v.entry_id, v.content FROM entry_versions v JOIN entries e ON e.id = v.entry_id AND v.version = e.published_version
		WHERE v.entry_id IN (`+store.Placeholders(len(args))+`)`, args...)
	if err != nil {
		return fmt.Errorf("load published versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var content string
		if err := rows.Scan(&id, &content); err != nil {
			return err
		}
		var c Content
		if err := json.Unmarshal([]byte(content), &c); err != nil {
			return fmt.Errorf("entry %d: damaged published version: %w", id, err)
		}
		byID[id].Draft = c
	}
	return rows.Err()
}
