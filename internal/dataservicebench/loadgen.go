package dataservicebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"govshare/client"
	"govshare/internal/benchstat"
)

// The load generator is a process of its own (`govshare bench loadgen`,
// hidden), so the clients' work — signing, HTTP, reading answers — is not
// counted in the server's process, and the server's memory is its own.
// The bench writes it a LoadSpec on stdin; it writes its LoadResult as
// JSON on stdout and its progress on stderr.

// Load modes.
const (
	ModeLookup   = "lookup"   // keyed lookups of random existing people
	ModeDownload = "download" // one GET, the answer counted line by line
	ModeVerify   = "verify"   // a comparison job: create, poll, fetch the result
)

// LoadSpec is one measurement.
type LoadSpec struct {
	Mode string `json:"mode"`
	Name string `json:"name"`
	// Lookup: the URL of person i is URLPrefix + ID(i) + URLSuffix, for
	// i drawn uniformly from [0, Rows). Masked says the answer shows the
	// ID as keep(6,4) (the full path), else in clear (the baseline).
	URLPrefix string `json:"url_prefix,omitempty"`
	URLSuffix string `json:"url_suffix,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	Masked    bool   `json:"masked,omitempty"`
	// Download: the URL to GET. Comparison: the server's base URL and
	// the resource; the job's Records are made by verifyRecord over Rows
	// people, and Items compared.
	URL      string   `json:"url,omitempty"`
	Resource string   `json:"resource,omitempty"`
	Records  int64    `json:"records,omitempty"`
	Items    []string `json:"items,omitempty"`
	// App signs every request afresh (new nonce); nil sends unsigned.
	App     *client.App `json:"app,omitempty"`
	Purpose string      `json:"purpose,omitempty"`
	// Clients send at once, each waiting for its answer; Warmup runs
	// before the clock starts, Duration is measured.
	Clients  int           `json:"clients,omitempty"`
	Warmup   time.Duration `json:"warmup,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Profile, when set, is a file for the load generator's own CPU
	// profile of the whole measurement.
	Profile string `json:"profile,omitempty"`
}

// LoadResult is what the load generator measured.
type LoadResult struct {
	Name string `json:"name"`
	// Requests answered 200 within the measured time, Errors the others
	// (FirstError names one), Sent all requests, warm-up included.
	Requests   int64         `json:"requests"`
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Sent       int64         `json:"sent"`
	OK         int64         `json:"ok"` // 200 answers, warm-up included
	Elapsed    time.Duration `json:"elapsed"`
	PerSec     float64       `json:"per_sec"`
	P50        time.Duration `json:"p50"`
	P99        time.Duration `json:"p99"`
	Max        time.Duration `json:"max"`
	// Download: data rows (lines less the header) and bytes received,
	// and the time to the first byte.
	Rows  int64         `json:"rows,omitempty"`
	Bytes int64         `json:"bytes,omitempty"`
	TTFB  time.Duration `json:"ttfb,omitempty"`
	// Comparison: the answers the result file holds, and when the job
	// was accepted (Upload) and seen done (Compared), from the start.
	Matched    int64         `json:"matched,omitempty"`
	Mismatched int64         `json:"mismatched,omitempty"`
	NotFound   int64         `json:"not_found,omitempty"`
	Upload     time.Duration `json:"upload,omitempty"`
	Compared   time.Duration `json:"compared,omitempty"`
	// CPU is the load generator's own user and system time.
	CPU time.Duration `json:"cpu"`
}

// RunLoad is the load generator's main: a LoadSpec from in, a LoadResult
// to out.
func RunLoad(ctx context.Context, in io.Reader, out, progress io.Writer) error {
	var spec LoadSpec
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		return fmt.Errorf("loadgen: read the spec: %w", err)
	}
	if spec.Profile != "" {
		f, err := os.Create(spec.Profile)
		if err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("loadgen: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var res LoadResult
	var err error
	switch spec.Mode {
	case ModeLookup:
		res, err = lookups(ctx, spec, progress)
	case ModeDownload:
		res, err = download(ctx, spec)
	case ModeVerify:
		res, err = verifyJob(ctx, spec, progress)
	default:
		err = fmt.Errorf("loadgen: unknown mode %q", spec.Mode)
	}
	if err != nil {
		return err
	}
	res.Name = spec.Name
	res.CPU = processCPU()
	return json.NewEncoder(out).Encode(res)
}

func httpClient(clients int) *http.Client {
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients, DisableCompression: true}
	return &http.Client{Transport: tr, Timeout: 10 * time.Minute}
}

// lookups runs spec.Clients clients looking up random people: a warm-up,
// then the measured time. A request counts when it is answered 200 with
// the person asked for.
func lookups(ctx context.Context, spec LoadSpec, progress io.Writer) (LoadResult, error) {
	if spec.Clients <= 0 || spec.Rows <= 0 || spec.Duration <= 0 {
		return LoadResult{}, errors.New("loadgen: lookups need clients, rows and a duration")
	}
	hc := httpClient(spec.Clients)
	ppl := newPeople()
	var (
		sent, ok, measured, failed atomic.Int64
		errOnce                    sync.Once
		firstErr                   string
		wg                         sync.WaitGroup
	)
	warmEnd := time.Now().Add(spec.Warmup)
	start := warmEnd
	deadline := start.Add(spec.Duration)
	lat := make([][]time.Duration, spec.Clients)
	for c := range spec.Clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c)+1, uint64(time.Now().UnixNano())))
			var buf bytes.Buffer
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(deadline) {
					return
				}
				id := ppl.ID(rng.Int64N(spec.Rows))
				sent.Add(1)
				err := benchstat.Get(ctx, hc, spec.URLPrefix+id+spec.URLSuffix, spec.App, spec.Purpose, &buf)
				if err == nil {
					want := id
					if spec.Masked {
						want = id[:6] + "********" + id[14:]
					}
					if !bytes.Contains(buf.Bytes(), []byte(`"`+want+`"`)) {
						err = fmt.Errorf("the answer does not hold %s: %.200s", want, buf.String())
					}
				}
				if err == nil {
					ok.Add(1)
				}
				if t.Before(start) {
					if err != nil {
						failed.Add(1)
						errOnce.Do(func() { firstErr = "warm-up: " + err.Error() })
					}
					continue
				}
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				lat[c] = append(lat[c], time.Since(t))
				measured.Add(1)
			}
		})
	}
	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case now := <-t.C:
				if now.Before(start) {
					fmt.Fprintf(progress, "%s: warming up, %d requests\n", spec.Name, sent.Load())
					continue
				}
				n := measured.Load()
				fmt.Fprintf(progress, "%s: %s/%s, %d requests, %.0f/s now, %d errors\n", spec.Name,
					now.Sub(start).Round(time.Second), spec.Duration, n, float64(n-last)/now.Sub(lastAt).Seconds(), failed.Load())
				last, lastAt = n, now
			case <-stop:
				return
			}
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	ticker.Wait()
	if err := ctx.Err(); err != nil {
		return LoadResult{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := LoadResult{Requests: int64(len(all)), Errors: failed.Load(), FirstError: firstErr, Sent: sent.Load(), OK: ok.Load(),
		Elapsed: elapsed, PerSec: float64(len(all)) / elapsed.Seconds(),
		P50: benchstat.Percentile(all, 50), P99: benchstat.Percentile(all, 99), Max: benchstat.Percentile(all, 100)}
	return res, nil
}

// download GETs spec.URL once and counts what comes: lines (less the
// header) and bytes.
func download(ctx context.Context, spec LoadSpec) (LoadResult, error) {
	hc := httpClient(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec.URL, nil)
	if err != nil {
		return LoadResult{}, err
	}
	if spec.App != nil {
		if err := spec.App.SignRequest(req, spec.Purpose); err != nil {
			return LoadResult{}, err
		}
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return LoadResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return LoadResult{}, fmt.Errorf("download: status %d: %s", resp.StatusCode, b)
	}
	res := LoadResult{Requests: 1, Sent: 1, OK: 1}
	buf := make([]byte, 256<<10)
	var lines int64
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if res.Bytes == 0 {
				res.TTFB = time.Since(start)
			}
			res.Bytes += int64(n)
			lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return LoadResult{}, fmt.Errorf("download: after %d bytes: %w", res.Bytes, err)
		}
	}
	res.Elapsed = time.Since(start)
	res.Rows = max(lines-1, 0)
	res.PerSec = float64(res.Rows) / res.Elapsed.Seconds()
	res.P50, res.P99, res.Max = res.Elapsed, res.Elapsed, res.Elapsed
	return res, nil
}

// Loadgen starts load generator processes: cmd runs one with the spec on
// its stdin.
type Loadgen func(ctx context.Context) *exec.Cmd

// SelfLoadgen runs this executable with args (e.g. "bench", "loadgen").
func SelfLoadgen(args ...string) (Loadgen, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) *exec.Cmd { return exec.CommandContext(ctx, exe, args...) }, nil
}

// run starts the load generator with spec and waits for its result;
// its progress lines go to progress.
func (l Loadgen) run(ctx context.Context, spec LoadSpec, progress io.Writer) (LoadResult, error) {
	in, err := json.Marshal(spec)
	if err != nil {
		return LoadResult{}, err
	}
	cmd := l(ctx)
	dieWithParent(cmd)
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(progress, &stderr)
	if err := cmd.Run(); err != nil {
		return LoadResult{}, fmt.Errorf("load generator (%s): %w: %s", spec.Name, err, lastLine(stderr.String()))
	}
	var res LoadResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return LoadResult{}, fmt.Errorf("load generator (%s): its result: %w: %.200s", spec.Name, err, out.String())
	}
	return res, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
