package source

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// A CSV folder is a source with one table per .csv file: the header row
// names the columns, the file is UTF-8 (a byte-order mark is skipped), and
// an empty field reads as NULL — a CSV file cannot tell it from "". Column
// types are inferred from the values (Columns reads the whole file once
// and remembers the answer until the file changes). A file declares no
// key: queries name theirs. Rows come out in key order by an external
// merge sort (see sortRows), so a file of millions of rows is never held
// in memory. There is no database clock, so SinceTime is unsupported.
type csvEngine struct {
	dir string
	// runBytes bounds the values one sorted run holds in memory.
	runBytes int
	tmp      string // folder for sorted runs; "" is os.TempDir()

	mu    sync.Mutex
	infer map[string]inferred // by file path
}

type inferred struct {
	size int64
	mod  time.Time
	cols []Column
}

const defaultRunBytes = 64 << 20

func openCSVDir(dsn string) (engine, error) {
	dir := strings.TrimPrefix(dsn, "file://")
	if dir == "" {
		return nil, errors.New("no folder given")
	}
	return &csvEngine{dir: dir, runBytes: defaultRunBytes, infer: map[string]inferred{}}, nil
}

func (e *csvEngine) close() error             { return nil }
func (e *csvEngine) precision() time.Duration { return time.Microsecond }

// now is the node's clock: a folder has none of its own.
func (e *csvEngine) now(context.Context) (time.Time, error) { return time.Now().UTC(), nil }

func (e *csvEngine) test(context.Context) error {
	st, err := os.Stat(e.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("open csv folder %s: %w", e.dir, &ConnError{Kind: ErrNotFound, ZH: "文件夹不存在，请检查路径", EN: "the folder does not exist: check the path", Err: err})
	case err != nil:
		return fmt.Errorf("open csv folder %s: %w", e.dir, &ConnError{Kind: ErrAccessDenied, ZH: "无法访问该文件夹，请检查前置机的读取权限", EN: "cannot open the folder: check that the node may read it", Err: err})
	case !st.IsDir():
		return fmt.Errorf("open csv folder %s: %w", e.dir, &ConnError{Kind: ErrNotFound, ZH: "该路径是文件，不是文件夹", EN: "the path is a file, not a folder", Err: fs.ErrInvalid})
	}
	if _, err := os.ReadDir(e.dir); err != nil {
		return fmt.Errorf("open csv folder %s: %w", e.dir, &ConnError{Kind: ErrAccessDenied, ZH: "无法读取该文件夹，请检查前置机的读取权限", EN: "cannot list the folder: check that the node may read it", Err: err})
	}
	return nil
}

func (e *csvEngine) tables(context.Context) ([]Table, error) {
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		return nil, fmt.Errorf("list csv folder %s: %w", e.dir, err)
	}
	var ts []Table
	for _, d := range ents {
		if ext := filepath.Ext(d.Name()); !d.IsDir() && strings.EqualFold(ext, ".csv") {
			ts = append(ts, Table{Name: strings.TrimSuffix(d.Name(), ext)})
		}
	}
	return ts, nil
}

// path finds a table's file, refusing names that leave the folder.
func (e *csvEngine) path(t Table) (string, error) {
	if t.Schema != "" || t.Name == "" || t.Name != filepath.Base(t.Name) || strings.ContainsAny(t.Name, `/\`) || t.Name == ".." {
		return "", fmt.Errorf("%w: %q is not a file of the folder", ErrBadQuery, t)
	}
	for _, ext := range []string{".csv", ".CSV", ".Csv"} {
		p := filepath.Join(e.dir, t.Name+ext)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("table %s: %w: no file %s.csv in %s", t, ErrNotFound, t.Name, e.dir)
}

func (e *csvEngine) describe(ctx context.Context, q Query) ([]Column, error) {
	if q.SQL != "" {
		return nil, fmt.Errorf("%w: a CSV folder takes no SQL; name a file as the table", ErrUnsupported)
	}
	return e.columns(ctx, q.Table)
}

func (e *csvEngine) window(context.Context, *plan, int, time.Time, time.Time, func(Row) error) error {
	return fmt.Errorf("%w: a CSV folder has no database clock to cut update-time windows by; use Full, with Keys to find deletes, or SinceKey on a growing key", ErrUnsupported)
}

// csvFile reads one file: header, then records, checking UTF-8.
type csvFile struct {
	f      *os.File
	r      *csv.Reader
	name   string
	header []string
}

func (e *csvEngine) openFile(t Table) (*csvFile, error) {
	p, err := e.path(t)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	if b, err := br.Peek(3); err == nil && string(b) == "\xEF\xBB\xBF" {
		br.Discard(3) //nolint:errcheck // peeked
	}
	r := csv.NewReader(br)
	r.ReuseRecord = true
	cf := &csvFile{f: f, r: r, name: filepath.Base(p)}
	h, err := cf.next()
	if err != nil {
		f.Close()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: empty file: the first row must name the columns", cf.name)
		}
		return nil, err
	}
	seen := map[string]bool{}
	for i, name := range h {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			f.Close()
			return nil, fmt.Errorf("%s: column %d has no name in the header row", cf.name, i+1)
		case seen[name]:
			f.Close()
			return nil, fmt.Errorf("%s: column %q appears twice in the header row", cf.name, name)
		}
		seen[name] = true
		cf.header = append(cf.header, name)
	}
	return cf, nil
}

func (cf *csvFile) next() ([]string, error) {
	rec, err := cf.r.Read()
	if err != nil {
		if err == io.EOF {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", cf.name, err)
	}
	for _, v := range rec {
		if !utf8.ValidString(v) {
			line, _ := cf.r.FieldPos(0)
			return nil, fmt.Errorf("%s line %d: not UTF-8: save the file as UTF-8 (GBK is not read)", cf.name, line)
		}
	}
	return rec, nil
}

func (cf *csvFile) close() { cf.f.Close() }

func (e *csvEngine) columns(ctx context.Context, t Table) ([]Column, error) {
	p, err := e.path(t)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	got, ok := e.infer[p]
	e.mu.Unlock()
	if ok && got.size == st.Size() && got.mod.Equal(st.ModTime()) {
		return slices.Clone(got.cols), nil
	}
	cf, err := e.openFile(t)
	if err != nil {
		return nil, err
	}
	defer cf.close()
	guesses := make([]guess, len(cf.header))
	for i := range guesses {
		guesses[i] = guess{intOK: true, decOK: true, dateOK: true, timeOK: true, boolOK: true}
	}
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rec, err := cf.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		for i, v := range rec {
			guesses[i].see(v)
		}
	}
	cols := make([]Column, len(cf.header))
	for i, name := range cf.header {
		cols[i] = guesses[i].column(name)
	}
	e.mu.Lock()
	e.infer[p] = inferred{size: st.Size(), mod: st.ModTime(), cols: cols}
	e.mu.Unlock()
	return slices.Clone(cols), nil
}

// guess infers a CSV column's type from every value: the narrowest type
// all non-empty values fit. Integers and decimals with leading zeros are
// codes, kept as text.
type guess struct {
	seen, null                           bool
	intOK, decOK, dateOK, timeOK, boolOK bool
	maxRunes, maxFrac, maxIntDigit       int
}

func (g *guess) see(v string) {
	if v == "" {
		g.null = true
		return
	}
	g.seen = true
	g.maxRunes = max(g.maxRunes, utf8.RuneCountInString(v))
	if g.intOK || g.decOK {
		ok := isDecimal(v) && v[0] != '+' && !leadingZero(v)
		intPart, frac, hasDot := strings.Cut(strings.TrimPrefix(v, "-"), ".")
		g.intOK = g.intOK && ok && !hasDot && len(intPart) <= 18
		g.decOK = g.decOK && ok
		if ok {
			g.maxIntDigit = max(g.maxIntDigit, len(intPart))
			g.maxFrac = max(g.maxFrac, len(frac))
		}
	}
	if g.dateOK {
		_, ok := parseDateTime(v, sourceZone)
		g.dateOK = ok && len(v) == 10
	}
	if g.timeOK {
		_, ok := parseDateTime(v, sourceZone)
		g.timeOK = ok && len(v) > 10
	}
	if g.boolOK {
		g.boolOK = v == "true" || v == "false"
	}
}

func leadingZero(v string) bool {
	v = strings.TrimPrefix(v, "-")
	return len(v) > 1 && v[0] == '0' && v[1] != '.'
}

func (g *guess) column(name string) Column {
	ti := typeInfo{kind: kText, dataType: "C", length: max(g.maxRunes, 1)}
	switch {
	case !g.seen:
	case g.boolOK:
		ti = typeInfo{kind: kBool, dataType: "L", length: 1}
	case g.intOK:
		ti = typeInfo{kind: kInt, dataType: "I", length: g.maxIntDigit + 1}
	case g.decOK:
		ti = typeInfo{kind: kDecimal, dataType: "N", length: g.maxIntDigit + g.maxFrac, scale: g.maxFrac}
	case g.dateOK:
		ti = typeInfo{kind: kDate, dataType: "D", length: 10}
	case g.timeOK:
		ti = typeInfo{kind: kDateTime, dataType: "T", length: 19}
	case g.maxRunes > 4000:
		ti = typeInfo{kind: kText, dataType: "M", length: min(g.maxRunes, maxLength)}
	}
	return ti.column(name, "text", g.null || !g.seen)
}

// scan reads the file, keeps the rows in r and streams them in key order.
func (e *csvEngine) scan(ctx context.Context, p *plan, r KeyRange, each func(Row) error) error {
	cf, err := e.openFile(p.q.Table)
	if err != nil {
		return err
	}
	defer cf.close()
	at := make([]int, len(p.cols))
	for i, c := range p.cols {
		at[i] = slices.Index(cf.header, c.Name)
		if at[i] < 0 {
			return fmt.Errorf("%s: %w: no column %q (the file changed?)", cf.name, ErrBadQuery, c.Name)
		}
	}
	var buf []byte
	n := 0
	read := func() (Row, error) {
		for {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rec, err := cf.next()
			if err != nil {
				return nil, err
			}
			row := make(Row, len(p.cols))
			buf = buf[:0]
			ends := make([]int, len(p.cols)) // offsets into buf, -1 for NULL
			for i, j := range at {
				if rec[j] == "" {
					ends[i] = -1
					continue
				}
				var null bool
				if buf, null = appendCanonical(buf, p.cols[i].kind, rec[j]); null {
					ends[i] = -1
				} else {
					ends[i] = len(buf)
				}
			}
			s, start := string(buf), 0
			for i, end := range ends {
				if end < 0 {
					row[i].Null = true
					continue
				}
				row[i].Text = s[start:end]
				start = end
			}
			if inRange(p, row, r) {
				return row, nil
			}
		}
	}
	return sortRows(ctx, p, read, e.runBytes, e.tmp, each)
}

// inRange says whether row's key lies in r.
func inRange(p *plan, row Row, r KeyRange) bool {
	if r.After == nil && r.Through == nil {
		return true
	}
	k, err := p.keyOf(row)
	if err != nil {
		return true // ordered reports it
	}
	return (r.After == nil || p.order.Compare(k, r.After) > 0) && (r.Through == nil || p.order.Compare(k, r.Through) <= 0)
}
