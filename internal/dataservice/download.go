package dataservice

import (
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/xuri/excelize/v2"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/resource"
)

// Download formats.
const (
	FormatCSV  = "csv"
	FormatXLSX = "xlsx"
)

// WatermarkColumn is the last column of every download: who took the
// file, with which app and grant, when, and the download's id in the
// audit log.
const WatermarkColumn = "_watermark"

// MaxXLSXRows is the most records an .xlsx download holds (a sheet's
// rows, less the header); larger downloads are CSV.
const MaxXLSXRows = 1_048_575

// ErrFormat refuses an unknown download format.
var (
	ErrFormat   = apperr.Invalid("data.format_invalid", "format", "下载格式应为 csv 或 xlsx", "the download format is csv or xlsx")
	ErrTooLarge = apperr.Invalid("data.xlsx_too_large", "format", "超过 .xlsx 的行数上限(1048575)，请下载 CSV 或缩小范围", "more rows than .xlsx holds (1,048,575); download CSV or narrow the filter")
)

// Download is a prepared batch download (批量下载): authorized, counted
// within the quota and audited; Write streams it.
type Download struct {
	s         *Service
	u         *use
	p         *plan
	Format    string
	ID        string
	Records   int64 // the records the filter matches
	Watermark string
}

// PrepareDownload checks a download of granted items of a resource (or
// of a filtered subset) and writes its audit event before any data is
// sent. q's cursor and limit are not used: a download is every match.
func (s *Service) PrepareDownload(ctx context.Context, c Caller, code string, q Request, format string) (*Download, error) {
	if format == "" {
		format = FormatCSV
	}
	u, err := s.begin(ctx, c, code, catalog.MethodFile, nil)
	if err != nil {
		return nil, err
	}
	d, err := s.prepareDownload(ctx, u, q, format)
	if err != nil {
		s.usage.add(u, 1, 0, err)
		s.deny(ctx, c, "data.file", code, err)
		return nil, err
	}
	return d, nil
}

func (s *Service) prepareDownload(ctx context.Context, u *use, q Request, format string) (*Download, error) {
	if format != FormatCSV && format != FormatXLSX {
		return nil, ErrFormat
	}
	q.Cursor = ""
	p, err := s.plan(u, q, catalog.MethodFile)
	if err != nil {
		return nil, err
	}
	if err := s.admit(u); err != nil {
		return nil, err
	}
	n, err := s.res.Count(ctx, u.r, p.sel.Where)
	if err != nil {
		return nil, err
	}
	if format == FormatXLSX && n > MaxXLSXRows {
		return nil, ErrTooLarge
	}
	if n > 0 {
		left, err := s.recordsLeft(ctx, u, n)
		if err != nil {
			return nil, err
		}
		if left < n {
			return nil, ErrQuota.With(fmt.Sprintf("下载将返回%d条记录，今日剩余额度%d条；请缩小范围或明日再试", n, left),
				fmt.Sprintf("the download would return %d records and %d are left today; narrow the filter or try tomorrow", n, left)).After(untilTomorrow(s.now()))
		}
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	d := &Download{s: s, u: u, p: p, Format: format, ID: "DL" + hex.EncodeToString(id), Records: n}
	who := u.caller.Actor.Login
	if u.caller.Actor.App != "" {
		who = u.caller.Actor.App
	}
	d.Watermark = fmt.Sprintf("govshare/%s/dept:%d/%s/grant:%d/%s", d.ID, u.caller.Actor.DeptID, who, u.permit.GrantID, s.now().UTC().Format(time.RFC3339))
	if err := s.record(ctx, u, "data.download", map[string]any{"download": d.ID, "items": p.items, "format": format, "records": n}); err != nil {
		return nil, err
	}
	return d, nil
}

// Filename is the file's name.
func (d *Download) Filename() string {
	return fmt.Sprintf("%s-%s.%s", d.u.r.Code, d.ID, d.Format)
}

// ContentType is the file's media type.
func (d *Download) ContentType() string {
	if d.Format == FormatXLSX {
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	return "text/csv; charset=utf-8"
}

// Write streams the records to w, a row at a time from the database, and
// records the rows sent in the audit log and the usage.
func (d *Download) Write(ctx context.Context, w io.Writer) (int64, error) {
	var rows int64
	var err error
	if d.Format == FormatXLSX {
		rows, err = d.writeXLSX(ctx, w)
	} else {
		rows, err = d.writeCSV(ctx, w)
	}
	d.s.usage.add(d.u, 1, rows, err)
	result := map[string]any{"download": d.ID, "records": rows}
	if err != nil {
		result["error"] = err.Error()
	}
	if aerr := d.s.record(context.WithoutCancel(ctx), d.u, "data.download_done", result); aerr != nil && err == nil {
		err = aerr
	}
	return rows, err
}

func (d *Download) writeCSV(ctx context.Context, w io.Writer) (int64, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(append(append([]string(nil), d.p.items...), WatermarkColumn)); err != nil {
		return 0, err
	}
	rec := make([]string, len(d.p.items)+1)
	rec[len(rec)-1] = d.Watermark
	var n int64
	err := d.s.res.Select(ctx, d.u.r, d.p.sel, func(vals []*string, _ resource.Position) error {
		for i, v := range d.s.masked(d.p, vals) {
			rec[i] = ""
			if v != nil {
				rec[i] = *v
			}
		}
		n++
		return cw.Write(rec)
	})
	if err != nil {
		return n, err
	}
	cw.Flush()
	return n, cw.Error()
}

func (d *Download) writeXLSX(ctx context.Context, w io.Writer) (int64, error) {
	f := excelize.NewFile()
	defer f.Close()
	_ = f.SetDocProps(&excelize.DocProperties{Creator: "govshare", Title: d.u.r.Name, Description: d.Watermark, Identifier: d.ID,
		Created: d.s.now().UTC().Format(time.RFC3339)})
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		return 0, err
	}
	head := make([]any, 0, len(d.p.items)+1)
	for i, it := range d.p.items {
		head = append(head, d.p.names[i]+"("+it+")")
	}
	head = append(head, WatermarkColumn)
	if err := sw.SetRow("A1", head); err != nil {
		return 0, err
	}
	var n int64
	row := make([]any, len(d.p.items)+1)
	row[len(row)-1] = d.Watermark
	err = d.s.res.Select(ctx, d.u.r, d.p.sel, func(vals []*string, _ resource.Position) error {
		for i, v := range d.s.masked(d.p, vals) {
			row[i] = ""
			if v != nil {
				row[i] = *v
			}
		}
		n++
		return sw.SetRow("A"+strconv.FormatInt(n+1, 10), row)
	})
	if err != nil {
		return n, err
	}
	if err := sw.Flush(); err != nil {
		return n, err
	}
	_, err = f.WriteTo(w)
	return n, err
}
