package exchangebench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"govshare/internal/agent"
	"govshare/internal/audit"
	"govshare/internal/bus"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/exchange"
	"govshare/internal/identity"
	"govshare/internal/mask"
	"govshare/internal/notify"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/server"
	"govshare/internal/share"
	"govshare/internal/store"
)

// center is the exchange center in the bench's own process, assembled as
// the server assembles it: the store, the audit log, the catalog, the
// resource store, sharing, the CA, the embedded bus (every write synced
// before its ack) and the exchange service with its node endpoint on a
// mutual-TLS listener.
type center struct {
	db       *store.DB
	audit    *audit.Log
	pki      *pki.Service
	share    *share.Service
	res      *resource.Service
	ex       *exchange.Service
	bus      *bus.Bus
	url      string
	provider policy.Actor // data administrator of the providing department
	consumer policy.Actor // … of the consuming one
	provDept int64
	consDept int64
	resource resource.Resource
	grant    share.Grant

	stops []func()
}

// openCenter seeds db (an empty, migrated scratch database): two
// departments with their administrators, the catalog entry of the bench's
// ten columns, published, mounted by the provider and granted to the
// consumer for exchange; then starts the bus, the exchange service and the
// node endpoint.
func openCenter(ctx context.Context, db *store.DB, dir string, log *slog.Logger) (c *center, err error) {
	c = &center{db: db}
	// The center collects garbage as the server's process does.
	server.TuneServerGC()
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keys, err := secret.New(master)
	if err != nil {
		return nil, err
	}
	if c.audit, err = audit.Open(db, audit.Options{Key: keys.Derive("audit")}); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	c.stops = append(c.stops, func() { c.audit.Close() })
	ids := identity.NewService(db, c.audit, keys, identity.DefaultConfig())
	var actors [3]policy.Actor
	var depts [3]int64
	for i, d := range []struct {
		dept, login string
		role        policy.Role
	}{
		{"示范市政务信息办", "xbench.admin", policy.PlatformAdmin},
		{"示范市公安局", "xbench.provider", policy.DeptAdmin},
		{"示范市民政局", "xbench.consumer", policy.DeptAdmin},
	} {
		dept, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: d.dept,
			CreditCode: identity.SyntheticCreditCode("350100", 910000+i), RegionCode: "350100"})
		if err != nil {
			return nil, fmt.Errorf("department: %w", err)
		}
		u, err := ids.SeedUser(ctx, identity.UserInput{Login: d.login, Name: "交换基准", DeptID: dept.ID,
			Roles: []policy.Role{d.role}, Password: "Bench@Pass2026"}, false, "")
		if err != nil {
			return nil, fmt.Errorf("user: %w", err)
		}
		actors[i], depts[i] = u.Actor(), dept.ID
	}
	admin := actors[0]
	c.provider, c.consumer = actors[1], actors[2]
	c.provDept, c.consDept = depts[1], depts[2]

	cat := catalog.NewService(db, c.audit, calendar.Weekdays{}, catalog.DefaultConfig())
	if err := cat.EnsureDefaultTree(ctx); err != nil {
		return nil, fmt.Errorf("classification tree: %w", err)
	}
	c.res = resource.New(db, c.audit, cat, func(context.Context) (quality.Reference, error) { return noRefs{}, nil }, log)
	c.share = share.NewService(db, c.audit, cat, calendar.Weekdays{}, noNotices{}, share.Config{AnswerDays: 10, ProvideDays: 5})
	c.pki = pki.NewService(db, c.audit, keys)

	e, err := cat.CreateEntry(ctx, c.provider, catalog.Content{
		Name: "人口基本信息(交换基准)", ClassCode: "101", Abstract: "本市人口基本信息，交换基准测试用合成数据。",
		FormatClass: "database", FormatType: "postgresql", Items: items(),
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodExchange},
		OpenType: catalog.OpenClosed, UpdateCycle: "realtime",
	})
	if err == nil {
		_, err = cat.Submit(ctx, c.provider, e.ID)
	}
	if err == nil {
		_, err = cat.Approve(ctx, admin, e.ID)
	}
	if err == nil {
		e, err = cat.Publish(ctx, admin, e.ID)
	}
	if err == nil {
		c.resource, err = c.res.Mount(ctx, c.provider, e.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog entry and resource: %w", err)
	}
	var names []string
	for _, it := range items() {
		names = append(names, it.MachineName)
	}
	app, err := c.share.Apply(ctx, c.consumer, e.ID, share.Terms{Items: names, Methods: []catalog.ShareMethod{catalog.MethodExchange},
		Purpose: "交换基准测试"})
	if err == nil {
		c.grant, err = c.share.Grant(ctx, c.consumer, app.GrantID)
	}
	if err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}

	if c.bus, err = bus.Open(ctx, bus.Config{StoreDir: filepath.Join(dir, "center-nats"), Name: "govshare-xbench"}, log); err != nil {
		return nil, fmt.Errorf("center bus: %w", err)
	}
	c.stops = append(c.stops, func() { _ = c.bus.Close() })
	c.ex = exchange.New(exchange.Deps{Log: log, DB: db, Audit: c.audit, Bus: c.bus, Resources: c.res, Share: c.share, PKI: c.pki,
		Masker: mask.New(keys.Derive("mask/hash"))})
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done, err := c.ex.Start(runCtx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("exchange service: %w", err)
	}
	c.stops = append(c.stops, func() { cancel(); <-done })

	tlsCfg, err := c.pki.ServerTLS(ctx, []string{"127.0.0.1"})
	if err != nil {
		return nil, fmt.Errorf("node endpoint certificate: %w", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("node endpoint: %w", err)
	}
	srv := &http.Server{Handler: c.ex.NodeHandler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() { _ = srv.Serve(ln) }()
	c.stops = append(c.stops, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	})
	c.url = "https://" + ln.Addr().(*net.TCPAddr).String()
	return c, nil
}

// close stops what openCenter started, last first.
func (c *center) close() {
	for i := len(c.stops) - 1; i >= 0; i-- {
		c.stops[i]()
	}
	c.stops = nil
}

// enrol registers a node of dept, makes its key and has its certificate
// issued the way `govshare agent enrol` does, and writes them into the
// node's data folder.
func (c *center) enrol(ctx context.Context, actor policy.Actor, dept int64, name, dataDir string) (int64, error) {
	enr, code, err := c.pki.CreateEnrolment(ctx, actor, dept, name)
	if err != nil {
		return 0, err
	}
	key, err := pki.NewNodeKey()
	if err != nil {
		return 0, err
	}
	csr, err := pki.CSR(key, name)
	if err != nil {
		return 0, err
	}
	cert, ca, err := c.pki.Enrol(ctx, code, csr)
	if err != nil {
		return 0, err
	}
	if err := agent.WriteIdentity(dataDir, key, cert, ca); err != nil {
		return 0, err
	}
	return enr.Node.ID, nil
}

// appliedRows is how many rows the center's resource store took in from
// the bench's job so far (batches applied).
func (c *center) appliedRows(ctx context.Context) (int64, error) {
	var n int64
	err := c.db.QueryRow(ctx, "SELECT COALESCE(SUM(rows_total), 0) FROM resource_batches WHERE resource_id = ? AND state = 'applied'", c.resource.ID).Scan(&n)
	return n, err
}

// waiting is how many batches from nodes wait on the center's bus for the
// intake.
func (c *center) waiting(ctx context.Context) uint64 {
	st, err := c.bus.JetStream().Stream(ctx, "GOVSHARE_EXCHANGE_IN")
	if err != nil {
		return 0
	}
	return st.CachedInfo().State.Msgs
}

// published is how many deliveries the center has published to its
// subscribers.
func (c *center) published(ctx context.Context) uint64 {
	st, err := c.bus.JetStream().Stream(ctx, "GOVSHARE_EXCHANGE_OUT")
	if err != nil {
		return 0
	}
	return st.CachedInfo().State.LastSeq
}

// noRefs accepts every region and code: the bench's items use no
// reference tables.
type noRefs struct{}

func (noRefs) RegionKnown(string) bool       { return true }
func (noRefs) CodeKnown(string, string) bool { return true }
func (noRefs) HasTable(string) bool          { return true }

type noNotices struct{}

func (noNotices) Send(context.Context, notify.Notice) error { return nil }
