// Package server assembles the platform from its parts — store, audit log,
// bus, identity, web — and runs it until its context ends, then stops the
// parts in reverse order so nothing accepted is lost.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"govshare/internal/audit"
	"govshare/internal/bus"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/config"
	"govshare/internal/dataservice"
	"govshare/internal/dataservice/proxy"
	"govshare/internal/exchange"
	"govshare/internal/identity"
	"govshare/internal/mask"
	"govshare/internal/notify"
	"govshare/internal/pki"
	"govshare/internal/quality"
	"govshare/internal/refdata"
	"govshare/internal/resource"
	"govshare/internal/search"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/todo"
	"govshare/internal/web"
)

// Options adjust a run.
type Options struct {
	Version string
	// Seed, when set, runs after migrations on every start; the demo
	// uses it to load its city on first start.
	Seed func(ctx context.Context, p *Platform) error
	// Banner is shown in the UI header.
	Banner string
	// Out receives the human-readable start-up lines (URL, accounts).
	Out io.Writer
	// Logs receives structured logs (default stderr).
	Logs io.Writer
	// Ready, when set, is called with the listening address once serving.
	Ready func(addr string)
}

// Platform is the assembled parts, for seeding and for tests.
type Platform struct {
	Config   *config.Config
	DB       *store.DB
	Keys     *secret.Keys
	Audit    *audit.Log
	Bus      *bus.Bus
	Identity *identity.Service
	Catalog  *catalog.Service
	Calendar *calendar.Calendar
	RefData  *refdata.Service
	// Resources is the resource store (数据归集).
	Resources *resource.Service
	Apps      *share.Apps
	Notify    *notify.Service
	Share     *share.Service
	PKI       *pki.Service
	Exchange  *exchange.Service
	// Data runs the data services (数据服务).
	Data *dataservice.Service
	// nodeURL is the node endpoint's address once it listens.
	nodeURL atomic.Pointer[string]
	Log     *slog.Logger
	Out     io.Writer
}

// Logger builds the JSON logger at the configured level.
func Logger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// OpenStore opens and migrates the configured database.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.DB, error) {
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, fmt.Errorf("create data folder %s: %w", cfg.Data, err)
	}
	db, err := store.Open(ctx, cfg.DatabaseDSN())
	if err != nil {
		return nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", db, err)
	}
	for _, m := range applied {
		log.Info("migration applied", "migration", m, "database", db.String())
	}
	return db, nil
}

// Keys loads the master key from GOVSHARE_SECRET_KEY or the key file,
// creating the file on the first start of a new deployment.
func Keys(cfg *config.Config) (*secret.Keys, error) {
	if v := os.Getenv("GOVSHARE_SECRET_KEY"); v != "" {
		return secret.Parse(v)
	}
	return secret.LoadOrCreate(cfg.KeyFile())
}

// ExistingKeys loads the master key but never creates one: commands that
// check existing data (audit verify) would otherwise report every seal as
// broken when pointed at the wrong data folder.
func ExistingKeys(cfg *config.Config) (*secret.Keys, error) {
	if v := os.Getenv("GOVSHARE_SECRET_KEY"); v != "" {
		return secret.Parse(v)
	}
	b, err := os.ReadFile(cfg.KeyFile())
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w — use the deployment's --data folder, --secret-key-file or GOVSHARE_SECRET_KEY", cfg.KeyFile(), err)
	}
	return secret.Parse(string(b))
}

// OpenIndex opens the catalog's search index in dir and connects it to the
// catalog, rebuilding it from the database when it is new or outdated.
// The index is derived data: deleting the folder only costs a rebuild.
func OpenIndex(ctx context.Context, dir string, cat *catalog.Service, log *slog.Logger) (search.Index, error) {
	idx, err := search.OpenBleve(dir)
	if err != nil {
		return nil, err
	}
	cat.UseIndex(idx)
	cat.OnIndexError(func(id int64, err error) {
		log.Error("search index update failed; it is repaired by deleting the index folder and restarting", "entry", id, "err", err)
	})
	if idx.Fresh() {
		start := time.Now()
		n, err := search.Rebuild(ctx, idx, func(yield func(search.Document) error) error {
			return cat.EachSearchDocument(ctx, yield)
		}, nil)
		if err != nil {
			idx.Close()
			return nil, err
		}
		log.Info("search index rebuilt", "documents", n, "took_ms", time.Since(start).Milliseconds())
	}
	return idx, nil
}

// CatalogConfig turns the server configuration into the catalog's rules.
func CatalogConfig(cfg *config.Config) catalog.Config {
	c := catalog.DefaultConfig()
	c.External = cfg.NetworkZone == "external"
	c.Code.Prefix, c.Code.Separator = cfg.CodePrefix, cfg.CodeSeparator
	c.Code.Width, _ = strconv.Atoi(cfg.CodeWidth)
	c.ChangeDeadlineDays, _ = strconv.Atoi(cfg.ChangeDays)
	return c
}

// ShareConfig turns the server configuration into the sharing deadlines.
func ShareConfig(cfg *config.Config, log *slog.Logger) share.Config {
	c := share.Config{Log: log}
	c.AnswerDays, _ = strconv.Atoi(cfg.AnswerDays)
	c.ProvideDays, _ = strconv.Atoi(cfg.ProvideDays)
	return c
}

// Run serves the platform until ctx ends.
func Run(ctx context.Context, cfg *config.Config, opt Options) error {
	if opt.Out == nil {
		opt.Out = os.Stdout
	}
	if opt.Logs == nil {
		opt.Logs = os.Stderr
	}
	log := Logger(opt.Logs, cfg.LogLevel)
	TuneServerGC()
	p := &Platform{Config: cfg, Log: log, Out: opt.Out}
	var err error
	if p.Keys, err = Keys(cfg); err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	if p.DB, err = OpenStore(ctx, cfg, log); err != nil {
		return err
	}
	defer p.DB.Close()
	if p.Audit, err = audit.Open(p.DB, audit.Options{Algorithm: cfg.AuditHash, Key: p.Keys.Derive("audit")}); err != nil {
		return err
	}
	defer p.Audit.Close()
	p.Bus, err = bus.Open(ctx, bus.Config{URL: cfg.NATS, StoreDir: filepath.Join(cfg.Data, "nats"), Listen: cfg.NATSListen, Name: "govshare"}, log)
	if err != nil {
		return err
	}
	defer p.Bus.Close()
	p.Identity = identity.NewService(p.DB, p.Audit, p.Keys, identity.DefaultConfig())
	p.Calendar = calendar.New(p.DB, p.Audit)
	p.RefData = refdata.New(p.DB, p.Audit)
	if err := p.RefData.EnsureDefaults(ctx); err != nil {
		return fmt.Errorf("reference data: %w", err)
	}
	p.Apps = share.NewApps(p.DB, p.Audit, p.Keys)
	p.Notify = notify.New(p.DB, p.Audit, p.Keys, log)
	p.Catalog = catalog.NewService(p.DB, p.Audit, p.Calendar, CatalogConfig(cfg))
	p.Resources = resource.New(p.DB, p.Audit, p.Catalog, func(ctx context.Context) (quality.Reference, error) { return p.RefData.Reference(ctx) }, log)
	// A mounted resource follows each new version of its entry.
	p.Catalog.OnChange(func(ctx context.Context, id int64) {
		if err := p.Resources.Follow(ctx, id); err != nil {
			log.Warn("resource does not follow its entry's new version", "entry", id, "err", err)
		}
	})
	p.Share = share.NewService(p.DB, p.Audit, p.Catalog, p.Calendar, p.Notify, ShareConfig(cfg, log))
	p.PKI = pki.NewService(p.DB, p.Audit, p.Keys)
	replicas, _ := strconv.Atoi(cfg.Replicas)
	p.Exchange = exchange.New(exchange.Deps{DB: p.DB, Audit: p.Audit, Bus: p.Bus, Resources: p.Resources, Share: p.Share, PKI: p.PKI,
		Masker: mask.New(p.Keys.Derive("mask/hash")), Notify: alarmNotifier{p.Notify}, Log: log, Replicas: replicas})
	p.Data = dataservice.New(dataservice.Deps{DB: p.DB, Resources: p.Resources, Grants: p.Share, Audit: p.Audit,
		Masker: mask.New(p.Keys.Derive("mask/hash")), Keys: p.Keys, Log: log})
	defer p.Data.Close()
	// Comparison jobs run until shutdown, and stop before the database closes.
	verifyCtx, stopVerify := context.WithCancel(ctx)
	verifyDone := p.Data.StartVerifyJobs(verifyCtx)
	defer func() { stopVerify(); <-verifyDone }()
	if err := p.Catalog.EnsureDefaultTree(ctx); err != nil {
		return err
	}
	idx, err := OpenIndex(ctx, filepath.Join(cfg.Data, "search"), p.Catalog, log)
	if err != nil {
		return err
	}
	defer idx.Close()
	// Servers sharing one database tell each other which entries changed,
	// so every server's index follows.
	const changed = "govshare.catalog.changed"
	p.Catalog.OnChange(func(_ context.Context, id int64) {
		if err := p.Bus.Conn().Publish(changed, []byte(strconv.FormatInt(id, 10))); err != nil {
			log.Warn("announce catalog change", "entry", id, "err", err)
		}
	})
	sub, err := p.Bus.Conn().Subscribe(changed, func(m *nats.Msg) {
		if id, err := strconv.ParseInt(string(m.Data), 10, 64); err == nil {
			if err := p.Catalog.Reindex(ctx, id); err != nil {
				log.Error("search index update", "entry", id, "err", err)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to catalog changes: %w", err)
	}
	defer sub.Unsubscribe()

	if opt.Seed != nil {
		if err := opt.Seed(ctx, p); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}

	h, err := web.New(web.Deps{
		Identity: p.Identity, Catalog: p.Catalog, Calendar: p.Calendar, RefData: p.RefData, Apps: p.Apps, Notify: p.Notify, Share: p.Share, Todos: todo.New(p.Catalog, p.Share, p.Resources), Resources: p.Resources, Masker: mask.New(p.Keys.Derive("mask/hash")), Data: p.Data, Audit: p.Audit, Keys: p.Keys, Log: log, Version: opt.Version, Banner: opt.Banner,
		SecureCookies: cfg.SecureCookies || cfg.TLSCert != "",
		PKI:           p.PKI, Exchange: p.Exchange, NodeURL: p.NodeURL,
		Proxy: proxy.New(proxy.Deps{DB: p.DB, Audit: p.Audit, Grants: p.Share, Catalog: p.Catalog, Keys: p.Keys, Config: proxy.Config{Log: log}}),
		Ready: map[string]web.Checker{
			"database": web.CheckFunc(p.DB.Ping),
			"bus":      p.Bus,
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server using the port? choose one with --addr)", cfg.Addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	go p.retentionLoop(ctx, cfg.Retention())
	// Webhook deliveries and deadline reminders run until shutdown, and
	// stop before the database closes.
	background, stopBackground := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer func() { stopBackground(); workers.Wait() }()
	workers.Go(func() { p.Notify.Run(background) })
	if err := p.startExchange(background, cfg, &workers, log); err != nil {
		return err
	}
	workers.Go(func() { p.Notify.RunReminders(background, reminderEvery, p.deadlineSources()...) })

	addr := ln.Addr().String()
	log.Info("govshare serving", "url", scheme+"://"+addr, "database", p.DB.String(), "bus_embedded", p.Bus.Embedded(), "version", opt.Version)
	fmt.Fprintf(opt.Out, "govshare %s 已启动 / serving at %s://%s\n", opt.Version, scheme, addr)
	fmt.Fprintf(opt.Out, "  数据库 database: %s\n  消息总线 bus: %s\n  API文档 API reference: %s://%s/api/docs\n",
		p.DB.String(), busDesc(p.Bus), scheme, addr)
	if opt.Ready != nil {
		opt.Ready(addr)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	return nil
}

func busDesc(b *bus.Bus) string {
	if b.Embedded() {
		if u := b.ClientURL(); u != "" {
			return "embedded NATS JetStream at " + u
		}
		return "embedded NATS JetStream (in-process)"
	}
	return "external NATS " + b.ClientURL()
}

// reminderEvery is how often open deadlines are checked for reminders.
const reminderEvery = 5 * time.Minute

// deadlineSources are the domains whose open deadlines are reminded of:
// before they are due to their departments, once overdue to the platform
// administrators too. A domain joins by implementing
// notify.DeadlineSource and being listed here.
func (p *Platform) deadlineSources() []notify.DeadlineSource {
	return []notify.DeadlineSource{p.Catalog, p.Share, p.Resources}
}

// retentionLoop prunes expired audit events once a day.
func (p *Platform) retentionLoop(ctx context.Context, retention time.Duration) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		n, err := p.Audit.Prune(ctx, retention, time.Now())
		if err != nil {
			p.Log.Error("audit retention", "err", err)
		} else if n > 0 {
			p.Log.Info("audit retention removed expired events", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// NodeURL is the node endpoint's address ("" until it listens, or when it
// is off).
func (p *Platform) NodeURL() string {
	if u := p.nodeURL.Load(); u != nil {
		return *u
	}
	return ""
}

// The collector's settings when the operator sets none (GOGC,
// GOMEMLIMIT). The server's live heap is tens of megabytes and every
// request allocates, so with Go's default (collect when the heap has
// grown by 100 % of the live heap) a busy server collects several times
// a second: a quarter of its CPU in the data services bench. Growing by
// 300 % between collections took 29 µs of 162 µs off a keyed lookup. The
// soft limit keeps the heap bounded when a job holds much live data
// (a comparison job of a million records: about 340 MB): near it the
// collector runs as often as it must.
const (
	defaultGCPercent   = 300
	defaultMemoryLimit = 512 << 20
)

// TuneServerGC sets the collector of a process serving the platform, as
// Run does (benchmarks that assemble the server in their own process
// call it too).
func TuneServerGC() { TuneGC(defaultGCPercent, defaultMemoryLimit) }

// TuneGC sets the collector's percent and soft memory limit (bytes) of a
// govshare process, each unless the operator set its own (GOGC,
// GOMEMLIMIT): the server's above, an exchange node's in its command.
func TuneGC(gcPercent int, memoryLimit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
