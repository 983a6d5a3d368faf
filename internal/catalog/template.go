package catalog

import (
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"
)

// The batch template follows the columns of the national catalog guide
// (《政务信息资源目录编制指南(试行)》): one sheet of resources, one of their
// data items joined by 序号, and the instructions. Import, export and the
// blank template all use the tables below, so the three cannot drift apart.

// Sheet names of the template.
const (
	SheetEntries = "信息资源"
	SheetItems   = "信息项"
	SheetHelp    = "填写说明"
	SheetErrors  = "错误报告"
)

// enum is a closed list of values, each with the Chinese label the
// template shows. Import accepts either; export writes the label.
type enum []struct{ value, label string }

func (e enum) parse(s string) (string, bool) {
	s = strings.TrimSpace(s)
	for _, x := range e {
		if strings.EqualFold(s, x.value) || s == x.label {
			return x.value, true
		}
	}
	return "", false
}

func (e enum) label(v string) string {
	for _, x := range e {
		if x.value == v {
			return x.label
		}
	}
	return v
}

func (e enum) labels() []string {
	out := make([]string, len(e))
	for i, x := range e {
		out[i] = x.label
	}
	return out
}

// describe lists the choices for a message: "无条件共享(unconditional)、…".
func (e enum) describe() string {
	out := make([]string, len(e))
	for i, x := range e {
		out[i] = x.label + "(" + x.value + ")"
	}
	return strings.Join(out, "、")
}

var (
	shareTypes = enum{{"unconditional", "无条件共享"}, {"conditional", "有条件共享"}, {"none", "不予共享"}}
	methods    = enum{{"api", "接口"}, {"file", "文件下载"}, {"exchange", "数据库交换"}, {"verify", "比对核验"}}
	openTypes  = enum{{"open", "无条件开放"}, {"on_request", "依申请开放"}, {"closed", "不予开放"}}
	cycles     = enum{{"realtime", "实时"}, {"daily", "每日"}, {"weekly", "每周"}, {"monthly", "每月"}, {"quarterly", "每季度"},
		{"half_yearly", "每半年"}, {"yearly", "每年"}, {"other", "其他"}}
	formatClasses = enum{{"file", "电子文件"}, {"spreadsheet", "电子表格"}, {"database", "数据库"}, {"image", "图形图像"},
		{"streaming", "流媒体"}, {"api", "接口"}, {"self_describing", "自描述格式"}, {"other", "其他"}}
	sensitivities = enum{{"public", "公开"}, {"internal", "内部"}, {"sensitive", "敏感"}, {"secret", "涉密"}}
	dataTypes     = enum{{"C", "字符型"}, {"N", "数值型"}, {"Y", "货币型"}, {"D", "日期型"}, {"T", "日期时间型"}, {"L", "逻辑型"},
		{"M", "备注型"}, {"G", "通用型"}, {"B", "双精度型"}, {"I", "整型"}, {"F", "浮点型"}}
	yesNo = enum{{"true", "是"}, {"false", "否"}}
)

// column is one column of a template sheet. The header reads
// "label(key)"; the importer finds columns by key, so users may reorder
// them or add their own.
type column struct {
	key      string
	label    string
	required string // 是 / 否 / 条件 in the instructions
	width    float64
	help     string
	list     enum // drop-down values, for single-choice columns
	text     bool // stored as text so Excel keeps codes as typed
}

func (c column) header() string { return c.label + "(" + c.key + ")" }

var entryColumns = []column{
	{key: "ref", label: "序号", required: "是", width: 8, text: true,
		help: "本文件内信息资源的编号，如 1、2、3，不得重复；「信息项」表的「所属序号」据此关联信息资源"},
	{key: "name", label: "信息资源名称", required: "是", width: 28, help: "不超过100个字符"},
	{key: "class_code", label: "信息资源分类代码", required: "是", width: 14, text: true,
		help: "平台已有的信息资源分类代码：类1位(1基础、2主题、3部门)+项2位+目3位+细目，如 101 人口基础信息、201 健康保障"},
	{key: "abstract", label: "摘要", required: "是", width: 40, help: "说明资源的内容与范围，不超过2000个字符"},
	{key: "format_class", label: "格式分类", required: "是", width: 12, list: formatClasses, help: "信息资源格式的分类"},
	{key: "format_type", label: "格式类型", required: "是", width: 12, text: true, help: "须属于所选格式分类：" + formatTypeHelp()},
	{key: "keywords", label: "关键字", required: "否", width: 20, help: "多个关键字用“；”“;”或“,”分隔，最多20个"},
	{key: "share_type", label: "共享类型", required: "是", width: 12, list: shareTypes, help: "有条件共享须填共享条件；不予共享须填不予共享依据"},
	{key: "share_condition", label: "共享条件", required: "条件", width: 24, help: "共享类型为有条件共享时必填"},
	{key: "share_basis", label: "不予共享依据", required: "条件", width: 24, help: "共享类型为不予共享时必填：法律、行政法规或政策依据"},
	{key: "share_methods", label: "共享方式", required: "条件", width: 18,
		help: "共享类型不是不予共享时必填，可多选，用“；”分隔：" + methods.describe()},
	{key: "open_type", label: "开放类型", required: "是", width: 12, list: openTypes, help: "依申请开放须填开放条件；涉密信息资源只能不予开放"},
	{key: "open_condition", label: "开放条件", required: "条件", width: 24, help: "开放类型为依申请开放时必填"},
	{key: "update_cycle", label: "更新周期", required: "是", width: 10, list: cycles, help: "数据更新的频率"},
	{key: "related_codes", label: "关联资源代码", required: "否", width: 20, text: true, help: "已发布信息资源的代码，如 101/000001；多个用“；”分隔"},
	{key: "classified", label: "是否涉密", required: "否", width: 10, list: yesNo, help: "是 / 否，空白为否；外网部署不得登记涉密信息资源"},
}

var itemColumns = []column{
	{key: "ref", label: "所属序号", required: "是", width: 10, text: true, help: "该信息项所属信息资源在「信息资源」表中的序号"},
	{key: "name", label: "信息项名称", required: "是", width: 20, help: "不超过64个字符"},
	{key: "machine_name", label: "字段名", required: "是", width: 18, text: true,
		help: "以小写字母开头，只含小写字母、数字和下划线，不超过63位；同一信息资源内不得重复"},
	{key: "data_type", label: "数据类型", required: "是", width: 10, text: true, list: dataTypeLetters(), help: "填字母：" + dataTypes.describe()},
	{key: "length", label: "长度", required: "是", width: 8, help: "1到100000之间的整数"},
	{key: "key", label: "是否主键", required: "否", width: 10, list: yesNo, help: "是 / 否，空白为否"},
	{key: "description", label: "说明", required: "否", width: 30, help: "信息项的含义、取值说明"},
	{key: "sensitivity", label: "敏感级别", required: "否", width: 10, list: sensitivities, help: sensitivities.describe()},
	{key: "mask_rule", label: "脱敏规则", required: "否", width: 14, text: true,
		help: "keep(m,n) 保留前m位和后n位、surname 只保留姓氏、district 保留到区县、hash 哈希、replace(字符) 整体替换"},
	{key: "quality_rule", label: "质量规则", required: "否", width: 20, text: true, help: "如 required;citizen_id"},
}

func formatTypeHelp() string {
	var parts []string
	for _, fc := range formatClasses {
		parts = append(parts, fc.label+" "+strings.Join(FormatTypes[fc.value], "/"))
	}
	return strings.Join(parts, "；")
}

// dataTypeLetters is the drop-down of data types: the letters, since a
// label list would not fit Excel's 255-character limit with room to spare.
func dataTypeLetters() enum {
	e := make(enum, len(dataTypes))
	for i, x := range dataTypes {
		e[i].value, e[i].label = x.value, x.value
	}
	return e
}

// WriteTemplate writes the blank batch-import template.
func WriteTemplate(w io.Writer) error {
	return WriteXLSX(w, func(func(Content, error) bool) {})
}

// WriteXLSX writes contents in the template layout, numbering them 1, 2, …
// Rows are streamed to temporary files, so the workbook is never held in
// memory whole.
func WriteXLSX(w io.Writer, contents iter.Seq2[Content, error]) error {
	wb, err := newWorkbook()
	if err != nil {
		return err
	}
	defer wb.f.Close()
	for c, err := range contents {
		if err != nil {
			return err
		}
		if err := wb.add(c); err != nil {
			return err
		}
	}
	return wb.finish(w)
}

// workbook writes the two data sheets through excelize stream writers.
type workbook struct {
	f                 *excelize.File
	entries, items    *excelize.StreamWriter
	entryRow, itemRow int
}

func newWorkbook() (*workbook, error) {
	f := excelize.NewFile()
	wb := &workbook{f: f, entryRow: 1, itemRow: 1}
	fail := func(err error) (*workbook, error) {
		f.Close()
		return nil, fmt.Errorf("build template: %w", err)
	}
	if err := f.SetSheetName("Sheet1", SheetEntries); err != nil {
		return fail(err)
	}
	for _, name := range []string{SheetItems, SheetHelp} {
		if _, err := f.NewSheet(name); err != nil {
			return fail(err)
		}
	}
	header, err := f.NewStyle(&excelize.Style{
		Font:      &excelize.Font{Bold: true},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}},
		Border:    []excelize.Border{{Type: "bottom", Color: "8EA9DB", Style: 1}},
		Alignment: &excelize.Alignment{Vertical: "center", WrapText: true},
	})
	if err != nil {
		return fail(err)
	}
	text, err := f.NewStyle(&excelize.Style{NumFmt: 49}) // "@": keep codes as typed
	if err != nil {
		return fail(err)
	}
	if err := writeHelp(f, header); err != nil {
		return fail(err)
	}
	// Drop-downs belong to the worksheet, not its rows: they must be added
	// before the stream writer takes the sheet over.
	if err := addDropDowns(f, SheetEntries, entryColumns); err != nil {
		return fail(err)
	}
	if err := addDropDowns(f, SheetItems, itemColumns); err != nil {
		return fail(err)
	}
	if wb.entries, err = startSheet(f, SheetEntries, entryColumns, header, text); err != nil {
		return fail(err)
	}
	if wb.items, err = startSheet(f, SheetItems, itemColumns, header, text); err != nil {
		return fail(err)
	}
	f.SetActiveSheet(0)
	return wb, nil
}

func addDropDowns(f *excelize.File, sheet string, cols []column) error {
	for i, c := range cols {
		if c.list == nil {
			continue
		}
		name, _ := excelize.ColumnNumberToName(i + 1)
		dv := excelize.NewDataValidation(true)
		dv.Sqref = fmt.Sprintf("%s2:%s%d", name, name, excelize.TotalRows)
		if err := dv.SetDropList(c.list.labels()); err != nil {
			return err
		}
		dv.SetInput(c.label, c.help)
		if err := f.AddDataValidation(sheet, dv); err != nil {
			return err
		}
	}
	return nil
}

func startSheet(f *excelize.File, sheet string, cols []column, header, text int) (*excelize.StreamWriter, error) {
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		return nil, err
	}
	row := make([]any, len(cols))
	for i, c := range cols {
		if err := sw.SetColWidth(i+1, i+1, c.width); err != nil {
			return nil, err
		}
		if c.text {
			if err := sw.SetColStyle(i+1, i+1, text); err != nil {
				return nil, err
			}
		}
		row[i] = excelize.Cell{StyleID: header, Value: c.header()}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return nil, err
	}
	return sw, sw.SetRow("A1", row, excelize.RowOpts{Height: 32})
}

// add writes one resource and its data items.
func (wb *workbook) add(c Content) error {
	wb.entryRow++
	ref := wb.entryRow - 1
	related := strings.Join(c.RelatedCodes, "；")
	ms := make([]string, len(c.ShareMethods))
	for i, m := range c.ShareMethods {
		ms[i] = methods.label(string(m))
	}
	row := []any{ref, c.Name, c.ClassCode, c.Abstract, formatClasses.label(c.FormatClass), c.FormatType,
		strings.Join(c.Keywords, "；"), shareTypes.label(string(c.ShareType)), c.ShareCondition, c.ShareBasis,
		strings.Join(ms, "；"), openTypes.label(string(c.OpenType)), c.OpenCondition, cycles.label(c.UpdateCycle),
		related, yesNo.label(strconv.FormatBool(c.Classified))}
	if err := wb.entries.SetRow(cell(1, wb.entryRow), row); err != nil {
		return err
	}
	for _, it := range c.Items {
		wb.itemRow++
		row := []any{ref, it.Name, it.MachineName, it.DataType, it.Length, yesNo.label(strconv.FormatBool(it.Key)),
			it.Description, sensitivities.label(it.Sensitivity), it.MaskRule, it.QualityRule}
		if err := wb.items.SetRow(cell(1, wb.itemRow), row); err != nil {
			return err
		}
	}
	return nil
}

func (wb *workbook) finish(w io.Writer) error {
	if err := wb.entries.Flush(); err != nil {
		return err
	}
	if err := wb.items.Flush(); err != nil {
		return err
	}
	return wb.f.Write(w)
}

func writeHelp(f *excelize.File, header int) error {
	lines := []string{
		"政务信息资源目录批量导入模板（依据《政务信息资源目录编制指南(试行)》）",
		"「信息资源」表每行一条信息资源，「信息项」表每行一个信息项，以「序号」关联；每条信息资源至少一个信息项。",
		"表头括号内为字段的机器名，导入时按它识别列，请勿修改表头；可调整列的顺序。选项列可填中文，也可填括号内的英文值。",
		"导入时逐格检查，整个文件全部正确才导入（全部导入为本部门的草稿），否则一条也不导入，并可下载标出错误单元格的错误报告。",
	}
	for i, l := range lines {
		if err := f.SetCellStr(SheetHelp, cell(1, i+1), l); err != nil {
			return err
		}
	}
	top := len(lines) + 2
	if err := f.SetSheetRow(SheetHelp, cell(1, top), &[]string{"工作表", "列", "表头", "是否必填", "填写说明", "可选值"}); err != nil {
		return err
	}
	if err := f.SetCellStyle(SheetHelp, cell(1, top), cell(6, top), header); err != nil {
		return err
	}
	r := top
	for _, sheet := range []struct {
		name string
		cols []column
	}{{SheetEntries, entryColumns}, {SheetItems, itemColumns}} {
		for i, c := range sheet.cols {
			r++
			letter, _ := excelize.ColumnNumberToName(i + 1)
			values := ""
			if c.list != nil {
				values = strings.Join(c.list.labels(), "、")
			}
			if err := f.SetSheetRow(SheetHelp, cell(1, r), &[]string{sheet.name, letter, c.header(), c.required, c.help, values}); err != nil {
				return err
			}
		}
	}
	for col, width := range []float64{10, 6, 26, 10, 70, 40} {
		name, _ := excelize.ColumnNumberToName(col + 1)
		if err := f.SetColWidth(SheetHelp, name, name, width); err != nil {
			return err
		}
	}
	return nil
}

func cell(col, row int) string {
	name, _ := excelize.CoordinatesToCellName(col, row)
	return name
}

// columnLetter is "A" for the first column.
func columnLetter(i int) string {
	name, _ := excelize.ColumnNumberToName(i + 1)
	return name
}

// headerKey finds the machine name in a header cell: "信息资源名称(name)",
// "信息资源名称（name）", or the bare label of a known column.
func headerKey(h string, cols []column) string {
	h = strings.TrimSpace(strings.NewReplacer("（", "(", "）", ")").Replace(h))
	if open := strings.LastIndex(h, "("); open >= 0 && strings.HasSuffix(h, ")") {
		key := strings.TrimSpace(h[open+1 : len(h)-1])
		if slices.ContainsFunc(cols, func(c column) bool { return c.key == key }) {
			return key
		}
		h = strings.TrimSpace(h[:open])
	}
	for _, c := range cols {
		if c.label == h {
			return c.key
		}
	}
	return ""
}
