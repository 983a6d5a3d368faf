package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/identity"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// clock is a settable time shared by the service and the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

type fixture struct {
	db     *store.DB
	log    *audit.Log
	svc    *notify.Service
	clk    *clock
	police identity.Department
	health identity.Department
	users  map[string]identity.User
}

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	keys, _ := secret.New([]byte("0123456789abcdef0123456789abcdef"))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	ids := identity.NewService(db, log, keys, identity.DefaultConfig())
	f := &fixture{db: db, log: log, clk: &clock{t: time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)}, users: map[string]identity.User{}}
	f.svc = notify.New(db, log, keys, nil)
	f.svc.SetClock(f.clk.now)
	city, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "示范市人民政府", CreditCode: identity.SyntheticCreditCode("350100", 1), RegionCode: "350100"})
	if err != nil {
		t.Fatal(err)
	}
	f.police, _ = ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: city.ID, Name: "市公安局", CreditCode: identity.SyntheticCreditCode("350100", 2), RegionCode: "350100"})
	f.health, _ = ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: city.ID, Name: "市卫健委", CreditCode: identity.SyntheticCreditCode("350100", 3), RegionCode: "350100"})
	for _, u := range []struct {
		login string
		dept  int64
		role  policy.Role
	}{
		{"platform", city.ID, policy.PlatformAdmin},
		{"auditor", city.ID, policy.Auditor},
		{"p.admin", f.police.ID, policy.DeptAdmin},
		{"p.reviewer", f.police.ID, policy.DeptReviewer},
		{"p.consumer", f.police.ID, policy.Consumer},
		{"p.gone", f.police.ID, policy.DeptAdmin},
		{"h.admin", f.health.ID, policy.DeptAdmin},
	} {
		usr, err := ids.SeedUser(ctx, identity.UserInput{Login: u.login, Name: "测试" + u.login, DeptID: u.dept, Roles: []policy.Role{u.role}, Password: "Test@Pass2026"}, false, "")
		if err != nil {
			t.Fatal(err)
		}
		f.users[u.login] = usr
	}
	// A user who left: disabled users hear nothing.
	if _, err := db.Exec(ctx, "UPDATE users SET status = ? WHERE id = ?", identity.StatusDisabled, f.users["p.gone"].ID); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) actor(login string) policy.Actor { return f.users[login].Actor() }

// inbox returns the kinds of a user's notifications, newest first.
func (f *fixture) inbox(t *testing.T, login string) []string {
	t.Helper()
	ns, err := f.svc.List(context.Background(), f.actor(login), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, n := range ns {
		kinds = append(kinds, n.Kind)
	}
	return kinds
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	ae, ok := apperr.As(err)
	if !ok || ae.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

// receiver is a webhook endpoint that records what it gets and answers
// with the statuses it is told, then 200.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []*http.Request
	bodies   [][]byte
	statuses []int
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	rc := &receiver{statuses: statuses}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, r)
		rc.bodies = append(rc.bodies, b)
		status := http.StatusOK
		if len(rc.statuses) > 0 {
			status, rc.statuses = rc.statuses[0], rc.statuses[1:]
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func (f *fixture) register(t *testing.T, login, url string, events ...string) (notify.Webhook, string) {
	t.Helper()
	w, sec, err := f.svc.RegisterWebhook(context.Background(), f.actor(login), notify.WebhookInput{URL: url, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return w, sec
}

func (f *fixture) deliveries(t *testing.T, hook int64) []notify.Delivery {
	t.Helper()
	ds, err := f.svc.Deliveries(context.Background(), f.actor("platform"), hook, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func (f *fixture) deliver(t *testing.T) int {
	t.Helper()
	n, err := f.svc.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var submitted = notify.Notice{Kind: "application.submitted", TitleZH: "新的共享申请", TitleEN: "New sharing application",
	Href: "/applications/12", ObjectType: "application", ObjectID: "12", Data: map[string]any{"entry": "居住证登记信息"}}

func TestNoticeReachesRoleHoldersOfItsDepartmentOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		n := submitted
		n.DeptID, n.Roles = f.police.ID, []policy.Role{policy.DeptAdmin, policy.DeptReviewer}
		n.UserIDs = []int64{f.users["h.admin"].ID, f.users["p.admin"].ID, f.users["p.gone"].ID}
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		for login, want := range map[string]int{"p.admin": 1, "p.reviewer": 1, "h.admin": 1, "p.consumer": 0, "p.gone": 0, "platform": 0} {
			if got := len(f.inbox(t, login)); got != want {
				t.Errorf("%s has %d notifications, want %d", login, got, want)
			}
		}
		// Department 0: holders of the role in every department.
		if err := f.svc.Send(ctx, notify.Notice{Kind: "catalog.deadline", TitleZH: "目录更新提醒", Roles: []policy.Role{policy.DeptAdmin}}); err != nil {
			t.Fatal(err)
		}
		for login, want := range map[string]int{"p.admin": 2, "h.admin": 2, "p.reviewer": 1, "p.gone": 0} {
			if got := len(f.inbox(t, login)); got != want {
				t.Errorf("platform-wide: %s has %d notifications, want %d", login, got, want)
			}
		}
		// A title in one language serves both.
		ns, _ := f.svc.List(ctx, f.actor("h.admin"), false, 1)
		if ns[0].TitleEN != "目录更新提醒" || ns[0].Title("en") != "目录更新提醒" {
			t.Fatalf("english title %q", ns[0].TitleEN)
		}
		if err := f.svc.Send(ctx, notify.Notice{TitleZH: "无类型"}); err == nil {
			t.Fatal("notice without a kind sent")
		}
	})
}

func TestNotificationsAreTheRecipientsOwn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		admin, other := f.actor("p.admin"), f.actor("h.admin")
		for i := range 3 {
			n := submitted
			n.ObjectID = fmt.Sprint(i)
			n.UserIDs = []int64{admin.UserID}
			if err := f.svc.Send(ctx, n); err != nil {
				t.Fatal(err)
			}
			f.clk.add(time.Minute)
		}
		ns, _ := f.svc.List(ctx, admin, false, 0)
		if len(ns) != 3 || !ns[0].Unread() {
			t.Fatalf("list: %+v", ns)
		}
		oldest := ns[2]
		if err := f.svc.MarkRead(ctx, other, oldest.ID); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("another user marks it read: %v", err)
		}
		if err := f.svc.MarkRead(ctx, admin, 999999); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("unknown notification: %v", err)
		}
		if err := f.svc.MarkRead(ctx, admin, oldest.ID); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.MarkRead(ctx, admin, oldest.ID); err != nil {
			t.Fatalf("marking twice: %v", err)
		}
		if n, _ := f.svc.UnreadCount(ctx, admin); n != 2 {
			t.Fatalf("unread %d, want 2", n)
		}
		// Unread first, newest first; the read one last, with its time.
		ns, _ = f.svc.List(ctx, admin, false, 0)
		if ns[0].ObjectID != "2" || ns[1].ObjectID != "1" || ns[2].ObjectID != "0" || ns[2].Unread() || ns[2].ReadAt.IsZero() {
			t.Fatalf("order: %+v", ns)
		}
		if ns, _ = f.svc.List(ctx, admin, true, 0); len(ns) != 2 {
			t.Fatalf("unread only: %d", len(ns))
		}
		if err := f.svc.MarkAllRead(ctx, other); err != nil {
			t.Fatal(err)
		}
		if n, _ := f.svc.UnreadCount(ctx, admin); n != 2 {
			t.Fatalf("another user's mark-all touched these: unread %d", n)
		}
		if err := f.svc.MarkAllRead(ctx, admin); err != nil {
			t.Fatal(err)
		}
		if n, _ := f.svc.UnreadCount(ctx, admin); n != 0 {
			t.Fatalf("unread after mark all: %d", n)
		}
	})
}

func TestWebhookDeliveryIsSignedAndFiltered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		rc := newReceiver(t)
		hook, sec := f.register(t, "p.admin", rc.URL+"/hooks")
		catalogOnly, _ := f.register(t, "p.admin", rc.URL+"/catalog", "catalog.*")
		healthHook, _ := f.register(t, "h.admin", rc.URL+"/health")
		n := submitted
		n.DeptID, n.Roles = f.police.ID, []policy.Role{policy.DeptAdmin}
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		if got := f.deliver(t); got != 1 || rc.count() != 1 {
			t.Fatalf("attempts %d, received %d; want 1", got, rc.count())
		}
		if ds := f.deliveries(t, catalogOnly.ID); len(ds) != 0 {
			t.Fatalf("filtered webhook got %d deliveries", len(ds))
		}
		if ds := f.deliveries(t, healthHook.ID); len(ds) != 0 {
			t.Fatalf("another department's webhook got %d deliveries", len(ds))
		}
		req, body := rc.got[0], rc.bodies[0]
		ds := f.deliveries(t, hook.ID)
		if len(ds) != 1 || ds[0].Status != notify.Delivered || ds[0].Attempts != 1 || ds[0].LastStatusCode != 200 || ds[0].DeliveredAt.IsZero() {
			t.Fatalf("delivery log: %+v", ds)
		}
		if req.URL.Path != "/hooks" || req.Header.Get("Content-Type") != "application/json" || req.Header.Get("X-Govshare-Event") != "application.submitted" ||
			req.Header.Get("X-Govshare-Delivery") != fmt.Sprint(ds[0].ID) {
			t.Fatalf("headers: %v", req.Header)
		}
		sig := req.Header.Get("X-Govshare-Signature")
		if err := notify.VerifySignature(sec, sig, body, f.clk.now(), 5*time.Minute); err != nil {
			t.Fatalf("signature %q does not verify: %v", sig, err)
		}
		if !strings.HasPrefix(sig, fmt.Sprintf("t=%d,v1=", f.clk.now().Unix())) {
			t.Fatalf("signature header %q", sig)
		}
		for name, err := range map[string]error{
			"other secret":  notify.VerifySignature("whsec_other", sig, body, f.clk.now(), 5*time.Minute),
			"changed body":  notify.VerifySignature(sec, sig, append(body, ' '), f.clk.now(), 5*time.Minute),
			"replayed late": notify.VerifySignature(sec, sig, body, f.clk.now().Add(6*time.Minute), 5*time.Minute),
			"no header":     notify.VerifySignature(sec, "", body, f.clk.now(), 5*time.Minute),
		} {
			if err == nil {
				t.Errorf("%s: signature accepted", name)
			}
		}
		var p map[string]any
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		data, _ := p["data"].(map[string]any)
		if p["kind"] != "application.submitted" || p["title_zh"] != "新的共享申请" || p["title_en"] != "New sharing application" || p["href"] != "/applications/12" ||
			p["object_type"] != "application" || p["object_id"] != "12" || data["entry"] != "居住证登记信息" || !strings.HasPrefix(fmt.Sprint(p["id"]), "evt_") || p["created_at"] == nil {
			t.Fatalf("payload: %s", body)
		}
		// Nothing more is due.
		if got := f.deliver(t); got != 0 {
			t.Fatalf("second pass made %d attempts", got)
		}
	})
}

func TestFailingReceiverIsRetriedWithGrowingBackoff(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		rc := newReceiver(t, 500, 503)
		hook, _ := f.register(t, "p.admin", rc.URL)
		n := submitted
		n.DeptID = f.police.ID
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		var waits []time.Duration
		for attempt := 1; attempt <= 2; attempt++ {
			if got := f.deliver(t); got != 1 {
				t.Fatalf("attempt %d: %d attempts made", attempt, got)
			}
			d := f.deliveries(t, hook.ID)[0]
			if d.Status != notify.Pending || d.Attempts != attempt || d.LastStatusCode == 0 || !strings.Contains(d.LastError, "HTTP 50") {
				t.Fatalf("after attempt %d: %+v", attempt, d)
			}
			waits = append(waits, d.NextAttemptAt.Sub(f.clk.now()))
			// Not due again before the backoff has passed.
			f.clk.add(waits[len(waits)-1] - time.Second)
			if got := f.deliver(t); got != 0 {
				t.Fatalf("retried %d early", attempt)
			}
			f.clk.set(d.NextAttemptAt)
		}
		if got := f.deliver(t); got != 1 {
			t.Fatalf("third attempt: %d", got)
		}
		d := f.deliveries(t, hook.ID)[0]
		if d.Status != notify.Delivered || d.Attempts != 3 || d.LastStatusCode != 200 || d.LastError != "" || rc.count() != 3 {
			t.Fatalf("after the third attempt: %+v (received %d)", d, rc.count())
		}
		if waits[0] < 27*time.Second || waits[0] > 33*time.Second || waits[1] < 54*time.Second || waits[1] > 66*time.Second {
			t.Fatalf("backoff %v, want about 30 s then 60 s", waits)
		}
		// Every receiver sees the same event id on every attempt.
		var first, last map[string]any
		json.Unmarshal(rc.bodies[0], &first)
		json.Unmarshal(rc.bodies[2], &last)
		if first["id"] != last["id"] {
			t.Fatalf("event id changed between attempts: %v, %v", first["id"], last["id"])
		}
	})
}

func TestBackoffDoublesUpToAnHour(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 8; n++ {
		d := notify.Backoff(n)
		base := min(30*time.Second<<(n-1), time.Hour)
		if d < base*9/10 || d > base*11/10 || d > time.Hour || d <= prev {
			t.Fatalf("backoff(%d) = %v, base %v, previous %v", n, d, base, prev)
		}
		prev = d
	}
	if d := notify.Backoff(30); d > time.Hour || d < 54*time.Minute {
		t.Fatalf("backoff(30) = %v", d)
	}
}

func TestDeliveryFailsAfterMaxAttemptsAndCanBeRedelivered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		statuses := make([]int, notify.MaxAttempts)
		for i := range statuses {
			statuses[i] = http.StatusServiceUnavailable
		}
		rc := newReceiver(t, statuses...)
		hook, _ := f.register(t, "p.admin", rc.URL)
		n := submitted
		n.DeptID = f.police.ID
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= notify.MaxAttempts; i++ {
			if got := f.deliver(t); got != 1 {
				t.Fatalf("attempt %d: %d", i, got)
			}
			f.clk.set(f.deliveries(t, hook.ID)[0].NextAttemptAt.Add(time.Second))
		}
		d := f.deliveries(t, hook.ID)[0]
		if d.Status != notify.Failed || d.Attempts != notify.MaxAttempts || d.LastStatusCode != 503 || rc.count() != notify.MaxAttempts {
			t.Fatalf("after %d attempts: %+v (received %d)", notify.MaxAttempts, d, rc.count())
		}
		f.clk.add(24 * time.Hour)
		if got := f.deliver(t); got != 0 {
			t.Fatalf("failed delivery tried again: %d", got)
		}
		// Another department's administrator may not redeliver it.
		if _, err := f.svc.Redeliver(ctx, f.actor("h.admin"), d.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("other department redelivers: %v", err)
		}
		r, err := f.svc.Redeliver(ctx, f.actor("p.admin"), d.ID)
		if err != nil || r.Status != notify.Pending || r.Attempts != 0 {
			t.Fatalf("redeliver: %+v %v", r, err)
		}
		if got := f.deliver(t); got != 1 {
			t.Fatalf("redelivery: %d", got)
		}
		if d := f.deliveries(t, hook.ID)[0]; d.Status != notify.Delivered || d.Attempts != 1 {
			t.Fatalf("redelivered: %+v", d)
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "webhook.redeliver"})
		if len(evs) != 1 || evs[0].ActorName != "p.admin" {
			t.Fatalf("redelivery audit: %+v", evs)
		}
	})
}

func TestLeaseLetsOnlyOneServerSendAnAttempt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		arrived, release := make(chan struct{}, 16), make(chan struct{})
		var hits atomic.Int32
		seen := sync.Map{}
		var dup atomic.Bool
		blocking := true
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if _, loaded := seen.LoadOrStore(r.Header.Get("X-Govshare-Delivery"), true); loaded {
				dup.Store(true)
			}
			mu.Lock()
			b := blocking
			mu.Unlock()
			if b {
				arrived <- struct{}{}
				<-release
			}
		}))
		defer srv.Close()
		f.register(t, "p.admin", srv.URL)
		n := submitted
		n.DeptID = f.police.ID
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		// One server is sending; another server's pass finds it leased.
		done := make(chan int)
		go func() {
			n, _ := f.svc.DeliverDue(ctx)
			done <- n
		}()
		<-arrived
		if got := f.deliver(t); got != 0 {
			t.Fatalf("second server made %d attempts on a leased delivery", got)
		}
		close(release)
		if got := <-done; got != 1 || hits.Load() != 1 {
			t.Fatalf("first server made %d attempts, receiver saw %d", got, hits.Load())
		}
		// Many deliveries, several servers at once: each sent once.
		mu.Lock()
		blocking = false
		mu.Unlock()
		for i := range 20 {
			n.ObjectID = fmt.Sprint(i)
			if err := f.svc.Send(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		var total atomic.Int32
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				n, err := f.svc.DeliverDue(ctx)
				if err != nil {
					t.Error(err)
				}
				total.Add(int32(n))
			})
		}
		wg.Wait()
		if total.Load() != 20 || hits.Load() != 21 || dup.Load() {
			t.Fatalf("passes made %d attempts, receiver saw %d, duplicates %v", total.Load(), hits.Load(), dup.Load())
		}
	})
}

func TestWebhookRegistrationIsCheckedAndAudited(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		admin := f.actor("p.admin")
		for _, bad := range []string{"", "oa.example.gov.cn/hooks", "ftp://oa.example.gov.cn/", "https://", "https://user:pw@oa.example.gov.cn/", "javascript:alert(1)"} {
			_, _, err := f.svc.RegisterWebhook(ctx, admin, notify.WebhookInput{URL: bad})
			wantCode(t, err, "notify.webhook_url_invalid")
			if ae, _ := apperr.As(err); ae.Field != "url" || ae.ZH == "" || ae.EN == "" {
				t.Fatalf("error %+v", ae)
			}
		}
		_, _, err := f.svc.RegisterWebhook(ctx, admin, notify.WebhookInput{URL: "https://oa.example.gov.cn/h", Events: []string{"Application Submitted"}})
		wantCode(t, err, "notify.webhook_events_invalid")
		w, sec, err := f.svc.RegisterWebhook(ctx, admin, notify.WebhookInput{URL: " https://oa.example.gov.cn/h ", Events: []string{"application.*, reminder.application.answer", "application.*"}})
		if err != nil {
			t.Fatal(err)
		}
		if w.DeptID != f.police.ID || w.URL != "https://oa.example.gov.cn/h" || len(w.Events) != 2 || w.Status != "active" || !strings.HasPrefix(sec, "whsec_") {
			t.Fatalf("registered %+v", w)
		}
		if !w.Takes("application.submitted") || !w.Takes("reminder.application.answer") || w.Takes("catalog.review") || w.Takes("reminder.catalog.change") {
			t.Fatalf("filter %v", w.Events)
		}
		// The secret is sealed at rest and never in the audit log.
		var stored string
		db.QueryRow(ctx, "SELECT secret FROM webhooks WHERE id = ?", w.ID).Scan(&stored)
		if strings.Contains(stored, sec) || !strings.HasPrefix(stored, "v1:") {
			t.Fatalf("secret stored as %q", stored)
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "webhook.register"})
		if len(evs) != 1 || evs[0].ActorName != "p.admin" || evs[0].ObjectID != fmt.Sprint(w.ID) || strings.Contains(evs[0].Details, sec) {
			t.Fatalf("register audit: %+v", evs)
		}

		// Another department's administrator, a consumer and an auditor
		// are refused, and every refusal is audited.
		other := f.actor("h.admin")
		if _, _, err := f.svc.RegisterWebhook(ctx, other, notify.WebhookInput{DeptID: f.police.ID, URL: "https://evil.example/"}); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("register for another department: %v", err)
		}
		if err := f.svc.DisableWebhook(ctx, other, w.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("disable another department's webhook: %v", err)
		}
		if _, _, err := f.svc.RotateWebhookSecret(ctx, other, w.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("rotate another department's webhook: %v", err)
		}
		if _, err := f.svc.Deliveries(ctx, other, w.ID, 0); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("read another department's delivery log: %v", err)
		}
		if _, err := f.svc.Webhooks(ctx, f.actor("p.consumer"), f.police.ID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("consumer lists webhooks: %v", err)
		}
		if _, _, err := f.svc.RegisterWebhook(ctx, f.actor("auditor"), notify.WebhookInput{URL: "https://oa.example.gov.cn/"}); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("auditor registers: %v", err)
		}
		denied, _ := f.log.List(ctx, audit.Filter{Action: "webhook.manage", Result: audit.ResultDenied})
		if len(denied) != 6 {
			t.Fatalf("%d refusals audited, want 6: %+v", len(denied), denied)
		}
		byHealth, _ := f.log.List(ctx, audit.Filter{Action: "webhook.manage", Actor: "h.admin", Result: audit.ResultDenied})
		if len(byHealth) != 4 {
			t.Fatalf("%d refusals of h.admin audited", len(byHealth))
		}
		if hooks, _ := f.svc.Webhooks(ctx, admin, f.police.ID); len(hooks) != 1 {
			t.Fatalf("refused registration created a webhook: %d", len(hooks))
		}

		// The platform administrator manages any department's webhooks.
		pw, _, err := f.svc.RegisterWebhook(ctx, f.actor("platform"), notify.WebhookInput{DeptID: f.health.ID, URL: "http://oa.health.internal/hook"})
		if err != nil || pw.DeptID != f.health.ID {
			t.Fatalf("platform admin registers for health: %+v %v", pw, err)
		}
		_, _, err = f.svc.RegisterWebhook(ctx, f.actor("platform"), notify.WebhookInput{DeptID: 987654, URL: "http://oa.health.internal/hook"})
		wantCode(t, err, "notify.webhook_dept_invalid")
	})
}

func TestDisabledAndRotatedWebhooks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		rc := newReceiver(t)
		hook, oldSecret := f.register(t, "p.admin", rc.URL)
		admin := f.actor("p.admin")
		n := submitted
		n.DeptID = f.police.ID
		_, newSecret, err := f.svc.RotateWebhookSecret(ctx, admin, hook.ID)
		if err != nil || newSecret == oldSecret {
			t.Fatalf("rotate: %v", err)
		}
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		f.deliver(t)
		sig := rc.got[0].Header.Get("X-Govshare-Signature")
		if notify.VerifySignature(newSecret, sig, rc.bodies[0], f.clk.now(), time.Minute) != nil || notify.VerifySignature(oldSecret, sig, rc.bodies[0], f.clk.now(), time.Minute) == nil {
			t.Fatal("signed with the wrong secret after rotation")
		}
		// A pending delivery of a webhook that is disabled fails; no new ones queue.
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.DisableWebhook(ctx, admin, hook.ID); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Send(ctx, n); err != nil {
			t.Fatal(err)
		}
		if got := f.deliver(t); got != 0 || rc.count() != 1 {
			t.Fatalf("disabled webhook: %d attempts, %d received", got, rc.count())
		}
		ds := f.deliveries(t, hook.ID)
		if len(ds) != 2 || ds[0].Status != notify.Failed || ds[0].LastError == "" {
			t.Fatalf("deliveries of a disabled webhook: %+v", ds)
		}
		if _, _, err := f.svc.RotateWebhookSecret(ctx, admin, hook.ID); !errors.Is(err, notify.ErrWebhookDisabled) {
			t.Fatalf("rotate a disabled webhook: %v", err)
		}
		if _, err := f.svc.Redeliver(ctx, admin, ds[0].ID); !errors.Is(err, notify.ErrWebhookDisabled) {
			t.Fatalf("redeliver to a disabled webhook: %v", err)
		}
		for _, action := range []string{"webhook.rotate", "webhook.disable"} {
			if evs, _ := f.log.List(ctx, audit.Filter{Action: action}); len(evs) != 1 {
				t.Errorf("%s audited %d times", action, len(evs))
			}
		}
	})
}

// deadlines is a DeadlineSource the test changes at will.
type deadlines struct {
	mu   sync.Mutex
	list []notify.Deadline
	err  error
}

func (d *deadlines) Deadlines(context.Context) ([]notify.Deadline, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]notify.Deadline(nil), d.list...), d.err
}

func TestRemindersAreSentOncePerStage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		rc := newReceiver(t)
		hook, _ := f.register(t, "p.admin", rc.URL, "reminder.*", "overdue.*")
		start := f.clk.now()
		answer := notify.Deadline{Kind: "application.answer", ObjectType: "application", ObjectID: "12", DeptID: f.police.ID,
			Roles: []policy.Role{policy.DeptAdmin, policy.DeptReviewer}, TitleZH: "答复共享申请：居住证登记信息", TitleEN: "Answer the application: residence permits",
			Href: "/applications/12", Due: start.Add(30 * time.Hour)}
		src := &deadlines{list: []notify.Deadline{answer}}
		broken := &deadlines{err: errors.New("source down")}
		check := func() {
			t.Helper()
			if err := f.svc.CheckDeadlines(ctx, broken, src); err == nil || !strings.Contains(err.Error(), "source down") {
				t.Fatalf("a failing source is not reported: %v", err)
			}
		}
		check()
		if got := f.inbox(t, "p.admin"); len(got) != 0 {
			t.Fatalf("reminded 30 hours ahead: %v", got)
		}
		f.clk.add(7 * time.Hour) // due in 23 hours
		check()
		check()
		if got := f.inbox(t, "p.reviewer"); len(got) != 1 || got[0] != "reminder.application.answer" {
			t.Fatalf("reviewer after the reminder: %v", got)
		}
		ns, _ := f.svc.List(ctx, f.actor("p.admin"), false, 0)
		if len(ns) != 1 || ns[0].TitleZH != "即将到期：答复共享申请：居住证登记信息" || ns[0].TitleEN != "Due soon: Answer the application: residence permits" || ns[0].Href != "/applications/12" {
			t.Fatalf("reminder: %+v", ns)
		}
		if got := f.inbox(t, "platform"); len(got) != 0 {
			t.Fatalf("platform admin reminded before the deadline: %v", got)
		}
		// The deadline moves out (a calendar change): reminded anew when near.
		src.mu.Lock()
		src.list[0].Due = answer.Due.Add(48 * time.Hour)
		src.mu.Unlock()
		check()
		if got := f.inbox(t, "p.admin"); len(got) != 1 {
			t.Fatalf("reminded early for the moved deadline: %v", got)
		}
		f.clk.add(48 * time.Hour)
		check()
		if got := f.inbox(t, "p.admin"); len(got) != 2 {
			t.Fatalf("moved deadline not reminded anew: %v", got)
		}
		// Overdue: the department and the platform administrators hear it, once.
		f.clk.add(24 * time.Hour)
		check()
		check()
		if got := f.inbox(t, "p.admin"); len(got) != 3 || got[0] != "overdue.application.answer" {
			t.Fatalf("department after the deadline: %v", got)
		}
		pns, _ := f.svc.List(ctx, f.actor("platform"), false, 0)
		if len(pns) != 1 || pns[0].Kind != "overdue.application.answer" || pns[0].TitleEN != "Overdue: Answer the application: residence permits" || pns[0].TitleZH != "已逾期：答复共享申请：居住证登记信息" {
			t.Fatalf("platform admin after the deadline: %+v", pns)
		}
		if got := f.inbox(t, "h.admin"); len(got) != 0 {
			t.Fatalf("another department heard of it: %v", got)
		}
		// The department's webhook got both stages of both due times.
		f.deliver(t)
		kinds := map[string]int{}
		for _, d := range f.deliveries(t, hook.ID) {
			kinds[d.Kind]++
		}
		if kinds["reminder.application.answer"] != 2 || kinds["overdue.application.answer"] != 1 || rc.count() != 3 {
			t.Fatalf("webhook deliveries %v, received %d", kinds, rc.count())
		}
		// A deadline first seen when already overdue skips the reminder.
		late := answer
		late.ObjectID, late.Due = "13", f.clk.now().Add(-time.Hour)
		if err := f.svc.CheckDeadlines(ctx, &deadlines{list: []notify.Deadline{late}}); err != nil {
			t.Fatal(err)
		}
		if got := f.inbox(t, "p.reviewer"); len(got) != 4 || got[0] != "overdue.application.answer" || got[1] != "overdue.application.answer" {
			t.Fatalf("late deadline: %v", got)
		}
	})
}

func TestRunStopsWithItsContext(t *testing.T) {
	f := setup(t, storetest.OpenSQLite(t))
	ctx, cancel := context.WithCancel(context.Background())
	rc := newReceiver(t)
	f.register(t, "p.admin", rc.URL)
	done := make(chan struct{}, 2)
	go func() { f.svc.Run(ctx); done <- struct{}{} }()
	go func() { f.svc.RunReminders(ctx, time.Hour); done <- struct{}{} }()
	n := submitted
	n.DeptID = f.police.ID
	if err := f.svc.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	// Send wakes the worker: the delivery goes out without waiting for a poll.
	deadline := time.After(10 * time.Second)
	for rc.count() == 0 {
		select {
		case <-deadline:
			t.Fatal("the worker did not deliver")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
	<-done
}
