package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"govshare/internal/quality"
)

// Rows are read, checked and encoded by a few goroutines beside the
// writer. One reads them, in lots of stageChunk rows: a Rows is read by
// one goroutine at a time. Checkers, one per processor, run the quality
// checks on lots side by side. One takes the checked lots in the order
// they were read — which row came first decides repeats — marks the rows
// the repeat filter has probably seen before, counts and reports them and
// encodes them into chunks for the writer. A few lots are in flight at
// most, so memory stays bounded whatever the size of the batch.

// lot is rows on their way from the reader to the chunks.
type lot struct {
	n     int
	raw   []string   // n rows of the visible columns' values as received
	op    []string   // the rows' _op cells
	canon [][]string // the rows' canonical values, in canonBuf
	viol  [][]quality.Violation
	// canonBuf holds the canonical values of the lot's rows, a row's
	// after another's.
	canonBuf []string
	// JSON of the values and violations of the rows that failed.
	badRaw, badViol []string
	// The good rows' hashes for the repeat filter, a row's after
	// another's; when loading, the upserts encoded for the table (on
	// PostgreSQL bytes up to loadEnd[r], on SQLite len(cols) values a
	// row), or why they could not be.
	hashes   []uint64
	load     []byte
	loadEnd  []int
	loadArgs []any
	loadErr  []error
	err      error // reading failed after the n rows
	checked  chan struct{}
}

// opViolation is an _op cell that is neither upsert nor delete.
var opViolation = quality.Violation{Item: "_op", Rule: "op", ZH: "操作应为 upsert 或 delete", EN: "the operation is upsert or delete"}

// read is the reading side of stageRows: it returns once every goroutine
// it started is done with the rows.
func (st *stage) read(ctx context.Context, h header, chk *quality.Checker, opt SubmitOptions, rows Rows, rc *readCounts, full, free chan *chunk) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	width := len(st.cols)
	checkers := max(1, runtime.GOMAXPROCS(0))
	// Lots are made as they are needed, and grow with their rows: a
	// batch of ten rows costs one small lot.
	lots := make(chan *lot, 2*checkers+2)
	made := 0
	todo := make(chan *lot, cap(lots))
	ordered := make(chan *lot, cap(lots))
	var failed error
	var once sync.Once
	fail := func(err error) {
		once.Do(func() { failed = err })
		cancel()
	}
	// A panic in any of them would take the whole server down, not just
	// the request: it becomes the batch's error.
	guard := func(what string) {
		if p := recover(); p != nil {
			fail(fmt.Errorf("%s: panic: %v", what, p))
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ordered)
		defer close(todo)
		defer guard("read rows")
		var read int64
		for {
			var l *lot
			select {
			case l = <-lots:
			default:
				if made < cap(lots) {
					made++
					l = &lot{checked: make(chan struct{}, 1)}
					break
				}
				select {
				case l = <-lots:
				case <-ctx.Done():
					return
				}
			}
			eof := l.fill(h, rows, width)
			read += int64(l.n)
			if opt.Progress != nil {
				opt.Progress(read)
			}
			todo <- l // room for every lot
			select {
			case ordered <- l:
			case <-ctx.Done():
				return
			}
			if eof || l.err != nil {
				return
			}
		}
	})
	for range checkers {
		wg.Go(func() {
			defer guard("check rows")
			for l := range todo {
				st.check(l, chk)
				l.checked <- struct{}{}
			}
		})
	}
	err := st.sequence(ctx, ordered, lots, rc, opt, full, free)
	if err != nil {
		fail(err)
	}
	cancel()
	wg.Wait()
	if failed != nil && !errors.Is(failed, context.Canceled) || err != nil {
		return failed
	}
	return nil
}

// fill reads up to stageChunk rows into l and reports whether the rows
// ended.
func (l *lot) fill(h header, rows Rows, width int) bool {
	l.n, l.err, l.raw, l.op = 0, nil, l.raw[:0], l.op[:0]
	for l.n < stageChunk {
		in, err := rows.Next()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			l.err = err
			return false
		}
		for _, p := range h.pos {
			v := ""
			if p >= 0 && p < len(in) {
				v = in[p]
			}
			l.raw = append(l.raw, v)
		}
		op := ""
		if h.op >= 0 && h.op < len(in) {
			op = in[h.op]
		}
		l.op = append(l.op, op)
		l.n++
	}
	return false
}

// check runs the quality checks on a lot's rows, hashes the good ones for
// the repeat filter and, when loading, encodes the upserts for the table,
// as most will go there.
func (st *stage) check(l *lot, chk *quality.Checker) {
	cols, width := st.cols, len(st.cols)
	l.hashes, l.load, l.loadArgs = l.hashes[:0], l.load[:0], l.loadArgs[:0]
	if cap(l.canon) < l.n {
		l.canon, l.viol = make([][]string, l.n), make([][]quality.Violation, l.n)
		l.badRaw, l.badViol = make([]string, l.n), make([]string, l.n)
		l.loadEnd, l.loadErr = make([]int, l.n), make([]error, l.n)
	}
	l.canon, l.viol, l.badRaw, l.badViol = l.canon[:l.n], l.viol[:l.n], l.badRaw[:l.n], l.badViol[:l.n]
	l.loadEnd, l.loadErr = l.loadEnd[:l.n], l.loadErr[:l.n]
	if cap(l.canonBuf) < l.n*width {
		l.canonBuf = make([]string, l.n*width)
	}
	// The rows of a lot are checked as of one moment.
	at := quality.At(time.Now())
	for r := range l.n {
		raw := l.raw[r*width : (r+1)*width]
		var viol []quality.Violation
		op, ok := opOf(l.op[r])
		if !ok {
			op = "upsert"
			viol = append(viol, opViolation)
		}
		l.op[r] = op
		canon := l.canonBuf[r*width : (r+1)*width : (r+1)*width]
		v := chk.CheckInto(canon, raw, at)
		for _, x := range v {
			// A delete needs only its key.
			if op == "delete" && !slices.ContainsFunc(st.keys, func(i int) bool { return cols[i].MachineName == x.Item }) {
				continue
			}
			viol = append(viol, x)
		}
		for _, i := range st.keys {
			if canon[i] == "" && !slices.ContainsFunc(viol, func(x quality.Violation) bool { return x.Item == cols[i].MachineName }) {
				viol = append(viol, quality.Violation{Item: cols[i].MachineName, Rule: "required", ZH: "主键不能为空", EN: "the key is required"})
			}
		}
		if len(viol) > 0 {
			vals, _ := json.Marshal(raw)
			vs, _ := json.Marshal(viol)
			l.badRaw[r], l.badViol[r] = string(vals), string(vs)
		} else if op == "delete" {
			for i, col := range cols {
				if !col.Key {
					canon[i] = ""
				}
			}
		}
		l.canon[r], l.viol[r] = canon, viol
		if len(viol) == 0 {
			l.hashes = st.watch.hash(l.hashes, canon, op)
		}
		if st.load != nil {
			l.loadErr[r] = nil
			if len(viol) == 0 && op == "upsert" {
				l.load, l.loadArgs, l.loadErr[r] = st.load.encode(l.load, l.loadArgs, st.cols, canon)
			}
			l.loadEnd[r] = len(l.load)
		}
	}
}

// sequence takes the checked lots in order into chunks for the writer.
func (st *stage) sequence(ctx context.Context, ordered, lots chan *lot, rc *readCounts, opt SubmitOptions, full, free chan *chunk) error {
	var c *chunk
	next := func() error {
		select {
		case c = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.n, c.text, c.args, c.load, c.loadArgs = 0, c.text[:0], c.args[:0], c.load[:0], c.loadArgs[:0]
		return nil
	}
	send := func() error {
		select {
		case full <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		return next()
	}
	if err := next(); err != nil {
		return err
	}
	nw := len(st.watch.watches)
	for l := range ordered {
		select {
		case <-l.checked:
		case <-ctx.Done():
			return ctx.Err()
		}
		hashes, loadFrom, args := l.hashes, 0, l.loadArgs
		for r := range l.n {
			rc.total++
			op, canon := l.op[r], l.canon[r]
			var err error
			if viol := l.viol[r]; len(viol) > 0 {
				rc.bad++
				for _, x := range viol {
					rc.rep.add(rc.total, x)
				}
				err = st.encodeBad(c, rc.total, op, l.badRaw[r], l.badViol[r])
			} else {
				if op == "delete" {
					rc.deletes++
				} else {
					rc.upserts++
				}
				// An upsert whose key and unique values the filter has
				// certainly not seen before is the first of them in the
				// batch: when loading, it goes straight into the table.
				maybe := st.watch.mark(hashes[:nw])
				hashes = hashes[nw:]
				switch {
				case st.load == nil || op != "upsert":
					err = st.encodeGood(c, rc.total, op, canon, maybe)
				case maybe != 0:
					args = args[min(len(args), len(st.cols)):]
					err = st.encodeGood(c, rc.total, op, canon, maybe)
				default:
					rc.loaded++
					err = l.loadErr[r]
					c.load = append(c.load, l.load[loadFrom:l.loadEnd[r]]...)
					if len(args) >= len(st.cols) {
						c.loadArgs = append(c.loadArgs, args[:len(st.cols)]...)
						args = args[len(st.cols):]
					}
				}
			}
			if st.load != nil {
				loadFrom = l.loadEnd[r]
			}
			l.canon[r], l.viol[r] = nil, nil
			if err != nil {
				return fmt.Errorf("row %d: %w", rc.total, err)
			}
			c.n++
			if c.n == stageChunk {
				if err := send(); err != nil {
					return err
				}
				if opt.MaxErrors > 0 && rc.bad > int64(opt.MaxErrors) {
					return nil // nothing will be applied: no need to read on
				}
			}
		}
		if l.err != nil {
			return l.err
		}
		lots <- l
	}
	if c.n > 0 {
		return send()
	}
	return nil
}
