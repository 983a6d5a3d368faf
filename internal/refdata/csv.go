package refdata

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
)

// column is a column an import file may have, under its name or one of
// the Chinese headings administrators use.
type column struct {
	name     string
	aliases  []string
	required bool
}

// table is a parsed CSV file: the data rows with their line numbers (the
// header is line 1) and where each known column is.
type table struct {
	index map[string]int
	rows  [][]string
	lines []int
}

func (t *table) get(row []string, name string) string {
	i, ok := t.index[name]
	if !ok || i >= len(row) {
		return ""
	}
	return strings.TrimSpace(row[i])
}

// readCSV reads a UTF-8 CSV file (a byte order mark, as spreadsheet
// programs write, is skipped) whose first row names the columns.
func readCSV(r io.Reader, columns []column) (*table, error) {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, ErrEmpty
	}
	if err != nil {
		return nil, csvError(err)
	}
	t := &table{index: map[string]int{}}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		for _, c := range columns {
			if h == c.name || containsString(c.aliases, h) {
				if _, twice := t.index[c.name]; twice {
					return nil, headerError(columns)
				}
				t.index[c.name] = i
			}
		}
	}
	for _, c := range columns {
		if _, ok := t.index[c.name]; c.required && !ok {
			return nil, headerError(columns)
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		if strings.TrimSpace(strings.Join(rec, "")) == "" {
			continue // blank lines, often at the end
		}
		if len(t.rows) == maxRows {
			return nil, ErrTooManyRows
		}
		t.rows = append(t.rows, rec)
		t.lines = append(t.lines, line)
	}
	if len(t.rows) == 0 {
		return nil, ErrEmpty
	}
	return t, nil
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func headerError(columns []column) error {
	var names []string
	for _, c := range columns {
		names = append(names, c.name)
	}
	e := *ErrHeader
	e.Row = 1
	e.ZH = "首行应为列名：" + strings.Join(names, ",")
	e.EN = "the first row names the columns: " + strings.Join(names, ",")
	return &e
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return rowError(ErrCSV, pe.Line, "file")
	}
	return ErrCSV
}
