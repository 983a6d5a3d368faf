//go:build linux

// Package exchange_test runs the exchange system (交换体系) as it runs in a
// deployment — the center (`govshare serve`), the departments' nodes
// (`govshare agent run`), their business databases and an external NATS,
// each a process or server of its own — and breaks it on purpose: kill -9,
// a cut link, a lost cluster node. The in-process version of the same
// story is internal/exchange's TestExchangeEndToEnd.
//
// The tests need PostgreSQL (GOVSHARE_TEST_POSTGRES) and MariaDB
// (GOVSHARE_TEST_MYSQL) and skip without them; once named, both must be
// there. NATS servers are the tests' own processes (nats-server built from
// go.mod), so that they can be killed and so that the exchange's streams,
// whose names are fixed, never meet another test's: GOVSHARE_TEST_NATS is
// not used here. Fault points are random; each test logs its seed, and
// GOVSHARE_TEST_SEED=<seed> with -run <that test> replays it.
package exchange_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"govshare/internal/agent"
	"govshare/internal/agent/source"
	"govshare/internal/audit"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/identity"
	"govshare/internal/notify"
	"govshare/internal/policy"
	"govshare/internal/quality"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// Variables the tests read.
const (
	envMySQL  = "GOVSHARE_TEST_MYSQL"        // MariaDB/MySQL DSN user@tcp(host:port)/db: scratch databases are made beside db
	envSeed   = "GOVSHARE_TEST_SEED"         // replays the random fault points of a failed run
	envRows   = "GOVSHARE_TEST_FAULT_ROWS"   // rows of a fault test's sync (default 200,000)
	envRepeat = "GOVSHARE_TEST_FAULT_REPEAT" // random points per fault (default 2)
)

// bin holds the binaries TestMain builds once: govshare itself and a
// nats-server of the version go.mod names.
var bin struct {
	govshare, nats string
	err            error
}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	// Without the databases every test skips: build nothing.
	if os.Getenv(storetest.EnvPostgres) != "" && os.Getenv(envMySQL) != "" {
		dir, err := os.MkdirTemp("", "govshare-exchange-bin-")
		if err != nil {
			bin.err = err
		} else {
			defer os.RemoveAll(dir)
			bin.govshare, bin.nats = filepath.Join(dir, "govshare"), filepath.Join(dir, "nats-server")
			for _, b := range [][2]string{{bin.govshare, "govshare/cmd/govshare"}, {bin.nats, "github.com/nats-io/nats-server/v2"}} {
				out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
				if err != nil {
					bin.err = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
					break
				}
			}
		}
	}
	return m.Run()
}

// services are the databases the tests run on.
type services struct {
	postgres string // GOVSHARE_TEST_POSTGRES
	mysql    string // GOVSHARE_TEST_MYSQL
}

var reach struct {
	once sync.Once
	err  error
}

// requireServices skips the test when the databases are not named, and
// fails it when they are named but unreachable or the binaries did not
// build: a run that means to test the exchange must never pass without it.
func requireServices(t *testing.T) services {
	t.Helper()
	s := services{postgres: os.Getenv(storetest.EnvPostgres), mysql: os.Getenv(envMySQL)}
	if s.postgres == "" || s.mysql == "" {
		t.Skipf("set %s=postgres://… and %s=user@tcp(host:3306)/db to run the exchange system with real processes", storetest.EnvPostgres, envMySQL)
	}
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	reach.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.postgres)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		if err != nil {
			reach.err = fmt.Errorf("%s is set but PostgreSQL is unreachable: %w", storetest.EnvPostgres, err)
			return
		}
		db, err := sql.Open("mysql", s.mysql)
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if err != nil {
			reach.err = fmt.Errorf("%s is set but MariaDB is unreachable: %w", envMySQL, err)
		}
	})
	if reach.err != nil {
		t.Fatal(reach.err)
	}
	return s
}

// harness owns a test's processes, folders and randomness.
type harness struct {
	t     *testing.T
	s     services
	dir   string
	rnd   *mrand.Rand
	seed  uint64
	mu    sync.Mutex
	procs []*proc
}

// newHarness prepares a test; its cleanup stops every process it started
// and, when the test failed, shows the end of each one's log.
func newHarness(t *testing.T) *harness {
	t.Helper()
	s := requireServices(t)
	h := &harness{t: t, s: s, dir: t.TempDir()}
	h.seed = uint64(time.Now().UnixNano())
	if v := os.Getenv(envSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, v, err)
		}
		h.seed = n
	}
	h.rnd = mrand.New(mrand.NewPCG(h.seed, h.seed^0x9e3779b97f4a7c15))
	t.Logf("random seed %d (replay with %s=%d)", h.seed, envSeed, h.seed)
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	h.mu.Lock()
	procs := append([]*proc(nil), h.procs...)
	h.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	if h.t.Failed() {
		for _, p := range procs {
			h.t.Logf("--- %s: end of %s ---\n%s", p.name, p.log, tailFile(p.log, 60, 8000))
		}
	}
}

// path is a file or folder in the test's folder.
func (h *harness) path(elem ...string) string {
	return filepath.Join(append([]string{h.dir}, elem...)...)
}

// between is a random duration in [lo, hi).
func (h *harness) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(h.rnd.Int64N(int64(hi-lo)))
}

// proc is one process of the system: started, killed with SIGKILL,
// restarted with the same arguments (and so the same data folder), its
// output appended to one log file across its lives.
type proc struct {
	h    *harness
	name string
	args []string
	env  []string
	log  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	lives   int
	expect  bool  // an exit now is expected (stop or kill)
	exitErr error // how the last life ended
}

// spawn starts a process of the test; bin is its binary.
func (h *harness) spawn(name, binary string, args []string, env ...string) *proc {
	p := &proc{h: h, name: name, args: append([]string{binary}, args...), env: env, log: h.path(name + ".log")}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	p.start()
	return p
}

// cleanEnv is the test's environment without GOVSHARE_* variables, so that
// a process sees only what the test gives it.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOVSHARE_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

func (p *proc) start() {
	p.h.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.h.t.Fatalf("%s: started while running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.h.t.Fatal(err)
	}
	p.lives++
	fmt.Fprintf(f, "=== %s life %d: %s\n", time.Now().Format("15:04:05.000"), p.lives, strings.Join(p.args, " "))
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = cleanEnv(p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// The process dies with the test binary, even one killed by a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		p.h.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.expect = cmd, done, false
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		if !p.expect {
			p.h.t.Logf("%s exited unexpectedly: %v", p.name, err)
		}
		p.cmd = nil
		p.mu.Unlock()
		close(done)
	}()
}

// kill ends the process with SIGKILL (kill -9) and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL, 0)
}

// stop asks the process to stop (SIGTERM) and kills it if it has not
// within 20 s.
func (p *proc) stop() {
	p.signal(syscall.SIGTERM, 20*time.Second)
}

func (p *proc) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.expect = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			p.h.t.Logf("%s did not stop within %s: killed", p.name, grace)
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	<-done
}

// restart starts the process again after kill or stop.
func (p *proc) restart() { p.start() }

// exited says whether the process ended without being told to.
func (p *proc) exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd == nil && !p.expect && p.lives > 0, p.exitErr
}

// logText is everything the process wrote so far.
func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// tailFile is the end of a file: at most lines lines and max bytes.
func tailFile(path string, lines, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// eventually polls cond until it holds, failing the test when the time is
// up or when one of the test's processes died on its own.
func (h *harness) eventually(d time.Duration, what string, cond func() (bool, string)) {
	h.t.Helper()
	h.eventuallyExplained(d, what, cond, nil)
}

// eventuallyExplained is eventually, with explain's account of the system
// added to a failure.
func (h *harness) eventuallyExplained(d time.Duration, what string, cond func() (bool, string), explain func() string) {
	h.t.Helper()
	fail := func(format string, args ...any) {
		h.t.Helper()
		msg := fmt.Sprintf(format, args...)
		if explain != nil {
			msg += explain()
		}
		h.t.Fatal(msg)
	}
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		h.mu.Lock()
		procs := append([]*proc(nil), h.procs...)
		h.mu.Unlock()
		for _, p := range procs {
			if dead, err := p.exited(); dead {
				fail("%s: %s died (%v) (last: %s)", what, p.name, err, last)
			}
		}
		if time.Now().After(deadline) {
			fail("%s: not within %s (last: %s)", what, d, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// freePort is a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomName(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// ---------------------------------------------------------------- NATS

// natsServer is an external NATS server with JetStream, a process of the
// test: the bus the center is configured with (--nats).
type natsServer struct {
	proc *proc
	url  string
}

// startNATS starts a NATS server; cluster (its own route port) and routes
// make it one of a cluster.
func (h *harness) startNATS(name string, cluster int, routes []string) *natsServer {
	h.t.Helper()
	port := freePort(h.t)
	args := []string{"-js", "-sd", h.path(name), "-a", "127.0.0.1", "-p", strconv.Itoa(port), "--server_name", name}
	if cluster > 0 {
		args = append(args, "--cluster_name", "govshare", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cluster), "--routes", strings.Join(routes, ","))
	}
	n := &natsServer{url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	n.proc = h.spawn(name, bin.nats, args)
	return n
}

// waitJetStream waits until JetStream answers at url (on a cluster: until
// it has a leader).
func (h *harness) waitJetStream(urls string) {
	h.t.Helper()
	h.eventually(60*time.Second, "JetStream at "+urls+" answers", func() (bool, string) {
		nc, err := nats.Connect(urls, nats.Timeout(time.Second))
		if err != nil {
			return false, err.Error()
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := js.AccountInfo(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// ---------------------------------------------------------------- link

// proxy stands between a node and the center's node endpoint, so that the
// test can cut the link: cut closes the live connections and refuses new
// ones until restore.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	down   bool
}

func (h *harness) newProxy(target string) *proxy {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	h.t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns[c] = true
		}
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	defer p.forget(c)
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns[up] = true
	p.mu.Unlock()
	defer p.forget(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (p *proxy) forget(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// cut drops every connection through the proxy and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// restore lets connections through again.
func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// ---------------------------------------------------------------- databases

// postgresSchema is a fresh schema on the PostgreSQL server, dropped at the
// end: its URL selects it.
func (h *harness) postgresSchema() string {
	h.t.Helper()
	dsn, err := storetest.PostgresDSN(h.t)
	if err != nil {
		h.t.Fatalf("%s: %v", storetest.EnvPostgres, err)
	}
	return dsn
}

// mysqlDatabase is a fresh database on the MariaDB server, dropped at the
// end, and its DSN.
func (h *harness) mysqlDatabase() string {
	h.t.Helper()
	cfg, err := mysql.ParseDSN(h.s.mysql)
	if err != nil {
		h.t.Fatalf("%s: %v", envMySQL, err)
	}
	admin, err := sql.Open("mysql", h.s.mysql)
	if err != nil {
		h.t.Fatal(err)
	}
	defer admin.Close()
	name := randomName("gsx_")
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		h.t.Fatalf("create MariaDB database: %v", err)
	}
	h.t.Cleanup(func() {
		if a, err := sql.Open("mysql", h.s.mysql); err == nil {
			_, _ = a.Exec("DROP DATABASE IF EXISTS " + name)
			a.Close()
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// pgConn connects to a PostgreSQL schema for the test's own statements.
func (h *harness) pgConn(dsn string) *pgx.Conn {
	h.t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// cst is China Standard Time: a timestamp without a zone at the source is
// read as that.
var cst = time.FixedZone("CST", 8*3600)

var surnames = []string{"张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴"}

func personName(i int) string { return surnames[i%len(surnames)] + "测" + strconv.Itoa(i%97) }

// people is the provider's business table, in PostgreSQL.
const peopleDDL = `CREATE TABLE people (id BIGINT PRIMARY KEY, xm TEXT NOT NULL, qh TEXT, sr NUMERIC(12,2), gxsj TIMESTAMP(3) NOT NULL)`

// loadPeople creates the people table with rows 1…n (COPY), their update
// times spread over the hour before now; bad rows get an empty name.
func (h *harness) loadPeople(conn *pgx.Conn, n int, bad ...int) {
	h.t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, peopleDDL); err != nil {
		h.t.Fatal(err)
	}
	isBad := map[int]bool{}
	for _, b := range bad {
		isBad[b] = true
	}
	base := time.Now().In(cst).Add(-time.Hour)
	base = time.Date(base.Year(), base.Month(), base.Day(), base.Hour(), base.Minute(), base.Second(), 0, time.UTC) // wall clock, no zone
	step := time.Hour / time.Duration(n+1)
	i := 0
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"people"}, []string{"id", "xm", "qh", "sr", "gxsj"}, pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		name := personName(i)
		if isBad[i] {
			name = ""
		}
		return []any{int64(i), name, fmt.Sprintf("3501%02d", i%13), fmt.Sprintf("%d.%02d", 2000+i%7919, i%100), base.Add(time.Duration(i) * step).Truncate(time.Millisecond)}, nil
	}))
	if err != nil {
		h.t.Fatalf("load people: %v", err)
	}
}

// nowCST is the wall clock in China Standard Time, as the source's
// timestamp column keeps it.
func nowCST() time.Time {
	n := time.Now().In(cst)
	return time.Date(n.Year(), n.Month(), n.Day(), n.Hour(), n.Minute(), n.Second(), n.Nanosecond(), time.UTC).Truncate(time.Millisecond)
}

// sameRows compares two queries of the same columns and key by checksum
// (source.FullCheck): it returns the keys that differ.
func sameRows(ctx context.Context, srcKind, srcDSN string, sq source.Query, dstKind, dstDSN string, dq source.Query) ([]source.KeyDiff, error) {
	src, err := source.Open(srcKind, srcDSN)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := source.Open(dstKind, dstDSN)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	return source.FullCheck(ctx, src, sq, dst, dq, 1000)
}

// ---------------------------------------------------------------- center

// centerSpec says what the center holds before it starts.
type centerSpec struct {
	items    []catalog.DataItem // the entry's data items
	granted  []string           // the consumer's grant (exchange)
	nats     string             // --nats: "" = embedded
	replicas int                // exchange_replicas
}

// center is the platform's server process and what was seeded into its
// database before it started.
type center struct {
	h        *harness
	proc     *proc
	dsn      string // its database
	web      string // http://127.0.0.1:port
	node     string // https://127.0.0.1:port, the node endpoint
	nodeAddr string
	tokens   map[string]string // who → API token: admin, provider, consumer
	resource resource.Resource
	entry    catalog.Entry
	grantID  int64
	db       *pgx.Conn // for counting the resource's records
}

// Who acts: the platform administrator, the providing department's data
// administrator (市公安局) and the consuming one's (市民政局).
const (
	admin    = "admin"
	provider = "provider"
	consumer = "consumer"
)

type noNotices struct{}

func (noNotices) Send(context.Context, notify.Notice) error { return nil }

type allRefs struct{}

func (allRefs) RegionKnown(string) bool       { return true }
func (allRefs) CodeKnown(string, string) bool { return true }
func (allRefs) HasTable(string) bool          { return true }

// startCenter seeds a fresh PostgreSQL schema with what the story needs
// before the exchange starts — departments, their administrators and API
// tokens, a published catalog entry, mounted by the provider, granted to
// the consumer for exchange — then starts `govshare serve` on it. From
// then on everything goes through the processes.
func (h *harness) startCenter(spec centerSpec) *center {
	h.t.Helper()
	ctx := context.Background()
	c := &center{h: h, dsn: h.postgresSchema(), tokens: map[string]string{}}
	master := make([]byte, secret.KeySize)
	_, _ = rand.Read(master)
	keys, err := secret.New(master)
	if err != nil {
		h.t.Fatal(err)
	}
	h.seedCenter(ctx, c, keys, spec)

	webPort, nodePort := freePort(h.t), freePort(h.t)
	c.web = fmt.Sprintf("http://127.0.0.1:%d", webPort)
	c.nodeAddr = fmt.Sprintf("127.0.0.1:%d", nodePort)
	c.node = "https://" + c.nodeAddr
	args := []string{"serve", "--addr", fmt.Sprintf("127.0.0.1:%d", webPort), "--data", h.path("center"), "--db", c.dsn,
		"--node-addr", c.nodeAddr, "--node-hosts", "127.0.0.1", "--exchange-replicas", strconv.Itoa(max(spec.replicas, 1))}
	if spec.nats != "" {
		args = append(args, "--nats", spec.nats)
	}
	c.proc = h.spawn("center", bin.govshare, args, "GOVSHARE_SECRET_KEY="+base64.StdEncoding.EncodeToString(master))
	c.waitReady()
	c.db = h.pgConn(c.dsn)
	return c
}

// waitReady waits until the server answers /readyz and its node endpoint
// listens.
func (c *center) waitReady() {
	c.h.t.Helper()
	c.h.eventually(90*time.Second, "the center is ready", func() (bool, string) {
		resp, err := http.Get(c.web + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, resp.Status
		}
		conn, err := net.DialTimeout("tcp", c.nodeAddr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})
}

// restart starts the killed or stopped server again on the same database,
// data folder and ports.
func (c *center) restart() {
	c.h.t.Helper()
	c.proc.restart()
	c.waitReady()
}

func (h *harness) seedCenter(ctx context.Context, c *center, keys *secret.Keys, spec centerSpec) {
	h.t.Helper()
	db, err := store.Open(ctx, c.dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		h.t.Fatal(err)
	}
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		h.t.Fatal(err)
	}
	defer log.Close()
	ids := identity.NewService(db, log, keys, identity.DefaultConfig())
	must := func(err error) {
		h.t.Helper()
		if err != nil {
			h.t.Fatalf("seed the center: %v", err)
		}
	}
	dept := func(name string, n int) int64 {
		d, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: name, CreditCode: identity.SyntheticCreditCode("350100", n), RegionCode: "350100"})
		must(err)
		return d.ID
	}
	city, police, civil := dept("市政务信息办", 1), dept("市公安局", 2), dept("市民政局", 3)
	actors := map[string]policy.Actor{}
	for _, u := range []struct {
		who, login string
		dept       int64
		role       policy.Role
	}{{admin, "admin", city, policy.PlatformAdmin}, {provider, "gaj.admin", police, policy.DeptAdmin}, {consumer, "mzj.admin", civil, policy.DeptAdmin}} {
		user, err := ids.SeedUser(ctx, identity.UserInput{Login: u.login, Name: "测试" + u.login, DeptID: u.dept, Roles: []policy.Role{u.role},
			Password: "Test@Pass2026"}, false, identity.NewTOTPSecret())
		must(err)
		actors[u.who] = user.Actor()
		tok, _, err := ids.CreateToken(ctx, user.Actor(), "exchange tests", 30)
		must(err)
		c.tokens[u.who] = tok
	}
	cat := catalog.NewService(db, log, calendar.Weekdays{}, catalog.DefaultConfig())
	must(cat.EnsureDefaultTree(ctx))
	res := resource.New(db, log, cat, func(context.Context) (quality.Reference, error) { return allRefs{}, nil }, nil)
	shr := share.NewService(db, log, cat, calendar.Weekdays{}, noNotices{}, share.Config{AnswerDays: 10, ProvideDays: 5})
	e, err := cat.CreateEntry(ctx, actors[provider], catalog.Content{
		Name: "人口基本信息", ClassCode: "101", Abstract: "人口基本信息，供交换系统测试使用。", FormatClass: "database", FormatType: "postgresql",
		Items: spec.items, ShareType: catalog.ShareUnconditional, ShareMethods: []catalog.ShareMethod{catalog.MethodExchange},
		OpenType: catalog.OpenClosed, UpdateCycle: "realtime",
	})
	must(err)
	_, err = cat.Submit(ctx, actors[provider], e.ID)
	must(err)
	_, err = cat.Approve(ctx, actors[admin], e.ID)
	must(err)
	c.entry, err = cat.Publish(ctx, actors[admin], e.ID)
	must(err)
	c.resource, err = res.Mount(ctx, actors[provider], e.ID)
	must(err)
	app, err := shr.Apply(ctx, actors[consumer], e.ID, share.Terms{Items: spec.granted, Methods: []catalog.ShareMethod{catalog.MethodExchange},
		Purpose: "社会救助对象核对"})
	must(err)
	g, err := shr.Grant(ctx, actors[consumer], app.GrantID)
	must(err)
	c.grantID = g.ID
}

// apiError is a refusal of the JSON API.
type apiError struct {
	status int
	body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.body) }

// call calls the JSON API as who; out receives the answer.
func (c *center) call(who, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.web+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.tokens[who])
	cl := &http.Client{Timeout: 60 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{status: resp.StatusCode, body: strings.TrimSpace(string(raw))}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// must calls the API and fails the test on any error.
func (c *center) must(who, method, path string, body, out any) {
	c.h.t.Helper()
	if err := c.call(who, method, path, body, out); err != nil {
		c.h.t.Fatalf("%s %s as %s: %v", method, path, who, err)
	}
}

// records counts the resource's live records at the center.
func (c *center) records() (int64, error) {
	var n int64
	err := c.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM "`+c.resource.Table+`" WHERE _deleted_at IS NULL`).Scan(&n)
	return n, err
}

// state describes where the exchange stands, for a test that waits in
// vain: the resource's batches that are not applied, the job and the
// subscriptions as the API shows them, and the open runs.
func (c *center) state(jobID int64, subs ...int64) string {
	ctx := context.Background()
	var b strings.Builder
	rows, err := c.db.Query(ctx, `SELECT id, client_batch_id, state, rows_total, started_at FROM resource_batches WHERE resource_id = $1 ORDER BY id DESC LIMIT 60`,
		c.resource.ID)
	if err == nil {
		var applied []string
		for rows.Next() {
			var id, total int64
			var client *string
			var st string
			var started time.Time
			if rows.Scan(&id, &client, &st, &total, &started) == nil {
				if st == "applied" {
					applied = append(applied, strconv.FormatInt(id, 10))
					continue
				}
				cl := ""
				if client != nil {
					cl = *client
				}
				fmt.Fprintf(&b, "\n  resource batch %d (%s): %s, %d rows, started %s", id, cl, st, total, started.Format("15:04:05.000"))
			}
		}
		rows.Close()
		fmt.Fprintf(&b, "\n  resource batches applied (newest 60): %s", strings.Join(applied, " "))
	}
	var j exchange.Job
	if err := c.call(admin, http.MethodGet, "/api/v1/exchange/jobs/"+strconv.FormatInt(jobID, 10), nil, &j); err == nil {
		fmt.Fprintf(&b, "\n  job %d: node state %s, queued %d, error %q, checkpoint %s", j.ID, j.NodeState, j.Queued, j.Error, j.Checkpoint)
	}
	for _, id := range subs {
		var x exchange.Subscription
		if err := c.call(admin, http.MethodGet, "/api/v1/exchange/subscriptions/"+strconv.FormatInt(id, 10), nil, &x); err == nil {
			fmt.Fprintf(&b, "\n  subscription %d: %s, cursor batch %d, applied seq %d, node state %s, error %q", x.ID, x.State, x.Cursor, x.AppliedSeq, x.NodeState, x.Error)
		}
	}
	if runs, err := c.runs("state=running"); err == nil {
		for _, r := range runs {
			fmt.Fprintf(&b, "\n  open run %d: %s job %d subscription %d run %d, batches %d/%d, sent %+v, received %+v", r.ID, r.Direction, r.JobID,
				r.SubscriptionID, r.RunNo, r.BatchesRecv, r.BatchesSent, r.Sent, r.Received)
		}
	}
	return b.String()
}

// createJob defines a job through the API.
func (c *center) createJob(nodeID int64, spec wire.JobSpec) exchange.Job {
	c.h.t.Helper()
	body := map[string]any{"node_id": nodeID}
	b, _ := json.Marshal(spec)
	_ = json.Unmarshal(b, &body)
	body["node_id"] = nodeID
	delete(body, "id")
	delete(body, "version")
	delete(body, "key_items")
	var j exchange.Job
	c.must(provider, http.MethodPost, "/api/v1/exchange/jobs", body, &j)
	return j
}

// subscribe subscribes a consumer node through the API.
func (c *center) subscribe(req exchange.SubscriptionRequest) exchange.Subscription {
	c.h.t.Helper()
	var x exchange.Subscription
	c.must(consumer, http.MethodPost, "/api/v1/exchange/subscriptions", req, &x)
	return x
}

// runs lists runs through the API (filter: job_id=…, subscription_id=…).
func (c *center) runs(filter string) ([]exchange.Run, error) {
	var out []exchange.Run
	err := c.call(admin, http.MethodGet, "/api/v1/exchange/runs?limit=1000&"+filter, nil, &out)
	return out, err
}

// alarms lists the open alarms through the API.
func (c *center) alarms() ([]exchange.Alarm, error) {
	var out []exchange.Alarm
	err := c.call(admin, http.MethodGet, "/api/v1/exchange/alarms", nil, &out)
	return out, err
}

// ---------------------------------------------------------------- nodes

// node is an exchange node (前置机): `govshare agent run`.
type node struct {
	name    string
	id      int64
	who     string
	config  string
	metrics string
	proc    *proc
}

// enrolNode registers a node for who's department through the API, enrols
// it with `govshare agent enrol` and its one-time code, writes its
// configuration (centerURL: the node endpoint, or a proxy in front of it)
// and starts `govshare agent run`.
func (c *center) enrolNode(who, name, centerURL string, sources, targets []agent.Database) *node {
	h := c.h
	h.t.Helper()
	var created struct {
		Node struct {
			ID int64 `json:"id"`
		} `json:"node"`
		Code    string `json:"code"`
		Command string `json:"command"`
	}
	c.must(who, http.MethodPost, "/api/v1/nodes", map[string]any{"name": name}, &created)
	dir := h.path(name)
	data := filepath.Join(dir, "data")
	out, err := exec.Command(bin.govshare, "agent", "enrol", "--api", c.web, "--code", created.Code, "--name", name, "--data", data,
		"--config", filepath.Join(dir, "enrolled.toml")).CombinedOutput()
	if err != nil {
		h.t.Fatalf("govshare agent enrol %s: %v\n%s", name, err, out)
	}
	n := &node{name: name, id: created.Node.ID, who: who, config: filepath.Join(dir, "node.toml"), metrics: fmt.Sprintf("127.0.0.1:%d", freePort(h.t))}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(agent.Config{Center: centerURL, Data: data, Metrics: n.metrics, Sources: sources, Targets: targets}); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(n.config, b.Bytes(), 0o600); err != nil {
		h.t.Fatal(err)
	}
	n.proc = h.spawn(name, bin.govshare, []string{"agent", "run", "--config", n.config})
	return n
}

// metric reads one counter of the node's Prometheus metrics (summed over
// its labels); 0 when the node does not answer.
func (n *node) metric(name string) float64 {
	cl := &http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// ---------------------------------------------------------------- reconciliation

// tally is what a list of runs adds up to, for one direction.
type tally struct {
	runs, open, mismatch int
	sent, recv           wire.RunCounts
	notes                []string
}

func (t tally) String() string {
	return fmt.Sprintf("%d runs (%d open, %d mismatch): sent %+v, received %+v", t.runs, t.open, t.mismatch, t.sent, t.recv)
}

func tallyRuns(runs []exchange.Run) tally {
	var t tally
	for _, r := range runs {
		t.runs++
		switch r.State {
		case "running":
			t.open++
		case "mismatch":
			t.mismatch++
			t.notes = append(t.notes, fmt.Sprintf("run %d (%s %d/%d): %s", r.ID, r.Direction, r.JobID+r.SubscriptionID, r.RunNo, r.Note))
		}
		t.sent.Add(r.Sent)
		t.recv.Add(r.Received)
	}
	return t
}

// settled waits until no run of the job and the subscriptions is open,
// then returns their tallies: in (the job's runs) and out (each
// subscription's). It fails on a mismatch.
func (c *center) settled(d time.Duration, jobID int64, subs ...int64) (in tally, out []tally) {
	h := c.h
	h.t.Helper()
	h.eventuallyExplained(d, "every run of the job and its subscriptions is reconciled", func() (bool, string) {
		runs, err := c.runs("job_id=" + strconv.FormatInt(jobID, 10))
		if err != nil {
			return false, err.Error()
		}
		in = tallyRuns(runs)
		open := in.open
		state := "in: " + in.String()
		out = out[:0]
		for _, s := range subs {
			runs, err := c.runs("subscription_id=" + strconv.FormatInt(s, 10))
			if err != nil {
				return false, err.Error()
			}
			o := tallyRuns(runs)
			out = append(out, o)
			open += o.open
			state += fmt.Sprintf("; subscription %d: %s", s, o)
		}
		return open == 0, state
	}, func() string { return c.state(jobID, subs...) })
	if in.mismatch > 0 {
		h.t.Errorf("runs of job %d whose two sides differ: %s", jobID, strings.Join(in.notes, "; "))
	}
	for i, o := range out {
		if o.mismatch > 0 {
			h.t.Errorf("runs of subscription %d whose two sides differ: %s", subs[i], strings.Join(o.notes, "; "))
		}
	}
	if in.runs >= 1000 || slicesAny(out, func(o tally) bool { return o.runs >= 1000 }) {
		h.t.Fatalf("1000 runs or more: the API lists the newest 1000 only, so the sums would be partial")
	}
	return in, out
}

// noMismatchAlarms fails the test on an open alarm of a count mismatch;
// other alarms are logged.
func (c *center) noMismatchAlarms() {
	c.h.t.Helper()
	alarms, err := c.alarms()
	if err != nil {
		c.h.t.Fatal(err)
	}
	for _, a := range alarms {
		if a.Kind == "mismatch" || a.Kind == "check_diff" {
			c.h.t.Errorf("alarm %d (%s): %s", a.ID, a.Kind, a.MessageEN)
		} else {
			c.h.t.Logf("alarm %d (%s): %s", a.ID, a.Kind, a.MessageEN)
		}
	}
}

func slicesAny[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

// count runs a COUNT query on a database/sql database.
func count(db *sql.DB, q string, args ...any) (int64, error) {
	var n int64
	err := db.QueryRow(q, args...).Scan(&n)
	return n, err
}

// openSQL opens a database/sql handle for the test's own queries.
func (h *harness) openSQL(driver, dsn string) *sql.DB {
	h.t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	return db
}
