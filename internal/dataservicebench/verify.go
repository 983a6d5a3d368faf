package dataservicebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"govshare/internal/checkdigit"
	"govshare/internal/resource"
)

// The comparison: a consumer holds a million records (citizen ID, name,
// birth date) and asks which agree with the population. The full path
// is the comparison job API — upload, compare in the background, fetch
// the answers — driven by the load generator; the baseline is the same
// records COPYed into a temporary table in the same database and joined
// with the resource's table by key, the answers COPYed out.

// errNoJobAPI says the server has no comparison job API.
var errNoJobAPI = errors.New("no comparison job API")

// Verify is the comparison's measurement.
type Verify struct {
	Records int64
	Items   []string
	// Job is the load generator's view: Elapsed from the upload's first
	// byte to the result's last, Upload until the job was accepted,
	// Compared until it was seen done (polled every verifyPoll).
	Job LoadResult
	// Plain are the plain joins, before and after the job; Ratio is the
	// faster one's time over the job's.
	Plain []PlainJoin
	Ratio float64
	// Expected counts, by the way the records were made.
	Matched, Mismatched, NotFound int64
	ServerCPU, PostgresCPU        time.Duration
	Memory                        Memory
}

// PlainJoin is one run of the baseline.
type PlainJoin struct {
	Elapsed, Load, Join           time.Duration // in all; COPY in; join and COPY out
	Matched, Mismatched, NotFound int64
	PerSec                        float64
}

// TargetVerifyRatio is the target for the comparison.
const TargetVerifyRatio = 0.5

// verifyPoll is how often the load generator asks for the job's state;
// a job that compares no record for verifyStall has stalled.
const (
	verifyPoll  = 200 * time.Millisecond
	verifyStall = 3 * time.Minute
)

// The comparison's records: record k is person stride·k mod rows (a
// spread over the whole population), with a wrong name every
// mismatchEvery-th and a made-up citizen ID every notFoundEvery-th.
const (
	verifyStride  = 7919 // prime: stride·k mod rows are distinct unless rows is a multiple
	mismatchEvery = 50
	notFoundEvery = 200
)

// verifyItems are the items compared besides the key.
var verifyItems = []string{"name", "birth_date"}

// verifyRecord is record k of a comparison over rows people: its ID, name
// and birth date, and what the comparison must answer.
func (p *people) verifyRecord(k, rows int64) (id, name, birth, want string) {
	stride := int64(verifyStride)
	if rows%stride == 0 {
		stride = 1
	}
	per := p.Person(k * stride % rows)
	id, name, birth, want = per[0], per[1], per[3], "match"
	switch {
	case k%notFoundEvery == 0:
		// Born in 2015: after every birth date the population has.
		m := k / notFoundEvery
		born := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(m/10%365))
		id, want = checkdigit.SyntheticCitizenID(districts[m%10].code, born, int(m/3650%1000)), "not_found"
	case k%mismatchEvery == 0:
		name, want = name+"某", "mismatch"
	}
	return id, name, birth, want
}

// verifyCSV is the upload: a header and the records.
func verifyCSV(records, rows int64) []byte {
	ppl := newPeople()
	var b bytes.Buffer
	b.Grow(int(records) * 40)
	b.WriteString(keyItem + "," + strings.Join(verifyItems, ",") + "\n")
	for k := range records {
		id, name, birth, _ := ppl.verifyRecord(k, rows)
		b.WriteString(id)
		b.WriteByte(',')
		b.WriteString(name)
		b.WriteByte(',')
		b.WriteString(birth)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// expected counts the answers the records must get.
func expected(records, rows int64) (matched, mismatched, notFound int64) {
	ppl := newPeople()
	for k := range records {
		switch _, _, _, want := ppl.verifyRecord(k, rows); want {
		case "match":
			matched++
		case "mismatch":
			mismatched++
		default:
			notFound++
		}
	}
	return
}

// hasJobAPI asks the server's OpenAPI document whether comparison jobs
// exist.
func hasJobAPI(ctx context.Context, base string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/openapi.json", nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return false, fmt.Errorf("openapi: %w", err)
	}
	_, ok := doc.Paths["/api/v1/verify/{resource}/jobs"]
	return ok, nil
}

// verifyPhase runs the plain join, the job, and the plain join again.
func verifyPhase(ctx context.Context, opt Options, base, dsn string, fx *fixture, progress io.Writer) (*Verify, error) {
	ok, err := hasJobAPI(ctx, base)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNoJobAPI
	}
	n := opt.VerifyRecords
	v := &Verify{Records: n, Items: verifyItems}
	v.Matched, v.Mismatched, v.NotFound = expected(n, opt.Rows)
	body := verifyCSV(n, opt.Rows)
	check := func(side string, m, mm, nf int64) error {
		if m != v.Matched || mm != v.Mismatched || nf != v.NotFound {
			return fmt.Errorf("comparison (%s): %d match, %d mismatch, %d not found; want %d, %d, %d", side, m, mm, nf, v.Matched, v.Mismatched, v.NotFound)
		}
		return nil
	}
	plain := func() error {
		fmt.Fprintf(progress, "comparison: plain join of %d records (COPY into a temporary table, join, COPY out)\n", n)
		p, err := plainJoin(ctx, dsn, fx.res, body)
		if err != nil {
			return fmt.Errorf("comparison: plain join: %w", err)
		}
		if err := check("plain join", p.Matched, p.Mismatched, p.NotFound); err != nil {
			return err
		}
		fmt.Fprintf(progress, "comparison: plain join in %s (COPY in %s, join and out %s)\n", p.Elapsed.Round(time.Millisecond),
			p.Load.Round(time.Millisecond), p.Join.Round(time.Millisecond))
		v.Plain = append(v.Plain, p)
		return nil
	}
	if err := plain(); err != nil {
		return nil, err
	}
	app := fx.app
	spec := LoadSpec{Mode: ModeVerify, Name: "comparison job", URL: base, Resource: fx.res.Code, Records: n, Rows: opt.Rows, Items: verifyItems,
		App: &app, Purpose: purpose}
	fmt.Fprintf(progress, "comparison: job of %d records (%.1f MB of CSV) through the API\n", n, float64(len(body))/1e6)
	stopProf, err := startProfile(opt.Profile, "verify")
	if err != nil {
		return nil, err
	}
	mem := watchMemory()
	cpu0, pg0 := processCPU(), postgresCPU()
	r, err := opt.Loadgen.run(ctx, spec, progress)
	v.ServerCPU, v.PostgresCPU = processCPU()-cpu0, postgresCPU()-pg0
	v.Memory = mem()
	stopProf()
	if err != nil {
		return nil, err
	}
	if err := check("job", r.Matched, r.Mismatched, r.NotFound); err != nil {
		return nil, err
	}
	v.Job = r
	fmt.Fprintf(progress, "comparison: job in %s (accepted after %s, done after %s)\n", r.Elapsed.Round(time.Millisecond),
		r.Upload.Round(time.Millisecond), r.Compared.Round(time.Millisecond))
	if err := plain(); err != nil {
		return nil, err
	}
	best := v.Plain[0].Elapsed
	for _, p := range v.Plain {
		best = min(best, p.Elapsed)
	}
	v.Ratio = best.Seconds() / r.Elapsed.Seconds()
	return v, nil
}

// plainJoin compares the records the plain way on one connection: COPY
// them into a temporary table, then COPY out, in their order, each one's
// answer from a LEFT JOIN with the resource's table on the key.
func plainJoin(ctx context.Context, dsn string, r resource.Resource, body []byte) (PlainJoin, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return PlainJoin{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var p PlainJoin
	start := time.Now()
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE bench_probe (idx BIGINT GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START 0), id_number TEXT, name TEXT, birth_date TEXT)`); err != nil {
		return p, err
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(body), "COPY bench_probe (id_number, name, birth_date) FROM STDIN (FORMAT csv, HEADER true)"); err != nil {
		return p, err
	}
	if _, err := conn.Exec(ctx, "ANALYZE bench_probe"); err != nil {
		return p, err
	}
	p.Load = time.Since(start)
	t := pgx.Identifier{r.Table}.Sanitize()
	q := fmt.Sprintf(`COPY (SELECT p.idx,
		CASE WHEN t.id_number IS NULL THEN 'not_found' WHEN t.name IS NOT DISTINCT FROM p.name AND t.birth_date::text IS NOT DISTINCT FROM p.birth_date THEN 'match' ELSE 'mismatch' END,
		CASE WHEN t.id_number IS NULL THEN '' WHEN t.name IS NOT DISTINCT FROM p.name THEN 'match' ELSE 'mismatch' END,
		CASE WHEN t.id_number IS NULL THEN '' WHEN t.birth_date::text IS NOT DISTINCT FROM p.birth_date THEN 'match' ELSE 'mismatch' END
		FROM bench_probe p LEFT JOIN %s t ON t.id_number = p.id_number AND t."_deleted_at" IS NULL ORDER BY p.idx) TO STDOUT (FORMAT csv, HEADER true)`, t)
	pr, pw := io.Pipe()
	counted := make(chan error, 1)
	go func() {
		m, mm, nf, err := countResults(pr, 1)
		p.Matched, p.Mismatched, p.NotFound = m, mm, nf
		pr.CloseWithError(err)
		counted <- err
	}()
	_, err = conn.PgConn().CopyTo(ctx, pw, q)
	pw.CloseWithError(err)
	if cerr := <-counted; err == nil {
		err = cerr
	}
	if err != nil {
		return p, err
	}
	p.Elapsed = time.Since(start)
	p.Join = p.Elapsed - p.Load
	p.PerSec = float64(p.Matched+p.Mismatched+p.NotFound) / p.Elapsed.Seconds()
	return p, nil
}

// countResults reads CSV answers (a header, then rows whose field at
// col is match, mismatch or not_found) and counts them.
func countResults(r io.Reader, col int) (matched, mismatched, notFound int64, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := sc.Bytes()
		for range col {
			i := bytes.IndexByte(f, ',')
			if i < 0 {
				return 0, 0, 0, fmt.Errorf("answer line %q: too few fields", sc.Text())
			}
			f = f[i+1:]
		}
		if i := bytes.IndexByte(f, ','); i >= 0 {
			f = f[:i]
		}
		switch string(f) {
		case "match":
			matched++
		case "mismatch":
			mismatched++
		case "not_found":
			notFound++
		default:
			return 0, 0, 0, fmt.Errorf("answer line %q: unknown result", sc.Text())
		}
	}
	return matched, mismatched, notFound, sc.Err()
}

// verifyJob is the load generator's comparison: create the job with the
// records, poll it until done, fetch and count the answers.
func verifyJob(ctx context.Context, spec LoadSpec, progress io.Writer) (LoadResult, error) {
	if spec.Records <= 0 || spec.Rows <= 0 {
		return LoadResult{}, errors.New("loadgen: a comparison needs records and rows")
	}
	body := verifyCSV(spec.Records, spec.Rows)
	hc := httpClient(1)
	call := func(method, target string, b []byte, out any) (*http.Response, error) {
		var rd io.Reader
		if b != nil {
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, rd)
		if err != nil {
			return nil, err
		}
		if b != nil {
			req.Header.Set("Content-Type", "text/csv")
		}
		if err := spec.App.SignRequest(req, spec.Purpose); err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if out == nil {
			return resp, nil
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s %s: status %d: %.300s", method, target, resp.StatusCode, raw)
		}
		return resp, json.Unmarshal(raw, out)
	}
	type job struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
		Total int64  `json:"total"`
		Done  int64  `json:"done"`
		Error string `json:"error"`
	}
	var res LoadResult
	start := time.Now()
	var j job
	if _, err := call(http.MethodPost, spec.URL+"/api/v1/verify/"+url.PathEscape(spec.Resource)+"/jobs?items="+url.QueryEscape(strings.Join(spec.Items, ",")), body, &j); err != nil {
		return res, fmt.Errorf("create the comparison job: %w", err)
	}
	res.Upload = time.Since(start)
	fmt.Fprintf(progress, "comparison job %d: %d records accepted after %s\n", j.ID, j.Total, res.Upload.Round(time.Millisecond))
	jobURL := spec.URL + "/api/v1/verify/jobs/" + strconv.FormatInt(j.ID, 10)
	last := time.Now()
	moved, moving := time.Now(), j.Done
	for j.State != "done" {
		if j.State == "failed" {
			return res, fmt.Errorf("comparison job %d failed: %s", j.ID, j.Error)
		}
		if j.Done != moving {
			moved, moving = time.Now(), j.Done
		}
		if time.Since(moved) > verifyStall {
			return res, fmt.Errorf("comparison job %d: %s, no record compared for %s (%d / %d done)", j.ID, j.State, verifyStall, j.Done, j.Total)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(verifyPoll):
		}
		if _, err := call(http.MethodGet, jobURL, nil, &j); err != nil {
			return res, err
		}
		if time.Since(last) >= 2*time.Second {
			fmt.Fprintf(progress, "comparison job %d: %s, %d / %d records after %s\n", j.ID, j.State, j.Done, j.Total, time.Since(start).Round(time.Second))
			last = time.Now()
		}
	}
	res.Compared = time.Since(start)
	resp, err := call(http.MethodGet, jobURL+"/result", nil, nil)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return res, fmt.Errorf("comparison job %d result: status %d: %s", j.ID, resp.StatusCode, b)
	}
	cr := &countingReader{r: resp.Body}
	if res.Matched, res.Mismatched, res.NotFound, err = countResults(cr, 1); err != nil {
		return res, fmt.Errorf("comparison job %d result: %w", j.ID, err)
	}
	res.Elapsed = time.Since(start)
	res.Bytes = cr.n
	res.Rows = res.Matched + res.Mismatched + res.NotFound
	res.Requests, res.OK = 1, 1
	res.PerSec = float64(res.Rows) / res.Elapsed.Seconds()
	return res, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
