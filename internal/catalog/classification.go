package catalog

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"govshare/internal/apperr"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Classification is a node of the resource classification tree
// (信息资源分类): 类 (1 digit), 项 (+2), 目 (+3), 细目 (+ any digits).
type Classification struct {
	Code       string `json:"code" doc:"分类代码 / code"`
	Name       string `json:"name" doc:"分类名称 / name"`
	ParentCode string `json:"parent_code,omitempty" doc:"上级分类代码 / parent code"`
	Level      int    `json:"level" doc:"层级：1类 2项 3目 4细目 / level"`
	Kind       string `json:"kind" doc:"base 基础 / theme 主题 / dept 部门"`
}

var classCodeRE = regexp.MustCompile(`^[123]([0-9]{2}([0-9]{3}([0-9]+)?)?)?$`)

// levelOf returns the level a code's length implies (0 if malformed).
func levelOf(code string) int {
	switch {
	case !classCodeRE.MatchString(code):
		return 0
	case len(code) == 1:
		return 1
	case len(code) == 3:
		return 2
	case len(code) == 6:
		return 3
	default:
		return 4
	}
}

func parentOf(code string) string {
	switch levelOf(code) {
	case 2:
		return code[:1]
	case 3:
		return code[:3]
	case 4:
		return code[:6]
	}
	return ""
}

func kindOf(code string) string {
	switch code[0] {
	case '1':
		return "base"
	case '2':
		return "theme"
	}
	return "dept"
}

// DefaultTree is the classification every platform starts with: the three
// roots, the five base libraries and the themes of SPEC §1.
var DefaultTree = []Classification{
	{Code: "1", Name: "基础信息资源"},
	{Code: "101", Name: "人口基础信息"},
	{Code: "102", Name: "法人单位基础信息"},
	{Code: "103", Name: "自然资源和空间地理基础信息"},
	{Code: "104", Name: "电子证照基础信息"},
	{Code: "105", Name: "社会信用基础信息"},
	{Code: "2", Name: "主题信息资源"},
	{Code: "201", Name: "健康保障"},
	{Code: "202", Name: "社会保障"},
	{Code: "203", Name: "食品药品安全"},
	{Code: "204", Name: "安全生产"},
	{Code: "205", Name: "价格监管"},
	{Code: "206", Name: "能源安全"},
	{Code: "207", Name: "信用体系"},
	{Code: "208", Name: "城乡建设"},
	{Code: "209", Name: "社区治理"},
	{Code: "210", Name: "生态环保"},
	{Code: "211", Name: "应急维稳"},
	{Code: "212", Name: "教育文化"},
	{Code: "3", Name: "部门信息资源"},
}

var (
	ErrClassCode    = apperr.Invalid("catalog.class_code_invalid", "code", "分类代码格式无效：类1位(1/2/3)、项2位、目3位、细目若干位", "malformed classification code: 类 1 digit (1/2/3), 项 2, 目 3, 细目 more")
	ErrClassName    = apperr.Invalid("catalog.class_name_invalid", "name", "分类名称不能为空，且不超过64个字符", "the classification name is required, at most 64 characters")
	ErrClassParent  = apperr.Invalid("catalog.class_parent_missing", "parent_code", "上级分类不存在", "the parent classification does not exist")
	ErrClassTaken   = apperr.New(409, "catalog.class_code_taken", "分类代码已存在", "the classification code exists").OnField("code")
	ErrClassUnknown = apperr.Invalid("catalog.class_unknown", "class_code", "信息资源分类不存在", "unknown classification")
)

// EnsureDefaultTree adds the default classifications that are missing.
func (s *Service) EnsureDefaultTree(ctx context.Context) error {
	now := store.Now()
	for _, c := range DefaultTree {
		var parent any
		if p := parentOf(c.Code); p != "" {
			parent = p
		}
		if _, err := s.db.Exec(ctx, `INSERT INTO classifications (code, name, parent_code, level, kind, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO NOTHING`, c.Code, c.Name, parent, levelOf(c.Code), kindOf(c.Code), now, now); err != nil {
			return fmt.Errorf("default classification %s: %w", c.Code, err)
		}
	}
	return nil
}

// Classifications lists the tree in code order (parents before children).
func (s *Service) Classifications(ctx context.Context) ([]Classification, error) {
	rows, err := s.db.Query(ctx, "SELECT code, name, COALESCE(parent_code, ''), level, kind FROM classifications ORDER BY code")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Classification
	for rows.Next() {
		var c Classification
		if err := rows.Scan(&c.Code, &c.Name, &c.ParentCode, &c.Level, &c.Kind); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SaveClassification adds or renames a classification.
func (s *Service) SaveClassification(ctx context.Context, actor policy.Actor, c Classification) (Classification, error) {
	if err := s.authorize(ctx, actor, policy.ClassificationManage, 0, "classification", c.Code); err != nil {
		return c, err
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error { return saveClassification(ctx, tx, &c) })
	if err != nil {
		return c, err
	}
	return c, s.record(ctx, actor, "catalog.classification.save", "classification", c.Code, map[string]any{"name": c.Name})
}

func saveClassification(ctx context.Context, tx *store.Tx, c *Classification) error {
	c.Code, c.Name = strings.TrimSpace(c.Code), strings.TrimSpace(c.Name)
	if c.Level = levelOf(c.Code); c.Level == 0 {
		return ErrClassCode
	}
	if c.Name == "" || len([]rune(c.Name)) > 64 {
		return ErrClassName
	}
	c.ParentCode, c.Kind = parentOf(c.Code), kindOf(c.Code)
	var parent any
	if c.ParentCode != "" {
		parent = c.ParentCode
		if err := tx.QueryRow(ctx, "SELECT code FROM classifications WHERE code = ?", c.ParentCode).Scan(new(string)); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrClassParent
			}
			return err
		}
	}
	now := store.Now()
	_, err := tx.Exec(ctx, `INSERT INTO classifications (code, name, parent_code, level, kind, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (code) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at`, c.Code, c.Name, parent, c.Level, c.Kind, now, now)
	return err
}

// ImportClassifications loads a whole tree (code, name, parent code) in one
// transaction: all rows or none. Rows may come in any order.
func (s *Service) ImportClassifications(ctx context.Context, actor policy.Actor, rows []Classification) (int, error) {
	if err := s.authorize(ctx, actor, policy.ClassificationManage, 0, "classification", ""); err != nil {
		return 0, err
	}
	// Parents first: sorting by code length puts 类 before 项 before 目.
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	sortByLen(order, rows)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, i := range order {
			c := rows[i]
			if err := saveClassification(ctx, tx, &c); err != nil {
				if ae, ok := apperr.As(err); ok {
					return ae.OnRow(i + 1)
				}
				return fmt.Errorf("row %d: %w", i+1, err)
			}
			if want := strings.TrimSpace(rows[i].ParentCode); want != "" && want != c.ParentCode {
				return ErrClassParent.OnRow(i + 1)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(rows), s.record(ctx, actor, "catalog.classification.import", "classification", "", map[string]any{"rows": len(rows)})
}

func sortByLen(order []int, rows []Classification) {
	sort.SliceStable(order, func(a, b int) bool {
		return len(strings.TrimSpace(rows[order[a]].Code)) < len(strings.TrimSpace(rows[order[b]].Code))
	})
}

func (s *Service) classExists(ctx context.Context, code string) error {
	err := s.db.QueryRow(ctx, "SELECT code FROM classifications WHERE code = ?", code).Scan(new(string))
	if errors.Is(err, sql.ErrNoRows) {
		return ErrClassUnknown
	}
	return err
}

// ParseClassificationCSV reads a tree as CSV rows of code, name, parent
// code. A header row and a UTF-8 byte order mark are skipped. Row numbers
// in errors are the file's lines.
func ParseClassificationCSV(r io.Reader) ([]Classification, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var out []Classification
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, apperr.Invalid("catalog.class_csv_invalid", "file", "CSV格式错误："+err.Error(), "malformed CSV: "+err.Error()).OnRow(line)
		}
		if line == 1 && len(rec) > 0 {
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if levelOf(strings.TrimSpace(rec[0])) == 0 && !strings.ContainsAny(strings.TrimSpace(rec[0]), "0123456789") {
				continue // header
			}
		}
		if len(rec) < 2 || len(rec) > 3 {
			return nil, apperr.Invalid("catalog.class_csv_columns", "file", "每行应为：分类代码,分类名称,上级分类代码", "each row is: code, name, parent code").OnRow(line)
		}
		c := Classification{Code: strings.TrimSpace(rec[0]), Name: strings.TrimSpace(rec[1])}
		if len(rec) == 3 {
			c.ParentCode = strings.TrimSpace(rec[2])
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, apperr.Invalid("catalog.class_csv_empty", "file", "文件中没有分类", "the file holds no classifications")
	}
	return out, nil
}
