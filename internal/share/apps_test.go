package share_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

func setup(t *testing.T, db *store.DB) (*share.Apps, policy.Actor, policy.Actor, *audit.Log) {
	ctx := context.Background()
	keys, _ := secret.New(make([]byte, 32))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	ids := identity.NewService(db, log, keys, identity.DefaultConfig())
	police, _ := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "市公安局", CreditCode: identity.SyntheticCreditCode("350100", 2), RegionCode: "350100"})
	civil, _ := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "市民政局", CreditCode: identity.SyntheticCreditCode("350100", 3), RegionCode: "350100"})
	a, _ := ids.SeedUser(ctx, identity.UserInput{Login: "gaj.admin", Name: "测试", DeptID: police.ID, Roles: []policy.Role{policy.DeptAdmin}, Password: "Test@Pass2026"}, false, "")
	b, _ := ids.SeedUser(ctx, identity.UserInput{Login: "mzj.admin", Name: "测试", DeptID: civil.ID, Roles: []policy.Role{policy.DeptAdmin}, Password: "Test@Pass2026"}, false, "")
	return share.NewApps(db, log, keys), a.Actor(), b.Actor(), log
}

func signed(t *testing.T, key, sec, method string, at time.Time, nonce string, body []byte) share.Signed {
	q := url.Values{"b": {"2"}, "a": {"1", "0"}}
	ts := strconv.FormatInt(at.Unix(), 10)
	sig, err := client.Sign(method, sec, client.Canonical("POST", "/api/v1/data/x", q, ts, nonce, body))
	if err != nil {
		t.Fatal(err)
	}
	return share.Signed{Method: "POST", Path: "/api/v1/data/x", Query: q, Body: body, ClientAddr: "10.1.2.3", AppKey: key, Timestamp: ts,
		Nonce: nonce, Signature: sig, SignMethod: method, Purpose: "社会救助资格核验"}
}

func code(t *testing.T, err error, want string) {
	t.Helper()
	if ae, ok := apperr.As(err); !ok || ae.Code != want {
		t.Fatalf("want %s, got %v", want, err)
	}
}

func TestSignedRequestsAreCheckedStrictly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		apps, police, civil, log := setup(t, db)
		ctx := context.Background()
		_, _, err := apps.Register(ctx, police, share.AppInput{Name: "户籍核验系统", Purpose: "", Contact: "张三"})
		code(t, err, "share.app_purpose_required")
		app, sec, err := apps.Register(ctx, police, share.AppInput{Name: "户籍核验系统", Purpose: "办事核验", Contact: "张三", AllowedAddrs: []string{"10.1.0.0/16"}})
		if err != nil || sec == "" || app.Key == "" {
			t.Fatal(err)
		}
		var stored string
		db.QueryRow(ctx, "SELECT secret FROM apps WHERE id = ?", app.ID).Scan(&stored)
		if stored == sec {
			t.Fatal("secret stored in plain text")
		}
		now := time.Now()
		apps.SetClock(func() time.Time { return now })
		body := []byte(`{"id":"11010519491231002X"}`)
		for i, m := range []string{client.HMACSHA256, client.HMACSM3} {
			if _, err := apps.Verify(ctx, signed(t, app.Key, sec, m, now, "n"+strconv.Itoa(i), body)); err != nil {
				t.Fatalf("%s: %v", m, err)
			}
		}
		// Replay, clock skew, tampering, missing purpose, wrong address.
		_, err = apps.Verify(ctx, signed(t, app.Key, sec, client.HMACSHA256, now, "n0", body))
		code(t, err, "share.nonce_reused")
		_, err = apps.Verify(ctx, signed(t, app.Key, sec, client.HMACSHA256, now.Add(-6*time.Minute), "n9", body))
		code(t, err, "share.timestamp_skew")
		r := signed(t, app.Key, sec, client.HMACSHA256, now, "n10", body)
		r.Body = []byte(`{"id":"440524188001010014"}`)
		_, err = apps.Verify(ctx, r)
		code(t, err, "share.signature_invalid")
		r = signed(t, app.Key, sec, client.HMACSHA256, now, "n11", body)
		r.Query.Set("a", "9")
		_, err = apps.Verify(ctx, r)
		code(t, err, "share.signature_invalid")
		r = signed(t, app.Key, sec, client.HMACSHA256, now, "n12", body)
		r.Purpose = ""
		_, err = apps.Verify(ctx, r)
		code(t, err, "share.purpose_required")
		r = signed(t, app.Key, sec, client.HMACSHA256, now, "n13", body)
		r.ClientAddr = "192.0.2.1"
		_, err = apps.Verify(ctx, r)
		code(t, err, "share.address_refused")
		// Rotation retires the old secret; revocation ends the app.
		if _, _, err := apps.Rotate(ctx, civil, app.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("other department rotates: %v", err)
		}
		_, sec2, err := apps.Rotate(ctx, police, app.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = apps.Verify(ctx, signed(t, app.Key, sec, client.HMACSHA256, now, "n14", body))
		code(t, err, "share.signature_invalid")
		if _, err := apps.Verify(ctx, signed(t, app.Key, sec2, client.HMACSHA256, now, "n15", body)); err != nil {
			t.Fatal(err)
		}
		if err := apps.Revoke(ctx, police, app.ID); err != nil {
			t.Fatal(err)
		}
		_, err = apps.Verify(ctx, signed(t, app.Key, sec2, client.HMACSHA256, now, "n16", body))
		code(t, err, "share.app_unknown")
		evs, _ := log.List(ctx, audit.Filter{Action: "app.auth_failed", Limit: 100})
		if len(evs) != 8 {
			t.Fatalf("%d refusals audited, want 8", len(evs))
		}
	})
}

// TestNonceIsSingleUseUnderConcurrency sends copies of one signed request
// at once to two servers sharing the database (two Apps), and many
// distinct requests beside them: exactly one copy passes, every distinct
// request passes, and each nonce is stored once.
func TestNonceIsSingleUseUnderConcurrency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		apps, police, _, log := setup(t, db)
		ctx := context.Background()
		app, sec, err := apps.Register(ctx, police, share.AppInput{Name: "户籍核验系统", Purpose: "核验", Contact: "张三"})
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := secret.New(make([]byte, 32))
		other := share.NewApps(db, log, keys) // a second server
		now := time.Now()
		body := []byte(`{}`)
		replayed := signed(t, app.Key, sec, client.HMACSHA256, now, "same", body)
		const copies, distinct = 24, 200
		var wg sync.WaitGroup
		var passed, refused, distinctOK atomic.Int32
		for i := range copies + distinct {
			wg.Go(func() {
				srv := apps
				if i%2 == 1 {
					srv = other
				}
				r := replayed
				if i >= copies {
					r = signed(t, app.Key, sec, client.HMACSHA256, now, "n"+strconv.Itoa(i), body)
				}
				_, err := srv.Verify(ctx, r)
				switch {
				case i >= copies && err == nil:
					distinctOK.Add(1)
				case i < copies && err == nil:
					passed.Add(1)
				case i < copies && isNonceReused(err):
					refused.Add(1)
				default:
					t.Errorf("request %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if passed.Load() != 1 || refused.Load() != copies-1 || distinctOK.Load() != distinct {
			t.Fatalf("copies passed %d, refused %d; distinct passed %d of %d", passed.Load(), refused.Load(), distinctOK.Load(), distinct)
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM app_nonces WHERE app_id = ?", app.ID).Scan(&n); err != nil || n != distinct+1 {
			t.Fatalf("%d nonces stored, want %d (%v)", n, distinct+1, err)
		}
	})
}

func isNonceReused(err error) bool {
	ae, ok := apperr.As(err)
	return ok && ae.Code == "share.nonce_reused"
}

// TestNonceUsedWithTheAuditEvent: a request verified with VerifyLater
// uses its nonce up in its audit event's transaction, or in the ledger
// when it wrote no event; copies of one request going either way at once
// (two servers) pass exactly once, and a refused copy's event is not
// written.
func TestNonceUsedWithTheAuditEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		apps, police, _, log := setup(t, db)
		ctx := context.Background()
		app, sec, err := apps.Register(ctx, police, share.AppInput{Name: "户籍核验系统", Purpose: "核验", Contact: "张三"})
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := secret.New(make([]byte, 32))
		other := share.NewApps(db, log, keys) // a second server
		now := time.Now()
		body := []byte(`{}`)
		queries := func() int {
			evs, err := log.List(ctx, audit.Filter{Action: "data.query", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		// use serves a request the late way: verify, the operation's
		// event (when it writes one), settle.
		use := func(srv *share.Apps, r share.Signed, event bool) error {
			a, c, err := srv.VerifyLater(ctx, r)
			if err != nil {
				return err
			}
			rctx := audit.WithClaim(ctx, c)
			if event {
				if err := log.Append(rctx, audit.Event{Action: "data.query", ObjectID: r.Nonce}); err != nil && !errors.Is(err, audit.ErrClaimUsed) {
					return err
				}
			}
			return srv.Settle(rctx, c, r, a.DeptID)
		}
		one := signed(t, app.Key, sec, client.HMACSHA256, now, "late-1", body)
		if err := use(apps, one, true); err != nil {
			t.Fatal(err)
		}
		if err := use(apps, one, true); !isNonceReused(err) {
			t.Fatalf("replay with an event: %v", err)
		}
		if err := use(apps, one, false); !isNonceReused(err) {
			t.Fatalf("replay without an event: %v", err)
		}
		if _, err := apps.Verify(ctx, one); !isNonceReused(err) {
			t.Fatalf("replay through Verify: %v", err)
		}
		if n := queries(); n != 1 {
			t.Fatalf("%d data.query events, want 1", n)
		}
		// Without an event the ledger takes the nonce.
		two := signed(t, app.Key, sec, client.HMACSHA256, now, "late-2", body)
		if err := use(other, two, false); err != nil {
			t.Fatal(err)
		}
		if err := use(apps, two, true); !isNonceReused(err) {
			t.Fatalf("replay of a request without event: %v", err)
		}
		// Copies at once, every way, on two servers.
		replayed := signed(t, app.Key, sec, client.HMACSHA256, now, "late-3", body)
		const copies = 30
		var wg sync.WaitGroup
		var passed, refused atomic.Int32
		for i := range copies {
			wg.Go(func() {
				srv := apps
				if i%2 == 1 {
					srv = other
				}
				var err error
				switch i % 3 {
				case 0:
					err = use(srv, replayed, true)
				case 1:
					err = use(srv, replayed, false)
				default:
					_, err = srv.Verify(ctx, replayed)
				}
				switch {
				case err == nil:
					passed.Add(1)
				case isNonceReused(err):
					refused.Add(1)
				default:
					t.Errorf("copy %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if passed.Load() != 1 || refused.Load() != copies-1 {
			t.Fatalf("copies passed %d, refused %d", passed.Load(), refused.Load())
		}
		if n := queries(); n > 2 {
			t.Fatalf("%d data.query events: a refused copy's event was written", n)
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM app_nonces WHERE app_id = ?", app.ID).Scan(&n); err != nil || n != 3 {
			t.Fatalf("%d nonces stored, want 3 (%v)", n, err)
		}
		if rep, err := log.Verify(ctx, nil); err != nil || rep.Break != nil {
			t.Fatalf("chain: %+v %v", rep, err)
		}
	})
}
