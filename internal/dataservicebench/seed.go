package dataservicebench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"

	"govshare/client"
	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/server"
	"govshare/internal/share"
	"govshare/internal/store"
)

// The bench database keeps what it built between runs: the platform's
// own tables (departments, the published entry, the mounted resource
// with its ten million people, the app and its grant) and, in
// metaTable, the master key that seals them, the app's credentials and
// how many people the resource holds.
const metaTable = "bench_dataservice_meta"

// purpose is what every request states in X-Purpose.
const purpose = "最低生活保障对象身份核验"

// ErrNotBenchDB refuses a database the bench did not make.
var ErrNotBenchDB = errors.New("data services bench: the database holds departments the bench did not create; give it a database of its own (--database)")

// meta reads and writes metaTable.
type meta struct{ db *store.DB }

func (m meta) ensure(ctx context.Context) error {
	_, err := m.db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+metaTable+" (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
	return err
}

func (m meta) get(ctx context.Context, k string) (string, error) {
	var v string
	err := m.db.QueryRow(ctx, "SELECT v FROM "+metaTable+" WHERE k = ?", k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

func (m meta) set(ctx context.Context, k, v string) error {
	_, err := m.db.Exec(ctx, "INSERT INTO "+metaTable+" (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", k, v)
	return err
}

// masterKey returns the bench database's master key, made on its first
// run. It refuses a database holding departments but no key: not one the
// bench made.
func masterKey(ctx context.Context, db *store.DB) (*secret.Keys, string, error) {
	m := meta{db}
	if err := m.ensure(ctx); err != nil {
		return nil, "", err
	}
	k, err := m.get(ctx, "master_key")
	if err != nil {
		return nil, "", err
	}
	if k == "" {
		var depts int64
		if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM departments").Scan(&depts); err != nil {
			return nil, "", err
		}
		if depts > 0 {
			return nil, "", fmt.Errorf("%w (%d departments in %s)", ErrNotBenchDB, depts, db)
		}
		b := make([]byte, secret.KeySize)
		_, _ = rand.Read(b)
		k = base64.StdEncoding.EncodeToString(b)
		if err := m.set(ctx, "master_key", k); err != nil {
			return nil, "", err
		}
	}
	keys, err := secret.Parse(k)
	return keys, k, err
}

// fixture is what the runs need from the seeded platform.
type fixture struct {
	app      client.App
	res      resource.Resource
	provider policy.Actor // the provider's data administrator, who loads
	entryID  int64
}

// seed finds, or on the first run creates, the departments, the
// population entry (published, mounted), the consumer's app and its
// grant for api, verify and file, then fills the resource when it does
// not hold rows people.
func seed(ctx context.Context, p *server.Platform, dsn string, rows int64, progress io.Writer) (*fixture, error) {
	m := meta{p.DB}
	fx := &fixture{}
	code, err := m.get(ctx, "resource")
	if err != nil {
		return nil, err
	}
	if code == "" {
		fmt.Fprintln(progress, "first run: creating departments, the population entry (published, mounted), an app and its grant")
		if err := create(ctx, p, m); err != nil {
			return nil, fmt.Errorf("seed: %w (drop the bench database to start again)", err)
		}
		if code, err = m.get(ctx, "resource"); err != nil {
			return nil, err
		}
	}
	vals := map[string]string{}
	for _, k := range []string{"app_key", "app_secret", "provider_user"} {
		if vals[k], err = m.get(ctx, k); err != nil {
			return nil, err
		}
	}
	fx.app = client.App{Key: vals["app_key"], Secret: vals["app_secret"]}
	uid, _ := strconv.ParseInt(vals["provider_user"], 10, 64)
	u, err := p.Identity.User(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("seed: provider's administrator: %w", err)
	}
	fx.provider = u.Actor()
	if fx.res, err = p.Resources.ByCode(ctx, code); err != nil {
		return nil, fmt.Errorf("seed: resource %s: %w", code, err)
	}
	fx.entryID = fx.res.EntryID
	held, err := m.get(ctx, "rows")
	if err != nil {
		return nil, err
	}
	if held != strconv.FormatInt(rows, 10) || fx.res.RecordCount != rows {
		if err := fill(ctx, p, dsn, fx, rows, progress); err != nil {
			return nil, err
		}
		if fx.res, err = p.Resources.ByCode(ctx, code); err != nil {
			return nil, err
		}
	} else {
		fmt.Fprintf(progress, "population: resource %s holds %d people (kept from an earlier run)\n", code, rows)
	}
	return fx, nil
}

// create makes the bench's departments, users, entry, resource, app and
// grant the product's way, and records them in the meta table.
func create(ctx context.Context, p *server.Platform, m meta) error {
	var actors [3]policy.Actor
	for i, d := range []struct {
		dept, login string
		role        policy.Role
	}{
		{"示范市政务服务数据管理局", "bench.ds.admin", policy.PlatformAdmin},
		{"示范市公安局", "bench.ds.provider", policy.DeptAdmin},
		{"示范市民政局", "bench.ds.consumer", policy.DeptAdmin},
	} {
		dept, err := p.Identity.SeedDepartment(ctx, identity.DepartmentInput{Name: d.dept,
			CreditCode: checkdigit.SyntheticCreditCode("350100", 810000+i), RegionCode: "350100"})
		if err != nil {
			return fmt.Errorf("department: %w", err)
		}
		u, err := p.Identity.SeedUser(ctx, identity.UserInput{Login: d.login, Name: "基准测试", DeptID: dept.ID,
			Roles: []policy.Role{d.role}, Password: "Bench@Pass2026"}, false, "")
		if err != nil {
			return fmt.Errorf("user: %w", err)
		}
		actors[i] = u.Actor()
	}
	admin, provider, consumer := actors[0], actors[1], actors[2]
	e, err := p.Catalog.CreateEntry(ctx, provider, catalog.Content{
		Name: "常住人口基本信息", ClassCode: "101", Abstract: "本市户籍常住人口的身份、户籍与联系信息(基准测试用合成数据)。",
		FormatClass: "database", FormatType: "postgresql", Items: items(),
		ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodAPI, catalog.MethodVerify, catalog.MethodFile},
		OpenType: catalog.OpenClosed, UpdateCycle: "daily",
	})
	if err == nil {
		_, err = p.Catalog.Submit(ctx, provider, e.ID)
	}
	if err == nil {
		_, err = p.Catalog.Approve(ctx, admin, e.ID)
	}
	if err == nil {
		e, err = p.Catalog.Publish(ctx, admin, e.ID)
	}
	if err != nil {
		return fmt.Errorf("catalog entry: %w", err)
	}
	r, err := p.Resources.Mount(ctx, provider, e.ID)
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	// The app may call from loopback only, so the source address check
	// does its work on every request; it has no limits of its own.
	app, sec, err := p.Apps.Register(ctx, consumer, share.AppInput{Name: "社会救助核验系统", Purpose: purpose, Contact: "基准测试",
		AllowedAddrs: []string{"127.0.0.0/8"}})
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	// An unconditional resource is granted at once: every item, every
	// method it offers, for this app.
	a, err := p.Share.Apply(ctx, consumer, e.ID, share.Terms{Purpose: purpose, AppIDs: []int64{app.ID}})
	if err != nil {
		return fmt.Errorf("grant: %w", err)
	}
	if a.GrantID == 0 {
		return fmt.Errorf("grant: the subscription to %s was not granted at once (state %s)", e.Code, a.State)
	}
	for k, v := range map[string]string{"app_key": app.Key, "app_secret": sec, "provider_user": strconv.FormatInt(provider.UserID, 10)} {
		if err := m.set(ctx, k, v); err != nil {
			return err
		}
	}
	// Written last: a run that finds it finds everything else.
	return m.set(ctx, "resource", r.Code)
}
