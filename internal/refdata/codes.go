package refdata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Code is one entry of a code table.
type Code struct {
	Code  string `json:"code" doc:"代码 / code"`
	Label string `json:"label" doc:"名称 / label"`
}

// TableInfo describes a code table.
type TableInfo struct {
	Name      string    `json:"name" doc:"代码表名称，质量规则 code:名称 引用 / name, as quality rules cite it (code:NAME)"`
	Title     string    `json:"title,omitempty" doc:"说明，如 人的性别代码 / title"`
	Source    string    `json:"source,omitempty" doc:"来源 / where it was loaded from"`
	UpdatedAt time.Time `json:"updated_at"`
	Codes     int       `json:"codes" doc:"代码数 / number of codes"`
}

// Table is a code table with its codes in file order.
type Table struct {
	TableInfo
	Entries []Code `json:"entries"`
}

// Sex is the name of the GB/T 2261.1 sex code table the platform ships.
const Sex = "GB/T 2261.1"

// Ethnicity is the name of the GB/T 3304 ethnic group table the platform
// ships.
const Ethnicity = "GB/T 3304"

// defaults are the code tables every platform starts with; an
// administrator's upload of the same name replaces them.
var defaults = []Table{
	{TableInfo: TableInfo{Name: Sex, Title: "人的性别代码 / sex", Source: "GB/T 2261.1-2003"}, Entries: []Code{
		{"0", "未知的性别"}, {"1", "男性"}, {"2", "女性"}, {"9", "未说明的性别"}}},
	{TableInfo: TableInfo{Name: Ethnicity, Title: "中国各民族名称的罗马字母拼写法和代码 / ethnic groups", Source: "GB/T 3304-1991"}, Entries: ethnicGroups()},
}

func ethnicGroups() []Code {
	names := strings.Fields(`汉族 蒙古族 回族 藏族 维吾尔族 苗族 彝族 壮族 布依族 朝鲜族 满族 侗族 瑶族 白族 土家族 哈尼族 哈萨克族 傣族 黎族 傈僳族
		佤族 畲族 高山族 拉祜族 水族 东乡族 纳西族 景颇族 柯尔克孜族 土族 达斡尔族 仫佬族 羌族 布朗族 撒拉族 毛南族 仡佬族 锡伯族 阿昌族 普米族
		塔吉克族 怒族 乌孜别克族 俄罗斯族 鄂温克族 德昂族 保安族 裕固族 京族 塔塔尔族 独龙族 鄂伦春族 赫哲族 门巴族 珞巴族 基诺族`)
	out := make([]Code, 0, len(names)+2)
	for i, n := range names {
		out = append(out, Code{fmt.Sprintf("%02d", i+1), n})
	}
	return append(out, Code{"97", "其他"}, Code{"98", "外国血统中国籍人士"})
}

var codeColumns = []column{
	{name: "code", aliases: []string{"代码"}, required: true},
	{name: "label", aliases: []string{"名称", "含义", "label_zh"}, required: true},
}

// ParseCodesCSV reads a code table from CSV with the header code,label.
func ParseCodesCSV(r io.Reader) ([]Code, error) {
	t, err := readCSV(r, codeColumns)
	if err != nil {
		return nil, err
	}
	codes := make([]Code, len(t.rows))
	for i, row := range t.rows {
		codes[i] = Code{Code: t.get(row, "code"), Label: t.get(row, "label")}
	}
	return codes, checkCodes(codes, t.lines)
}

// ParseCodesJSON reads a code table from JSON: [{"code":…,"label":…}, …].
func ParseCodesJSON(r io.Reader) ([]Code, error) {
	var codes []Code
	dec := json.NewDecoder(io.LimitReader(r, 16<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&codes); err != nil {
		return nil, ErrJSON
	}
	if len(codes) == 0 {
		return nil, ErrEmpty
	}
	for i := range codes {
		codes[i].Code, codes[i].Label = strings.TrimSpace(codes[i].Code), strings.TrimSpace(codes[i].Label)
	}
	return codes, checkCodes(codes, nil)
}

// checkCodes checks every code; rows are the file lines of CSV codes, or
// nil when codes come from JSON (then the row is the 1-based position).
func checkCodes(codes []Code, rows []int) error {
	if len(codes) > maxRows {
		return ErrTooManyRows
	}
	seen := make(map[string]bool, len(codes))
	for i, c := range codes {
		row := i + 1
		if rows != nil {
			row = rows[i]
		}
		switch {
		case c.Code == "" || utf8.RuneCountInString(c.Code) > 64:
			return rowError(ErrCode, row, "code")
		case seen[c.Code]:
			return rowError(ErrCodeTwice, row, "code")
		case c.Label == "" || utf8.RuneCountInString(c.Label) > 200:
			return rowError(ErrLabel, row, "label")
		}
		seen[c.Code] = true
	}
	return nil
}

// validTableName: quality rules cite a table as code:NAME in a
// semicolon-separated list, so a name holds no semicolon.
func validTableName(name string) bool {
	if name == "" || utf8.RuneCountInString(name) > 64 || strings.ContainsAny(name, ";\\") {
		return false
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// ReplaceCodeTable creates the code table name, or replaces all its codes,
// all or nothing. Only the platform administrator maintains code tables.
func (s *Service) ReplaceCodeTable(ctx context.Context, actor policy.Actor, name, title string, codes []Code, source string) (TableInfo, error) {
	name, title = strings.TrimSpace(name), strings.TrimSpace(title)
	if err := s.authorize(ctx, actor, "code_table", name); err != nil {
		return TableInfo{}, err
	}
	switch {
	case !validTableName(name):
		return TableInfo{}, ErrTableName
	case utf8.RuneCountInString(title) > 200:
		return TableInfo{}, ErrTableTitle
	case len(codes) == 0:
		return TableInfo{}, ErrEmpty
	}
	if err := checkCodes(codes, nil); err != nil {
		return TableInfo{}, err
	}
	info := TableInfo{Name: name, Title: title, Source: source, UpdatedAt: store.Now(), Codes: len(codes)}
	created := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if created, err = writeTable(ctx, tx, Table{TableInfo: info, Entries: codes}, true); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return TableInfo{}, fmt.Errorf("replace code table %s: %w", name, err)
	}
	s.invalidate()
	return info, s.audit.Append(ctx, audit.By(actor, "refdata.code_table_replace", "code_table", name, audit.ResultOK,
		map[string]any{"codes": len(codes), "created": created, "source": source}))
}

// writeTable writes a code table in tx. With replace false it leaves an
// existing table alone. It reports whether the table is new.
func writeTable(ctx context.Context, tx *store.Tx, t Table, replace bool) (bool, error) {
	res, err := tx.Exec(ctx, "INSERT INTO code_tables (name, title, source, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
		t.Name, t.Title, t.Source, t.UpdatedAt)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	created := n == 1
	if !created {
		if !replace {
			return false, nil
		}
		if _, err := tx.Exec(ctx, "UPDATE code_tables SET title = ?, source = ?, updated_at = ? WHERE name = ?", t.Title, t.Source, t.UpdatedAt, t.Name); err != nil {
			return false, err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM code_table_codes WHERE table_name = ?", t.Name); err != nil {
			return false, err
		}
	}
	const batch = 200
	for start := 0; start < len(t.Entries); start += batch {
		part := t.Entries[start:min(start+batch, len(t.Entries))]
		values := make([]string, len(part))
		args := make([]any, 0, 4*len(part))
		for i, c := range part {
			values[i] = "(" + store.Placeholders(4) + ")"
			args = append(args, t.Name, c.Code, c.Label, start+i)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO code_table_codes (table_name, code, label, position) VALUES "+strings.Join(values, ", "), args...); err != nil {
			return false, err
		}
	}
	return created, nil
}

// EnsureDefaults loads the code tables the platform ships (GB/T 2261.1
// sex codes, GB/T 3304 ethnic groups) where no table of that name exists
// yet, so catalog entries can cite them from the first start. Servers
// starting together are safe: the first one writes them.
func (s *Service) EnsureDefaults(ctx context.Context) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, t := range defaults {
			t.UpdatedAt = store.Now()
			if _, err := writeTable(ctx, tx, t, false); err != nil {
				return fmt.Errorf("code table %s: %w", t.Name, err)
			}
		}
		return nil
	})
	if err == nil {
		s.invalidate()
	}
	return err
}

// CodeTables lists the code tables by name.
func (s *Service) CodeTables(ctx context.Context) ([]TableInfo, error) {
	list, err := store.All(ctx, s.db, scanTableInfo, `SELECT t.name, t.title, t.source, t.updated_at,
		(SELECT COUNT(*) FROM code_table_codes c WHERE c.table_name = t.name) FROM code_tables t ORDER BY t.name`)
	if list == nil {
		list = []TableInfo{}
	}
	return list, err
}

func scanTableInfo(r store.Row) (TableInfo, error) {
	var t TableInfo
	return t, r.Scan(&t.Name, &t.Title, &t.Source, &t.UpdatedAt, &t.Codes)
}

// CodeTable returns one code table with its codes.
func (s *Service) CodeTable(ctx context.Context, name string) (Table, error) {
	info, err := scanTableInfo(s.db.QueryRow(ctx, `SELECT t.name, t.title, t.source, t.updated_at,
		(SELECT COUNT(*) FROM code_table_codes c WHERE c.table_name = t.name) FROM code_tables t WHERE t.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Table{}, ErrTableMissing
	}
	if err != nil {
		return Table{}, err
	}
	codes, err := store.All(ctx, s.db, func(r store.Row) (Code, error) {
		var c Code
		return c, r.Scan(&c.Code, &c.Label)
	}, "SELECT code, label FROM code_table_codes WHERE table_name = ? ORDER BY position", name)
	return Table{TableInfo: info, Entries: codes}, err
}
