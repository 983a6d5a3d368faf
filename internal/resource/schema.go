package resource

import (
	"database/sql"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"govshare/internal/catalog"
	"govshare/internal/store"
)

// Column is one data item as the resource's table holds it.
type Column struct {
	Name        string `json:"name" doc:"信息项名称 / item name"`
	MachineName string `json:"machine_name" doc:"字段名 / column"`
	DataType    string `json:"data_type"`
	Length      int    `json:"length"`
	Key         bool   `json:"key,omitempty"`
	MaskRule    string `json:"mask_rule,omitempty"`
	QualityRule string `json:"quality_rule,omitempty"`
	// Hidden columns were removed from the catalog in a later version:
	// their data is kept, no longer shown or filled.
	Hidden bool `json:"hidden,omitempty"`
	// Since is the entry version that added the column.
	Since int `json:"since"`
	// Bytewise text columns compare and sort by their bytes on
	// PostgreSQL (COLLATE "C"), whatever the database's collation.
	Bytewise bool `json:"bytewise,omitempty" doc:"按字节排序 / ordered by its bytes"`
}

// columnOf makes the column of a data item. Text keys and items that
// must be unique are bytewise: they are identifiers, compared for
// equality (the same in every deterministic collation) and ordered only
// to page through them, and their indexes, built after every load of an
// empty resource, sort in half the time without the locale's rules.
// SQLite compares text by its bytes anyway. Columns mounted before keep
// the database's collation; a batch's stage takes each column's own.
func columnOf(it catalog.DataItem, version int) Column {
	c := Column{Name: it.Name, MachineName: it.MachineName, DataType: it.DataType, Length: it.Length, Key: it.Key,
		MaskRule: it.MaskRule, QualityRule: it.QualityRule, Since: version}
	t := sqlType(store.Postgres, c)
	c.Bytewise = (it.Key || hasRule(it.QualityRule, "unique")) && (t == "TEXT" || strings.HasPrefix(t, "VARCHAR"))
	return c
}

// columnDef defines a column in a CREATE or ALTER TABLE.
func columnDef(d store.Dialect, c Column) string {
	def := quote(c.MachineName) + " " + sqlType(d, c)
	if d == store.Postgres && c.Bytewise {
		def += ` COLLATE "C"`
	}
	return def
}

// quote makes an identifier safe in both dialects. Machine names are
// already limited to [a-z][a-z0-9_]*; quoting also keeps reserved words
// (order, user, group) usable.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// sqlType maps a catalog data type to a column type of the dialect.
func sqlType(d store.Dialect, c Column) string {
	if d == store.Postgres {
		switch c.DataType {
		case "C":
			if c.Length > 0 && c.Length <= 10485760 {
				return fmt.Sprintf("VARCHAR(%d)", c.Length)
			}
			return "TEXT"
		case "N", "Y":
			return "NUMERIC"
		case "D":
			return "DATE"
		case "T":
			return "TIMESTAMPTZ"
		case "L":
			return "BOOLEAN"
		case "G":
			return "BYTEA"
		case "B", "F":
			return "DOUBLE PRECISION"
		case "I":
			return "BIGINT"
		}
		return "TEXT"
	}
	switch c.DataType {
	case "N", "Y":
		return "NUMERIC"
	case "L", "I":
		return "INTEGER"
	case "G":
		return "BLOB"
	case "B", "F":
		return "REAL"
	}
	return "TEXT"
}

// selectExpr reads a column back as its canonical text (as quality.Check
// returns it), for a canonicalText to receive. A binary item is its
// base64 on one line (PostgreSQL's encode breaks it every 76
// characters); SQLite has no base64 function, so there it is read as its
// bytes and encoded by canonicalText.
func selectExpr(d store.Dialect, alias string, c Column) string {
	col := alias + quote(c.MachineName)
	if d == store.Postgres {
		switch c.DataType {
		case "G":
			return "translate(encode(" + col + ", 'base64'), chr(10), '')"
		case "T":
			return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
		case "L":
			return "CASE WHEN " + col + " THEN 'true' WHEN NOT " + col + " THEN 'false' END"
		}
		return col + "::text"
	}
	switch c.DataType {
	case "G":
		return col
	case "L":
		return "CASE " + col + " WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"
	}
	return "CAST(" + col + " AS TEXT)"
}

// canonicalText receives a value selectExpr reads: its canonical text,
// or, for a binary item on SQLite, its bytes, encoded here.
type canonicalText struct {
	sql.NullString
	binary bool
}

func (t *canonicalText) Scan(src any) error {
	if b, ok := src.([]byte); ok && t.binary {
		t.String, t.Valid = base64.StdEncoding.EncodeToString(b), true
		return nil
	}
	return t.NullString.Scan(src)
}

// canonicalTexts makes the receivers of the values of cols.
func canonicalTexts(cols []Column) []canonicalText {
	out := make([]canonicalText, len(cols))
	for i, c := range cols {
		out[i].binary = c.DataType == "G"
	}
	return out
}

// hasBinary says whether any of cols is a binary item.
func hasBinary(cols []Column) bool {
	for _, c := range cols {
		if c.DataType == "G" {
			return true
		}
	}
	return false
}

// dbValue turns a canonical value (as quality.Check returns it) into what
// the driver stores in the column; "" is NULL.
func dbValue(c Column, v string) (any, error) {
	if v == "" {
		return nil, nil
	}
	switch c.DataType {
	case "I":
		return strconv.ParseInt(v, 10, 64)
	case "L":
		return strconv.ParseBool(v)
	case "B", "F":
		return strconv.ParseFloat(v, 64)
	case "G":
		return base64.StdEncoding.DecodeString(v)
	}
	return v, nil
}

// tables names the two tables of a resource: the records and their
// history. Batches on their way in are staged in temporary tables of
// their own (stage.go); resources mounted before that have an unused
// "<table>_stage" table.
type tables struct{ main, hist string }

func tablesOf(name string) tables {
	return tables{main: quote(name), hist: quote(name + "_hist")}
}

const lineageCols = `"_batch_created" BIGINT NOT NULL, "_batch_updated" BIGINT NOT NULL, "_source" TEXT NOT NULL,
	"_created_at" TIMESTAMP NOT NULL, "_updated_at" TIMESTAMP NOT NULL, "_deleted_at" TIMESTAMP`

// createDDL builds the statements that create a resource's tables.
//
// The records table holds each record's current state with its lineage;
// a deleted record stays, marked deleted, holding its last values. The
// history table holds the states a record left behind: when a batch
// changes, deletes or brings back a record, the state it had goes to the
// history first, with the batch, source and time that wrote it. So a
// record's versions are its history followed by its current state, and a
// record loaded once and never changed has no history row. (Resources
// mounted before this kept every state in the history, the current one
// too; History reads both.)
//
// The key is the records table's primary key on PostgreSQL. On SQLite it
// is a unique index of its own, which, unlike a primary key there, can be
// dropped to load an empty table and be built after the load; tables
// mounted before have it as their primary key and are loaded through the
// stage.
func createDDL(d store.Dialect, name string, cols []Column) []string {
	t := tablesOf(name)
	var defs, keys []string
	for _, c := range cols {
		def := columnDef(d, c)
		if c.Key {
			def += " NOT NULL"
			keys = append(keys, quote(c.MachineName))
		}
		defs = append(defs, def)
	}
	ts := "TIMESTAMP"
	histID := `"_hid" INTEGER PRIMARY KEY`
	if d == store.Postgres {
		ts = "TIMESTAMPTZ"
		histID = `"_hid" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY`
	}
	lineage := strings.ReplaceAll(lineageCols, "TIMESTAMP", ts)
	userCols := strings.Join(defs, ", ")
	keyList := strings.Join(keys, ", ")
	main := fmt.Sprintf("CREATE TABLE %s (%s, %s, PRIMARY KEY (%s))", t.main, userCols, lineage, keyList)
	if d == store.SQLite {
		main = fmt.Sprintf("CREATE TABLE %s (%s, %s)", t.main, userCols, lineage)
	}
	out := []string{
		main,
		// "_op" is how the state came about (insert, update, delete),
		// "_batch", "_source" and "_at" which batch wrote it, from where,
		// when; "What did this record say at T" is the last state at or
		// before T.
		fmt.Sprintf(`CREATE TABLE %s (%s, %s, "_op" TEXT NOT NULL, "_batch" BIGINT NOT NULL, "_source" TEXT NOT NULL, "_at" %s NOT NULL)`,
			t.hist, histID, userCols, ts),
		fmt.Sprintf("CREATE INDEX %s ON %s (%s, \"_at\")", quote(name+"_hist_key"), t.hist, keyList),
	}
	if d == store.SQLite {
		out = append(out, keyIndexDDL(name, cols))
	}
	return out
}

// keyIndexName is the SQLite key index of a resource's records table.
func keyIndexName(name string) string { return name + "_key" }

// keyIndexDDL builds the records table's unique key index (SQLite).
func keyIndexDDL(name string, cols []Column) string {
	var keys []string
	for _, c := range cols {
		if c.Key {
			keys = append(keys, quote(c.MachineName))
		}
	}
	return fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s (%s)", quote(keyIndexName(name)), tablesOf(name).main, strings.Join(keys, ", "))
}

// addColumnDDL adds a column to the two tables.
func addColumnDDL(d store.Dialect, name string, c Column) []string {
	t := tablesOf(name)
	def := columnDef(d, c)
	return []string{
		"ALTER TABLE " + t.main + " ADD COLUMN " + def,
		"ALTER TABLE " + t.hist + " ADD COLUMN " + def,
	}
}

// uniqueIndexName is the index of a column checked for uniqueness.
func uniqueIndexName(name string, c Column) string { return name + "_u_" + c.MachineName }

// uniqueIndexDDL indexes a column checked for uniqueness.
func uniqueIndexDDL(name string, c Column) string {
	return fmt.Sprintf("CREATE INDEX %s ON %s (%s)", quote(uniqueIndexName(name, c)), tablesOf(name).main, quote(c.MachineName))
}
