package wire

import (
	"errors"
	"fmt"
	"slices"

	"govshare/internal/agent/source"
	"govshare/internal/quality"
)

// The full check (全量核对) compares the two sides of a job (the node's
// source table and the center's resource) or of a subscription (the
// center's delivered view and the consumer's target table) without moving
// their rows. The center asks for one through Commands.Checks; the node
// runs it: it cuts its side into chunk checksums, fetches the center's
// side of the same chunks and, for the key ranges whose chunks differ, the
// per-key hashes (POST PathChecksums), merges them, and reports the keys
// that differ (POST PathChecks).
//
// Both sides read every value as the platform holds it in its data item
// (CheckRows), so that equal data gives equal sums on SQLite, PostgreSQL
// and MySQL alike, and hash with internal/agent/source.

// Paths of the full check.
const (
	PathChecks    = "/node/v1/checks"    // POST: a check's progress or result (CheckReport)
	PathChecksums = "/node/v1/checksums" // POST: the center's side of a check (ChecksumQuery → Checksums)
)

// Kinds of check.
const (
	CheckJob          = "job"          // the node's source table against the center's resource
	CheckSubscription = "subscription" // the center's delivered view against the consumer's target table
)

// States of a check.
const (
	CheckRequested = "requested"
	CheckRunning   = "running"
	CheckDone      = "done"
	CheckFailed    = "failed"
)

// What a differing key is, at the target side (the center's resource for a
// job, the consumer's table for a subscription).
const (
	DiffChanged = "changed" // on both sides, with different values
	DiffMissing = "missing" // not at the target
	DiffExtra   = "extra"   // only at the target
)

// MaxCheckKeys is how many differing keys a check keeps: the first ones in
// key order.
const MaxCheckKeys = 1000

// CheckColumn is one data item a check compares.
type CheckColumn struct {
	Item     string `json:"item"`
	DataType string `json:"data_type"`
	// Key is the item's position in the resource's key, from 1; 0 when it
	// is not part of it.
	Key int `json:"key,omitempty"`
	// Column is the node's column holding the item: the mapped source
	// column (job) or the target table's column (subscription).
	Column string `json:"column"`
}

// CheckRequest is a check the node is to run. It names everything the node
// needs, so a job or subscription changed meanwhile does not change it.
type CheckRequest struct {
	ID           int64  `json:"id"`
	Kind         string `json:"kind" enum:"job,subscription"`
	JobID        int64  `json:"job_id,omitempty"`
	Subscription int64  `json:"subscription,omitempty"`
	// Source (job) or Target (subscription) names the node's database;
	// Table or SQL what to read there.
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"`
	Table  string `json:"table,omitempty"`
	SQL    string `json:"sql,omitempty"`
	// Columns are the compared items in the order rows are hashed.
	Columns   []CheckColumn `json:"columns"`
	ChunkSize int           `json:"chunk_size"`
}

// ChecksumQuery asks the center for its side of a check: the chunk
// checksums that follow After (nil: from the start), or with Keys the
// per-key hashes of the keys k with After < k <= Through (nil: open). Max
// bounds the answer (chunks or keys); More says there is more to ask for.
type ChecksumQuery struct {
	Check   int64      `json:"check"`
	Keys    bool       `json:"keys,omitempty"`
	After   source.Key `json:"after,omitempty"`
	Through source.Key `json:"through,omitempty"`
	Max     int        `json:"max,omitempty"`
}

// Checksums answers a ChecksumQuery.
type Checksums struct {
	Chunks []source.ChunkSum `json:"chunks,omitempty"`
	Hashes []source.KeyHash  `json:"hashes,omitempty"`
	More   bool              `json:"more"`
}

// CheckKey is one key that differs.
type CheckKey struct {
	Key  string `json:"key" doc:"主键值(多列以 | 分隔) / key values (joined by |)"`
	Kind string `json:"kind" enum:"changed,missing,extra" doc:"changed 值不同 / missing 目标端缺少 / extra 仅目标端有"`
}

// CheckReport is what the node says about a check: running when it
// starts, then done with the result, or failed.
type CheckReport struct {
	ID    int64  `json:"id"`
	State string `json:"state" enum:"running,done,failed"`
	// Rows is the number of keys compared (on either side), Chunks the
	// number of chunks, Differ the number of keys that differ; Keys are the
	// first MaxCheckKeys of them.
	Rows   int64      `json:"rows,omitempty"`
	Chunks int        `json:"chunks,omitempty"`
	Differ int        `json:"differ,omitempty"`
	Keys   []CheckKey `json:"keys,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// CheckRows reads rows the way a full check compares them: each value as
// the platform holds it in its data item — made canonical for the item's
// data type as the quality check does on the way in (trimmed, empty as
// NULL, dates, numbers and logicals in one form), then as
// internal/agent/source reads a column of that type. It also checks that
// the keys come in strictly increasing key order, which the merge needs.
type CheckRows struct {
	cols  []CheckColumn
	qc    *quality.Checker
	key   []int // positions of the key items, in key order
	order source.KeyOrder
	in    []string
	prev  source.Key
}

// ErrCheckKey means a side's rows do not come in the order of the
// resource's key, or a key is missing: the check cannot merge them.
var ErrCheckKey = errors.New("keys out of order or missing")

// NewCheckRows prepares the reading of rows of cols.
func NewCheckRows(cols []CheckColumn) (*CheckRows, error) {
	items := make([]quality.Item, len(cols))
	c := &CheckRows{cols: cols, in: make([]string, len(cols))}
	for i, col := range cols {
		items[i] = quality.Item{Name: col.Item, MachineName: col.Item, DataType: col.DataType}
		if col.Key > 0 {
			c.key = append(c.key, i)
		}
	}
	slices.SortFunc(c.key, func(a, b int) int { return cols[a].Key - cols[b].Key })
	for n, i := range c.key {
		if cols[i].Key != n+1 {
			return nil, fmt.Errorf("check columns: %w: key positions are not 1…%d", ErrCheckKey, len(c.key))
		}
		c.order = append(c.order, cols[i].DataType)
	}
	if len(c.key) == 0 {
		return nil, fmt.Errorf("check columns: %w: no key item", ErrCheckKey)
	}
	qc, err := quality.Compile(items, nil)
	if err != nil {
		return nil, fmt.Errorf("check columns: %w", err)
	}
	c.qc = qc
	return c, nil
}

// Order is how the check's keys sort: by the key items' data types.
func (c *CheckRows) Order() source.KeyOrder { return c.order }

// After makes the next row's key have to sort after k (nil: anything).
func (c *CheckRows) After(k source.Key) { c.prev = slices.Clone(k) }

// Row reads one row's values (in the columns' order, nil = NULL) and
// returns it with its key. The row's key must sort after the last one.
func (c *CheckRows) Row(vals []*string) (source.Row, source.Key, error) {
	for i := range c.in {
		c.in[i] = ""
		if i < len(vals) && vals[i] != nil {
			c.in[i] = *vals[i]
		}
	}
	canon, _ := c.qc.Check(c.in)
	row := make(source.Row, len(c.cols))
	for i, v := range canon {
		if v == "" {
			row[i] = source.Value{Null: true}
			continue
		}
		row[i] = source.Canonical(c.cols[i].DataType, v)
	}
	k := make(source.Key, len(c.key))
	for n, i := range c.key {
		if row[i].Null {
			return nil, nil, fmt.Errorf("%w: the key item %s is empty in a row", ErrCheckKey, c.cols[i].Item)
		}
		k[n] = row[i].Text
	}
	if c.prev != nil && c.order.Compare(c.prev, k) >= 0 {
		return nil, nil, fmt.Errorf("%w: %s came after %s", ErrCheckKey, k, c.prev)
	}
	c.prev = k
	return row, k, nil
}
