package exchangebench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"govshare/internal/agent"
	"govshare/internal/policy"
)

// node is one exchange node (前置机) running as a process of its own, so
// that its memory is its own: the bench's binary started as `govshare
// agent run --config node.toml`.
type node struct {
	name    string
	id      int64
	dir     string
	config  string
	metrics string // host:port of its metrics (and pprof) listener
	log     string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// startNode enrols a node of dept with the center, writes its
// configuration and starts its process.
func startNode(ctx context.Context, c *center, actor policy.Actor, dept int64, name, dir string, cfg agent.Config, launch Launcher) (*node, error) {
	n := &node{name: name, dir: filepath.Join(dir, name), done: make(chan struct{})}
	data := filepath.Join(n.dir, "data")
	var err error
	if n.id, err = c.enrol(ctx, actor, dept, name, data); err != nil {
		return nil, fmt.Errorf("enrol node %s: %w", name, err)
	}
	if n.metrics, err = freeAddr(); err != nil {
		return nil, err
	}
	cfg.Center, cfg.Data, cfg.Metrics = c.url, data, n.metrics
	n.config = filepath.Join(n.dir, "node.toml")
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.config, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	n.log = filepath.Join(n.dir, "node.log")
	logf, err := os.Create(n.log)
	if err != nil {
		return nil, err
	}
	n.cmd = launch(n.config)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	dieWithParent(n.cmd)
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start node %s (%s): %w", name, strings.Join(n.cmd.Args, " "), err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	return n, nil
}

// ready waits until the node serves its metrics, that is, runs.
func (n *node) ready(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := n.alive(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.metrics+"/metrics", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s did not start within 30 s; the end of its log %s:\n%s", n.name, n.log, tail(n.log, 15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freeAddr picks a free loopback port for a node's metrics listener.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// alive returns an error with the end of the node's log once its process
// has ended.
func (n *node) alive() error {
	select {
	case <-n.done:
		return fmt.Errorf("node %s exited (%v); the end of its log %s:\n%s", n.name, n.waitErr, n.log, tail(n.log, 15))
	default:
		return nil
	}
}

// memory reads the node process's resident set now and its high-water
// mark since it started (VmRSS and VmHWM of /proc/<pid>/status).
func (n *node) memory() (rss, peak uint64) {
	if n.cmd == nil || n.cmd.Process == nil || n.alive() != nil {
		return 0, 0
	}
	return procStatus(n.cmd.Process.Pid, "VmRSS"), procStatus(n.cmd.Process.Pid, "VmHWM")
}

// stop ends the node as an operator would (SIGTERM), killing it if it has
// not stopped within 20 s.
func (n *node) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// procStatus reads a "kB" field of /proc/<pid>/status, in bytes (0 if it
// cannot be read).
func procStatus(pid int, field string) uint64 {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		v, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		return v * 1024
	}
	return 0
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// errNodeMetrics is returned when a node's profile cannot be fetched.
var errNodeMetrics = errors.New("node profile")

// cpuSeconds is the CPU time a process has used (user and system), with
// that of the children it has waited for when children is set; pid 0 is
// this process.
func cpuSeconds(pid int, children bool) float64 {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return statCPU(b, children)
}

// statCPU reads utime and stime (and cutime, cstime) from a
// /proc/<pid>/stat line, in seconds: fields 14 to 17, counted after the
// command name, which may hold spaces.
func statCPU(b []byte, children bool) float64 {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0
	}
	n := 2
	if children {
		n = 4
	}
	var ticks uint64
	for _, s := range f[11 : 11+n] {
		v, _ := strconv.ParseUint(s, 10, 64)
		ticks += v
	}
	return float64(ticks) / clockTicks
}

// clockTicks is the kernel's USER_HZ, 100 on Linux everywhere.
const clockTicks = 100

// postgresCPU is the CPU time of every PostgreSQL server process on this
// machine, the postmaster's ended children included; 0 where /proc cannot
// tell. The server is shared, so other users' work counts too.
func postgresCPU() float64 {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total float64
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil || !bytes.Contains(b, []byte("(postgres)")) {
			continue
		}
		total += statCPU(b, true)
	}
	return total
}

// cpu is the CPU time a process of the run has used so far.
func (n *node) cpu() float64 {
	if n.cmd == nil || n.cmd.Process == nil || n.alive() != nil {
		return 0
	}
	return cpuSeconds(n.cmd.Process.Pid, false)
}
