package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"govshare/client"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/dataservice/proxy"
	"govshare/internal/identity"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
	"govshare/internal/testfix"
)

type nopNotifier struct{}

func (nopNotifier) Send(context.Context, notify.Notice) error { return nil }

// platform is a city with a provider (the police), a consumer (civil
// affairs) holding a grant, a stranger without one, the proxy, and a
// front door that hands calls to the proxy as the web layer does.
type platform struct {
	t        testing.TB
	db       *store.DB
	log      *audit.Log
	cat      *catalog.Service
	share    *share.Service
	proxy    *proxy.Proxy
	admin    policy.Actor // platform administrator
	auditor  policy.Actor
	provider policy.Actor // the police's data administrator
	consumer policy.Actor // civil affairs' data administrator
	clerk    policy.Actor // civil affairs' user
	stranger policy.Actor // health's data administrator
	apps     map[string]share.App
	front    *httptest.Server
	seq      int
}

const credential = "s3cret-provider-key"

func newPlatform(t testing.TB, db *store.DB) *platform {
	t.Helper()
	ctx := context.Background()
	tc := testfix.New(t, db)
	keys, log := tc.Keys, tc.Audit
	dept, user := tc.Dept, tc.User
	city, police, civil, health := dept("市政务信息办", 1), dept("市公安局", 2), dept("市民政局", 3), dept("市卫健委", 4)
	p := &platform{t: t, db: db, log: log, apps: map[string]share.App{},
		admin: user("admin", city, policy.PlatformAdmin), auditor: user("auditor", city, policy.Auditor),
		provider: user("gaj.admin", police, policy.DeptAdmin), consumer: user("mzj.admin", civil, policy.DeptAdmin),
		clerk: user("mzj.user", civil, policy.Consumer), stranger: user("wjw.admin", health, policy.DeptAdmin)}
	p.cat = catalog.NewService(db, log, calendar.Weekdays{}, catalog.DefaultConfig())
	if err := p.cat.EnsureDefaultTree(ctx); err != nil {
		t.Fatal(err)
	}
	p.share = share.NewService(db, log, p.cat, calendar.Weekdays{}, nopNotifier{}, share.Config{})
	p.proxy = proxy.New(proxy.Deps{DB: db, Audit: log, Grants: p.share, Catalog: p.cat, Keys: keys,
		Config: proxy.Config{FailureThreshold: 5, OpenFor: 300 * time.Millisecond}})
	apps := share.NewApps(db, log, keys)
	for _, who := range []policy.Actor{p.consumer, p.stranger} {
		a, _, err := apps.Register(ctx, who, share.AppInput{Name: "业务系统", Purpose: "测试", Contact: "张三"})
		if err != nil {
			t.Fatal(err)
		}
		p.apps[a.Key] = a
	}
	p.front = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.front.Close)
	return p
}

// serve is the web layer's flow with the signature check left out (the
// web tests sign): open (the grant), forward, record.
func (p *platform) serve(w http.ResponseWriter, r *http.Request) {
	app := p.apps[r.Header.Get(client.HeaderAppKey)]
	body, _ := io.ReadAll(r.Body)
	code, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/services/"), "/")
	code = strings.ReplaceAll(code, "%2F", "/")
	ctx := audit.WithRequest(r.Context(), audit.Request{RequestID: r.Header.Get("X-Request-Id"), Purpose: r.Header.Get(client.HeaderPurpose)})
	actor := policy.Actor{Login: "app:" + app.Key, DeptID: app.DeptID, Roles: []policy.Role{policy.Consumer, policy.AppClient}, App: app.Key}
	call, err := p.proxy.Open(ctx, proxy.Request{App: app, Actor: actor, Code: code, Method: r.Method, Path: "/" + rest,
		Purpose: r.Header.Get(client.HeaderPurpose), Bytes: int64(len(body))})
	if err == nil {
		err = p.proxy.Forward(ctx, call, w, r, body)
	}
	if rerr := p.proxy.Record(ctx, call, err); rerr != nil {
		p.t.Errorf("record: %v", rerr)
	}
	if err != nil && !call.Answered() {
		ae, _ := apperr.As(err)
		if ae.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
		}
		w.WriteHeader(ae.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": ae.Code})
	}
}

// published makes a published entry of the police shared by interface
// and subscribes civil affairs to it.
func (p *platform) published(methods ...catalog.ShareMethod) (catalog.Entry, int64) {
	p.t.Helper()
	ctx := context.Background()
	p.seq++
	if len(methods) == 0 {
		methods = []catalog.ShareMethod{catalog.MethodAPI}
	}
	c := catalog.Content{Name: fmt.Sprintf("人口基础信息%d", p.seq), ClassCode: "101", Abstract: "人口基础信息查询接口。", FormatClass: "api", FormatType: "rest",
		Items:     []catalog.DataItem{{Name: "公民身份号码", MachineName: "citizen_id", DataType: "C", Length: 18, Key: true}},
		ShareType: catalog.ShareUnconditional, ShareMethods: methods, OpenType: catalog.OpenClosed, UpdateCycle: "realtime"}
	e, err := p.cat.CreateEntry(ctx, p.provider, c)
	if err == nil {
		_, err = p.cat.Submit(ctx, p.provider, e.ID)
	}
	if err == nil {
		_, err = p.cat.Approve(ctx, p.admin, e.ID)
	}
	if err == nil {
		e, err = p.cat.Publish(ctx, p.admin, e.ID)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	a, err := p.share.Apply(ctx, p.clerk, e.ID, share.Terms{Purpose: "低保资格核验"})
	if err != nil {
		p.t.Fatal(err)
	}
	return e, a.GrantID
}

// register publishes an entry and registers a service for it.
func (p *platform) register(s proxy.Settings) (proxy.Service, int64) {
	p.t.Helper()
	e, grant := p.published()
	svc, err := p.proxy.Register(context.Background(), p.provider, proxy.Registration{EntryID: e.ID, Settings: s})
	if err != nil {
		p.t.Fatal(err)
	}
	return svc, grant
}

func (p *platform) app(dept policy.Actor) share.App {
	for _, a := range p.apps {
		if a.DeptID == dept.DeptID {
			return a
		}
	}
	p.t.Fatal("no app")
	return share.App{}
}

type answer struct {
	status int
	code   string
	body   []byte
	header http.Header
	err    error // the connection broke
}

// call calls a service as app, with headers the provider must never see.
func (p *platform) call(app share.App, method, code, path, body string) answer {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.front.URL+"/services/"+strings.ReplaceAll(code, "/", "%2F")+path, strings.NewReader(body))
	req.Header.Set(client.HeaderAppKey, app.Key)
	req.Header.Set(client.HeaderSignature, "c2lnbmF0dXJl")
	req.Header.Set(client.HeaderNonce, "n-"+strconv.Itoa(p.seq))
	req.Header.Set(client.HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set(client.HeaderPurpose, "低保资格核验")
	req.Header.Set("Authorization", "Bearer gst_consumer_token")
	req.Header.Set("X-Govshare-App", "spoofed")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "hop")
	req.Header.Set("X-Trace", "trace-1")
	p.seq++
	req.Header.Set("X-Request-Id", fmt.Sprintf("req-%d", p.seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.body, a.err = io.ReadAll(resp.Body)
	var pr struct{ Code string }
	if json.Unmarshal(a.body, &pr) == nil {
		a.code = pr.Code
	}
	return a
}

// calls waits for the call log of a service to hold n calls (the front
// door records after the answer is sent) and returns them, newest first.
func (p *platform) calls(svc int64, n int) []proxy.Call {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs, err := p.proxy.Calls(context.Background(), p.admin, proxy.CallFilter{ServiceID: svc, Limit: 500})
		if err != nil {
			p.t.Fatal(err)
		}
		if len(cs) >= n || time.Now().After(deadline) {
			if len(cs) != n {
				p.t.Fatalf("service %d has %d calls logged, want %d", svc, len(cs), n)
			}
			return cs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// audited returns the service.call events of a code, newest first.
func (p *platform) audited(code string) []audit.Event {
	p.t.Helper()
	evs, err := p.log.List(context.Background(), audit.Filter{Action: "service.call", ObjectID: code, Limit: 500})
	if err != nil {
		p.t.Fatal(err)
	}
	return evs
}

// provider is a department's API: it records what reached it.
type provider struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
	down atomic.Bool // drop connections without answering
}

func newProvider(t testing.TB) *provider {
	pr := &provider{}
	pr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr.mu.Lock()
		pr.seen = append(pr.seen, r.Clone(context.Background()))
		pr.mu.Unlock()
		if pr.down.Load() {
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/persons/"):
			if r.Header.Get("X-Api-Key") != credential {
				http.Error(w, "no key", http.StatusUnauthorized)
				return
			}
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Provider", "police")
			fmt.Fprintf(w, `{"citizen_id":%q,"query":%q,"echo":%q}`, strings.TrimPrefix(r.URL.Path, "/api/persons/"), r.URL.RawQuery, body)
		case r.URL.Path == "/api/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case r.URL.Path == "/api/big": // declares its length
			w.Header().Set("Content-Length", "5000")
			w.Write([]byte(strings.Repeat("x", 5000)))
		case r.URL.Path == "/api/chunked": // does not
			for range 5 {
				w.Write([]byte(strings.Repeat("y", 1000)))
				w.(http.Flusher).Flush()
			}
		case r.URL.Path == "/api/stream": // long, then longer than allowed
			for range 64 {
				if _, err := w.Write([]byte(strings.Repeat("z", 16<<10))); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(pr.Close)
	return pr
}

func (pr *provider) requests() []*http.Request {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return append([]*http.Request(nil), pr.seen...)
}

var personOps = []proxy.Operation{{Method: "GET", Path: "/persons/{id}", Summary: "按身份证号查询"}, {Method: "POST", Path: "/persons/{id}"},
	{Method: "GET", Path: "/slow"}, {Method: "GET", Path: "/big"}, {Method: "GET", Path: "/chunked"}, {Method: "GET", Path: "/stream"}}

// TestServiceCallPassesThroughWithTheProvidersCredential is the way a
// call should go: the answer passes through untouched; the provider gets
// its credential and who is asking, never the consumer's signature or
// credentials; the call is logged and audited.
func TestServiceCallPassesThroughWithTheProvidersCredential(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		p := newPlatform(t, db)
		pr := newProvider(t)
		svc, grant := p.register(proxy.Settings{BaseURL: pr.URL + "/api/", Operations: personOps, CredentialHeader: "x-api-key", CredentialValue: credential})
		app := p.app(p.consumer)

		a := p.call(app, "POST", svc.Code, "/persons/350102199001011234?fields=name", `{"reason":"核验"}`)
		want := `{"citizen_id":"350102199001011234","query":"fields=name","echo":"{\"reason\":\"核验\"}"}`
		if a.status != 200 || string(a.body) != want || a.header.Get("X-Provider") != "police" || a.header.Get("Content-Type") != "application/json" {
			t.Fatalf("answer %d %s %v", a.status, a.body, a.header)
		}
		seen := pr.requests()
		if len(seen) != 1 {
			t.Fatalf("provider saw %d requests", len(seen))
		}
		h := seen[0].Header
		for name, want := range map[string]string{"X-Api-Key": credential, "X-Govshare-Consumer-Dept": identity.SyntheticCreditCode("350100", 3),
			"X-Govshare-App": app.Key, "X-Govshare-Purpose": "低保资格核验", "X-Request-Id": "req-" + strconv.Itoa(p.seq), "X-Trace": "trace-1"} {
			if h.Get(name) != want {
				t.Errorf("provider got %s = %q, want %q", name, h.Get(name), want)
			}
		}
		for _, name := range []string{client.HeaderAppKey, client.HeaderSignature, client.HeaderNonce, client.HeaderTimestamp, client.HeaderPurpose,
			"Authorization", "X-Hop"} {
			if h.Get(name) != "" {
				t.Errorf("provider got the consumer's %s", name)
			}
		}

		c := p.calls(svc.ID, 1)[0]
		if c.Status != 200 || c.Result != proxy.ResultOK || c.Operation != "POST /persons/{id}" || c.Path != "/persons/350102199001011234" ||
			c.RequestBytes != int64(len(`{"reason":"核验"}`)) || c.ResponseBytes != int64(len(want)) || c.ConsumerDeptID != p.consumer.DeptID ||
			c.ProviderDeptID != p.provider.DeptID || c.AppKey != app.Key || c.GrantID != grant || c.RequestID != "req-"+strconv.Itoa(p.seq) ||
			c.DurationMS < 0 || c.At.IsZero() {
			t.Fatalf("call log: %+v", c)
		}
		evs := p.audited(svc.Code)
		if len(evs) != 1 {
			t.Fatalf("audit: %d service.call events", len(evs))
		}
		ev := evs[0]
		if ev.ActorType != audit.ActorApp || ev.ActorID != app.Key || ev.Result != audit.ResultOK || ev.Purpose != "低保资格核验" ||
			!strings.Contains(ev.Details, `"operation":"POST /persons/{id}"`) || !strings.Contains(ev.Details, `"status":200`) ||
			!strings.Contains(ev.Details, fmt.Sprintf(`"response_bytes":%d`, len(want))) {
			t.Fatalf("audit event: %+v", ev)
		}
		// The credential is stored sealed and written nowhere else.
		var stored string
		if err := db.QueryRow(context.Background(), "SELECT credential FROM service_resources WHERE id = ?", svc.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		all, _ := p.log.List(context.Background(), audit.Filter{Limit: 500})
		got, _ := p.proxy.Service(context.Background(), p.provider, svc.ID)
		js, _ := json.Marshal(got)
		for where, text := range map[string]string{"the database": stored, "the audit log": fmt.Sprint(all), "the service": string(js)} {
			if strings.Contains(text, credential) {
				t.Errorf("the credential appears in %s", where)
			}
		}
		if !got.HasCredential || got.CredentialHeader != "X-Api-Key" {
			t.Errorf("service: %+v", got)
		}
	})
}

// TestServiceFailuresAreClearAndLogged: a provider that times out, is
// down or answers too much gets the consumer a clear error, and each
// call is in the log.
func TestServiceFailuresAreClearAndLogged(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		p := newPlatform(t, db)
		pr := newProvider(t)
		app := p.app(p.consumer)
		svc, _ := p.register(proxy.Settings{BaseURL: pr.URL + "/api", Operations: personOps, TimeoutSeconds: 1, MaxResponseBytes: 2000,
			CredentialHeader: "X-Api-Key", CredentialValue: credential})

		start := time.Now()
		if a := p.call(app, "GET", svc.Code, "/slow", ""); a.status != http.StatusGatewayTimeout || a.code != "service.timeout" {
			t.Fatalf("slow provider: %d %s", a.status, a.body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("a 1 s timeout took %s", d)
		}
		for _, path := range []string{"/big", "/chunked"} {
			if a := p.call(app, "GET", svc.Code, path, ""); a.status != http.StatusBadGateway || a.code != "service.response_too_large" {
				t.Fatalf("%s: %d %s", path, a.status, a.body)
			}
		}
		cs := p.calls(svc.ID, 3)
		for i, want := range []string{"service.response_too_large", "service.response_too_large", "service.timeout"} {
			if cs[i].ErrorCode != want || cs[i].Result != proxy.ResultError || cs[i].Status != map[bool]int{true: 504, false: 502}[want == "service.timeout"] {
				t.Errorf("call %d: %+v", i, cs[i])
			}
		}
		if cs[2].DurationMS < 900 {
			t.Errorf("the timed-out call lasted %d ms", cs[2].DurationMS)
		}

		// A provider whose listener is closed.
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		down, _ := p.register(proxy.Settings{BaseURL: gone.URL, Operations: personOps})
		if a := p.call(app, "GET", down.Code, "/persons/1", ""); a.status != http.StatusBadGateway || a.code != "service.provider_down" {
			t.Fatalf("provider down: %d %s", a.status, a.body)
		}
		if c := p.calls(down.ID, 1)[0]; c.ErrorCode != "service.provider_down" || c.Status != 502 || c.Result != proxy.ResultError {
			t.Fatalf("call log: %+v", c)
		}
		for _, ev := range p.audited(down.Code) {
			if ev.Result != audit.ResultError || !strings.Contains(ev.Details, "service.provider_down") {
				t.Errorf("audit: %+v", ev)
			}
		}
	})
}

// TestLongAnswerIsCutAtTheLimit: an answer too long to hold is streamed
// and, once past the limit, the consumer's connection is dropped so a
// cut answer is never taken for a whole one.
func TestLongAnswerIsCutAtTheLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		p := newPlatform(t, db)
		pr := newProvider(t)
		svc, _ := p.register(proxy.Settings{BaseURL: pr.URL + "/api", Operations: personOps, MaxResponseBytes: 600 << 10})
		a := p.call(p.app(p.consumer), "GET", svc.Code, "/stream", "")
		if a.status != 200 || a.err == nil || len(a.body) > 600<<10 {
			t.Fatalf("cut answer: status %d, %d bytes, err %v", a.status, len(a.body), a.err)
		}
		c := p.calls(svc.ID, 1)[0]
		if c.ErrorCode != "service.response_too_large" || c.Status != 502 || c.ResponseBytes > 600<<10 || c.ResponseBytes < 256<<10 {
			t.Fatalf("call log: %+v", c)
		}
	})
}

// TestCircuitOpensAfterRepeatedFailuresAndClosesOnRecovery: five failures
// in a row open the circuit; calls are then refused at once with 503 and
// Retry-After without reaching the provider; after the pause one probe
// goes through and, the provider being back, the circuit closes.
func TestCircuitOpensAfterRepeatedFailuresAndClosesOnRecovery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		p := newPlatform(t, db)
		pr := newProvider(t)
		app := p.app(p.consumer)
		svc, _ := p.register(proxy.Settings{BaseURL: pr.URL + "/api", Operations: personOps, CredentialHeader: "X-Api-Key", CredentialValue: credential})
		pr.down.Store(true)
		for i := range 5 {
			if a := p.call(app, "GET", svc.Code, "/persons/1", ""); a.status != http.StatusBadGateway || a.code != "service.provider_down" {
				t.Fatalf("failure %d: %d %s", i+1, a.status, a.body)
			}
		}
		a := p.call(app, "GET", svc.Code, "/persons/1", "")
		if a.status != http.StatusServiceUnavailable || a.code != "service.unavailable" || a.header.Get("Retry-After") != "1" {
			t.Fatalf("open circuit: %d %s Retry-After %q", a.status, a.body, a.header.Get("Retry-After"))
		}
		if n := len(pr.requests()); n != 5 {
			t.Fatalf("the open circuit let a call through: provider saw %d", n)
		}
		if got, _ := p.proxy.Service(context.Background(), p.provider, svc.ID); got.Circuit != proxy.CircuitOpen {
			t.Fatalf("circuit %s", got.Circuit)
		}
		pr.down.Store(false)
		time.Sleep(350 * time.Millisecond)
		for i := range 3 {
			if a := p.call(app, "GET", svc.Code, "/persons/1", ""); a.status != 200 {
				t.Fatalf("after recovery, call %d: %d %s", i+1, a.status, a.body)
			}
		}
		if got, _ := p.proxy.Service(context.Background(), p.provider, svc.ID); got.Circuit != proxy.CircuitClosed {
			t.Fatalf("circuit %s", got.Circuit)
		}
		cs := p.calls(svc.ID, 9)
		if cs[3].ErrorCode != "service.unavailable" || cs[3].Status != 503 || cs[3].Result != proxy.ResultError {
			t.Fatalf("refused call: %+v", cs[3])
		}
	})
}

// TestHalfOpenCircuitReopensWhenTheProbeFails.
func TestHalfOpenCircuitReopensWhenTheProbeFails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		p := newPlatform(t, db)
		pr := newProvider(t)
		app := p.app(p.consumer)
		svc, _ := p.register(proxy.Settings{BaseURL: pr.URL + "/api", Operations: personOps})
		pr.down.Store(true)
		for range 5 {
			p.call(app, "GET", svc.Code, "/persons/1", "")
		}
		time.Sleep(350 * time.Millisecond)
		if a := p.call(app, "GET", svc.Code, "/persons/1", ""); a.code != "service.provider_down" {
			t.Fatalf("probe: %d %s", a.status, a.body)
		}
		if a := p.call(app, "GET", svc.Code, "/persons/1", ""); a.code != "service.unavailable" {
			t.Fatalf("after a failed probe: %d %s", a.status, a.body)
		}
		if n := len(pr.requests()); n != 6 {
			t.Fatalf("provider saw %d calls, want 5 and the probe", n)
		}
	})
}

// TestCallsWithoutGrantOrOperationAreRefusedAndNothingForwarded.
func TestCallsWithoutGrantOrOperationAreRefusedAndNothingForwarded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newPlatform(t, db)
		pr := newProvider(t)
		svc, grant := p.register(proxy.Settings{BaseURL: pr.URL + "/api", Operations: personOps, CredentialHeader: "X-Api-Key", CredentialValue: credential})
		app := p.app(p.consumer)

		cases := []struct {
			name   string
			app    share.App
			method string
			path   string
			status int
			code   string
		}{
			{"no grant", p.app(p.stranger), "GET", "/persons/1", 403, "share.no_grant"},
			{"unregistered path", app, "GET", "/admin/users", 404, "service.operation_unknown"},
			{"unregistered method", app, "DELETE", "/persons/1", 404, "service.operation_unknown"},
			{"climbing out", app, "GET", "/persons/%2E%2E", 404, "service.operation_unknown"},
			{"escaped slash", app, "GET", "/persons/a%2F..%2Fadmin", 404, "service.operation_unknown"},
		}
		for _, c := range cases {
			if a := p.call(c.app, c.method, svc.Code, c.path, ""); a.status != c.status || a.code != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, a.status, a.body, c.status, c.code)
			}
		}
		if a := p.call(app, "GET", "999/999999", "/persons/1", ""); a.status != 404 || a.code != "service.unknown" {
			t.Errorf("unknown service: %d %s", a.status, a.body)
		}
		if n := len(pr.requests()); n != 0 {
			t.Fatalf("refused calls reached the provider: %d", n)
		}
		cs := p.calls(svc.ID, len(cases))
		for _, c := range cs {
			if c.Result != proxy.ResultDenied || c.ResponseBytes != 0 {
				t.Errorf("refused call logged as %+v", c)
			}
		}
		if cs[len(cs)-1].ErrorCode != "share.no_grant" || cs[len(cs)-1].ConsumerDeptID != p.stranger.DeptID {
			t.Errorf("no-grant call: %+v", cs[len(cs)-1])
		}
		for _, ev := range p.audited(svc.Code) {
			if ev.Result != audit.ResultDenied {
				t.Errorf("refusal audited as %s", ev.Result)
			}
		}
		if evs := p.audited("999/999999"); len(evs) != 1 || evs[0].Result != audit.ResultDenied {
			t.Errorf("unknown service audited: %+v", evs)
		}

		// A revoked grant is refused at the next call.
		if a := p.call(app, "GET", svc.Code, "/persons/1", ""); a.status != 200 {
			t.Fatalf("granted call: %d %s", a.status, a.body)
		}
		if _, err := p.share.RevokeGrant(ctx, p.provider, grant, "协议到期"); err != nil {
			t.Fatal(err)
		}
		if a := p.call(app, "GET", svc.Code, "/persons/1", ""); a.status != 403 || a.code != "share.no_grant" {
			t.Fatalf("after revocation: %d %s", a.status, a.body)
		}
		if n := len(pr.requests()); n != 1 {
			t.Fatalf("provider saw %d calls, want the one granted", n)
		}

		// A disabled service refuses every call.
		if _, err := p.proxy.SetState(ctx, p.provider, svc.ID, proxy.Disabled); err != nil {
			t.Fatal(err)
		}
		if a := p.call(p.app(p.stranger), "GET", svc.Code, "/persons/1", ""); a.status != 503 || a.code != "service.disabled" {
			t.Fatalf("disabled: %d %s", a.status, a.body)
		}
	})
}

// TestRegistrationChecksItsSettings names the field of each problem and
// registers nothing.
func TestRegistrationChecksItsSettings(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newPlatform(t, db)
		e, _ := p.published()
		ok := proxy.Settings{BaseURL: "https://api.gaj.example.gov.cn/v1", Operations: []proxy.Operation{{Method: "get", Path: "/persons/{id}"}}}
		with := func(f func(s *proxy.Settings)) proxy.Settings { s := ok; f(&s); return s }
		cases := []struct {
			name  string
			s     proxy.Settings
			code  string
			field string
		}{
			{"ftp", with(func(s *proxy.Settings) { s.BaseURL = "ftp://host/x" }), "service.base_url_invalid", "base_url"},
			{"no host", with(func(s *proxy.Settings) { s.BaseURL = "https:///x" }), "service.base_url_invalid", "base_url"},
			{"user info", with(func(s *proxy.Settings) { s.BaseURL = "https://u:p@host/x" }), "service.base_url_invalid", "base_url"},
			{"query", with(func(s *proxy.Settings) { s.BaseURL = "https://host/x?key=1" }), "service.base_url_invalid", "base_url"},
			{"no operations", with(func(s *proxy.Settings) { s.Operations = nil }), "service.operations_required", "operations"},
			{"bad method", with(func(s *proxy.Settings) { s.Operations = []proxy.Operation{{Method: "FETCH", Path: "/a"}} }), "service.operation_invalid", "operations[0]"},
			{"relative path", with(func(s *proxy.Settings) { s.Operations = []proxy.Operation{{Method: "GET", Path: "a/b"}} }), "service.operation_invalid", "operations[0]"},
			{"dot segment", with(func(s *proxy.Settings) { s.Operations = []proxy.Operation{{Method: "GET", Path: "/a/../b"}} }), "service.operation_invalid", "operations[0]"},
			{"query in path", with(func(s *proxy.Settings) { s.Operations = []proxy.Operation{{Method: "GET", Path: "/a?b=1"}} }), "service.operation_invalid", "operations[0]"},
			{"same shape", with(func(s *proxy.Settings) {
				s.Operations = []proxy.Operation{{Method: "GET", Path: "/p/{id}"}, {Method: "GET", Path: "/p/{no}"}}
			}), "service.operation_duplicate", "operations[1]"},
			{"both", with(func(s *proxy.Settings) { s.OpenAPI = `{"openapi":"3.0.0","paths":{"/a":{"get":{}}}}` }), "service.operations_twice", "operations"},
			{"bad openapi", with(func(s *proxy.Settings) { s.Operations, s.OpenAPI = nil, `{"paths":{}}` }), "service.openapi_invalid", "openapi"},
			{"reserved header", with(func(s *proxy.Settings) { s.CredentialHeader, s.CredentialValue = "X-Purpose", "k" }), "service.credential_header_invalid", "credential_header"},
			{"platform header", with(func(s *proxy.Settings) { s.CredentialHeader, s.CredentialValue = "X-Govshare-App", "k" }), "service.credential_header_invalid", "credential_header"},
			{"bad header", with(func(s *proxy.Settings) { s.CredentialHeader, s.CredentialValue = "X Key", "k" }), "service.credential_header_invalid", "credential_header"},
			{"no value", with(func(s *proxy.Settings) { s.CredentialHeader = "X-Api-Key" }), "service.credential_required", "credential_value"},
			{"value splits", with(func(s *proxy.Settings) { s.CredentialHeader, s.CredentialValue = "X-Api-Key", "a\r\nX-Evil: 1" }), "service.credential_required", "credential_value"},
			{"timeout", with(func(s *proxy.Settings) { s.TimeoutSeconds = 61 }), "service.timeout_invalid", "timeout_seconds"},
			{"max response", with(func(s *proxy.Settings) { s.MaxResponseBytes = 2 << 30 }), "service.max_response_invalid", "max_response_bytes"},
		}
		for _, c := range cases {
			_, err := p.proxy.Register(ctx, p.provider, proxy.Registration{EntryID: e.ID, Settings: c.s})
			if ae, ok := apperr.As(err); !ok || ae.Code != c.code || ae.Field != c.field {
				t.Errorf("%s: %v, want %s on %s", c.name, err, c.code, c.field)
			}
		}
		if ss, _ := p.proxy.List(ctx, p.provider, proxy.ServiceFilter{}); len(ss) != 0 {
			t.Fatalf("refused registrations were stored: %d", len(ss))
		}

		// Only the provider's data administrator registers, and only an
		// entry shared by interface, once.
		for _, who := range []policy.Actor{p.stranger, p.admin, p.clerk} {
			if _, err := p.proxy.Register(ctx, who, proxy.Registration{EntryID: e.ID, Settings: ok}); !errors.Is(err, apperr.ErrDenied) {
				t.Errorf("%s registers: %v", who.Login, err)
			}
		}
		file, _ := p.published(catalog.MethodFile)
		if _, err := p.proxy.Register(ctx, p.provider, proxy.Registration{EntryID: file.ID, Settings: ok}); !errors.Is(err, proxy.ErrEntryNotAPI) {
			t.Errorf("entry without api: %v", err)
		}
		svc, err := p.proxy.Register(ctx, p.provider, proxy.Registration{EntryID: e.ID, Settings: ok})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Code != e.Code || svc.BaseURL != ok.BaseURL || svc.TimeoutSeconds != 10 || svc.MaxResponseBytes != 10<<20 || svc.State != proxy.Active ||
			len(svc.Operations) != 1 || svc.Operations[0].Method != "GET" {
			t.Fatalf("registered: %+v", svc)
		}
		if _, err := p.proxy.Register(ctx, p.provider, proxy.Registration{EntryID: e.ID, Settings: ok}); !errors.Is(err, proxy.ErrExists) {
			t.Errorf("second registration: %v", err)
		}

		// A change keeps the credential unless given a new one; only the
		// provider's data administrator changes or disables.
		withKey := with(func(s *proxy.Settings) { s.CredentialHeader, s.CredentialValue = "X-Api-Key", credential })
		if _, err := p.proxy.Update(ctx, p.provider, svc.ID, withKey); err != nil {
			t.Fatal(err)
		}
		kept := with(func(s *proxy.Settings) { s.CredentialHeader, s.TimeoutSeconds = "X-Api-Key", 30 })
		got, err := p.proxy.Update(ctx, p.provider, svc.ID, kept)
		if err != nil || !got.HasCredential || got.TimeoutSeconds != 30 {
			t.Fatalf("change keeping the credential: %+v %v", got, err)
		}
		for _, who := range []policy.Actor{p.stranger, p.admin, p.consumer} {
			if _, err := p.proxy.Update(ctx, who, svc.ID, ok); !errors.Is(err, apperr.ErrDenied) {
				t.Errorf("%s changes: %v", who.Login, err)
			}
			if _, err := p.proxy.SetState(ctx, who, svc.ID, proxy.Disabled); !errors.Is(err, apperr.ErrDenied) {
				t.Errorf("%s disables: %v", who.Login, err)
			}
		}
		if got, err = p.proxy.Update(ctx, p.provider, svc.ID, ok); err != nil || got.HasCredential || got.CredentialHeader != "" {
			t.Fatalf("change removing the credential: %+v %v", got, err)
		}
		if _, err := p.proxy.SetState(ctx, p.provider, svc.ID, proxy.Active); !errors.Is(err, proxy.ErrState) {
			t.Errorf("enabling an active service: %v", err)
		}
		denied, _ := p.log.List(ctx, audit.Filter{Action: "service.manage", Result: audit.ResultDenied, Limit: 100})
		if len(denied) != 9 {
			t.Errorf("%d refusals audited, want 9", len(denied))
		}
		// Consumers see the operations, not where the provider runs.
		if got, _ := p.proxy.Service(ctx, p.clerk, svc.ID); got.BaseURL != "" || len(got.Operations) != 1 {
			t.Errorf("consumer's view: %+v", got)
		}
	})
}

func TestOperationsFromOpenAPI(t *testing.T) {
	const js = `{"openapi":"3.0.3","info":{"title":"人口","version":"1"},"paths":{
		"/persons/{id}":{"parameters":[{"name":"id","in":"path"}],"get":{"summary":"按身份证号查询","operationId":"getPerson"},"delete":{"operationId":"deletePerson"}},
		"/persons":{"post":{}},"x-internal":{}}}`
	const yaml = `openapi: 3.0.3
info:
  title: 人口
  description: |
    paths:
      /not/a/path:
        get: {}
paths:
  # the persons
  "/persons/{id}":
    parameters:
      - name: id
        in: path
    get:
      operationId: getPerson
      summary: '按身份证号查询'   # shown to consumers
      responses:
        "200":
          description: ok
    delete:
      operationId: deletePerson
  /persons:
    post:
      requestBody:
        content: {}
components:
  schemas: {}
`
	want := []proxy.Operation{{Method: "POST", Path: "/persons"}, {Method: "GET", Path: "/persons/{id}", Summary: "按身份证号查询"},
		{Method: "DELETE", Path: "/persons/{id}", Summary: "deletePerson"}}
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		p := newPlatform(t, db)
		for name, doc := range map[string]string{"json": js, "yaml": yaml} {
			e, _ := p.published()
			svc, err := p.proxy.Register(context.Background(), p.provider, proxy.Registration{EntryID: e.ID,
				Settings: proxy.Settings{BaseURL: "http://10.1.2.3:8080", OpenAPI: doc}})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if fmt.Sprint(svc.Operations) != fmt.Sprint(want) || !svc.HasOpenAPI {
				t.Errorf("%s: %+v", name, svc.Operations)
			}
		}
		// Flow style reads as block style does.
		e, _ := p.published()
		svc, err := p.proxy.Register(context.Background(), p.provider, proxy.Registration{EntryID: e.ID,
			Settings: proxy.Settings{BaseURL: "http://10.1.2.3", OpenAPI: "openapi: 3.0.0\npaths: {\"/a\": {get: {summary: 查}}, /b: {post: {}}}\n"}})
		if err != nil || fmt.Sprint(svc.Operations) != fmt.Sprint([]proxy.Operation{{Method: "GET", Path: "/a", Summary: "查"}, {Method: "POST", Path: "/b"}}) {
			t.Errorf("flow-style paths: %+v %v", svc.Operations, err)
		}
		// Not a document: refused, saying why.
		for _, bad := range []string{"openapi: 3.0.0\npaths: [1, 2]\n", "openapi: [unclosed\n", "paths:\n  /a:\n    get: {}\n", "{\"openapi\": \"3.0.0\", \"paths\": {}}"} {
			e, _ := p.published()
			_, err := p.proxy.Register(context.Background(), p.provider, proxy.Registration{EntryID: e.ID,
				Settings: proxy.Settings{BaseURL: "http://10.1.2.3", OpenAPI: bad}})
			if ae, ok := apperr.As(err); !ok || ae.Code != "service.openapi_invalid" {
				t.Errorf("%q: %v", bad, err)
			}
		}
	})
}

func TestParseOperations(t *testing.T) {
	ops, err := proxy.ParseOperations("GET /persons/{id} 按身份证号 查询\n\n# 注释\npost /persons\n")
	if err != nil || fmt.Sprint(ops) != fmt.Sprint([]proxy.Operation{{Method: "GET", Path: "/persons/{id}", Summary: "按身份证号 查询"}, {Method: "post", Path: "/persons"}}) {
		t.Fatalf("%+v %v", ops, err)
	}
	if proxy.FormatOperations(ops) != "GET /persons/{id} 按身份证号 查询\npost /persons\n" {
		t.Errorf("format: %q", proxy.FormatOperations(ops))
	}
	if _, err := proxy.ParseOperations("GET /a\nGET"); err == nil {
		t.Error("a line without a path parsed")
	} else if ae, _ := apperr.As(err); ae.Row != 2 {
		t.Errorf("error names row %d", ae.Row)
	}
}

// TestCallLogShowsEachDepartmentWhatIsItsOwn: the provider sees every call
// to its services, a consumer department its own calls, others nothing;
// platform administrators and auditors see all; users who are not data
// administrators are refused.
func TestCallLogShowsEachDepartmentWhatIsItsOwn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newPlatform(t, db)
		pr := newProvider(t)
		svc, _ := p.register(proxy.Settings{BaseURL: pr.URL + "/api", Operations: personOps, CredentialHeader: "X-Api-Key", CredentialValue: credential})
		p.call(p.app(p.consumer), "GET", svc.Code, "/persons/1", "")
		p.call(p.app(p.stranger), "GET", svc.Code, "/persons/1", "")
		p.calls(svc.ID, 2)
		for _, c := range []struct {
			who  policy.Actor
			want int
		}{{p.provider, 2}, {p.consumer, 1}, {p.stranger, 1}, {p.admin, 2}, {p.auditor, 2}} {
			cs, err := p.proxy.Calls(ctx, c.who, proxy.CallFilter{ServiceID: svc.ID})
			if err != nil || len(cs) != c.want {
				t.Errorf("%s sees %d calls (%v), want %d", c.who.Login, len(cs), err, c.want)
			}
			for _, call := range cs {
				if c.who.UserID == p.consumer.UserID && call.ConsumerDeptID != p.consumer.DeptID {
					t.Errorf("the consumer sees another department's call")
				}
			}
			st, err := p.proxy.Stats(ctx, c.who, svc.ID, 7)
			if err != nil || len(st) != 1 || st[0].Calls != int64(c.want) {
				t.Errorf("%s's statistics: %+v %v", c.who.Login, st, err)
			}
		}
		if _, err := p.proxy.Calls(ctx, p.clerk, proxy.CallFilter{}); !errors.Is(err, apperr.ErrDenied) {
			t.Errorf("a consumer user reads the call log: %v", err)
		}
		if _, err := p.proxy.Stats(ctx, p.clerk, svc.ID, 7); !errors.Is(err, apperr.ErrDenied) {
			t.Errorf("a consumer user reads the statistics: %v", err)
		}
		cs, err := p.proxy.Calls(ctx, p.admin, proxy.CallFilter{Result: proxy.ResultDenied, ConsumerDeptID: p.stranger.DeptID})
		if err != nil || len(cs) != 1 || cs[0].ErrorCode != "share.no_grant" {
			t.Errorf("filtered: %+v %v", cs, err)
		}
	})
}

// TestDailyStatisticsCountAndRankLatency: calls, errors and refusals per
// day, and the latency percentiles by nearest rank over the calls that
// were forwarded — exact below 100 ms, at most 5 % over above.
func TestDailyStatisticsCountAndRankLatency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newPlatform(t, db)
		svc, _ := p.register(proxy.Settings{BaseURL: "http://10.0.0.1", Operations: personOps})
		now := time.Date(2026, 3, 2, 4, 0, 0, 0, time.UTC) // 12:00 in Beijing
		p.proxy.SetClock(func() time.Time { return now })
		call := func(at time.Time, consumer int64, ms int64, result string) proxy.Call {
			status := map[string]int{proxy.ResultOK: 200, proxy.ResultDenied: 403, proxy.ResultError: 504}[result]
			return proxy.Call{ServiceID: svc.ID, At: at, ProviderDeptID: p.provider.DeptID, ConsumerDeptID: consumer, AppKey: "app_x", Method: "GET",
				Path: "/persons/1", RequestBytes: 10, ResponseBytes: 100, Status: status, DurationMS: ms, Result: result}
		}
		var calls []proxy.Call
		for i := int64(1); i <= 200; i++ {
			calls = append(calls, call(now, p.consumer.DeptID, i, proxy.ResultOK)) // 1 … 200 ms
		}
		calls = append(calls, call(now, p.consumer.DeptID, 5000, proxy.ResultError), call(now, p.stranger.DeptID, 0, proxy.ResultDenied),
			call(now.Add(-20*time.Hour), p.consumer.DeptID, 7, proxy.ResultOK), // 16:00 the day before, in Beijing
			call(now.AddDate(0, 0, -10), p.consumer.DeptID, 7, proxy.ResultOK)) // outside the week
		if err := p.proxy.LogCalls(ctx, calls...); err != nil {
			t.Fatal(err)
		}
		st, err := p.proxy.Stats(ctx, p.provider, svc.ID, 7)
		if err != nil {
			t.Fatal(err)
		}
		// p50 is the 101st of 201 forwarded calls (101 ms, read as the
		// ceiling of its 5 % bucket, 105); p99 the 199th (199 ms → 208).
		want := []proxy.DayStats{
			{Day: "2026-03-02", Calls: 202, Errors: 1, Denied: 1, RequestBytes: 2020, ResponseBytes: 20200, P50MS: 105, P99MS: 208},
			{Day: "2026-03-01", Calls: 1, RequestBytes: 10, ResponseBytes: 100, P50MS: 7, P99MS: 7},
		}
		if fmt.Sprint(st) != fmt.Sprint(want) {
			t.Fatalf("statistics\n got %+v\nwant %+v", st, want)
		}
		// The stranger sees its own refused call only.
		if st, err = p.proxy.Stats(ctx, p.stranger, svc.ID, 7); err != nil || fmt.Sprint(st) != fmt.Sprint([]proxy.DayStats{
			{Day: "2026-03-02", Calls: 1, Denied: 1, RequestBytes: 10, ResponseBytes: 100}}) {
			t.Fatalf("the stranger's statistics: %+v %v", st, err)
		}
		if _, err := p.proxy.Stats(ctx, p.provider, svc.ID, 93); err == nil {
			t.Error("93 days of statistics")
		}
	})
}

// TestLatencyPercentilesNeverUnderstate: whatever the durations, the
// percentile read from the histogram is at least the true one and at
// most 5 % (and a millisecond) more.
func TestLatencyPercentilesNeverUnderstate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newPlatform(t, db)
		svc, _ := p.register(proxy.Settings{BaseURL: "http://10.0.0.1", Operations: personOps})
		now := time.Now()
		p.proxy.SetClock(func() time.Time { return now })
		var ds []int64
		var calls []proxy.Call
		for i := range int64(997) {
			ms := (i * i * 7919) % 60000
			ds = append(ds, ms)
			calls = append(calls, proxy.Call{ServiceID: svc.ID, At: now, ConsumerDeptID: p.consumer.DeptID, Method: "GET", Path: "/", Status: 200,
				DurationMS: ms, Result: proxy.ResultOK})
		}
		if err := p.proxy.LogCalls(ctx, calls...); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ds)
		st, err := p.proxy.Stats(ctx, p.admin, svc.ID, 1)
		if err != nil || len(st) != 1 {
			t.Fatalf("%+v %v", st, err)
		}
		for _, c := range []struct{ got, p int64 }{{st[0].P50MS, 50}, {st[0].P99MS, 99}} {
			exact := ds[(int64(len(ds))*c.p+99)/100-1]
			if c.got < exact || float64(c.got) > float64(exact)*1.05+1 {
				t.Errorf("p%d: %d, exactly %d", c.p, c.got, exact)
			}
		}
	})
}

func TestOperationMatching(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		p := newPlatform(t, db)
		pr := newProvider(t)
		svc, _ := p.register(proxy.Settings{BaseURL: pr.URL, Operations: []proxy.Operation{
			{Method: "GET", Path: "/persons/{id}"}, {Method: "GET", Path: "/persons/me"}, {Method: "GET", Path: "/reports/{year}.json"},
			{Method: "GET", Path: "/"}, {Method: "GET", Path: "/户籍/{id}"}}})
		app := p.app(p.consumer)
		n := 0
		for path, want := range map[string]string{
			"/persons/1":            "GET /persons/{id}",
			"/persons/me":           "GET /persons/me",
			"/persons/%E5%BC%A0":    "GET /persons/{id}",
			"/reports/2025.json":    "GET /reports/{year}.json",
			"/":                     "GET /",
			"/%E6%88%B7%E7%B1%8D/9": "GET /户籍/{id}",
			"/persons":              "",
			"/persons/1/x":          "",
			"/reports/2025.xml":     "",
			"/persons/..":           "",
			"/persons/.":            "",
			"/persons/a%5Cb":        "",
		} {
			p.call(app, "GET", svc.Code, path, "")
			n++
			c := p.calls(svc.ID, n)[0]
			if c.Operation != want {
				t.Errorf("%s matched %q, want %q", path, c.Operation, want)
			}
		}
	})
}

// BenchmarkServiceCall measures a granted call through the platform to a
// provider on the same machine: permit, forward, call log and audit.
// GOVSHARE_TEST_POSTGRES selects PostgreSQL for the logs.
func BenchmarkServiceCall(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			p := newPlatform(b, be.Open(b))
			pr := newProvider(b)
			svc, _ := p.register(proxy.Settings{BaseURL: pr.URL + "/api", Operations: personOps, CredentialHeader: "X-Api-Key", CredentialValue: credential})
			app := p.app(p.consumer)
			url := p.front.URL + "/services/" + strings.ReplaceAll(svc.Code, "/", "%2F") + "/persons/350102199001011234"
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", url, nil)
					req.Header.Set(client.HeaderAppKey, app.Key)
					req.Header.Set(client.HeaderPurpose, "低保资格核验")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
