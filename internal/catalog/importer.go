package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"govshare/internal/apperr"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Batch import registers many entries at once from the template
// (ImportXLSX) or from JSON (ImportJSON). Every cell is checked by the same
// rules as one entry registered online (Content.Validate), every problem is
// reported with its cell, and the file is imported whole or not at all.

// ImportError is one problem in an import file, pointing at its cell.
type ImportError struct {
	Sheet     string `json:"sheet" doc:"工作表(JSON导入为 json) / sheet"`
	Row       int    `json:"row" doc:"行号(从1起，JSON导入为序号+1) / 1-based row"`
	Column    string `json:"column" doc:"列字母(JSON导入为字段名) / column letter, or the field for JSON"`
	Header    string `json:"header" doc:"表头 / header"`
	Value     string `json:"value" doc:"单元格的值 / the value found"`
	Code      string `json:"code" doc:"错误代码 / error code"`
	MessageZH string `json:"message_zh"`
	MessageEN string `json:"message_en"`
}

// ImportResult says what an import did, or why it did nothing.
type ImportResult struct {
	Entries int           `json:"entries" doc:"导入的信息资源数 / entries imported"`
	Items   int           `json:"items" doc:"导入的信息项数 / data items imported"`
	IDs     []int64       `json:"ids,omitempty" doc:"新条目ID(按文件顺序) / new entry IDs in file order"`
	Errors  []ImportError `json:"errors,omitempty" doc:"错误(有错误时不导入任何条目) / problems; when any, nothing was imported"`
	// ErrorsTruncated is true when there were more than MaxImportErrors.
	ErrorsTruncated bool `json:"errors_truncated,omitempty"`
}

// MaxImportErrors bounds the problems collected from one file, so a file of
// garbage cannot fill the memory with messages.
const MaxImportErrors = 10000

// Errors of a batch import.
var (
	ErrImportRejected = apperr.New(422, "catalog.import_rejected",
		"导入文件有错误，未导入任何信息资源；请按错误报告修改后重新导入",
		"the file has errors and nothing was imported; correct them as the error report shows and import again")
	ErrImportFile = apperr.New(422, "catalog.import_file_invalid",
		"无法读取文件，请上传用模板填写的 .xlsx 文件", "the file cannot be read; upload an .xlsx file filled in from the template")
)

// Workbook limits: worksheet and shared-string parts larger than
// importXMLInMemory are unzipped to temporary files and streamed from there
// (excelize's UnzipXMLSizeLimit), and no workbook may unzip to more than
// importUnzipLimit (a zip bomb guard).
const (
	importXMLInMemory = 1 << 20
	importUnzipLimit  = 1 << 30
)

// ImportXLSX registers every resource of a filled-in template as a draft of
// the actor's department, in one transaction: all of them, or none when any
// cell is wrong (then the result lists every problem and the error is
// ErrImportRejected). progress, when not nil, is told how many entries have
// been written so far, every 100 entries and at the end.
//
// Memory: the upload itself is held (excelize reads the zip into memory),
// the worksheets are streamed row by row from temporary files, and the
// data items sheet is kept as a compact map from 序号 to its items, because
// items and resources may come in any order. The resources sheet is read
// twice — once to check it, once inside the transaction to insert — so the
// resources are never all held, and the transaction is only open while
// inserting a file already known to be good.
func (s *Service) ImportXLSX(ctx context.Context, actor policy.Actor, r io.Reader, progress func(done int)) (ImportResult, error) {
	// Authorize before opening the transaction: a refusal is audited, and
	// the audit writer must not wait on our transaction.
	if err := s.authorize(ctx, actor, policy.CatalogEdit, actor.DeptID, "catalog_entry", ""); err != nil {
		return ImportResult{}, err
	}
	f, err := excelize.OpenReader(r, excelize.Options{RawCellValue: true, UnzipXMLSizeLimit: importXMLInMemory, UnzipSizeLimit: importUnzipLimit})
	if err != nil {
		return ImportResult{}, ErrImportFile
	}
	defer f.Close()
	im := &xlsxImport{s: s, f: f, items: map[string]*itemSet{}, seen: map[string]int{}, classes: classMemo{s: s}}
	if err := im.check(ctx); err != nil {
		return ImportResult{}, err
	}
	if len(im.errs.list) > 0 {
		return im.errs.result(), ErrImportRejected
	}
	var res ImportResult
	now := s.now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		return im.eachRow(ctx, SheetEntries, entryColumns, func(r *sheetRow) error {
			c, ref := parseEntry(r)
			c.Items = im.items[ref].items
			// Checked in the first pass; Validate again for its normalizing.
			if err := c.Validate(s.cfg.External); err != nil {
				return fmt.Errorf("import row %d: %w", r.num, err)
			}
			id, err := s.insertDraft(ctx, tx, actor, &c, now)
			if err != nil {
				return fmt.Errorf("import row %d: %w", r.num, err)
			}
			delete(im.items, ref) // let the items go as soon as they are written
			res.IDs = append(res.IDs, id)
			res.Entries++
			res.Items += len(c.Items)
			if progress != nil && res.Entries%100 == 0 {
				progress(res.Entries)
			}
			return nil
		})
	})
	if err != nil {
		return ImportResult{}, err
	}
	if progress != nil && res.Entries%100 != 0 {
		progress(res.Entries)
	}
	return res, s.record(ctx, actor, "catalog.entry.import", "catalog_entry", "",
		map[string]any{"format": "xlsx", "entries": res.Entries, "items": res.Items, "first_id": res.IDs[0], "last_id": res.IDs[len(res.IDs)-1]})
}

// ImportJSON registers contents as drafts of the actor's department by the
// same rule as ImportXLSX: all or none, every problem reported (Sheet
// "json", Row the index + 1, Column the field such as "items[2].length").
func (s *Service) ImportJSON(ctx context.Context, actor policy.Actor, contents []Content) (ImportResult, error) {
	if err := s.authorize(ctx, actor, policy.CatalogEdit, actor.DeptID, "catalog_entry", ""); err != nil {
		return ImportResult{}, err
	}
	var errs collector
	if len(contents) == 0 {
		errs.add(ImportError{Sheet: "json", Code: errImportEmpty.Code, MessageZH: errImportEmpty.ZH, MessageEN: errImportEmpty.EN})
	}
	classes := classMemo{s: s}
	valid := make([]Content, len(contents))
	for i := range contents {
		// Validating normalizes in place, and repairs after a problem:
		// work on a copy that shares nothing with the caller.
		c := contents[i]
		c.Items, c.Keywords = slices.Clone(c.Items), slices.Clone(c.Keywords)
		c.ShareMethods, c.RelatedCodes = slices.Clone(c.ShareMethods), slices.Clone(c.RelatedCodes)
		report := func(ae *apperr.Error) {
			errs.add(ImportError{Sheet: "json", Row: i + 1, Column: ae.Field, Header: fieldHeader(ae.Field), Value: clip(fieldValue(&c, ae.Field)),
				Code: ae.Code, MessageZH: ae.ZH, MessageEN: ae.EN})
		}
		if code := strings.TrimSpace(c.ClassCode); code != "" {
			known, err := classes.knownCode(ctx, code)
			if err != nil {
				return ImportResult{}, err
			}
			if !known {
				report(ErrClassUnknown)
			}
		}
		validateAll(&c, s.cfg.External, report)
		valid[i] = c
	}
	if len(errs.list) > 0 {
		return errs.result(), ErrImportRejected
	}
	var res ImportResult
	now := s.now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for i := range valid {
			id, err := s.insertDraft(ctx, tx, actor, &valid[i], now)
			if err != nil {
				return fmt.Errorf("import entry %d: %w", i+1, err)
			}
			res.IDs = append(res.IDs, id)
			res.Entries++
			res.Items += len(valid[i].Items)
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, err
	}
	return res, s.record(ctx, actor, "catalog.entry.import", "catalog_entry", "",
		map[string]any{"format": "json", "entries": res.Entries, "items": res.Items, "first_id": res.IDs[0], "last_id": res.IDs[len(res.IDs)-1]})
}

// insertDraft writes one imported entry as CreateEntry does.
func (s *Service) insertDraft(ctx context.Context, tx *store.Tx, actor policy.Actor, c *Content, now time.Time) (int64, error) {
	draft, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO entries (dept_id, state, name, class_code, draft, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, actor.DeptID, Draft, c.Name, c.ClassCode, string(draft), actor.UserID, now, now).Scan(&id); err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, "INSERT INTO entry_events (entry_id, action, actor_id, note, at) VALUES (?, ?, ?, ?, ?)", id, "import", actor.UserID, "", now)
	return id, err
}

// Problems found across the file rather than in one field.
var (
	errImportEmpty   = apperr.New(422, "catalog.import_empty", "文件中没有信息资源", "the file holds no resources")
	errSheetMissing  = apperr.New(422, "catalog.import_sheet_missing", "缺少工作表，请使用平台提供的模板", "a sheet is missing; use the platform's template")
	errColumnMissing = apperr.New(422, "catalog.import_column_missing", "缺少此列，请勿修改模板的表头", "this column is missing; keep the template's headers")
	errRefRequired   = apperr.New(422, "catalog.import_ref_required", "请填写序号", "the row number (序号) is required")
	errRefDuplicate  = apperr.New(422, "catalog.import_ref_duplicate", "序号重复", "duplicate row number (序号)")
	errRefUnknown    = apperr.New(422, "catalog.import_ref_unknown", "所属序号在「信息资源」表中不存在", "no resource in the 信息资源 sheet has this row number")
	errItemsMissing  = apperr.New(422, "catalog.import_items_missing", "「信息项」表中没有此序号的信息项，每条信息资源至少需要一个信息项", "the 信息项 sheet has no data item for this resource; at least one is required")
	errYesNo         = apperr.New(422, "catalog.import_yes_no_invalid", "请填写“是”或“否”", "write 是 (yes) or 否 (no)")
)

const (
	errChoiceInvalid   = "不是可选值，请填写："
	errChoiceInvalidEN = "is not one of the choices: "
)

// collector gathers the problems of one import, one per cell.
type collector struct {
	list      []ImportError
	cells     map[string]bool
	truncated bool
}

func (c *collector) add(e ImportError) {
	key := e.Sheet + "\x00" + strconv.Itoa(e.Row) + "\x00" + e.Column
	if e.Column == "" {
		key += "\x00" + e.Code + "\x00" + e.Header
	}
	if c.cells[key] {
		return // the first problem of a cell is the one worth reading
	}
	if len(c.list) >= MaxImportErrors {
		c.truncated = true
		return
	}
	if c.cells == nil {
		c.cells = map[string]bool{}
	}
	c.cells[key] = true
	c.list = append(c.list, e)
}

// result returns the problems in reading order: resources sheet first,
// then the data items, each by row and column.
func (c *collector) result() ImportResult {
	order := func(sheet string) int {
		switch sheet {
		case SheetEntries:
			return 0
		case SheetItems:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(c.list, func(a, b ImportError) int {
		return cmp.Or(cmp.Compare(order(a.Sheet), order(b.Sheet)), cmp.Compare(a.Row, b.Row),
			cmp.Compare(len(a.Column), len(b.Column)), cmp.Compare(a.Column, b.Column))
	})
	return ImportResult{Errors: c.list, ErrorsTruncated: c.truncated}
}

// validateAll reports every problem of c, not only the first: after each
// one Validate reports, the field is given a harmless value and Validate
// asks again, so Validate stays the one set of rules. c is left repaired,
// which is harmless: content with problems is never stored.
func validateAll(c *Content, external bool, report func(*apperr.Error)) {
	for range 64 + 10*len(c.Items) + len(c.RelatedCodes) {
		err := c.Validate(external)
		if err == nil {
			return
		}
		ae, ok := apperr.As(err)
		if !ok {
			ae = apperr.Invalid("catalog.invalid", "", "内容无效", err.Error())
		}
		report(ae)
		if !repair(c, ae.Field) {
			return
		}
	}
}

func repair(c *Content, field string) bool {
	switch field {
	case "name":
		c.Name = "-"
	case "class_code":
		c.ClassCode = "1"
	case "abstract":
		c.Abstract = "-"
	case "format_class":
		// The format type cannot be judged without its class.
		c.FormatClass, c.FormatType = "other", "other"
	case "format_type":
		c.FormatType = FormatTypes[c.FormatClass][0]
	case "keywords":
		c.Keywords = c.Keywords[:min(len(c.Keywords), 20)]
	case "items":
		c.Items = []DataItem{{Name: "-", MachineName: "x", DataType: "C", Length: 1}}
	case "share_type":
		c.ShareType = ShareUnconditional
		if len(c.ShareMethods) == 0 {
			c.ShareMethods = []ShareMethod{MethodAPI}
		}
	case "share_condition":
		c.ShareCondition = "-"
	case "share_basis":
		c.ShareBasis = "-"
	case "share_methods":
		c.ShareMethods = []ShareMethod{MethodAPI}
	case "open_type":
		c.OpenType = OpenClosed
	case "open_condition":
		c.OpenCondition = "-"
	case "update_cycle":
		c.UpdateCycle = "other"
	case "classified":
		c.Classified = false
	default:
		if i, sub, ok := indexedField(field, "items"); ok && i < len(c.Items) {
			it := &c.Items[i]
			switch sub {
			case "name":
				it.Name = "-"
			case "machine_name":
				it.MachineName = fmt.Sprintf("x__%d", i)
			case "data_type":
				it.DataType = "C"
			case "length":
				it.Length = 1
			case "sensitivity":
				it.Sensitivity = ""
			case "mask_rule":
				it.MaskRule = ""
			default:
				return false
			}
			return true
		}
		if i, _, ok := indexedField(field, "related_codes"); ok && i < len(c.RelatedCodes) {
			c.RelatedCodes[i] = "-/-"
			return true
		}
		return false
	}
	return true
}

// indexedField splits "items[2].length" into 2 and "length".
func indexedField(field, list string) (int, string, bool) {
	rest, ok := strings.CutPrefix(field, list+"[")
	if !ok {
		return 0, "", false
	}
	num, sub, ok := strings.Cut(rest, "]")
	if !ok {
		return 0, "", false
	}
	i, err := strconv.Atoi(num)
	return i, strings.TrimPrefix(sub, "."), err == nil && i >= 0
}

// fieldValue renders a field of c as the user wrote it.
func fieldValue(c *Content, field string) string {
	if i, sub, ok := indexedField(field, "items"); ok {
		if i < len(c.Items) {
			return itemValue(&c.Items[i], sub)
		}
		return ""
	}
	if i, _, ok := indexedField(field, "related_codes"); ok {
		if i < len(c.RelatedCodes) {
			return c.RelatedCodes[i]
		}
		return ""
	}
	switch field {
	case "name":
		return c.Name
	case "class_code":
		return c.ClassCode
	case "abstract":
		return c.Abstract
	case "format_class":
		return c.FormatClass
	case "format_type":
		return c.FormatType
	case "keywords":
		return strings.Join(c.Keywords, "；")
	case "share_type":
		return string(c.ShareType)
	case "share_condition":
		return c.ShareCondition
	case "share_basis":
		return c.ShareBasis
	case "share_methods":
		ms := make([]string, len(c.ShareMethods))
		for i, m := range c.ShareMethods {
			ms[i] = string(m)
		}
		return strings.Join(ms, "；")
	case "open_type":
		return string(c.OpenType)
	case "open_condition":
		return c.OpenCondition
	case "update_cycle":
		return c.UpdateCycle
	case "classified":
		return strconv.FormatBool(c.Classified)
	}
	return ""
}

func itemValue(it *DataItem, key string) string {
	switch key {
	case "name":
		return it.Name
	case "machine_name":
		return it.MachineName
	case "data_type":
		return it.DataType
	case "length":
		return strconv.Itoa(it.Length)
	case "key":
		return strconv.FormatBool(it.Key)
	case "description":
		return it.Description
	case "sensitivity":
		return it.Sensitivity
	case "mask_rule":
		return it.MaskRule
	case "quality_rule":
		return it.QualityRule
	}
	return ""
}

// fieldHeader is the template header of a Content field.
func fieldHeader(field string) string {
	if _, sub, ok := indexedField(field, "items"); ok {
		return headerOf(itemColumns, sub)
	}
	if _, _, ok := indexedField(field, "related_codes"); ok {
		field = "related_codes"
	}
	return headerOf(entryColumns, field)
}

func headerOf(cols []column, key string) string {
	for _, c := range cols {
		if c.key == key {
			return c.header()
		}
	}
	return ""
}

// clip keeps an echoed value short enough for a message.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= 200 {
		return s
	}
	return string([]rune(s)[:200]) + "…"
}

// classMemo answers "does this classification exist" once per code.
type classMemo struct {
	s     *Service
	known map[string]bool
}

func (m *classMemo) knownCode(ctx context.Context, code string) (bool, error) {
	if ok, seen := m.known[code]; seen {
		return ok, nil
	}
	err := m.s.classExists(ctx, code)
	if err != nil && !errors.Is(err, ErrClassUnknown) {
		return false, err
	}
	if m.known == nil {
		m.known = map[string]bool{}
	}
	m.known[code] = err == nil
	return err == nil, nil
}

// itemSet is the data items of one 序号 and the rows they came from.
type itemSet struct {
	items []DataItem
	rows  []int32
}

// xlsxImport is one workbook being imported.
type xlsxImport struct {
	s       *Service
	f       *excelize.File
	errs    collector
	items   map[string]*itemSet // 序号 → its data items
	itemAt  map[string]int      // column key → column index in the items sheet
	seen    map[string]int      // 序号 → the resources row that took it
	classes classMemo
}

var errHeaders = errors.New("template headers missing")

// check reads the items sheet into memory and checks every resource row,
// collecting problems. It writes nothing.
func (im *xlsxImport) check(ctx context.Context) error {
	for _, sheet := range []string{SheetEntries, SheetItems} {
		if i, err := im.f.GetSheetIndex(sheet); err != nil || i < 0 {
			im.errs.add(ImportError{Sheet: sheet, Code: errSheetMissing.Code, MessageZH: errSheetMissing.ZH + "：" + sheet, MessageEN: errSheetMissing.EN + ": " + sheet})
		}
	}
	if len(im.errs.list) > 0 {
		return nil
	}
	err := im.eachRow(ctx, SheetItems, itemColumns, func(r *sheetRow) error {
		if im.itemAt == nil {
			im.itemAt = r.at
		}
		ref := strings.TrimSpace(r.val("ref"))
		it := parseItem(r)
		if ref == "" {
			r.fail("ref", errRefRequired.Code, "请填写所属序号", "the resource's row number (所属序号) is required")
			return nil
		}
		set := im.items[ref]
		if set == nil {
			set = &itemSet{}
			im.items[ref] = set
		}
		set.items = append(set.items, it)
		set.rows = append(set.rows, int32(r.num))
		return nil
	})
	if err != nil && !errors.Is(err, errHeaders) {
		return err
	}
	headersOK := err == nil
	entries := 0
	err = im.eachRow(ctx, SheetEntries, entryColumns, func(r *sheetRow) error {
		entries++
		if !headersOK {
			return nil
		}
		return im.checkEntry(ctx, r)
	})
	if err != nil && !errors.Is(err, errHeaders) {
		return err
	}
	if !headersOK || err != nil {
		return nil // the rows cannot be read without their headers
	}
	if entries == 0 {
		im.errs.add(ImportError{Sheet: SheetEntries, Code: errImportEmpty.Code, MessageZH: errImportEmpty.ZH, MessageEN: errImportEmpty.EN})
	}
	for ref, set := range im.items {
		if _, ok := im.seen[ref]; ok {
			continue
		}
		for _, row := range set.rows {
			im.errs.add(ImportError{Sheet: SheetItems, Row: int(row), Column: columnLetter(im.itemAt["ref"]), Header: headerOf(itemColumns, "ref"), Value: clip(ref),
				Code: errRefUnknown.Code, MessageZH: errRefUnknown.ZH, MessageEN: errRefUnknown.EN})
		}
	}
	return nil
}

func (im *xlsxImport) checkEntry(ctx context.Context, r *sheetRow) error {
	c, ref := parseEntry(r)
	set := im.items[ref]
	switch first, dup := im.seen[ref]; {
	case ref == "":
		r.fail("ref", errRefRequired.Code, errRefRequired.ZH, errRefRequired.EN)
	case dup:
		r.fail("ref", errRefDuplicate.Code, fmt.Sprintf("序号重复，与第%d行相同", first), fmt.Sprintf("duplicate row number, as in row %d", first))
	default:
		im.seen[ref] = r.num
		if set == nil {
			r.fail("ref", errItemsMissing.Code, errItemsMissing.ZH, errItemsMissing.EN)
		}
	}
	if set != nil {
		c.Items = set.items
	} else {
		// Reported above; do not let Validate stop at the missing items.
		c.Items = []DataItem{{Name: "-", MachineName: "x", DataType: "C", Length: 1}}
	}
	if code := strings.TrimSpace(c.ClassCode); code != "" {
		known, err := im.classes.knownCode(ctx, code)
		if err != nil {
			return err
		}
		if !known {
			r.fail("class_code", ErrClassUnknown.Code, ErrClassUnknown.ZH, ErrClassUnknown.EN)
		}
	}
	validateAll(&c, im.s.cfg.External, func(ae *apperr.Error) {
		if i, sub, ok := indexedField(ae.Field, "items"); ok && set != nil && i < len(set.items) {
			e := ImportError{Sheet: SheetItems, Row: int(set.rows[i]), Header: headerOf(itemColumns, sub), Value: clip(itemValue(&set.items[i], sub)),
				Code: ae.Code, MessageZH: ae.ZH, MessageEN: ae.EN}
			if col, ok := im.itemAt[sub]; ok {
				e.Column = columnLetter(col)
			}
			im.errs.add(e)
			return
		}
		key := ae.Field
		if key == "items" {
			key = "ref"
		} else if _, _, ok := indexedField(key, "related_codes"); ok {
			key = "related_codes"
		}
		r.fail(key, ae.Code, ae.ZH, ae.EN)
	})
	return nil
}

// sheetRow is the current row of a sheet being read.
type sheetRow struct {
	sheet string
	num   int // 1-based, as Excel shows it
	cells []string
	cols  []column
	at    map[string]int // column key → index into cells
	errs  *collector
}

func (r *sheetRow) val(key string) string {
	if i, ok := r.at[key]; ok && i < len(r.cells) {
		return r.cells[i]
	}
	return ""
}

func (r *sheetRow) fail(key, code, zh, en string) {
	e := ImportError{Sheet: r.sheet, Row: r.num, Header: headerOf(r.cols, key), Value: clip(r.val(key)), Code: code, MessageZH: zh, MessageEN: en}
	if i, ok := r.at[key]; ok {
		e.Column = columnLetter(i)
	}
	r.errs.add(e)
}

// mapHeaders finds the columns in row 1, reporting required ones missing.
func (r *sheetRow) mapHeaders(cells []string) bool {
	r.at = map[string]int{}
	for i, h := range cells {
		if key := headerKey(h, r.cols); key != "" {
			if _, dup := r.at[key]; !dup {
				r.at[key] = i
			}
		}
	}
	ok := true
	for _, c := range r.cols {
		if _, found := r.at[c.key]; !found && c.required == "是" {
			ok = false
			r.errs.add(ImportError{Sheet: r.sheet, Row: 1, Header: c.header(), Code: errColumnMissing.Code,
				MessageZH: errColumnMissing.ZH + "：" + c.header(), MessageEN: errColumnMissing.EN + ": " + c.header()})
		}
	}
	return ok
}

// eachRow streams a sheet with excelize's row iterator: row 1 names the
// columns, and fn gets every non-blank row after it. It returns errHeaders
// when required columns are missing (reported).
func (im *xlsxImport) eachRow(ctx context.Context, sheet string, cols []column, fn func(r *sheetRow) error) error {
	rows, err := im.f.Rows(sheet)
	if err != nil {
		return fmt.Errorf("read sheet %s: %w", sheet, err)
	}
	defer rows.Close()
	r := &sheetRow{sheet: sheet, cols: cols, errs: &im.errs}
	// Next visits every row number, blank rows included, so counting
	// gives the row as Excel shows it.
	n := 0
	for rows.Next() {
		n++
		cells, err := rows.Columns()
		if err != nil {
			return ErrImportFile
		}
		if n == 1 {
			if !r.mapHeaders(cells) {
				return errHeaders
			}
			continue
		}
		if blank(cells) {
			continue
		}
		if n%512 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r.num, r.cells = n, cells
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Error(); err != nil {
		return ErrImportFile
	}
	if n == 0 && !r.mapHeaders(nil) {
		return errHeaders
	}
	return nil
}

func blank(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// parseEntry reads a resources row into Content (without its items),
// reporting values no list allows. Free text is kept as written; Validate
// trims what it trims.
func parseEntry(r *sheetRow) (Content, string) {
	c := Content{
		Name: r.val("name"), ClassCode: strings.TrimSpace(r.val("class_code")), Abstract: r.val("abstract"),
		FormatType: r.val("format_type"), Keywords: splitList(r.val("keywords")),
		ShareCondition: r.val("share_condition"), ShareBasis: r.val("share_basis"), OpenCondition: r.val("open_condition"),
		RelatedCodes: splitList(r.val("related_codes")),
	}
	c.FormatClass = choice(r, "format_class", formatClasses, "catalog.format_class_invalid", true)
	c.ShareType = ShareType(choice(r, "share_type", shareTypes, "catalog.share_type_invalid", true))
	c.OpenType = OpenType(choice(r, "open_type", openTypes, "catalog.open_type_invalid", true))
	c.UpdateCycle = choice(r, "update_cycle", cycles, "catalog.update_cycle_invalid", true)
	c.Classified = flag(r, "classified")
	for _, m := range splitList(r.val("share_methods")) {
		if v, ok := methods.parse(m); ok {
			c.ShareMethods = append(c.ShareMethods, ShareMethod(v))
		} else {
			r.fail("share_methods", "catalog.share_method_invalid", "共享方式“"+m+"”"+errChoiceInvalid+methods.describe(),
				"share method “"+m+"” "+errChoiceInvalidEN+methods.describe())
		}
	}
	return c, strings.TrimSpace(r.val("ref"))
}

// parseItem reads a data items row.
func parseItem(r *sheetRow) DataItem {
	it := DataItem{Name: r.val("name"), MachineName: r.val("machine_name"), Description: r.val("description"),
		MaskRule: r.val("mask_rule"), QualityRule: r.val("quality_rule")}
	it.DataType = choice(r, "data_type", dataTypes, "catalog.item_type_invalid", true)
	it.Key = flag(r, "key")
	it.Sensitivity = choice(r, "sensitivity", sensitivities, "catalog.item_sensitivity_invalid", false)
	if n, ok := wholeNumber(r.val("length")); ok {
		it.Length = n
	} else {
		r.fail("length", "catalog.item_length_invalid", "长度应为1到100000之间的整数", "the length is a whole number from 1 to 100000")
	}
	return it
}

// choice reads a single-choice cell: a value or its label. A blank
// optional cell is the zero value; anything else not in the list is
// reported and kept, so Validate sees it too.
func choice(r *sheetRow, key string, e enum, code string, required bool) string {
	raw := strings.TrimSpace(r.val(key))
	if raw == "" && !required {
		return ""
	}
	if v, ok := e.parse(raw); ok {
		return v
	}
	h := headerOf(r.cols, key)
	if raw == "" {
		r.fail(key, code, "请填写"+h+"："+e.describe(), h+" is required: "+e.describe())
	} else {
		r.fail(key, code, "“"+raw+"”"+errChoiceInvalid+e.describe(), "“"+raw+"” "+errChoiceInvalidEN+e.describe())
	}
	return raw
}

// flag reads a yes/no cell; blank is no. Spreadsheet booleans read as 1/0.
func flag(r *sheetRow, key string) bool {
	switch raw := strings.TrimSpace(r.val(key)); strings.ToLower(raw) {
	case "是", "1", "y", "yes", "true":
		return true
	case "否", "", "0", "n", "no", "false":
		return false
	}
	r.fail(key, errYesNo.Code, errYesNo.ZH, errYesNo.EN)
	return false
}

// wholeNumber accepts "18" and the "18.0" a spreadsheet may store.
func wholeNumber(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1e9 {
		return 0, false
	}
	return int(f), true
}

// splitList splits keywords and codes on ；; , ， or 、.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune("；;,，、\n", r) }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// errorFill is the fill of a cell with a problem in the error report.
const errorFill = "FFC7CE"

// WriteErrorReport writes a copy of an uploaded workbook with every cell
// that has a problem filled red and commented with the message, and a
// sheet "错误报告" listing all problems. The copy is made in memory: it is
// meant for rejected files, which people fix by hand.
func WriteErrorReport(w io.Writer, original io.Reader, errs []ImportError) error {
	f, err := excelize.OpenReader(original, excelize.Options{UnzipSizeLimit: importUnzipLimit})
	if err != nil {
		return ErrImportFile
	}
	defer f.Close()
	type at struct{ sheet, cell string }
	var order []at
	messages := map[at][]string{}
	for _, e := range errs {
		if e.Column == "" || e.Row < 1 {
			continue
		}
		if i, err := f.GetSheetIndex(e.Sheet); err != nil || i < 0 {
			continue
		}
		col, err := excelize.ColumnNameToNumber(e.Column)
		if err != nil {
			continue
		}
		k := at{e.Sheet, cell(col, e.Row)}
		if _, ok := messages[k]; !ok {
			order = append(order, k)
		}
		messages[k] = append(messages[k], e.MessageZH)
	}
	red := map[int]int{} // original style → the same in red
	existing := map[string]map[string]string{}
	for _, k := range order {
		orig, err := f.GetCellStyle(k.sheet, k.cell)
		if err != nil {
			return err
		}
		style, ok := red[orig]
		if !ok {
			st, err := f.GetStyle(orig)
			if err != nil || st == nil {
				st = &excelize.Style{}
			}
			st.Fill = excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{errorFill}}
			if style, err = f.NewStyle(st); err != nil {
				return err
			}
			red[orig] = style
		}
		if err := f.SetCellStyle(k.sheet, k.cell, k.cell, style); err != nil {
			return err
		}
		if existing[k.sheet] == nil {
			existing[k.sheet] = map[string]string{}
			cs, _ := f.GetComments(k.sheet)
			for _, c := range cs {
				existing[k.sheet][c.Cell] = commentText(c)
			}
		}
		text := strings.Join(messages[k], "\n")
		if old, ok := existing[k.sheet][k.cell]; ok {
			text += "\n\n" + old
			if err := f.DeleteComment(k.sheet, k.cell); err != nil {
				return err
			}
		}
		if utf8.RuneCountInString(text) > 30000 {
			text = string([]rune(text)[:30000])
		}
		if err := f.AddComment(k.sheet, excelize.Comment{Cell: k.cell, Author: "govshare", Text: text, Width: 260, Height: 80}); err != nil {
			return err
		}
	}
	if err := writeErrorSheet(f, errs); err != nil {
		return err
	}
	return f.Write(w)
}

func commentText(c excelize.Comment) string {
	if len(c.Paragraph) == 0 {
		return c.Text
	}
	var b strings.Builder
	for _, p := range c.Paragraph {
		b.WriteString(p.Text)
	}
	return b.String()
}

func writeErrorSheet(f *excelize.File, errs []ImportError) error {
	if i, _ := f.GetSheetIndex(SheetErrors); i >= 0 {
		if err := f.DeleteSheet(SheetErrors); err != nil {
			return err
		}
	}
	idx, err := f.NewSheet(SheetErrors)
	if err != nil {
		return err
	}
	sw, err := f.NewStreamWriter(SheetErrors)
	if err != nil {
		return err
	}
	header, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{errorFill}}})
	if err != nil {
		return err
	}
	heads := []string{"工作表", "行", "列", "表头", "值", "错误说明", "Error", "错误代码"}
	widths := []float64{10, 6, 6, 22, 24, 50, 50, 30}
	row := make([]any, len(heads))
	for i, h := range heads {
		row[i] = excelize.Cell{StyleID: header, Value: h}
		if err := sw.SetColWidth(i+1, i+1, widths[i]); err != nil {
			return err
		}
	}
	if err := sw.SetRow("A1", row); err != nil {
		return err
	}
	for i, e := range errs {
		var rowNum any
		if e.Row > 0 {
			rowNum = e.Row
		}
		if err := sw.SetRow(cell(1, i+2), []any{e.Sheet, rowNum, e.Column, e.Header, e.Value, e.MessageZH, e.MessageEN, e.Code}); err != nil {
			return err
		}
	}
	if err := sw.Flush(); err != nil {
		return err
	}
	f.SetActiveSheet(idx)
	return nil
}
