package resource

import (
	"context"
	"encoding/csv"
	"io"
	"strconv"

	"github.com/xuri/excelize/v2"
)

// templateHeader is "名称(machine_name)" for each visible column, the form
// mapHeader reads back.
func templateHeader(cols []Column) []string {
	h := make([]string, len(cols))
	for i, c := range cols {
		h[i] = c.Name + "(" + c.MachineName + ")"
	}
	return h
}

var typeNames = map[string][2]string{
	"C": {"字符型", "text"}, "N": {"数值型", "number"}, "Y": {"货币型", "currency"}, "D": {"日期型(YYYY-MM-DD 或 YYYYMMDD)", "date (YYYY-MM-DD or YYYYMMDD)"},
	"T": {"日期时间型", "date and time"}, "L": {"逻辑型(是/否、true/false、1/0)", "logical (true/false, 1/0)"}, "M": {"备注型", "memo"},
	"G": {"二进制(Base64)", "binary (Base64)"}, "B": {"双精度", "double"}, "I": {"整数型", "integer"}, "F": {"浮点型", "float"},
}

// WriteTemplateXLSX writes the upload template of a resource: the header
// on the first sheet ("数据"), and on the second ("说明") each item's
// machine name, type, length, key and rules in words.
func (s *Service) WriteTemplateXLSX(ctx context.Context, code string, w io.Writer) error {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return err
	}
	cols := r.Visible()
	chk, err := s.checker(ctx, r.Columns)
	if err != nil {
		return err
	}
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", "数据"); err != nil {
		return err
	}
	sw, err := f.NewStreamWriter("数据")
	if err != nil {
		return err
	}
	row := make([]any, len(cols))
	for i, h := range templateHeader(cols) {
		row[i] = h
	}
	if err := sw.SetRow("A1", row); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	if _, err := f.NewSheet("说明"); err != nil {
		return err
	}
	set := func(cell string, v any) error { return f.SetCellValue("说明", cell, v) }
	head := []string{"信息项 / item", "字段名 / column", "类型 / type", "长度 / length", "主键 / key", "规则 / rules"}
	for i, h := range head {
		cell, _ := excelize.CoordinatesToCellName(i+1, 1)
		if err := set(cell, h); err != nil {
			return err
		}
	}
	desc := chk.Describe()
	for i, c := range cols {
		key := ""
		if c.Key {
			key = "是 / yes"
		}
		t := typeNames[c.DataType]
		rule := ""
		if i < len(desc) {
			rule = desc[i][0] + " / " + desc[i][1]
		}
		for j, v := range []any{c.Name, c.MachineName, t[0] + " / " + t[1], c.Length, key, rule} {
			cell, _ := excelize.CoordinatesToCellName(j+1, i+2)
			if err := set(cell, v); err != nil {
				return err
			}
		}
	}
	last := strconv.Itoa(len(cols) + 2)
	if err := set("A"+last, "第一张表的第一行是表头，请勿修改；如需删除记录，增加一列“_op”并填 delete。/ Keep the header row of the first sheet; to delete a record add a column “_op” with delete."); err != nil {
		return err
	}
	return f.Write(w)
}

// WriteTemplateCSV writes the header row of a resource's CSV template.
func (s *Service) WriteTemplateCSV(ctx context.Context, code string, w io.Writer) error {
	r, err := s.ByCode(ctx, code)
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte{0xEF, 0xBB, 0xBF}); err != nil { // so spreadsheet programs read UTF-8
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(templateHeader(r.Visible())); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}
