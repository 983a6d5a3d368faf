package source

import (
	"strconv"
	"strings"
)

// maxLength is the longest length a catalog data item takes.
const maxLength = 100000

// typeInfo is what a database type means here.
type typeInfo struct {
	kind       kind
	dataType   string // suggested catalog data type
	length     int
	scale      int
	collatable bool
}

// classify reads a database type as dialect d declares it — information
// schema text ("decimal(20,6)", "timestamp(3) with time zone",
// "tinyint(1) unsigned") or a driver's name for it ("NUMERIC",
// "TIMESTAMPTZ") — and says how to read it and which catalog type it
// suggests.
func classify(d string, typ string) typeInfo {
	t := strings.ToLower(strings.TrimSpace(typ))
	base, params := t, []int(nil)
	if i := strings.IndexByte(t, '('); i >= 0 {
		base = strings.TrimSpace(t[:i])
		rest := t[i+1:]
		if j := strings.IndexByte(rest, ')'); j >= 0 {
			for _, p := range strings.Split(rest[:j], ",") {
				if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
					params = append(params, n)
				}
			}
			rest = rest[j+1:]
		}
		if !strings.HasPrefix(base, "enum") && !strings.HasPrefix(base, "set") {
			base = strings.TrimSpace(base + " " + strings.TrimSpace(rest))
		}
	}
	base = strings.TrimSpace(strings.NewReplacer(" unsigned", "", " zerofill", "", "unsigned ", "", " signed", "").Replace(base))
	param := func(i, def int) int {
		if i < len(params) && params[i] > 0 {
			return params[i]
		}
		return def
	}
	text := func(n int) typeInfo {
		ti := typeInfo{kind: kText, dataType: "C", length: n, collatable: d == Postgres}
		if n <= 0 || n > 4000 {
			ti.dataType, ti.length = "M", min(max(n, maxLength), maxLength)
		}
		return ti
	}
	fsp := func(n int) int { // date-time length with fractional digits
		if p := param(0, 0); p > 0 {
			return n + 1 + p
		}
		return n
	}

	switch {
	case base == "bool" || base == "boolean" || (d == MySQL && base == "tinyint" && param(0, 0) == 1) ||
		(base == "bit" && param(0, 1) == 1):
		return typeInfo{kind: kBool, dataType: "L", length: 1}
	case strings.Contains(base, "with time zone") || base == "timestamptz" || (d == MySQL && base == "timestamp"):
		if strings.HasPrefix(base, "time ") || base == "timetz" {
			return typeInfo{kind: kTimeOfDay, dataType: "C", length: fsp(8)}
		}
		return typeInfo{kind: kDateTimeTZ, dataType: "T", length: fsp(19)}
	case base == "timestamp" || base == "datetime" || strings.HasPrefix(base, "timestamp without") || base == "smalldatetime":
		return typeInfo{kind: kDateTime, dataType: "T", length: fsp(19)}
	case base == "date":
		return typeInfo{kind: kDate, dataType: "D", length: 10}
	case base == "time" || strings.HasPrefix(base, "time without"):
		return typeInfo{kind: kTimeOfDay, dataType: "C", length: fsp(8)}
	case base == "money" || base == "smallmoney" || base == "currency":
		return typeInfo{kind: kDecimal, dataType: "Y", length: 19, scale: 2}
	case base == "decimal" || base == "numeric" || base == "dec" || base == "fixed" || base == "number":
		return typeInfo{kind: kDecimal, dataType: "N", length: min(param(0, 38), maxLength), scale: param(1, 0)}
	case base == "real" && d != SQLite, base == "float4", base == "float" && d == MySQL && param(0, 0) <= 24:
		return typeInfo{kind: kFloat32, dataType: "F", length: 9}
	case base == "double" || base == "double precision" || base == "float8" || base == "float" || base == "real":
		return typeInfo{kind: kFloat64, dataType: "B", length: 17}
	case base == "bytea" || strings.HasSuffix(base, "blob") || base == "binary" || base == "varbinary" || base == "bit" || base == "image":
		return typeInfo{kind: kBytes, dataType: "G", length: min(param(0, maxLength), maxLength)}
	}
	if n, ok := intDigits[base]; ok {
		return typeInfo{kind: kInt, dataType: "I", length: n}
	}
	switch {
	case base == "varchar" || base == "character varying" || base == "char" || base == "character" || base == "bpchar" ||
		base == "nvarchar" || base == "nchar" || base == "varchar2" || base == "nvarchar2":
		if d != Postgres && len(params) == 0 {
			return text(255) // a driver's type name, without the declared length
		}
		return text(param(0, 0))
	case base == "tinytext":
		return text(255)
	case base == "uuid":
		return typeInfo{kind: kText, dataType: "C", length: 36}
	case strings.HasPrefix(base, "enum") || strings.HasPrefix(base, "set"):
		n := 1
		for _, label := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(t, base), "("), ")"), ",") {
			n = max(n, len([]rune(strings.Trim(strings.TrimSpace(label), "'"))))
		}
		if strings.HasPrefix(base, "set") {
			n = 255
		}
		return typeInfo{kind: kText, dataType: "C", length: min(n, maxLength)}
	}
	if d == SQLite { // SQLite's affinity rules, for any other declared type
		switch {
		case t == "":
			return typeInfo{kind: kAny, dataType: "C", length: 255}
		case strings.Contains(t, "int"):
			return typeInfo{kind: kInt, dataType: "I", length: 20}
		case strings.Contains(t, "char") || strings.Contains(t, "clob") || strings.Contains(t, "text"):
			return text(0)
		case strings.Contains(t, "blob"):
			return typeInfo{kind: kBytes, dataType: "G", length: maxLength}
		case strings.Contains(t, "real") || strings.Contains(t, "floa") || strings.Contains(t, "doub"):
			return typeInfo{kind: kFloat64, dataType: "B", length: 17}
		}
		return typeInfo{kind: kDecimal, dataType: "N", length: 38}
	}
	switch base {
	case "text", "mediumtext", "longtext", "clob", "citext", "json", "jsonb", "xml", "ntext", "name":
		ti := text(0)
		ti.collatable = d == Postgres && base != "json" && base != "jsonb" && base != "xml"
		return ti
	}
	return typeInfo{kind: kText, dataType: "C", length: 255}
}

// intDigits is the catalog length of integer types: their digits and sign.
var intDigits = map[string]int{
	"tinyint": 4, "smallint": 6, "int2": 6, "smallserial": 6, "year": 4,
	"mediumint": 8, "int": 11, "integer": 11, "int4": 11, "serial": 11,
	"bigint": 20, "int8": 20, "bigserial": 20, "unsigned bigint": 20, "unsigned int": 11,
	"unsigned smallint": 6, "unsigned tinyint": 4, "unsigned mediumint": 8,
	"oid": 10, "xid": 10, "cid": 10,
}

func (ti typeInfo) column(name, dbType string, nullable bool) Column {
	return Column{
		Name: name, DatabaseType: dbType, Nullable: nullable,
		DataType: ti.dataType, Length: max(ti.length, 1), Scale: ti.scale,
		kind: ti.kind, collatable: ti.collatable,
	}
}
