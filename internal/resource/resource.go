// Package resource is the platform's resource store (资源挂接 / 数据归集):
// each published catalog entry that a department mounts gets a table of
// its own, derived from its data items, with the history of every record
// and its lineage (which batch, from which source, when). Data comes in as
// batches — template uploads, the push API, exchange nodes — and every
// batch goes through one pipeline: validation and quality rules, a
// quarantine for records that fail, an all-or-nothing apply, and a report.
package resource

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/store"
)

// Resource is a mounted entry: its table, columns and statistics.
type Resource struct {
	ID            int64     `json:"id"`
	EntryID       int64     `json:"entry_id"`
	Code          string    `json:"code" doc:"信息资源代码 / resource code"`
	Name          string    `json:"name"`
	DeptID        int64     `json:"dept_id"`
	Table         string    `json:"table" doc:"平台库中的表名 / table in the platform's store"`
	EntryVersion  int       `json:"entry_version" doc:"表结构对应的目录版本 / catalog version of the table's shape"`
	Columns       []Column  `json:"columns"`
	UpdateCycle   string    `json:"update_cycle"`
	RecordCount   int64     `json:"record_count" doc:"现有记录数 / records held"`
	ReceivedCount int64     `json:"received_count" doc:"累计接收记录数 / records received"`
	PassedCount   int64     `json:"passed_count" doc:"累计通过质量检查的记录数 / records that passed"`
	QualityScore  float64   `json:"quality_score" doc:"质量得分：通过/接收 / share of records passing"`
	LastUpdateAt  time.Time `json:"last_update_at,omitzero" doc:"最近更新 / last update"`
	LastZeroAt    time.Time `json:"last_zero_at,omitzero" doc:"最近零上报 / last zero report"`
	// NodeSeenAt is when an exchange node last reported a running job into
	// the resource without error: a real-time resource is timely while
	// its node delivers.
	NodeSeenAt time.Time `json:"node_seen_at,omitzero" doc:"前置机最近报告正常交付 / last time a node reported delivering"`
	MountedAt  time.Time `json:"mounted_at"`
}

// Visible are the columns shown and filled: those still in the catalog.
func (r Resource) Visible() []Column {
	var out []Column
	for _, c := range r.Columns {
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// Keys are the key columns.
func (r Resource) Keys() []Column {
	var out []Column
	for _, c := range r.Columns {
		if c.Key {
			out = append(out, c)
		}
	}
	return out
}

// Auditor is the part of the audit log the store needs.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// References gives the reference data quality rules check against (region
// codes, code tables) as it is now.
type References func(ctx context.Context) (quality.Reference, error)

// Service runs the resource store.
type Service struct {
	db    *store.DB
	audit Auditor
	cat   *catalog.Service
	refs  References
	log   *slog.Logger
	now   func() time.Time
}

// New builds the service.
func New(db *store.DB, a Auditor, cat *catalog.Service, refs References, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, audit: a, cat: cat, refs: refs, log: log, now: store.Now}
}

// SetClock replaces the clock for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Errors of mounting.
var (
	ErrNoKey       = apperr.Invalid("resource.no_key", "items", "目录条目没有主键信息项，无法挂接：请通过目录变更标出主键", "the entry has no key items and cannot be mounted; mark the key items through a catalog change")
	ErrKeyChanged  = apperr.New(http.StatusConflict, "resource.key_changed", "新版本改变了主键信息项，已挂接的资源不能随之改变；请恢复原主键", "the new version changes the key items, which a mounted resource cannot follow; restore the original keys")
	ErrTypeChanged = apperr.New(http.StatusConflict, "resource.type_changed", "新版本改变了已有信息项的数据类型，已挂接的资源不能随之改变", "the new version changes the data type of an existing item, which a mounted resource cannot follow")
	ErrNotMounted  = apperr.New(http.StatusNotFound, "resource.not_mounted", "该资源尚未挂接", "the resource is not mounted")
)

func (s *Service) authorize(ctx context.Context, actor policy.Actor, act policy.Action, dept int64, objType, objID string) error {
	if err := policy.Check(actor, act, policy.Target{DeptID: dept}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(act), objType, objID, audit.ResultDenied, nil))
		return err
	}
	return nil
}

const resourceCols = `r.id, r.entry_id, r.code, e.name, r.dept_id, r.table_name, r.entry_version, r.columns, r.record_count, r.received_count,
	r.passed_count, r.last_update_at, r.last_zero_at, r.node_seen_at, r.mounted_at`

func (s *Service) scanResource(row store.Row) (Resource, error) {
	var r Resource
	var cols string
	var upd, zero, node sql.NullTime
	err := row.Scan(&r.ID, &r.EntryID, &r.Code, &r.Name, &r.DeptID, &r.Table, &r.EntryVersion, &cols, &r.RecordCount, &r.ReceivedCount,
		&r.PassedCount, &upd, &zero, &node, &r.MountedAt)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(cols), &r.Columns); err != nil {
		return r, err
	}
	r.LastUpdateAt, r.LastZeroAt, r.NodeSeenAt = upd.Time.UTC(), zero.Time.UTC(), node.Time.UTC()
	if r.ReceivedCount > 0 {
		r.QualityScore = float64(r.PassedCount) / float64(r.ReceivedCount)
	}
	return r, nil
}

func (s *Service) resource(ctx context.Context, where string, arg any) (Resource, error) {
	r, err := s.scanResource(s.db.QueryRow(ctx, "SELECT "+resourceCols+" FROM resources r JOIN entries e ON e.id = r.entry_id WHERE "+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotMounted
	} else if err != nil {
		return r, err
	}
	if _, c, err := s.cat.Published(ctx, r.EntryID); err == nil {
		r.UpdateCycle = c.UpdateCycle
	}
	return r, nil
}

// ByCode returns a mounted resource by its resource code. What it holds is
// described by its catalog entry, which every user may read; the data
// itself is behind DataPreview and the grants.
func (s *Service) ByCode(ctx context.Context, code string) (Resource, error) {
	return s.resource(ctx, "r.code = ?", code)
}

// ByEntry returns the resource mounted for a catalog entry.
func (s *Service) ByEntry(ctx context.Context, entryID int64) (Resource, error) {
	return s.resource(ctx, "r.entry_id = ?", entryID)
}

// List returns the resources of a department (0: all).
func (s *Service) List(ctx context.Context, deptID int64) ([]Resource, error) {
	where, args := "1 = 1", []any{}
	if deptID != 0 {
		where, args = "r.dept_id = ?", []any{deptID}
	}
	return store.All(ctx, s.db, s.scanResource, "SELECT "+resourceCols+" FROM resources r JOIN entries e ON e.id = r.entry_id WHERE "+where+" ORDER BY r.code", args...)
}

// Mount creates the table of a published entry (资源挂接), or, when it is
// mounted already, brings the table to the entry's latest version.
func (s *Service) Mount(ctx context.Context, actor policy.Actor, entryID int64) (Resource, error) {
	e, c, err := s.cat.Published(ctx, entryID)
	if err != nil {
		return Resource{}, err
	}
	if err := s.authorize(ctx, actor, policy.ResourceMount, e.DeptID, "resource", e.Code); err != nil {
		return Resource{}, err
	}
	if existing, err := s.ByEntry(ctx, entryID); err == nil {
		return s.evolve(ctx, actor, existing, e, c)
	} else if !errors.Is(err, ErrNotMounted) {
		return Resource{}, err
	}
	var cols []Column
	for _, it := range c.Items {
		cols = append(cols, columnOf(it, e.PublishedVersion))
	}
	if !slices.ContainsFunc(cols, func(c Column) bool { return c.Key }) {
		return Resource{}, ErrNoKey
	}
	if err := s.compile(ctx, cols); err != nil {
		return Resource{}, err
	}
	name := fmt.Sprintf("res_%d", e.ID)
	raw, _ := json.Marshal(cols)
	now := s.now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, q := range createDDL(tx.Dialect(), name, cols) {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("create resource table: %w", err)
			}
		}
		for _, c := range s.uniqueColumns(cols) {
			if _, err := tx.Exec(ctx, uniqueIndexDDL(name, c)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO resources (entry_id, code, dept_id, table_name, entry_version, columns, mounted_by, mounted_at, evolved_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.ID, e.Code, e.DeptID, name, e.PublishedVersion, string(raw), actor.UserID, now, now)
		return err
	})
	if err != nil {
		return Resource{}, err
	}
	if err := s.audit.Append(ctx, audit.By(actor, "resource.mount", "resource", e.Code, audit.ResultOK,
		map[string]any{"entry_id": e.ID, "version": e.PublishedVersion, "table": name, "columns": len(cols)})); err != nil {
		return Resource{}, err
	}
	return s.ByEntry(ctx, entryID)
}

// uniqueColumns are the non-key columns whose quality rule asks for
// uniqueness within the resource; they get an index.
func (s *Service) uniqueColumns(cols []Column) []Column {
	var out []Column
	for _, c := range cols {
		if !c.Key && hasRule(c.QualityRule, "unique") {
			out = append(out, c)
		}
	}
	return out
}

// evolve follows a new entry version: added items become nullable
// columns, removed items are hidden and kept. Keys and types of existing
// columns cannot change.
func (s *Service) evolve(ctx context.Context, actor policy.Actor, r Resource, e catalog.Entry, c catalog.Content) (Resource, error) {
	if e.PublishedVersion <= r.EntryVersion {
		return r, nil
	}
	byName := map[string]catalog.DataItem{}
	for _, it := range c.Items {
		byName[it.MachineName] = it
	}
	cols := slices.Clone(r.Columns)
	var added []Column
	for i, col := range cols {
		it, ok := byName[col.MachineName]
		if !ok {
			if col.Key {
				return r, ErrKeyChanged.OnField("items")
			}
			cols[i].Hidden = true
			continue
		}
		if it.Key != col.Key {
			return r, ErrKeyChanged.OnField("items")
		}
		if it.DataType != col.DataType {
			return r, ErrTypeChanged.OnField(col.MachineName)
		}
		cols[i].Name, cols[i].Length, cols[i].MaskRule, cols[i].QualityRule, cols[i].Hidden = it.Name, it.Length, it.MaskRule, it.QualityRule, false
		delete(byName, col.MachineName)
	}
	for _, it := range c.Items {
		if _, ok := byName[it.MachineName]; ok {
			if it.Key {
				return r, ErrKeyChanged.OnField("items")
			}
			col := columnOf(it, e.PublishedVersion)
			cols = append(cols, col)
			added = append(added, col)
		}
	}
	if err := s.compile(ctx, cols); err != nil {
		return r, err
	}
	raw, _ := json.Marshal(cols)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, col := range added {
			for _, q := range addColumnDDL(tx.Dialect(), r.Table, col) {
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("add column %s: %w", col.MachineName, err)
				}
			}
		}
		_, err := tx.Exec(ctx, "UPDATE resources SET entry_version = ?, columns = ?, evolved_at = ? WHERE id = ?", e.PublishedVersion, string(raw), s.now(), r.ID)
		return err
	})
	if err != nil {
		return r, err
	}
	var names []string
	for _, col := range added {
		names = append(names, col.MachineName)
	}
	if err := s.audit.Append(ctx, audit.By(actor, "resource.evolve", "resource", r.Code, audit.ResultOK,
		map[string]any{"from_version": r.EntryVersion, "to_version": e.PublishedVersion, "added": names})); err != nil {
		return r, err
	}
	return s.ByEntry(ctx, r.EntryID)
}

// Follow brings a mounted resource to its entry's latest published
// version; the catalog calls it after every publication. Unmounted
// entries are left alone.
func (s *Service) Follow(ctx context.Context, entryID int64) error {
	r, err := s.ByEntry(ctx, entryID)
	if errors.Is(err, ErrNotMounted) {
		return nil
	} else if err != nil {
		return err
	}
	e, c, err := s.cat.Published(ctx, entryID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil // retired: the data stays as it was
	} else if err != nil {
		return err
	}
	_, err = s.evolve(ctx, policy.Actor{Login: "system"}, r, e, c)
	return err
}

// items turns columns into the quality package's items.
func items(cols []Column) []quality.Item {
	out := make([]quality.Item, len(cols))
	for i, c := range cols {
		out[i] = quality.Item{Name: c.Name, MachineName: c.MachineName, DataType: c.DataType, Length: c.Length, Key: c.Key, Rule: c.QualityRule}
	}
	return out
}

// compile checks that the columns' rules compile against today's
// reference data.
func (s *Service) compile(ctx context.Context, cols []Column) error {
	_, err := s.checker(ctx, cols)
	return err
}

func (s *Service) checker(ctx context.Context, cols []Column) (*quality.Checker, error) {
	ref, err := s.refs(ctx)
	if err != nil {
		return nil, err
	}
	var visible []Column
	for _, c := range cols {
		if !c.Hidden {
			visible = append(visible, c)
		}
	}
	return quality.Compile(items(visible), ref)
}
