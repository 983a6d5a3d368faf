package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"govshare/internal/config"
	"govshare/internal/policy"
	"govshare/internal/refdata"
)

const refdataUsage = `usage:
  govshare refdata regions import FILE [flags]               load the region table from CSV (code,name,status,valid_from,valid_to); replaces it, all or nothing
  govshare refdata codes import NAME FILE [--title T] [flags]  create or replace the code table NAME from CSV (code,label) or JSON`

// refdataCmd loads reference data as the platform administrator would; the
// audit log names the actor "cli".
func refdataCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name, file string
	var rest []string
	switch {
	case len(args) >= 3 && args[0] == "regions" && args[1] == "import":
		file, rest = args[2], args[3:]
	case len(args) >= 4 && args[0] == "codes" && args[1] == "import":
		name, file, rest = args[2], args[3], args[4:]
	default:
		return errors.New(refdataUsage)
	}
	var title string
	l, _, err := config.Load("refdata "+args[0]+" import", rest, os.Getenv, stderr, func(fs *flag.FlagSet) {
		if args[0] == "codes" {
			fs.StringVar(&title, "title", "", "what the code table lists, e.g. 人的性别代码")
		}
	})
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := openCLI(ctx, &l.Config, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	svc := refdata.New(p.db, p.audit)
	actor := policy.Actor{Login: "cli", Roles: []policy.Role{policy.PlatformAdmin}}
	source := "cli:" + filepath.Base(file)
	if args[0] == "regions" {
		res, err := svc.ImportRegions(ctx, actor, f, source)
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "loaded %d region codes (%d current, %d retired)\n", res.Rows, res.Current, res.Retired)
		return nil
	}
	var codes []refdata.Code
	if strings.EqualFold(filepath.Ext(file), ".json") {
		codes, err = refdata.ParseCodesJSON(f)
	} else {
		codes, err = refdata.ParseCodesCSV(f)
	}
	if err != nil {
		return explain(err)
	}
	info, err := svc.ReplaceCodeTable(ctx, actor, name, title, codes, source)
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "code table %s: %d codes; cite it in quality rules as code:%s\n", info.Name, info.Codes, info.Name)
	return nil
}
