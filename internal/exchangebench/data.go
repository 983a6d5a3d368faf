package exchangebench

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"govshare/internal/agent/source"
	"govshare/internal/catalog"
	"govshare/internal/exchange/wire"
)

// The provider's business table: ten columns of the usual kinds (integer
// key, text of several lengths, a one-character code, a date, a decimal, a
// logical, a date-time and a change number), synthetic people, nothing
// real. change_seq is the job's increasing column: every insert and every
// update takes the next value of a sequence, so a job in mode key sees
// both, and a single writer never commits them out of order.
const (
	sourceTable   = "people"
	sourceSeq     = "people_change_numbers"
	targetTable   = "people_copy"
	baselineTable = "people_baseline"
	// baselineRuns is how many times the baseline runs (the fastest
	// counts).
	baselineRuns = 3
)

// columns are the table's columns in order, with their PostgreSQL types.
var columns = []struct{ name, typ string }{
	{"person_id", "bigint NOT NULL"},
	{"name", "varchar(20) NOT NULL"},
	{"sex", "char(1) NOT NULL"},
	{"birth_date", "date NOT NULL"},
	{"region_code", "varchar(6) NOT NULL"},
	{"phone", "varchar(20)"},
	{"monthly_income", "numeric(12,2)"},
	{"verified", "boolean NOT NULL"},
	{"updated_at", "timestamp NOT NULL"},
	{"change_seq", "bigint NOT NULL"},
}

func columnList() string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// items are the catalog entry's data items, one per column, with the cheap
// quality rules a real entry carries.
func items() []catalog.DataItem {
	return []catalog.DataItem{
		{Name: "人员编号", MachineName: "person_id", DataType: "I", Length: 18, Key: true},
		{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, QualityRule: "required;length:20"},
		{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, QualityRule: "required"},
		{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8, QualityRule: "required;date_range:1900-01-01..today"},
		{Name: "户籍行政区划", MachineName: "region_code", DataType: "C", Length: 6, QualityRule: "required"},
		{Name: "手机号码", MachineName: "phone", DataType: "C", Length: 20, QualityRule: "phone"},
		{Name: "月收入(元)", MachineName: "monthly_income", DataType: "N", Length: 12, QualityRule: "range:0..1000000"},
		{Name: "已核验", MachineName: "verified", DataType: "L", Length: 1},
		{Name: "更新时间", MachineName: "updated_at", DataType: "T", Length: 14},
		{Name: "变更序号", MachineName: "change_seq", DataType: "I", Length: 18},
	}
}

// mapping maps every column to the item of the same name.
func mapping() []wire.ColumnMapping {
	out := make([]wire.ColumnMapping, len(columns))
	for i, c := range columns {
		out[i] = wire.ColumnMapping{Column: c.name, Item: c.name}
	}
	return out
}

// Names for the generated rows: common surnames and given-name characters.
const (
	surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余杜叶程魏苏吕丁任沈姚卢"
	given    = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力成云鹏宇浩然思雨欣怡子轩梓涵诗琪俊杰"
)

// fillSource creates the provider's table and fills it with rows people
// on the server itself (generate_series), then adds the primary key and
// the change number's unique index, and the sequence after the last row.
func fillSource(ctx context.Context, c *pgx.Conn, rows int) error {
	defs := make([]string, len(columns))
	for i, col := range columns {
		defs[i] = col.name + " " + col.typ
	}
	stmts := []string{
		"CREATE TABLE " + sourceTable + " (" + strings.Join(defs, ", ") + ")",
		fmt.Sprintf(`INSERT INTO %s (%s)
			SELECT i,
				s[1 + i %% cardinality(s)] || g[1 + (i / 50) %% cardinality(g)] || CASE WHEN i %% 3 = 0 THEN '' ELSE g[1 + (i / 7) %% cardinality(g)] END,
				CASE WHEN i %% 2 = 0 THEN '2' ELSE '1' END,
				DATE '1930-01-01' + (i * 7919 %% 29220)::int,
				r[1 + i %% cardinality(r)],
				(13000000000 + (i * 7919 + 12345) %% 1000000000)::text,
				round((2000 + (i * 31) %% 30000 + (i %% 100) / 100.0)::numeric, 2),
				i %% 3 <> 0,
				TIMESTAMP '2026-01-01 08:00:00' + i * INTERVAL '1 second',
				i
			FROM (SELECT string_to_array('%s', NULL) AS s, string_to_array('%s', NULL) AS g,
				ARRAY['350102', '350103', '350104', '350105', '350111', '350112', '350121', '350182'] AS r) AS a,
				generate_series(1::bigint, %d) AS i`, sourceTable, columnList(), surnames, given, rows),
		"ALTER TABLE " + sourceTable + " ADD PRIMARY KEY (person_id)",
		"CREATE UNIQUE INDEX " + sourceTable + "_change_seq ON " + sourceTable + " (change_seq)",
		fmt.Sprintf("CREATE SEQUENCE %s START WITH %d", sourceSeq, rows+1),
		"ANALYZE " + sourceTable,
	}
	for _, q := range stmts {
		if _, err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("provider table: %w", err)
		}
	}
	return nil
}

// copyBaseline copies the provider's table into a table of the same shape
// (primary key included) in the consumer's database the plain way: COPY
// (SELECT …) TO STDOUT on one connection piped into COPY … FROM STDIN on
// the other, as `psql -c 'COPY … TO STDOUT' | psql -c 'COPY … FROM STDIN'`
// would. It returns the rows copied.
func copyBaseline(ctx context.Context, src, dst *pgx.Conn) (int64, error) {
	defs := make([]string, len(columns))
	for i, col := range columns {
		defs[i] = col.name + " " + col.typ
	}
	if _, err := dst.Exec(ctx, "CREATE TABLE "+baselineTable+" ("+strings.Join(defs, ", ")+", PRIMARY KEY (person_id))"); err != nil {
		return 0, fmt.Errorf("baseline table: %w", err)
	}
	pr, pw := io.Pipe()
	out := make(chan error, 1)
	go func() {
		_, err := src.PgConn().CopyTo(ctx, pw, "COPY (SELECT "+columnList()+" FROM "+sourceTable+") TO STDOUT")
		pw.CloseWithError(err)
		out <- err
	}()
	tag, err := dst.PgConn().CopyFrom(ctx, pr, "COPY "+baselineTable+" ("+columnList()+") FROM STDIN")
	pr.CloseWithError(err)
	if rerr := <-out; rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return 0, fmt.Errorf("COPY between the databases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// fingerprint sums over every row and column of a table, so the copies can
// be compared with the source without moving the rows: the count, sums of
// the numbers, dates and instants, and of a hash of the texts. The source
// and the baseline hold updated_at without a zone, which the exchange
// reads as China Standard Time; its target holds the instant.
type fingerprint struct {
	Rows, Keys, Seqs, Days, Verified, TextHash int64
	Income, Epoch                              string
}

func readFingerprint(ctx context.Context, c *pgx.Conn, table string, zoned bool) (fingerprint, error) {
	instant := "updated_at AT TIME ZONE 'Asia/Shanghai'"
	if zoned {
		instant = "updated_at"
	}
	var f fingerprint
	err := c.QueryRow(ctx, `SELECT count(*), COALESCE(sum(person_id), 0), COALESCE(sum(change_seq), 0), COALESCE(sum(birth_date - DATE '1900-01-01'), 0),
			count(*) FILTER (WHERE verified),
			COALESCE(sum(hashtext(name || '|' || sex || '|' || region_code || '|' || COALESCE(phone, '-'))), 0),
			COALESCE(sum(monthly_income), 0)::text, COALESCE(sum(extract(epoch FROM `+instant+`)), 0)::text
		FROM `+table).Scan(&f.Rows, &f.Keys, &f.Seqs, &f.Days, &f.Verified, &f.TextHash, &f.Income, &f.Epoch)
	if err != nil {
		return f, fmt.Errorf("fingerprint of %s: %w", table, err)
	}
	return f, nil
}

// sourceKind is the node's kind of database for the provider and consumer.
const sourceKind = source.Postgres
