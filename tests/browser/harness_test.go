package browser_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"govshare/internal/config"
	"govshare/internal/demo"
	"govshare/internal/identity"
	"govshare/internal/server"
	"govshare/internal/storetest"
)

// envChromium names the browser binary; without it the browser tests skip.
const envChromium = "GOVSHARE_TEST_CHROMIUM"

// testTimeout bounds everything one test does in the browser.
const testTimeout = 90 * time.Second

// chromiumPath returns the configured browser, skipping the test when none
// is configured and failing it when the configured one is not there: a run
// that asks for browser tests must never pass without a browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(envChromium)
	if bin == "" {
		t.Skip("set GOVSHARE_TEST_CHROMIUM=/usr/bin/chromium to run the browser tests")
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s=%s: browser not found: %v", envChromium, bin, err)
	}
	return path
}

// eachDatabase runs fn on SQLite, and also on PostgreSQL when
// GOVSHARE_TEST_POSTGRES names a server. fn gets the value for cfg.DB.
func eachDatabase(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	chromiumPath(t) // skip before any subtest starts a server
	t.Run("sqlite", func(t *testing.T) { fn(t, "") })
	if os.Getenv(storetest.EnvPostgres) != "" {
		t.Run("postgres", func(t *testing.T) {
			dsn, err := storetest.PostgresDSN(t)
			if err != nil {
				t.Fatalf("%s: %v", storetest.EnvPostgres, err)
			}
			fn(t, dsn)
		})
	}
}

// setup starts the demo platform on the database dsn (empty: SQLite) and a
// browser whose first tab browses it.
func setup(t *testing.T, dsn string) (*platform, *browser, *tab) {
	t.Helper()
	chromiumPath(t) // skip before starting a server for nothing
	p := startPlatform(t, dsn)
	b := newBrowser(t)
	return p, b, b.firstTab(p.URL)
}

// platform is a demo city served in-process on a free port.
type platform struct {
	URL  string
	totp map[string]string // login → TOTP secret of the administrators
}

// syncBuffer collects the server's logs while it writes them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPlatform runs server.Run with the demo seed until the test ends.
// dsn is cfg.DB: empty for SQLite in the test's data folder.
func startPlatform(t *testing.T, dsn string) *platform {
	t.Helper()
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.DB = dsn
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer // written by Run before Ready, read after
	logs := &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, &cfg, server.Options{Version: "test", Seed: demo.Seed, Out: &out, Logs: logs,
			Ready: func(addr string) { ready <- addr }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("platform stopped before serving: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("platform not serving after 60 s\n%s", logs)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("platform run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("platform did not stop within 30 s")
		}
		if t.Failed() {
			t.Logf("server logs (tail):\n%s", tail(logs.String(), 4000))
		}
	})
	secrets, err := readTOTPSecrets(filepath.Join(cfg.Data, "demo-accounts.txt"))
	if err != nil {
		t.Fatalf("demo accounts: %v\nstart-up output:\n%s", err, out.String())
	}
	return &platform{URL: "http://" + addr, totp: secrets}
}

// readTOTPSecrets reads the administrators' secrets from the demo account
// list, whose lines end in "TOTP <secret>".
func readTOTPSecrets(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	secrets := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if n := len(fields); n >= 3 && fields[n-2] == "TOTP" {
			secrets[fields[0]] = fields[n-1]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("no TOTP secrets in %s", file)
	}
	return secrets, nil
}

// totpSecret is the secret of one demo administrator.
func (p *platform) totpSecret(t *testing.T, login string) string {
	t.Helper()
	s, ok := p.totp[login]
	if !ok {
		t.Fatalf("demo account list has no TOTP secret for %s", login)
	}
	return s
}

// browser is one headless Chromium with a fresh profile.
type browser struct {
	t        *testing.T
	ctx      context.Context // the first tab; children share the browser
	deadline time.Time
	tabs     []*tab
	closers  []func() // run after the evidence is saved, last first
}

// newBrowser starts Chromium for the test. Failing to start it fails the
// test. The browser closes when the test ends; if the test failed, each
// tab's screenshot and HTML are saved first.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := chromiumPath(t)
	deadline := time.Now().Add(testTimeout)
	// The browser itself lives a little longer than the test's actions,
	// so a failure at the deadline can still be photographed.
	life, lifeCancel := context.WithDeadline(context.Background(), deadline.Add(15*time.Second))
	actx, acancel := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	bctx, bcancel := chromedp.NewContext(actx)
	// The first Do starts the browser and ties it to bctx, which has no
	// shorter deadline than the browser's life.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		lifeCancel()
		t.Fatalf("%s=%s: start the browser: %v", envChromium, bin, err)
	}
	b := &browser{t: t, ctx: bctx, deadline: deadline, closers: []func(){lifeCancel, acancel, bcancel}}
	t.Cleanup(func() {
		if t.Failed() {
			b.saveEvidence()
		}
		for i := len(b.closers) - 1; i >= 0; i-- {
			b.closers[i]()
		}
	})
	return b
}

// tab is one page of the browser, with the test's deadline.
type tab struct {
	t    *testing.T
	name string
	base string
	tab  context.Context // the tab's own context, for evidence after the deadline
	ctx  context.Context // the tab with the test's deadline, for actions
}

// firstTab returns the tab the browser started with, browsing base.
func (b *browser) firstTab(base string) *tab {
	return b.add("main", b.ctx, base)
}

// freshTab opens a tab in a new browser context: no cookies of other tabs,
// as if another person sat down at another computer.
func (b *browser) freshTab(name, base string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.closers = append(b.closers, cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	return b.add(name, ctx, base)
}

func (b *browser) add(name string, ctx context.Context, base string) *tab {
	actx, cancel := context.WithDeadline(ctx, b.deadline)
	b.closers = append(b.closers, cancel)
	tb := &tab{t: b.t, name: name, base: base, tab: ctx, ctx: actx}
	b.tabs = append(b.tabs, tb)
	return tb
}

// saveEvidence keeps a screenshot and the HTML of every tab outside the
// test's temporary folder, which is removed when the test ends.
func (b *browser) saveEvidence() {
	dir, err := os.MkdirTemp("", "govshare-browser-")
	if err != nil {
		b.t.Logf("evidence: %v", err)
		return
	}
	for _, tb := range b.tabs {
		ctx, cancel := context.WithTimeout(tb.tab, 10*time.Second)
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		html, herr := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		png, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		base := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name()+"-"+tb.name))
		if serr == nil {
			_ = os.WriteFile(base+".png", png, 0o600)
		}
		if herr == nil {
			_ = os.WriteFile(base+".html", []byte(html), 0o600)
		}
		b.t.Logf("tab %s at %s: screenshot %s.png (%v); page HTML (tail):\n%s", tb.name, loc, base, serr, tail(html, 3000))
	}
}

// tail is the last n bytes of s or a few more, cut between characters.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return "…" + s[i:]
}

// ----- actions: each fails the test with the tab's location on error -----

func (tb *tab) fail(format string, args ...any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.tab, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	tb.t.Fatalf("[%s at %s] %s", tb.name, loc, fmt.Sprintf(format, args...))
}

// open navigates to a path of the platform and returns the document's
// response.
func (tb *tab) open(path string) *network.Response {
	tb.t.Helper()
	resp, err := chromedp.Run(tb.ctx, chromedp.NavigateResponse(tb.base+path))
	if err != nil {
		tb.fail("open %s: %v", path, err)
	}
	return resp
}

// submit clicks a button that sends a form (or follows a link) and waits
// for the page that answers, after any redirect.
func (tb *tab) submit(sel string) *network.Response {
	tb.t.Helper()
	resp, err := chromedp.RunResponse(tb.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		tb.fail("click %s: %v", sel, err)
	}
	if resp == nil {
		tb.fail("click %s: no page loaded", sel)
	}
	return resp
}

// fill types into an input, replacing what it held. It focuses the input
// and sends key events rather than using chromedp.SendKeys, which reads
// the node's attributes without the lock chromedp's DOM event handler
// writes them under (a data race the race detector reports).
func (tb *tab) fill(sel, value string) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Clear(chromedp.CSS(sel)), chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(value)); err != nil {
		tb.fail("type into %s: %v", sel, err)
	}
}

// choose selects the option of a select element whose text is label.
func (tb *tab) choose(sel, label string) {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(() => { const o = [...document.querySelector(%q).options].find(o => o.textContent.trim() === %q); return o ? o.value : ""; })()`,
		sel, label)))
	if err != nil || v == "" {
		tb.fail("select %s has no option %q (%v)", sel, label, err)
	}
	if err := chromedp.Do(tb.ctx, chromedp.SetValue(chromedp.CSS(sel), v)); err != nil {
		tb.fail("choose %q in %s: %v", label, sel, err)
	}
}

// click clicks an element that does not load a page.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		tb.fail("click %s: %v", sel, err)
	}
}

// visible waits until the element is shown.
func (tb *tab) visible(sel string) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		tb.fail("wait for %s to show: %v", sel, err)
	}
}

// text is the shown text of the first element matching sel.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.fail("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// count is the number of elements matching a CSS selector now.
func (tb *tab) count(sel string) int {
	tb.t.Helper()
	return evaluate[int](tb, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// location is the path and query of the page shown.
func (tb *tab) location() string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Location())
	if err != nil {
		tb.fail("location: %v", err)
	}
	u, err := url.Parse(s)
	if err != nil {
		tb.fail("location %q: %v", s, err)
	}
	return u.RequestURI()
}

func evaluate[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.fail("evaluate %s: %v", js, err)
	}
	return v
}

// ----- flows -----

// logIn fills the login form, and the one-time code when totpSecret is
// set, and returns the page the platform lands on.
func (tb *tab) logIn(login, password, totpSecret string) *network.Response {
	tb.t.Helper()
	tb.open("/login")
	tb.fill("#login", login)
	tb.fill("#password", password)
	resp := tb.submit("#login-submit")
	if totpSecret == "" {
		return resp
	}
	if got := tb.location(); got != "/login/totp" {
		tb.fail("after the password of %s: at %s, want the one-time code page /login/totp", login, got)
	}
	code, err := identity.TOTPCode(totpSecret, time.Now())
	if err != nil {
		tb.fail("one-time code for %s: %v", login, err)
	}
	tb.fill("#code", code)
	return tb.submit("#totp-submit")
}

// logOut presses the logout button and checks the login page shows.
func (tb *tab) logOut() {
	tb.t.Helper()
	tb.submit("#logout")
	if got := tb.location(); !strings.HasPrefix(got, "/login") {
		tb.fail("after logout: at %s, want /login", got)
	}
	tb.visible("#login-submit")
}

// auditRow is one row of the audit table as the auditor sees it.
type auditRow struct {
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Object  string `json:"object"`
	Result  string `json:"result"`
	Details string `json:"details"`
}

func (r auditRow) String() string {
	return fmt.Sprintf("%s %s %s %s %s", r.Actor, r.Action, r.Object, r.Result, r.Details)
}

// auditRows reads #audit-table. The result comes from the row's r-<result>
// class, which names the stored value rather than its translation.
func (tb *tab) auditRows() []auditRow {
	tb.t.Helper()
	return evaluate[[]auditRow](tb, `[...document.querySelectorAll('#audit-table tbody tr')]
		.filter(tr => tr.cells.length >= 9)
		.map(tr => ({
			actor: tr.cells[2].firstChild ? tr.cells[2].firstChild.textContent.trim() : "",
			action: tr.cells[4].textContent.trim(),
			object: tr.cells[5].textContent.trim(),
			result: ([...tr.classList].find(c => c.startsWith('r-')) || '').slice(2),
			details: tr.cells[8].textContent.trim(),
		}))`)
}

// hasRow reports whether a row has this action and result and, when
// detail is set, mentions it in its details.
func hasRow(rows []auditRow, action, result, detail string) bool {
	for _, r := range rows {
		if r.Action == action && r.Result == result && strings.Contains(r.Details, detail) {
			return true
		}
	}
	return false
}
