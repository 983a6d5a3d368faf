package share_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// signedCheck is the sharing fixture with an app of the consumer
// department granted the unconditional resource: what a data service sees
// on every app request.
type signedCheck struct {
	*sharing
	db    *store.DB
	app   client.App
	appID int64
	use   share.Use
	query url.Values
}

func newSignedCheck(b *testing.B, be storetest.Backend) *signedCheck {
	b.Helper()
	db := be.Open(b)
	s := newSharing(b, db, calendar.Weekdays{})
	ctx := context.Background()
	app, sec, err := s.apps.Register(ctx, s.civil, share.AppInput{Name: "救助系统", Purpose: "救助审核", Contact: "李四", AllowedAddrs: []string{"127.0.0.0/8"}})
	if err != nil {
		b.Fatal(err)
	}
	e := s.entries[catalog.ShareUnconditional]
	if a, err := s.svc.Apply(ctx, s.civil, e.ID, share.Terms{Purpose: "救助审核", AppIDs: []int64{app.ID}}); err != nil || a.GrantID == 0 {
		b.Fatalf("subscription: %+v %v", a, err)
	}
	items := []string{"citizen_id", "name"}
	return &signedCheck{sharing: s, db: db, app: client.App{Key: app.Key, Secret: sec}, appID: app.ID,
		use:   share.Use{DeptID: s.civil.DeptID, AppID: app.ID, Resource: e.Code, Items: items, Method: catalog.MethodAPI},
		query: url.Values{"resource": {e.Code}, "items": {"citizen_id,name"}, "method": {"api"}}}
}

// sign makes n grant-check requests signed by the client package, each
// with its own nonce and timestamp, as the server reads them.
func (f *signedCheck) sign(b *testing.B, method string, n int) []share.Signed {
	b.Helper()
	app := f.app
	app.Method = method
	out := make([]share.Signed, n)
	for i := range out {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/api/v1/grants/check?"+f.query.Encode(), nil)
		if err := app.SignRequest(req, "救助审核"); err != nil {
			b.Fatal(err)
		}
		h := req.Header
		out[i] = share.Signed{Method: req.Method, Path: req.URL.EscapedPath(), Query: req.URL.Query(), ClientAddr: "127.0.0.1",
			AppKey: h.Get(client.HeaderAppKey), Timestamp: h.Get(client.HeaderTimestamp), Nonce: h.Get(client.HeaderNonce),
			Signature: h.Get(client.HeaderSignature), SignMethod: h.Get(client.HeaderMethod), Purpose: h.Get(client.HeaderPurpose)}
	}
	return out
}

// BenchmarkSignedRequestCheck is the server's work for one app request
// that uses shared data: verify the signature (app lookup, source address,
// timestamp, HMAC, and the single-use nonce written to app_nonces), then
// the grant check. The requests are signed before the timer starts, each
// with a fresh nonce and timestamp; BenchmarkSign times the signing. The
// calls run one after another. The baseline nonce-insert-only runs the
// nonce's INSERT alone, one durable autocommit per op as Verify does, on
// the same database: the share of ns/op the nonce storage takes.
func BenchmarkSignedRequestCheck(b *testing.B) {
	ctx := context.Background()
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := newSignedCheck(b, be)
			for _, method := range []string{client.HMACSHA256, client.HMACSM3} {
				b.Run(method, func(b *testing.B) {
					reqs := f.sign(b, method, b.N) // b.Loop cannot size this ahead
					b.ReportAllocs()
					b.ResetTimer()
					for i := range b.N {
						app, err := f.apps.Verify(ctx, reqs[i])
						if err != nil {
							b.Fatal(err)
						}
						use := f.use
						use.DeptID, use.AppID = app.DeptID, app.ID
						if _, err := f.svc.Permit(ctx, use); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run("nonce-insert-only", func(b *testing.B) {
				prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
				b.ReportAllocs()
				for i := range b.N {
					if _, err := f.db.Exec(ctx, "INSERT INTO app_nonces (signed_at, app_id, nonce) VALUES (?, ?, ?)",
						store.Now().Unix(), f.appID, prefix+strconv.Itoa(i)); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkPermit is the grant check alone, as data services call it on
// every request: from the cache, reloaded from the database once a second.
func BenchmarkPermit(b *testing.B) {
	ctx := context.Background()
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := newSignedCheck(b, be)
			if _, err := f.svc.Permit(ctx, f.use); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.svc.Permit(ctx, f.use); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSign is the client's side: signing one grant-check request.
func BenchmarkSign(b *testing.B) {
	q := url.Values{"resource": {"101/000001"}, "items": {"citizen_id,name"}, "method": {"api"}}
	for _, method := range []string{client.HMACSHA256, client.HMACSM3} {
		b.Run(method, func(b *testing.B) {
			app := client.App{Key: "app_bench", Secret: "bench-secret-0123456789abcdefghijklmn", Method: method}
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/api/v1/grants/check?"+q.Encode(), nil)
				if err := app.SignRequest(req, "救助审核"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
