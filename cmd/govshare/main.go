// Command govshare is the whole platform in one binary: the server, the
// demo, migrations, the first administrator, audit verification and
// benchmarks.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"govshare/client"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/config"
	"govshare/internal/demo"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/search"
	"govshare/internal/server"
	"govshare/internal/sharebench"
	"govshare/internal/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `govshare — 政务信息资源共享交换平台 / government information resource sharing and exchange platform

Usage:
  govshare serve [flags]          run the platform (see govshare serve -h; --print-config shows the configuration)
  govshare demo [flags]           run with a demo city loaded on first start (embedded SQLite and NATS)
  govshare migrate [flags]        apply database migrations
  govshare admin create --login L --role platform_admin --dept-code CODE [--dept-name N --region R] [--name N]
                                  create an administrator (password from a prompt, or stdin)
  govshare audit verify [flags]   verify the audit hash chain; exits 1 naming the first bad event
  govshare bench audit [flags]    measure audit append throughput against single-row inserts
  govshare bench search [flags]   measure catalog search latency against a LIKE scan
  govshare bench sharing [flags]  measure signed app requests over HTTP against an unsigned no-op
  govshare bench ingest [flags]   measure loading a CSV into a resource against COPY (PostgreSQL) or batched INSERTs (SQLite)
  govshare bench exchange --pg URL  measure PostgreSQL → node → center → node → PostgreSQL against COPY between the databases, and change latency
  govshare bench dataservice --pg URL  measure keyed lookups, a comparison job and a download on a 10,000,000-row resource against plain pgx and SQL
  govshare catalog template|import|export …  the catalog import template, batch import (all or nothing) and export
  govshare data template CODE [FILE] | upload FILE --resource CODE  a resource's upload template, or load a filled one (progress shown)
  govshare refdata regions import FILE | codes import NAME FILE  load the region table or a code table (platform administrator)
  govshare call [flags] METHOD PATH  send one request signed as an app (secret in GOVSHARE_APP_SECRET)
  govshare totp SECRET            print the current one-time code for a TOTP secret (demo and tests)
  govshare agent enrol --api URL --code CODE --name N   enrol an exchange node with its one-time code
  govshare agent run --config F   run an exchange node (前置机)
  govshare version                print the version

Configuration: flags, GOVSHARE_* environment variables and an optional TOML file (--config).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fmt.Fprintln(os.Stderr, "govshare:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a code after its output was printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError(2)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr, false)
	case "demo":
		return serve(ctx, rest, stdout, stderr, true)
	case "migrate":
		return migrate(ctx, rest, stdout, stderr)
	case "admin":
		if len(rest) == 0 || rest[0] != "create" {
			return errors.New("usage: govshare admin create --login L --role platform_admin --dept-code CODE")
		}
		return adminCreate(ctx, rest[1:], stdin, stdout, stderr)
	case "audit":
		if len(rest) == 0 || rest[0] != "verify" {
			return errors.New("usage: govshare audit verify [flags]")
		}
		return auditVerify(ctx, rest[1:], stdout, stderr)
	case "bench":
		if len(rest) > 0 && rest[0] == "audit" {
			return benchAudit(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "search" {
			return benchSearch(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "sharing" {
			return benchSharing(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "ingest" {
			return benchIngest(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "exchange" {
			return benchExchange(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "dataservice" {
			return benchDataService(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "loadgen" { // the data services bench's load generator (hidden)
			return benchLoadgen(ctx, stdin, stdout, stderr)
		}
		return errors.New("usage: govshare bench audit|search|sharing|ingest --db DSN …, govshare bench exchange --pg URL …")
	case "catalog":
		return catalogCmd(ctx, rest, stdout, stderr)
	case "data":
		return dataCmd(ctx, rest, stdout, stderr)
	case "refdata":
		return refdataCmd(ctx, rest, stdout, stderr)
	case "call":
		return callCmd(ctx, rest, stdout, stderr)
	case "agent":
		return agentCmd(ctx, rest, stdout, stderr)
	case "totp":
		if len(rest) != 1 {
			return errors.New("usage: govshare totp SECRET")
		}
		code, err := identity.TOTPCode(strings.ToUpper(rest[0]), time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, code)
		return nil
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "govshare", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, isDemo bool) error {
	var printConfig bool
	name := "serve"
	if isDemo {
		name = "demo"
	}
	l, _, err := config.Load(name, args, os.Getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&printConfig, "print-config", false, "print the effective configuration and exit")
	})
	if err != nil {
		return err
	}
	if printConfig {
		l.Print(stdout)
		return nil
	}
	opt := server.Options{Version: version, Out: stdout, Logs: stderr}
	if isDemo {
		if l.DB != "" || l.NATS != "" {
			fmt.Fprintln(stderr, "note: demo uses the configured database/bus; the demo city is loaded only into an empty database")
		}
		opt.Seed = demo.Seed
		opt.Banner = "演示环境 Demo"
		if l.NodeAddr == "" {
			// The demo takes exchange nodes on this machine, so that
			// `govshare agent enrol` from the 前置机 page works as it is.
			l.NodeAddr = "127.0.0.1:8443"
		}
	}
	return server.Run(ctx, &l.Config, opt)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	l, _, err := config.Load("migrate", args, os.Getenv, stderr, nil)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, l.DatabaseDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	for _, m := range applied {
		fmt.Fprintln(stdout, "applied", m)
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date:", db)
	}
	return nil
}

func adminCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var login, role, name, deptCode, deptName, region, mobile string
	l, _, err := config.Load("admin create", args, os.Getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&login, "login", "", "login of the new administrator")
		fs.StringVar(&role, "role", string(policy.PlatformAdmin), "platform_admin, security_admin or auditor")
		fs.StringVar(&name, "name", "", "person's name (default: the login)")
		fs.StringVar(&mobile, "mobile", "", "mobile number (optional)")
		fs.StringVar(&deptCode, "dept-code", "", "credit code of the department the administrator belongs to")
		fs.StringVar(&deptName, "dept-name", "", "department name, when the department does not exist yet")
		fs.StringVar(&region, "region", "", "department region code (6 digits), when it does not exist yet")
	})
	if err != nil {
		return err
	}
	r := policy.Role(role)
	if !r.Admin() {
		return fmt.Errorf("--role must be platform_admin, security_admin or auditor, got %q", role)
	}
	if login == "" || deptCode == "" {
		return errors.New("--login and --dept-code are required")
	}
	if name == "" {
		name = login
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	p, err := openCLI(ctx, &l.Config, stderr)
	if err != nil {
		return err
	}
	defer p.Close()
	u, err := p.ids.Bootstrap(ctx, identity.BootstrapInput{
		User:       identity.UserInput{Login: login, Name: name, Mobile: mobile, Roles: []policy.Role{r}, Password: pw},
		Department: identity.DepartmentInput{Name: deptName, CreditCode: deptCode, RegionCode: region},
	})
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(stdout, "created %s (%s), user id %d. At first login they set up two-factor login and change the password.\n", u.Login, r, u.ID)
	return nil
}

// explain prints a domain error in both languages.
func explain(err error) error {
	var ae interface{ Message(string) string }
	if errors.As(err, &ae) {
		return fmt.Errorf("%s / %s", ae.Message("zh"), ae.Message("en"))
	}
	return err
}

// readPassword asks at a terminal (twice), or reads one line from stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password / 密码: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Repeat / 再次输入: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	l, _, err := config.Load("audit verify", args, os.Getenv, stderr, nil)
	if err != nil {
		return err
	}
	keys, err := server.ExistingKeys(&l.Config)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, l.DatabaseDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := audit.VerifyDB(ctx, db, keys.Derive("audit"), func(n int64) {
		fmt.Fprintf(stderr, "\rverified %d events…", n)
	})
	if rep.Checked >= 10000 {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		fmt.Fprintf(stdout, "AUDIT CHAIN BROKEN at event %d: %s\n审计日志哈希链被破坏：事件 %d\n", rep.Break.Seq, rep.Break.Reason, rep.Break.Seq)
		return exitError(1)
	}
	from := "genesis"
	if rep.Checkpoint > 0 {
		from = fmt.Sprintf("retention checkpoint at event %d", rep.Checkpoint)
	}
	fmt.Fprintf(stdout, "audit chain OK: %d events (seq %d–%d) verified from %s in %s\n审计日志哈希链完整\n",
		rep.Checked, rep.FirstSeq, rep.LastSeq, from, rep.Took.Round(time.Millisecond))
	return nil
}

// scratchDB opens and migrates a benchmark's database: dsn, or a
// temporary SQLite file removed by done.
func scratchDB(ctx context.Context, dsn string) (db *store.DB, done func(), err error) {
	dir := ""
	if dsn == "" {
		if dir, err = os.MkdirTemp("", "govshare-bench-"); err != nil {
			return nil, nil, err
		}
		dsn = dir + "/bench.db"
	}
	done = func() {
		if db != nil {
			db.Close()
		}
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	if db, err = store.Open(ctx, dsn); err == nil {
		_, err = db.Migrate(ctx)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return db, done, nil
}

func benchAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("db", "", "scratch database: a SQLite file path or postgres:// URL (default: a temporary SQLite file)")
	writers := fs.Int("writers", 64, "concurrent writers")
	events := fs.Int("events", 20000, "events per side")
	alg := fs.String("hash", audit.SM3, "sm3 or sha256")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, done, err := scratchDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer done()
	res, err := audit.Bench(ctx, db, audit.BenchOptions{Writers: *writers, Events: *events, Algorithm: *alg}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	return nil
}

func benchSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("db", "", "scratch database: a SQLite file path or postgres:// URL (default: a temporary SQLite file)")
	n := fs.Int("entries", 100000, "catalog entries to generate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "govshare-bench-search-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *dsn == "" {
		*dsn = dir + "/bench.db"
	}
	db, err := store.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	idx, err := search.OpenBleve(dir + "/index")
	if err != nil {
		return err
	}
	defer idx.Close()
	res, err := search.Bench(ctx, db, idx, *n, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	return nil
}

func benchSharing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench sharing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("db", "", "empty scratch database: a SQLite file path or postgres:// URL (default: a temporary SQLite file)")
	clients := fs.Int("clients", 16, "concurrent clients")
	duration := fs.Duration("duration", 10*time.Second, "measured time per side")
	method := fs.String("sign-method", client.HMACSHA256, "signature: HMAC-SHA256 or HMAC-SM3")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, done, err := scratchDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer done()
	res, err := sharebench.Bench(ctx, db, sharebench.Options{Clients: *clients, Duration: *duration, SignMethod: *method}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	return nil
}

// cliPlatform is what the administrative commands work on: the store, the
// audit log and the services, without the HTTP server or the bus.
type cliPlatform struct {
	db    *store.DB
	audit *audit.Log
	ids   *identity.Service
	cat   *catalog.Service
}

func openCLI(ctx context.Context, cfg *config.Config, stderr io.Writer) (*cliPlatform, error) {
	log := server.Logger(stderr, "warn")
	keys, err := server.Keys(cfg)
	if err != nil {
		return nil, err
	}
	db, err := server.OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	alog, err := audit.Open(db, audit.Options{Algorithm: cfg.AuditHash, Key: keys.Derive("audit")})
	if err != nil {
		db.Close()
		return nil, err
	}
	p := &cliPlatform{db: db, audit: alog, ids: identity.NewService(db, alog, keys, identity.DefaultConfig()),
		cat: catalog.NewService(db, alog, calendar.New(db, alog), server.CatalogConfig(cfg))}
	if err := p.cat.EnsureDefaultTree(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close flushes the audit log and closes the store.
func (p *cliPlatform) Close() {
	p.audit.Close()
	p.db.Close()
}
