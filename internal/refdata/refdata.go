// Package refdata keeps the reference data (参考数据) that quality rules
// check values against: the region table (行政区划, GB/T 2260, retired
// codes included, loaded by the platform administrator from a file) and
// the code tables (代码表, named enumerations such as the GB/T 2261.1 sex
// codes). Checks read an in-memory Snapshot, loaded once and reloaded after
// an import, which implements quality.Reference.
package refdata

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Errors of reference data. Import errors name the row of the file (the
// header is row 1) and the column.
var (
	ErrCSV          = apperr.Invalid("refdata.csv_invalid", "file", "文件不是有效的CSV(UTF-8编码，逗号分隔)", "the file is not valid CSV (UTF-8, comma-separated)")
	ErrHeader       = apperr.Invalid("refdata.header_invalid", "file", "首行应为列名", "the first row must name the columns")
	ErrEmpty        = apperr.Invalid("refdata.file_empty", "file", "文件中没有数据行", "the file has no data rows")
	ErrTooManyRows  = apperr.Invalid("refdata.too_many_rows", "file", fmt.Sprintf("文件超过%d行", maxRows), fmt.Sprintf("the file has more than %d rows", maxRows))
	ErrRegionCode   = apperr.Invalid("refdata.region_code_invalid", "code", "行政区划代码应为6位数字，首位为1至8", "a region code has 6 digits, the first 1 to 8")
	ErrRegionName   = apperr.Invalid("refdata.region_name_invalid", "name", "名称不能为空，且不超过100个字符", "the name is required, at most 100 characters")
	ErrRegionStatus = apperr.Invalid("refdata.region_status_invalid", "status", "状态应为 current(现行) 或 retired(已撤销)", "the status is current or retired")
	ErrRegionDate   = apperr.Invalid("refdata.region_date_invalid", "valid_from", "日期应为 YYYY-MM-DD 或留空", "a date is YYYY-MM-DD or empty")
	ErrRegionDates  = apperr.Invalid("refdata.region_dates_invalid", "valid_to", "终止日期早于起始日期", "the end date is before the start date")
	ErrRegionTwice  = apperr.Invalid("refdata.region_twice", "code", "同一代码出现两次", "the same code appears twice")
	ErrTableName    = apperr.Invalid("refdata.table_name_invalid", "name", "代码表名称不能为空，不超过64个字符，且不含分号和反斜杠", "a code table name is required, at most 64 characters, without semicolons or backslashes")
	ErrTableTitle   = apperr.Invalid("refdata.table_title_invalid", "title", "说明不超过200个字符", "the title has at most 200 characters")
	ErrCode         = apperr.Invalid("refdata.code_invalid", "code", "代码不能为空，且不超过64个字符", "the code is required, at most 64 characters")
	ErrLabel        = apperr.Invalid("refdata.label_invalid", "label", "名称不能为空，且不超过200个字符", "the label is required, at most 200 characters")
	ErrCodeTwice    = apperr.Invalid("refdata.code_twice", "code", "同一代码出现两次", "the same code appears twice")
	ErrJSON         = apperr.Invalid("refdata.json_invalid", "file", `JSON应为 [{"code":"1","label":"男性"}, …]`, `the JSON is [{"code":"1","label":"male"}, …]`)
	ErrTableMissing = apperr.New(http.StatusNotFound, "refdata.code_table_not_found", "代码表不存在", "no such code table")
)

// maxRows bounds an import: the whole GB/T 2260 history is about 10,000
// codes.
const maxRows = 200000

// Auditor is the part of the audit log reference data needs.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Service keeps the reference data in the database and its snapshot in
// memory.
type Service struct {
	db    *store.DB
	audit Auditor
	// MaxAge is how old a snapshot may be before Reference reloads it, so
	// servers sharing one database see each other's imports. An import on
	// this server reloads at once.
	MaxAge time.Duration

	snap   atomic.Pointer[Snapshot]
	gen    atomic.Uint64 // counts imports, so a load that raced one is not kept
	loadMu sync.Mutex
}

// New returns the reference data on db.
func New(db *store.DB, a Auditor) *Service {
	return &Service{db: db, audit: a, MaxAge: time.Minute}
}

func (s *Service) authorize(ctx context.Context, actor policy.Actor, objType, obj string) error {
	if err := policy.Check(actor, policy.RefDataManage, policy.Target{}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.RefDataManage), objType, obj, audit.ResultDenied, nil))
		return err
	}
	return nil
}

// rowError names the row (and, through the base error, the column) of an
// import file in the message too, so a command line shows it.
func rowError(base *apperr.Error, row int, field string) *apperr.Error {
	e := base.OnRow(row)
	if field != "" {
		e.Field = field
	}
	e.ZH = fmt.Sprintf("第%d行 %s 列：%s", row, e.Field, base.ZH)
	e.EN = fmt.Sprintf("row %d, column %s: %s", row, e.Field, base.EN)
	return e
}
