package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"govshare/internal/config"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/refdata"
	"govshare/internal/resource"
)

const dataUsage = `usage:
  govshare data template CODE [FILE]                     write a resource's upload template (.xlsx, or .csv by the file's ending)
  govshare data upload FILE --resource CODE [flags]      load a filled template (.xlsx or .csv) into a mounted resource`

// dataCmd loads data as the resource's data administrator would; the audit
// log names the actor "cli".
func dataCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		return errors.New(dataUsage)
	}
	switch args[0] {
	case "template":
		code, file := args[1], ""
		rest := args[2:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			file, rest = rest[0], rest[1:]
		}
		if file == "" {
			file = strings.ReplaceAll(code, "/", "-") + "-template.xlsx"
		}
		l, _, err := config.Load("data template", rest, os.Getenv, stderr, nil)
		if err != nil {
			return err
		}
		svc, done, err := openResources(ctx, &l.Config, stderr)
		if err != nil {
			return err
		}
		defer done()
		var buf bytes.Buffer
		if strings.EqualFold(filepath.Ext(file), ".csv") {
			err = svc.WriteTemplateCSV(ctx, code, &buf)
		} else {
			err = svc.WriteTemplateXLSX(ctx, code, &buf)
		}
		if err != nil {
			return explain(err)
		}
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "template written to", file)
		return nil
	case "upload":
	default:
		return errors.New(dataUsage)
	}
	file := args[1]
	var code, batchID string
	var maxErrors int
	l, _, err := config.Load("data upload", args[2:], os.Getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&code, "resource", "", "resource code, e.g. 101/000001")
		fs.StringVar(&batchID, "batch-id", "", "client batch id: a batch sent again with the same id is applied once")
		fs.IntVar(&maxErrors, "max-errors", 0, "records that may fail before nothing is applied (default 1000, -1 no limit)")
	})
	if err != nil {
		return err
	}
	if code == "" {
		return errors.New("set --resource CODE: the code of a mounted resource\n" + dataUsage)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var rows resource.Rows
	switch strings.ToLower(filepath.Ext(file)) {
	case ".csv":
		rows, err = resource.CSVRows(f)
	case ".xlsx":
		var closeX func() error
		rows, closeX, err = resource.XLSXRows(f)
		if closeX != nil {
			defer closeX()
		}
	default:
		return fmt.Errorf("%s: use a .csv or .xlsx file (download the template with govshare data template %s)", file, code)
	}
	if err != nil {
		return explain(err)
	}
	svc, done, err := openResources(ctx, &l.Config, stderr)
	if err != nil {
		return err
	}
	defer done()
	r, err := svc.ByCode(ctx, code)
	if err != nil {
		return fmt.Errorf("resource %s: %w", code, explain(err))
	}
	actor := policy.Actor{Login: "cli", DeptID: r.DeptID, Roles: []policy.Role{policy.DeptAdmin}}
	start := time.Now()
	var last time.Time
	progress := func(n int64) {
		if time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(stderr, "\r已读取 %d 行 / %d rows read (%.0f rows/s)", n, n, float64(n)/time.Since(start).Seconds())
	}
	b, err := svc.Submit(ctx, actor, code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: "cli:" + filepath.Base(file),
		ClientBatchID: batchID, MaxErrors: maxErrors, Progress: progress}, rows)
	fmt.Fprintln(stderr)
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "batch %d %s in %s: %d received, %d inserted, %d updated, %d unchanged, %d deleted, %d quarantined\n",
		b.ID, b.State, time.Since(start).Round(time.Millisecond), b.RowsTotal, b.Inserted, b.Updated, b.Unchanged, b.Deleted, b.Quarantined)
	if b.Replayed {
		fmt.Fprintln(stdout, "(this batch id was applied before: nothing was loaded again)")
	}
	for _, rc := range b.Report.Rules {
		fmt.Fprintf(stdout, "  %-20s %-14s %6d  %s / %s (rows %v)\n", rc.Item, rc.Rule, rc.Count, rc.ZH, rc.EN, rc.Rows)
	}
	if b.Quarantined > 0 {
		fmt.Fprintln(stdout, "fix or discard the quarantined records on the resource's page (数据归集 → 问题数据)")
	}
	return nil
}

// openResources opens the resource store for a command.
func openResources(ctx context.Context, cfg *config.Config, stderr io.Writer) (*resource.Service, func(), error) {
	p, err := openCLI(ctx, cfg, stderr)
	if err != nil {
		return nil, nil, err
	}
	ref := refdata.New(p.db, p.audit)
	svc := resource.New(p.db, p.audit, p.cat, func(ctx context.Context) (quality.Reference, error) { return ref.Reference(ctx) }, nil)
	return svc, p.Close, nil
}
