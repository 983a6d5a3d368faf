package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/config"
	"govshare/internal/policy"
)

const catalogUsage = `usage:
  govshare catalog template [FILE]                 write the import template (default catalog-template.xlsx)
  govshare catalog import FILE --dept CODE         import a filled template as drafts of the department (all or nothing)
  govshare catalog export FILE [--dept CODE] [--state S]  export entries in the template layout`

func catalogCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(catalogUsage)
	}
	switch args[0] {
	case "template":
		name := "catalog-template.xlsx"
		if len(args) > 1 {
			name = args[1]
		}
		var buf bytes.Buffer
		if err := catalog.WriteTemplate(&buf); err != nil {
			return err
		}
		if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "template written to", name)
		return nil
	case "import", "export":
	default:
		return errors.New(catalogUsage)
	}
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		return errors.New(catalogUsage)
	}
	file := args[1]
	var deptCode, state string
	l, _, err := config.Load("catalog "+args[0], args[2:], os.Getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&deptCode, "dept", "", "unified social credit code of the department")
		fs.StringVar(&state, "state", "", "export only entries in this state")
	})
	if err != nil {
		return err
	}
	p, err := openCLI(ctx, &l.Config, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	ids, cat := p.ids, p.cat
	// The command line acts for the department as its data administrator
	// would; the audit log names it "cli".
	actor := policy.Actor{Login: "cli", Roles: []policy.Role{policy.DeptAdmin, policy.PlatformAdmin}}
	if deptCode != "" {
		d, err := ids.DepartmentByCode(ctx, deptCode)
		if err != nil {
			return fmt.Errorf("department %s: %w", deptCode, explain(err))
		}
		actor.DeptID = d.ID
		actor.Roles = []policy.Role{policy.DeptAdmin}
	}
	if args[0] == "export" {
		var buf bytes.Buffer
		if err := cat.ExportXLSX(ctx, actor, catalog.ExportFilter{DeptID: actor.DeptID, State: catalog.State(state)}, &buf); err != nil {
			return explain(err)
		}
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "exported to", file)
		return nil
	}
	if deptCode == "" {
		return errors.New("--dept CODE is required: the department whose catalog the file describes")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(stderr, "checking %s (%d KB)…\n", file, len(data)/1024)
	res, err := cat.ImportXLSX(ctx, actor, bytes.NewReader(data), func(done int) {
		rate := float64(done) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(stderr, "\rimporting: %d entries written (%.0f/s)", done, rate)
	})
	fmt.Fprintln(stderr)
	if errors.Is(err, catalog.ErrImportRejected) {
		for i, e := range res.Errors {
			if i == 50 {
				fmt.Fprintf(stdout, "… and %d more\n", len(res.Errors)-50)
				break
			}
			fmt.Fprintf(stdout, "%s!%s%d %s: %q — %s\n", e.Sheet, e.Column, e.Row, e.Header, e.Value, e.MessageZH)
		}
		report := strings.TrimSuffix(file, ".xlsx") + ".errors.xlsx"
		var buf bytes.Buffer
		if werr := catalog.WriteErrorReport(&buf, bytes.NewReader(data), res.Errors); werr == nil && os.WriteFile(report, buf.Bytes(), 0o644) == nil {
			fmt.Fprintln(stdout, "错误已标注在 / errors are marked in:", report)
		}
		var ae *apperr.Error
		errors.As(err, &ae)
		return fmt.Errorf("%d errors: %s / %s", len(res.Errors), ae.ZH, ae.EN)
	}
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "imported %d entries with %d data items as drafts in %s\n", res.Entries, res.Items, time.Since(start).Round(time.Millisecond))
	return nil
}
