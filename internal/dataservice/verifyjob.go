package dataservice

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
	"govshare/internal/store"
)

// Comparison jobs (数据比对任务) take what a synchronous comparison cannot:
// up to a million records, uploaded as CSV, compared in the background
// and answered match / mismatch per item / not found, never with a stored
// value. The records and the answers live in the database in compressed
// chunks, so any server sharing it may run a job; a job runs under a
// lease that another server takes over when its server dies.

// VerifyJob is a comparison job and its progress.
type VerifyJob struct {
	ID             int64     `json:"id"`
	Resource       string    `json:"resource" doc:"信息资源代码 / resource code"`
	Items          []string  `json:"items" doc:"比对的信息项 / items compared"`
	State          string    `json:"state" enum:"queued,running,done,failed" doc:"排队中 / 比对中 / 已完成 / 失败 — queued / running / done / failed"`
	Total          int64     `json:"total" doc:"上传的记录数 / records uploaded"`
	Done           int64     `json:"done" doc:"已比对的记录数 / records compared so far"`
	Matched        int64     `json:"matched" doc:"一致 / matched"`
	Mismatched     int64     `json:"mismatched" doc:"不一致 / mismatched"`
	NotFound       int64     `json:"not_found" doc:"未找到 / not found"`
	ErrorCode      string    `json:"error_code,omitempty" doc:"失败原因代码 / code of the failure"`
	Error          string    `json:"error,omitempty" doc:"失败原因 / why it failed"`
	Purpose        string    `json:"purpose" doc:"用途 / purpose"`
	CreatedAt      time.Time `json:"created_at"`
	FinishedAt     time.Time `json:"finished_at,omitzero"`
	ResultUntil    time.Time `json:"result_until,omitzero" doc:"结果保留至(之后删除) / results kept until"`
	ConsumerDeptID int64     `json:"consumer_dept_id" doc:"创建任务的部门 / the department that created it"`
	AppKey         string    `json:"app_key,omitempty" doc:"创建任务的接入应用 / the app that created it"`
}

// States of a job. An upload in progress is a job too, seen by nobody
// and removed when its upload dies.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	jobUploading = "uploading"
)

// Bounds of comparison jobs.
const (
	// MaxVerifyJob is the most records one job takes.
	MaxVerifyJob = 1_000_000
	// MaxVerifyJobBytes bounds an upload.
	MaxVerifyJobBytes = 256 << 20
	// VerifyJobKeep is how long the results of a job are kept.
	VerifyJobKeep = 7 * 24 * time.Hour
	// verifyChunk is the records of one chunk: stored together, and
	// answered, with the job's progress, in one transaction.
	verifyChunk = 5000
	// verifyPass is the chunks compared together: their keys are looked
	// up in key order, so records near each other in the key index (and
	// often on the same table pages) are read once for all of them. A
	// pass of 500,000 records against ten million looks records up two
	// to three times faster than chunk by chunk, and holds about 50 MB.
	verifyPass = 100
	// verifyLease is how long a running job stays its server's without
	// being renewed; uploadLease the same for an upload in progress.
	verifyLease = 30 * time.Second
	uploadLease = 10 * time.Minute
	// verifyPoll is how often an idle worker looks for jobs.
	verifyPoll = 250 * time.Millisecond
	// verifyAttempts is how often a job is started before it fails.
	verifyAttempts = 5
)

// Errors of comparison jobs.
var (
	ErrVerifyJobRecords = apperr.Invalid("data.verify_job_records", "body",
		fmt.Sprintf("请上传1至%d条记录：CSV 文件，首行为信息项字段名(主键信息项与要比对的信息项)", MaxVerifyJob),
		fmt.Sprintf("upload 1 to %d records: a CSV file whose first row names the items (the key items and the items to compare)", MaxVerifyJob))
	ErrVerifyCSV         = apperr.Invalid("data.verify_csv_invalid", "body", "CSV 文件格式有误", "the CSV file is malformed")
	ErrVerifyJobTooLarge = apperr.New(http.StatusRequestEntityTooLarge, "data.verify_job_too_large",
		fmt.Sprintf("上传的文件超过%dMB", MaxVerifyJobBytes>>20), fmt.Sprintf("the upload is larger than %d MB", MaxVerifyJobBytes>>20))
	ErrVerifyJobNotDone = apperr.New(http.StatusConflict, "data.verify_job_not_done", "比对任务尚未完成，还没有结果", "the comparison job has not finished; there is no result yet")
	ErrVerifyJobFailed  = apperr.New(http.StatusConflict, "data.verify_job_failed", "比对任务失败，没有结果", "the comparison job failed; there is no result")
	ErrVerifyJobPurged  = apperr.New(http.StatusGone, "data.verify_job_purged", "比对结果已过保留期，已删除", "the results were kept for their period and then deleted")
	errVerifyJobStopped = apperr.New(http.StatusInternalServerError, "data.verify_job_interrupted", "比对任务多次中断或出错，已停止，请重新提交",
		"the comparison job was interrupted or failed too often and stopped; submit it again")
	errLeaseLost = errors.New("verify job: lease lost to another server")
)

// CreateVerifyJob checks and stores a comparison job: body is CSV whose
// first row names the items (the resource's key items and the items to
// compare; other columns are ignored), one record a row. items are the
// items to compare; none means every item the header names besides the
// key. The upload is read as a stream and every record is checked: a
// record without a key value is refused naming its row (the header is
// row 1) and item, and nothing is stored. The job counts all its records
// against today's comparison quotas at once; its audit event is durable
// before it is queued.
func (s *Service) CreateVerifyJob(ctx context.Context, c Caller, code string, items []string, body io.Reader) (VerifyJob, error) {
	u, err := s.begin(ctx, c, code, catalog.MethodVerify, nil)
	if err != nil {
		return VerifyJob{}, err
	}
	j, err := s.createVerifyJob(ctx, u, items, body)
	if err != nil {
		s.usage.add(u, 1, 0, err)
		s.deny(ctx, c, "data.verify_job", code, err)
		return VerifyJob{}, err
	}
	s.usage.add(u, 1, j.Total, nil)
	return j, nil
}

func (s *Service) createVerifyJob(ctx context.Context, u *use, items []string, body io.Reader) (VerifyJob, error) {
	cr := csv.NewReader(bufio.NewReaderSize(&capped{r: body, left: MaxVerifyJobBytes}, 64<<10))
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return VerifyJob{}, ErrVerifyJobRecords
	}
	if err != nil {
		return VerifyJob{}, csvProblem(err)
	}
	header := make([]string, len(head))
	for i, h := range head {
		header[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if slices.Contains(header[:i], header[i]) {
			return VerifyJob{}, ErrVerifyCSV.With(fmt.Sprintf("首行的信息项 %s 出现了两次", header[i]),
				fmt.Sprintf("the first row names item %s twice", header[i])).OnField(header[i]).OnRow(1)
		}
	}
	if len(items) == 0 {
		for _, h := range header {
			if c, ok := column(u.r, h); ok && !c.Key {
				items = append(items, h)
			}
		}
	}
	cp, err := s.prepareVerify(u, items)
	if err != nil {
		return VerifyJob{}, err
	}
	fields := append(slices.Clone(cp.keys), cp.items...)
	pos := make(map[string]int, len(fields))
	names := make([]string, len(fields))
	for i, c := range fields {
		if _, ok := u.granted(c.MachineName); !ok {
			return VerifyJob{}, itemRefused(c.MachineName, catalog.MethodVerify, "items")
		}
		at := slices.Index(header, c.MachineName)
		if at < 0 {
			if c.Key {
				return VerifyJob{}, ErrVerifyKey.With(fmt.Sprintf("文件首行缺少主键信息项 %s", c.MachineName),
					fmt.Sprintf("the first row lacks key item %s", c.MachineName)).OnField(c.MachineName).OnRow(1)
			}
			return VerifyJob{}, ErrVerifyItems.With(fmt.Sprintf("文件首行缺少要比对的信息项 %s", c.MachineName),
				fmt.Sprintf("the first row lacks item %s to compare", c.MachineName)).OnField(c.MachineName).OnRow(1)
		}
		pos[c.MachineName], names[i] = at, c.MachineName
	}
	if err := s.admit(u); err != nil {
		return VerifyJob{}, err
	}
	if err := s.verifyAllowed(ctx, u, 1); err != nil {
		return VerifyJob{}, err
	}
	compared := names[len(cp.keys):]
	itemsJSON, _ := json.Marshal(compared)
	fieldsJSON, _ := json.Marshal(names)
	now := s.now()
	var id int64
	err = s.db.QueryRow(ctx, `INSERT INTO verify_jobs (resource_code, items, fields, state, consumer_dept_id, grant_id, app_id, app_key, user_id, login,
		purpose, lease_until, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		u.r.Code, string(itemsJSON), string(fieldsJSON), jobUploading, u.caller.Actor.DeptID, u.permit.GrantID, u.caller.AppID, u.caller.Actor.App,
		u.caller.Actor.UserID, u.caller.Actor.Login, u.caller.Purpose, now.Add(uploadLease), now).Scan(&id)
	if err != nil {
		return VerifyJob{}, fmt.Errorf("create verify job: %w", err)
	}
	queued := false
	defer func() {
		if !queued {
			s.dropVerifyJob(context.WithoutCancel(ctx), id)
		}
	}()
	total, chunks, err := s.storeProbes(ctx, id, cr, cp, pos)
	if err != nil {
		return VerifyJob{}, err
	}
	if err := s.verifyAllowed(ctx, u, total); err != nil {
		return VerifyJob{}, err
	}
	if err := s.record(ctx, u, "data.verify_job", map[string]any{"job": id, "items": compared, "records": total, "chunks": chunks}); err != nil {
		return VerifyJob{}, err
	}
	res, err := s.db.Exec(ctx, "UPDATE verify_jobs SET state = ?, total = ?, chunks = ?, lease_until = NULL WHERE id = ? AND state = ?",
		JobQueued, total, chunks, id, jobUploading)
	if err != nil {
		return VerifyJob{}, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return VerifyJob{}, fmt.Errorf("verify job %d: the upload outlived its lease", id)
	}
	queued = true
	return s.loadVerifyJob(ctx, id)
}

// storeProbes reads the records, checks each and stores them as chunks
// of canonical values (the key, then the compared items; an unusable
// value as unstorable). A chunk is compressed and stored while the next
// one is read. It returns the records and chunks stored.
func (s *Service) storeProbes(ctx context.Context, id int64, cr *csv.Reader, cp *comparison, pos map[string]int) (int64, int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	full, free := make(chan *chunkWriter, 1), make(chan *chunkWriter, 2)
	free <- newChunkWriter()
	free <- newChunkWriter()
	stored := make(chan int64, 1)
	go func() {
		var seq int64
		for w := range full {
			if ctx.Err() == nil {
				if err := s.storeChunk(ctx, id, seq, w); err != nil {
					cancel(err)
				}
				seq++
			}
			free <- w
		}
		stored <- seq
	}()
	total, err := s.readRecords(ctx, cr, cp, pos, full, free)
	close(full)
	chunks := <-stored
	if cerr := context.Cause(ctx); err == nil && cerr != nil {
		err = cerr
	}
	return total, chunks, err
}

// readRecords checks the records and hands them on in full chunks.
func (s *Service) readRecords(ctx context.Context, cr *csv.Reader, cp *comparison, pos map[string]int, full chan<- *chunkWriter, free <-chan *chunkWriter) (int64, error) {
	pr := cp.reader()
	var rec []string
	get := func(c resource.Column) (string, bool) { return rec[pos[c.MachineName]], true }
	w := <-free
	w.reset(0)
	var total int64
	for {
		var err error
		rec, err = cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, csvProblem(err)
		}
		if total == MaxVerifyJob {
			return 0, ErrVerifyJobRecords.With(fmt.Sprintf("一个比对任务最多%d条记录，请分成几个任务", MaxVerifyJob),
				fmt.Sprintf("a comparison job takes at most %d records; split the file into several jobs", MaxVerifyJob))
		}
		total++
		p, missing := pr.read(get)
		if missing != nil { // every column is there: an empty key
			line, _ := cr.FieldPos(0)
			return 0, ErrVerifyKey.With(fmt.Sprintf("第%d行缺少主键信息项 %s", line, missing.MachineName),
				fmt.Sprintf("row %d lacks key item %s", line, missing.MachineName)).OnField(missing.MachineName).OnRow(line)
		}
		if err := w.write(p); err != nil {
			return 0, err
		}
		if w.n == verifyChunk {
			full <- w
			select {
			case w = <-free:
			case <-ctx.Done():
				return 0, context.Cause(ctx)
			}
			w.reset(total)
		}
	}
	if w.n > 0 {
		full <- w
	}
	if total == 0 {
		return 0, ErrVerifyJobRecords
	}
	return total, nil
}

// storeChunk compresses and stores a chunk, and renews the upload's
// lease.
func (s *Service) storeChunk(ctx context.Context, id, seq int64, w *chunkWriter) error {
	b, err := w.compress()
	if err != nil {
		return err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO verify_job_chunks (job_id, seq, first_index, records, input) VALUES (?, ?, ?, ?, ?)",
			id, seq, w.first, w.n, b); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE verify_jobs SET lease_until = ? WHERE id = ?", s.now().Add(uploadLease), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store verify job %d: %w", id, err)
	}
	return nil
}

// csvProblem names the row of a malformed CSV file.
func csvProblem(err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	row := pe.StartLine
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return ErrVerifyCSV.With(fmt.Sprintf("第%d行的字段数与首行不同", row), fmt.Sprintf("row %d has a different number of fields than the first row", row)).OnRow(row)
	}
	return ErrVerifyCSV.With(fmt.Sprintf("CSV 第%d行格式有误(引号不成对等)：%v", row, pe.Err),
		fmt.Sprintf("row %d is not valid CSV (unbalanced quotes or the like): %v", row, pe.Err)).OnRow(row)
}

// capped reads at most left bytes, then refuses the upload as too
// large, and refuses a row longer than maxVerifyRow before the CSV
// reader gathers it in memory.
type capped struct {
	r          io.Reader
	left       int64
	lines, row int
}

// maxVerifyRow bounds one row of an upload.
const maxVerifyRow = 1 << 20

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, ErrVerifyJobTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, ErrVerifyJobTooLarge
	}
	if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
		c.lines += bytes.Count(p[:i+1], []byte{'\n'})
		c.row = n - i - 1
	} else {
		c.row += n
	}
	if c.row > maxVerifyRow {
		row := c.lines + 1
		return n, ErrVerifyCSV.With(fmt.Sprintf("第%d行超过%dKB", row, maxVerifyRow>>10), fmt.Sprintf("row %d is longer than %d KB", row, maxVerifyRow>>10)).OnRow(row)
	}
	return n, err
}

// chunkWriter writes probes as a chunk: CSV, compressed with gzip to be
// stored.
type chunkWriter struct {
	raw, gz bytes.Buffer
	cw      *csv.Writer
	zw      *gzip.Writer
	rec     []string
	first   int64 // the index of its first record
	n       int
}

func newChunkWriter() *chunkWriter {
	w := &chunkWriter{}
	w.cw = csv.NewWriter(&w.raw)
	w.zw, _ = gzip.NewWriterLevel(&w.gz, gzip.BestSpeed)
	return w
}

func (w *chunkWriter) write(p Probe) error {
	w.rec = w.rec[:0]
	for _, k := range p.Key {
		if strings.HasPrefix(k, unstorable) {
			k = unstorable
		}
		w.rec = append(w.rec, k)
	}
	for _, v := range p.Values {
		if v == nil {
			w.rec = append(w.rec, unstorable)
		} else {
			w.rec = append(w.rec, *v)
		}
	}
	w.n++
	return w.cw.Write(w.rec)
}

// compress returns the chunk as stored.
func (w *chunkWriter) compress() ([]byte, error) {
	w.cw.Flush()
	if err := w.cw.Error(); err != nil {
		return nil, err
	}
	w.gz.Reset()
	w.zw.Reset(&w.gz)
	if _, err := w.zw.Write(w.raw.Bytes()); err != nil {
		return nil, err
	}
	if err := w.zw.Close(); err != nil {
		return nil, err
	}
	return w.gz.Bytes(), nil
}

// reset empties the writer for a chunk whose first record is first.
func (w *chunkWriter) reset(first int64) {
	w.raw.Reset()
	w.first, w.n = first, 0
}

// readProbes reads a chunk written by chunkWriter into ps.
func readProbes(b []byte, ps *probeSet) error {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	cr := csv.NewReader(zr)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = ps.nk + ps.ni
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		ps.keys = append(ps.keys, rec[:ps.nk]...)
		for _, v := range rec[ps.nk:] {
			ps.vals, ps.bad = append(ps.vals, v), append(ps.bad, v == unstorable)
		}
	}
}

// ----- reading jobs -----

const jobCols = `id, resource_code, items, state, total, done, matched, mismatched, not_found, error_code, error, purpose,
	created_at, finished_at, purged_at, consumer_dept_id, app_key`

func (s *Service) scanVerifyJob(row store.Row) (VerifyJob, error) {
	var j VerifyJob
	var items string
	var finished, purged sql.NullTime
	err := row.Scan(&j.ID, &j.Resource, &items, &j.State, &j.Total, &j.Done, &j.Matched, &j.Mismatched, &j.NotFound, &j.ErrorCode, &j.Error,
		&j.Purpose, &j.CreatedAt, &finished, &purged, &j.ConsumerDeptID, &j.AppKey)
	if err != nil {
		return j, err
	}
	if err := json.Unmarshal([]byte(items), &j.Items); err != nil {
		return j, err
	}
	j.CreatedAt = j.CreatedAt.UTC()
	if finished.Valid {
		j.FinishedAt = finished.Time.UTC()
		if j.State == JobDone && !purged.Valid {
			j.ResultUntil = j.FinishedAt.Add(VerifyJobKeep)
		}
	}
	return j, nil
}

func (s *Service) loadVerifyJob(ctx context.Context, id int64) (VerifyJob, error) {
	j, err := s.scanVerifyJob(s.db.QueryRow(ctx, "SELECT "+jobCols+" FROM verify_jobs WHERE id = ? AND state <> ?", id, jobUploading))
	if errors.Is(err, sql.ErrNoRows) {
		return j, apperr.ErrNotFound
	}
	return j, err
}

// seesAllJobs: platform administrators and auditors see every
// department's jobs (not their results).
func seesAllJobs(a policy.Actor) bool {
	return a.App == "" && (a.Has(policy.PlatformAdmin) || a.Has(policy.Auditor))
}

// VerifyJob returns a job to the department that created it (its people
// and apps who use data), platform administrators and auditors; to
// anyone else it does not exist.
func (s *Service) VerifyJob(ctx context.Context, c Caller, id int64) (VerifyJob, error) {
	j, err := s.loadVerifyJob(ctx, id)
	if err == nil && !seesAllJobs(c.Actor) && !policy.Allowed(c.Actor, policy.DataUse, policy.Target{DeptID: j.ConsumerDeptID}) {
		err = apperr.ErrNotFound
	}
	if errors.Is(err, apperr.ErrNotFound) {
		s.denyJob(ctx, c, "data.verify_job_view", id, err)
	}
	if err != nil {
		return VerifyJob{}, err
	}
	return j, nil
}

// VerifyJobs lists the newest jobs (at most limit, 50 by default, 500 at
// most): the department's own to those who use its data, every
// department's to platform administrators and auditors.
func (s *Service) VerifyJobs(ctx context.Context, c Caller, limit int) ([]VerifyJob, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	q, args := "SELECT "+jobCols+" FROM verify_jobs WHERE state <> ?", []any{jobUploading}
	switch {
	case seesAllJobs(c.Actor):
	case policy.Allowed(c.Actor, policy.DataUse, policy.Target{DeptID: c.Actor.DeptID}):
		q += " AND consumer_dept_id = ?"
		args = append(args, c.Actor.DeptID)
	default:
		s.denyJob(ctx, c, "data.verify_job_view", 0, apperr.ErrDenied)
		return nil, apperr.ErrDenied
	}
	return store.All(ctx, s.db, s.scanVerifyJob, q+" ORDER BY id DESC LIMIT ?", append(args, limit)...)
}

// denyJob audits a refused look at a job (0: at the list).
func (s *Service) denyJob(ctx context.Context, c Caller, action string, id int64, err error) {
	reason := "error"
	if ae, ok := apperr.As(err); ok {
		reason = ae.Code
	}
	e := audit.By(c.Actor, action, "verify_job", strconv.FormatInt(id, 10), audit.ResultDenied, map[string]any{"reason": reason})
	e.Purpose = c.Purpose
	_ = s.audit.Append(ctx, e)
}

// resultHeader is the first row of a job's result: index (the record's
// position in the upload, from 0), result, then each compared item.
func resultHeader(j VerifyJob) []string { return append([]string{"index", "result"}, j.Items...) }

// WriteVerifyJobResult writes a finished job's result to the department
// that created it, as CSV: index, result (match / mismatch / not_found),
// then match or mismatch for each compared item (empty when not found);
// never a stored value. The use is audited (durably) before anything is
// written; it returns the records written.
func (s *Service) WriteVerifyJobResult(ctx context.Context, c Caller, id int64, w io.Writer) (int64, error) {
	j, err := s.loadVerifyJob(ctx, id)
	switch {
	case err == nil && policy.Allowed(c.Actor, policy.DataUse, policy.Target{DeptID: j.ConsumerDeptID}):
	case err == nil && seesAllJobs(c.Actor):
		err = apperr.ErrDenied // they see the job, not the result
	case err == nil:
		err = apperr.ErrNotFound
	}
	if err == nil {
		switch {
		case j.State == JobFailed:
			err = ErrVerifyJobFailed
		case j.State != JobDone:
			err = ErrVerifyJobNotDone
		case j.ResultUntil.IsZero():
			err = ErrVerifyJobPurged
		}
	}
	if err != nil {
		if _, ok := apperr.As(err); ok {
			s.denyJob(ctx, c, "data.verify_result", id, err)
		}
		return 0, err
	}
	e := audit.By(c.Actor, "data.verify_result", "resource", j.Resource, audit.ResultOK, map[string]any{"job": j.ID, "records": j.Total})
	if e.Purpose = c.Purpose; e.Purpose == "" {
		e.Purpose = j.Purpose
	}
	if err := s.audit.Append(ctx, e); err != nil {
		return 0, fmt.Errorf("audit data.verify_result: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(strings.Join(resultHeader(j), ",") + "\n"); err != nil {
		return 0, err
	}
	var seqs []int64
	rows, err := s.db.Query(ctx, "SELECT seq FROM verify_job_chunks WHERE job_id = ? ORDER BY seq", id)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var q int64
		if err := rows.Scan(&q); err != nil {
			rows.Close()
			return 0, err
		}
		seqs = append(seqs, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var n int64
	for _, q := range seqs {
		var records int64
		var b []byte
		if err := s.db.QueryRow(ctx, "SELECT records, result FROM verify_job_chunks WHERE job_id = ? AND seq = ?", id, q).Scan(&records, &b); err != nil {
			return n, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return n, fmt.Errorf("verify job %d chunk %d: %w", id, q, err)
		}
		if _, err := io.Copy(bw, zr); err != nil {
			return n, err
		}
		n += records
	}
	return n, bw.Flush()
}

// ----- the worker -----

// StartVerifyJobs runs this server's comparison worker until ctx ends:
// it claims queued jobs (and jobs whose server stopped renewing their
// lease), compares them in passes of many chunks whose records are
// looked up in key order, answers each chunk with the job's progress in
// one transaction, and finishes each job with its counts and a durable
// audit event. It also removes
// uploads that died and results past VerifyJobKeep. The channel closes
// when the worker has stopped.
func (s *Service) StartVerifyJobs(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(verifyPoll)
		defer t.Stop()
		var swept time.Time
		for {
			if time.Since(swept) > time.Minute {
				if err := s.sweepVerifyJobs(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("comparison jobs: cleaning up failed; will retry", "err", err)
				}
				swept = time.Now()
			}
			for ctx.Err() == nil {
				ran, err := s.nextVerifyJob(ctx)
				if err != nil && ctx.Err() == nil {
					s.log.Warn("comparison jobs: a run failed; will retry", "err", err)
				}
				if !ran || err != nil {
					break
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return done
}

// nextVerifyJob claims and runs one job that is due, if there is one.
func (s *Service) nextVerifyJob(ctx context.Context) (bool, error) {
	now := s.now()
	rows, err := s.db.Query(ctx, "SELECT id FROM verify_jobs WHERE state = ? OR (state = ? AND lease_until < ?) ORDER BY id LIMIT 10",
		JobQueued, JobRunning, now)
	if err != nil {
		return false, err
	}
	var due []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return false, err
		}
		due = append(due, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	for _, id := range due {
		token := newToken()
		// The UPDATE repeats the conditions: of servers racing for a job
		// exactly one wins.
		res, err := s.db.Exec(ctx, `UPDATE verify_jobs SET state = ?, worker = ?, lease_until = ?, attempts = attempts + 1,
			started_at = COALESCE(started_at, ?) WHERE id = ? AND (state = ? OR (state = ? AND lease_until < ?))`,
			JobRunning, token, now.Add(verifyLease), now, id, JobQueued, JobRunning, now)
		if err != nil {
			return false, err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			continue
		}
		return true, s.runVerifyJob(ctx, id, token)
	}
	return false, nil
}

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// jobRun is a job this server holds the lease on.
type jobRun struct {
	s      *Service
	id     int64
	token  string
	caller Caller
	code   string
	items  []string
	fields []string

	mu sync.Mutex
	u  *use
	cp *comparison
}

// runVerifyJob compares a claimed job's remaining chunks and finishes
// it. A refusal (the grant revoked or expired, an item no longer granted
// or published) fails the job; an error of ours gives the job back to be
// tried again, up to verifyAttempts starts.
func (s *Service) runVerifyJob(ctx context.Context, id int64, token string) error {
	j := &jobRun{s: s, id: id, token: token}
	var items, fields string
	var attempts int64
	err := s.db.QueryRow(ctx, `SELECT resource_code, items, fields, consumer_dept_id, app_id, app_key, user_id, login, purpose, attempts
		FROM verify_jobs WHERE id = ?`, id).Scan(&j.code, &items, &fields, &j.caller.Actor.DeptID, &j.caller.AppID, &j.caller.Actor.App,
		&j.caller.Actor.UserID, &j.caller.Actor.Login, &j.caller.Purpose, &attempts)
	if err != nil {
		return fmt.Errorf("load verify job %d: %w", id, err)
	}
	if err := errors.Join(json.Unmarshal([]byte(items), &j.items), json.Unmarshal([]byte(fields), &j.fields)); err != nil {
		return fmt.Errorf("load verify job %d: %w", id, err)
	}
	if attempts > verifyAttempts {
		return j.fail(ctx, errVerifyJobStopped)
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	defer close(renewed)
	go j.renew(runCtx, cancel, renewed)

	err = j.compareAll(runCtx)
	if errors.Is(err, errLeaseLost) || errors.Is(context.Cause(runCtx), errLeaseLost) {
		return fmt.Errorf("verify job %d: %w", id, errLeaseLost)
	}
	if _, refused := apperr.As(err); refused {
		return j.fail(ctx, err)
	}
	if err != nil {
		// Ours (the database, a shutdown): let the lease lapse, at once on
		// a shutdown so another server goes on, else after a while that
		// grows with each attempt.
		retry := s.now()
		if ctx.Err() == nil {
			retry = retry.Add(time.Duration(attempts) * 10 * time.Second)
		}
		_, _ = s.db.Exec(context.WithoutCancel(ctx), "UPDATE verify_jobs SET lease_until = ? WHERE id = ? AND worker = ? AND state = ?",
			retry, id, token, JobRunning)
		return fmt.Errorf("verify job %d (attempt %d): %w", id, attempts, err)
	}
	return j.finish(ctx)
}

// renew keeps the lease while the job runs; when another server has
// taken the job, it stops the run.
func (j *jobRun) renew(ctx context.Context, cancel context.CancelCauseFunc, stop <-chan struct{}) {
	t := time.NewTicker(verifyLease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			res, err := j.s.db.Exec(ctx, "UPDATE verify_jobs SET lease_until = ? WHERE id = ? AND worker = ? AND state = ?",
				j.s.now().Add(verifyLease), j.id, j.token, JobRunning)
			if err != nil {
				continue // the next tick tries again; the chunks renew it too
			}
			if n, _ := res.RowsAffected(); n != 1 {
				cancel(errLeaseLost)
				return
			}
		}
	}
}

// plan is the job's use and comparison under the grant that allows it
// now: asked for every chunk, so a grant revoked while the job runs
// stops it.
func (j *jobRun) plan(ctx context.Context) (*use, *comparison, error) {
	s := j.s
	p, err := s.grants.Permit(ctx, share.Use{DeptID: j.caller.Actor.DeptID, AppID: j.caller.AppID, Resource: j.code, Method: catalog.MethodVerify})
	if errors.Is(err, share.ErrNoGrant) {
		return nil, nil, notGranted(catalog.MethodVerify)
	}
	if err != nil {
		return nil, nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.u != nil && j.u.permit.GrantID == p.GrantID {
		return j.u, j.cp, nil
	}
	r, err := s.res.ByCode(ctx, j.code)
	if errors.Is(err, resource.ErrNotMounted) || errors.Is(err, apperr.ErrNotFound) {
		return nil, nil, resource.ErrNotMounted
	}
	if err != nil {
		return nil, nil, err
	}
	u := &use{caller: j.caller, method: catalog.MethodVerify, r: r, permit: p, started: time.Now()}
	cp, err := s.prepareVerify(u, j.items)
	if err != nil {
		return nil, nil, err
	}
	for i, c := range append(slices.Clone(cp.keys), cp.items...) {
		if _, ok := u.granted(c.MachineName); !ok {
			return nil, nil, itemRefused(c.MachineName, catalog.MethodVerify, "items")
		}
		if i >= len(j.fields) || j.fields[i] != c.MachineName {
			return nil, nil, ErrVerifyItems.With("资源的信息项在任务创建后发生了变化，请重新提交", "the resource's items changed after the job was created; submit it again")
		}
	}
	j.u, j.cp = u, cp
	return u, cp, nil
}

// parallel is how many statements of a pass look records up at once:
// PostgreSQL in several backends; SQLite beside its one writer.
func (s *Service) parallel() int {
	if s.db.Dialect() == store.Postgres {
		return min(4, runtime.GOMAXPROCS(0)+1)
	}
	return 2
}

// compareAll compares the chunks not yet answered, a pass at a time:
// while one pass is compared, the next one is read and the answers of
// the one before are recorded.
func (j *jobRun) compareAll(ctx context.Context) error {
	_, cp, err := j.plan(ctx)
	if err != nil {
		return err
	}
	nk := len(cp.keys)
	var seqs []int64
	rows, err := j.s.db.Query(ctx, "SELECT seq FROM verify_job_chunks WHERE job_id = ? AND result IS NULL ORDER BY seq", j.id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var q int64
		if err := rows.Scan(&q); err != nil {
			rows.Close()
			return err
		}
		seqs = append(seqs, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	passes := make(chan *pass, 1)
	go func() {
		defer close(passes)
		for lo := 0; lo < len(seqs); lo += verifyPass {
			p, err := j.readPass(ctx, seqs[lo:min(lo+verifyPass, len(seqs))], nk)
			if err != nil {
				cancel(err)
				return
			}
			select {
			case passes <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	var answering chan error
	answered := func() error {
		if answering == nil {
			return nil
		}
		err := <-answering
		answering = nil
		return err
	}
	for p := range passes {
		u, cp, err := j.plan(ctx)
		var a *answers
		if err == nil {
			a, err = j.s.compareProbes(ctx, u, cp, p.probes, j.s.keysPerStatement(u.r), j.s.parallel())
		}
		p.probes = nil // the answers are all that is needed now
		if aerr := answered(); err == nil {
			err = aerr
		}
		if err != nil {
			cancel(err)
			break
		}
		answering = make(chan error, 1)
		go func() { answering <- j.answerPass(ctx, p, a) }()
	}
	if err := answered(); err != nil {
		cancel(err)
	}
	for range passes { // let the reader finish
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// pass is chunks compared together.
type pass struct {
	chunks []passChunk
	probes *probeSet
}

// passChunk is a chunk of a pass: its probes are from to to.
type passChunk struct {
	seq, first int64
	from, to   int
}

// readPass reads the records of some chunks, whose first nk values
// are the key.
func (j *jobRun) readPass(ctx context.Context, seqs []int64, nk int) (*pass, error) {
	s := j.s
	p := &pass{chunks: make([]passChunk, 0, len(seqs)), probes: newProbeSet(nk, len(j.fields)-nk, len(seqs)*verifyChunk)}
	for _, q := range seqs {
		var first int64
		var input []byte
		if err := s.db.QueryRow(ctx, "SELECT first_index, input FROM verify_job_chunks WHERE job_id = ? AND seq = ?", j.id, q).
			Scan(&first, &input); err != nil {
			return nil, err
		}
		from := p.probes.len()
		if err := readProbes(input, p.probes); err != nil {
			return nil, fmt.Errorf("chunk %d: %w", q, err)
		}
		p.chunks = append(p.chunks, passChunk{seq: q, first: first, from: from, to: p.probes.len()})
	}
	return p, nil
}

// answerPass records the answers of a pass's chunks.
func (j *jobRun) answerPass(ctx context.Context, p *pass, a *answers) error {
	for _, c := range p.chunks {
		if err := j.answerChunk(ctx, c, a); err != nil {
			return err
		}
	}
	return nil
}

// answerChunk writes a chunk's answers as CSV rows and records them with
// the job's progress, in one transaction, while the job is this
// server's and its grant still allows it.
func (j *jobRun) answerChunk(ctx context.Context, c passChunk, a *answers) error {
	s := j.s
	if _, _, err := j.plan(ctx); err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	line := make([]byte, 0, 64)
	var matched, mismatched, notFound int64
	for i := c.from; i < c.to; i++ {
		res := a.result(i)
		line = append(strconv.AppendInt(line[:0], c.first+int64(i-c.from), 10), ',')
		line = append(line, res...)
		for k := range a.items {
			switch {
			case res == NotFound:
				line = append(line, ',')
			case a.match[i*a.items+k]:
				line = append(line, ","+Match...)
			default:
				line = append(line, ","+Mismatch...)
			}
		}
		line = append(line, '\n')
		if _, err := zw.Write(line); err != nil {
			return err
		}
		switch res {
		case Match:
			matched++
		case Mismatch:
			mismatched++
		default:
			notFound++
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE verify_jobs SET done = done + ?, matched = matched + ?, mismatched = mismatched + ?, not_found = not_found + ?,
			lease_until = ? WHERE id = ? AND worker = ? AND state = ?`, c.to-c.from, matched, mismatched, notFound, s.now().Add(verifyLease), j.id, j.token, JobRunning)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errLeaseLost
		}
		_, err = tx.Exec(ctx, "UPDATE verify_job_chunks SET result = ?, input = NULL WHERE job_id = ? AND seq = ?", buf.Bytes(), j.id, c.seq)
		return err
	})
}

// finish marks the job done after its audit event, with its counts, is
// durable.
func (j *jobRun) finish(ctx context.Context) error {
	s := j.s
	var total, done, matched, mismatched, notFound int64
	if err := s.db.QueryRow(ctx, "SELECT total, done, matched, mismatched, not_found FROM verify_jobs WHERE id = ?", j.id).
		Scan(&total, &done, &matched, &mismatched, &notFound); err != nil {
		return err
	}
	if done != total {
		return fmt.Errorf("verify job %d: %d of %d records compared", j.id, done, total)
	}
	u, _, err := j.plan(ctx)
	if err != nil {
		return j.fail(ctx, err)
	}
	if err := s.record(ctx, u, "data.verify_job_done", map[string]any{"job": j.id, "items": j.items, "records": total,
		"matched": matched, "mismatched": mismatched, "not_found": notFound}); err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, "UPDATE verify_jobs SET state = ?, finished_at = ?, worker = '', lease_until = NULL WHERE id = ? AND worker = ? AND state = ?",
		JobDone, s.now(), j.id, j.token, JobRunning)
	return err
}

// fail ends the job with err, deletes its records and answers and
// audits the end: denied when a refusal stopped it.
func (j *jobRun) fail(ctx context.Context, cause error) error {
	s := j.s
	ctx = context.WithoutCancel(ctx)
	ae, ok := apperr.As(cause)
	if !ok {
		ae = errVerifyJobStopped
	}
	var done int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, "UPDATE verify_jobs SET state = ?, error_code = ?, error = ?, finished_at = ?, worker = '', lease_until = NULL WHERE id = ? AND worker = ? AND state = ?",
			JobFailed, ae.Code, ae.ZH+" / "+ae.EN, s.now(), j.id, j.token, JobRunning)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errLeaseLost
		}
		if err := tx.QueryRow(ctx, "SELECT done FROM verify_jobs WHERE id = ?", j.id).Scan(&done); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM verify_job_chunks WHERE job_id = ?", j.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("fail verify job %d: %w", j.id, err)
	}
	result := audit.ResultError
	if ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound {
		result = audit.ResultDenied
	}
	e := audit.By(j.caller.Actor, "data.verify_job_done", "resource", j.code, result, map[string]any{"job": j.id, "reason": ae.Code, "compared": done})
	e.Purpose = j.caller.Purpose
	if err := s.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("audit failed verify job %d: %w", j.id, err)
	}
	s.log.Info("comparison job failed", "job", j.id, "resource", j.code, "reason", ae.Code)
	return nil
}

// dropVerifyJob removes a job that was never queued and its chunks.
func (s *Service) dropVerifyJob(ctx context.Context, id int64) {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM verify_job_chunks WHERE job_id = ?", id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM verify_jobs WHERE id = ? AND state = ?", id, jobUploading)
		return err
	})
	if err != nil {
		s.log.Warn("comparison jobs: removing a refused upload failed; it is removed later", "job", id, "err", err)
	}
}

// sweepVerifyJobs removes uploads whose server stopped while receiving
// them, and the records and answers of jobs finished more than
// VerifyJobKeep ago.
func (s *Service) sweepVerifyJobs(ctx context.Context) error {
	now := s.now()
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM verify_job_chunks WHERE job_id IN (SELECT id FROM verify_jobs WHERE state = ? AND lease_until < ?)
			OR job_id IN (SELECT id FROM verify_jobs WHERE state = ? AND purged_at IS NULL AND finished_at < ?)`,
			jobUploading, now, JobDone, now.Add(-VerifyJobKeep)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM verify_jobs WHERE state = ? AND lease_until < ?", jobUploading, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE verify_jobs SET purged_at = ? WHERE state = ? AND purged_at IS NULL AND finished_at < ?",
			now, JobDone, now.Add(-VerifyJobKeep))
		return err
	})
}
