package refdata

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/audit"
	"govshare/internal/checkdigit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Region statuses.
const (
	StatusCurrent = "current" // 现行
	StatusRetired = "retired" // 已撤销: stays valid for old records
)

// Region is one row of the region table (行政区划).
type Region struct {
	Code      string `json:"code" doc:"行政区划代码(GB/T 2260) / region code"`
	Name      string `json:"name" doc:"名称 / name"`
	Status    string `json:"status" enum:"current,retired" doc:"current 现行 / retired 已撤销"`
	ValidFrom string `json:"valid_from,omitempty" doc:"启用日期 YYYY-MM-DD / in use from"`
	ValidTo   string `json:"valid_to,omitempty" doc:"撤销日期 YYYY-MM-DD / in use until"`
}

// RegionImport says what an import loaded.
type RegionImport struct {
	Rows    int `json:"rows" doc:"导入行数 / rows loaded"`
	Current int `json:"current" doc:"现行代码数 / current codes"`
	Retired int `json:"retired" doc:"已撤销代码数 / retired codes"`
}

// RegionTableInfo says whether and when the region table was loaded.
type RegionTableInfo struct {
	Loaded   bool      `json:"loaded"`
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	Source   string    `json:"source,omitempty"`
	LoadedBy string    `json:"loaded_by,omitempty"`
	Current  int       `json:"current"`
	Retired  int       `json:"retired"`
}

var regionColumns = []column{
	{name: "code", aliases: []string{"代码", "区划代码", "行政区划代码"}, required: true},
	{name: "name", aliases: []string{"名称", "区划名称"}, required: true},
	{name: "status", aliases: []string{"状态"}},
	{name: "valid_from", aliases: []string{"启用日期", "起始日期"}},
	{name: "valid_to", aliases: []string{"撤销日期", "终止日期"}},
}

// ParseRegions reads a region table from CSV with the header
// code,name,status,valid_from,valid_to (status and the dates may be left
// out: a code without status is current). Every row is checked; the first
// problem is returned naming its row and column.
func ParseRegions(r io.Reader) ([]Region, error) {
	t, err := readCSV(r, regionColumns)
	if err != nil {
		return nil, err
	}
	out := make([]Region, 0, len(t.rows))
	seen := make(map[string]bool, len(t.rows))
	for i, row := range t.rows {
		line := t.lines[i]
		g := Region{Code: t.get(row, "code"), Name: t.get(row, "name"), ValidFrom: t.get(row, "valid_from"), ValidTo: t.get(row, "valid_to")}
		switch {
		case checkdigit.RegionCode(g.Code) != nil:
			return nil, rowError(ErrRegionCode, line, "code")
		case seen[g.Code]:
			return nil, rowError(ErrRegionTwice, line, "code")
		case g.Name == "" || utf8.RuneCountInString(g.Name) > 100:
			return nil, rowError(ErrRegionName, line, "name")
		}
		seen[g.Code] = true
		var ok bool
		if g.Status, ok = regionStatus(t.get(row, "status")); !ok {
			return nil, rowError(ErrRegionStatus, line, "status")
		}
		for _, f := range []struct{ name, value string }{{"valid_from", g.ValidFrom}, {"valid_to", g.ValidTo}} {
			if _, err := time.Parse("2006-01-02", f.value); f.value != "" && err != nil {
				return nil, rowError(ErrRegionDate, line, f.name)
			}
		}
		if g.ValidFrom != "" && g.ValidTo != "" && g.ValidTo < g.ValidFrom {
			return nil, rowError(ErrRegionDates, line, "valid_to")
		}
		out = append(out, g)
	}
	return out, nil
}

func regionStatus(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "", StatusCurrent, "现行", "有效":
		return StatusCurrent, true
	case StatusRetired, "已撤销", "撤销", "停用", "废止":
		return StatusRetired, true
	}
	return "", false
}

// ImportRegions replaces the region table with the regions of a CSV file,
// all or nothing. Only the platform administrator loads it.
func (s *Service) ImportRegions(ctx context.Context, actor policy.Actor, r io.Reader, source string) (RegionImport, error) {
	var res RegionImport
	if err := s.authorize(ctx, actor, "region_table", ""); err != nil {
		return res, err
	}
	regions, err := ParseRegions(r)
	if err != nil {
		return res, err
	}
	for _, g := range regions {
		if g.Status == StatusRetired {
			res.Retired++
		} else {
			res.Current++
		}
	}
	res.Rows = len(regions)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM regions"); err != nil {
			return err
		}
		const batch = 200
		for start := 0; start < len(regions); start += batch {
			part := regions[start:min(start+batch, len(regions))]
			values := make([]string, len(part))
			args := make([]any, 0, 5*len(part))
			for i, g := range part {
				values[i] = "(" + store.Placeholders(5) + ")"
				args = append(args, g.Code, g.Name, g.Status, g.ValidFrom, g.ValidTo)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO regions (code, name, status, valid_from, valid_to) VALUES "+strings.Join(values, ", "), args...); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO refdata_loads (kind, loaded_at, source, loaded_by, row_count) VALUES ('regions', ?, ?, ?, ?)
			ON CONFLICT (kind) DO UPDATE SET loaded_at = excluded.loaded_at, source = excluded.source, loaded_by = excluded.loaded_by, row_count = excluded.row_count`,
			store.Now(), source, actor.Login, len(regions))
		return err
	})
	if err != nil {
		return RegionImport{}, fmt.Errorf("import region table: %w", err)
	}
	s.invalidate()
	return res, s.audit.Append(ctx, audit.By(actor, "refdata.regions_import", "region_table", "", audit.ResultOK,
		map[string]any{"rows": res.Rows, "current": res.Current, "retired": res.Retired, "source": source}))
}

// Regions lists regions whose code starts with q or whose name contains
// it (all when q is empty), in code order, at most limit of them, and how
// many match in all.
func (s *Service) Regions(ctx context.Context, q string, limit int) ([]Region, int, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	where, args := "", []any{}
	if q = strings.TrimSpace(q); q != "" {
		e := store.LikeEscape(q)
		where = ` WHERE code LIKE ? ESCAPE '\' OR name LIKE ? ESCAPE '\'`
		args = append(args, e+"%", "%"+e+"%")
	}
	var total int
	if err := s.db.QueryRow(ctx, "SELECT COUNT(*) FROM regions"+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	list, err := store.All(ctx, s.db, func(r store.Row) (Region, error) {
		var g Region
		return g, r.Scan(&g.Code, &g.Name, &g.Status, &g.ValidFrom, &g.ValidTo)
	}, "SELECT code, name, status, valid_from, valid_to FROM regions"+where+" ORDER BY code LIMIT ?", append(args, limit)...)
	if list == nil {
		list = []Region{}
	}
	return list, total, err
}

// RegionTable says when the region table was loaded and how many codes
// it holds.
func (s *Service) RegionTable(ctx context.Context) (RegionTableInfo, error) {
	var info RegionTableInfo
	err := s.db.QueryRow(ctx, "SELECT loaded_at, source, loaded_by FROM refdata_loads WHERE kind = 'regions'").Scan(&info.LoadedAt, &info.Source, &info.LoadedBy)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return info, err
	default:
		info.Loaded = true
	}
	err = s.db.QueryRow(ctx, `SELECT COALESCE(SUM(CASE WHEN status = 'current' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN status = 'retired' THEN 1 ELSE 0 END), 0) FROM regions`).Scan(&info.Current, &info.Retired)
	return info, err
}
