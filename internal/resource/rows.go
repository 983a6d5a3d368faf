package resource

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"

	"govshare/internal/apperr"
)

var errEOF = io.EOF

// ErrFormat is a file or body that cannot be read.
var ErrFormat = apperr.Invalid("resource.format_invalid", "file", "无法读取数据：请使用模板的 .xlsx 或 UTF-8 编码的 .csv，或 JSON Lines", "the data cannot be read: use the template's .xlsx, a UTF-8 .csv, or JSON Lines")

// CSVRows reads a CSV stream row by row; the first row is the header.
func CSVRows(r io.Reader) (Rows, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// A UTF-8 byte order mark (Excel writes one) is not part of the header.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br) // reads from br itself, which is large enough
	cr.FieldsPerRecord = -1
	// The pipeline copies the fields out before it asks for the next row.
	cr.ReuseRecord = true
	h, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, ErrEmpty
	} else if err != nil {
		return nil, ErrFormat.With("CSV 表头无法读取："+err.Error(), "the CSV header cannot be read: "+err.Error())
	}
	return &csvRows{br: br, r: cr, header: slices.Clone(h)}, nil
}

type csvRows struct {
	br     *bufio.Reader
	r      *csv.Reader
	header []string
	line   int
	// plain counts the lines read past the csv.Reader (plainRow), which
	// does not know of them, for the line numbers of its errors.
	plain int
	rec   []string
}

func (c *csvRows) Header() []string { return c.header }

func (c *csvRows) Next() ([]string, error) {
	c.line++
	if row := c.plainRow(); row != nil {
		return row, nil
	}
	row, err := c.r.Read()
	if err != nil && !errors.Is(err, io.EOF) {
		if pe, ok := errors.AsType[*csv.ParseError](err); ok {
			pe.StartLine += c.plain
			pe.Line += c.plain
		}
		return nil, ErrFormat.With(fmt.Sprintf("CSV 第%d行无法读取：%v", c.line+1, err), fmt.Sprintf("CSV line %d cannot be read: %v", c.line+1, err)).OnRow(c.line)
	}
	return row, err
}

// plainRow reads the next line if it is plain — whole in the buffer, not
// empty, without quotes or carriage returns — as the csv.Reader would:
// its fields are what lies between the commas. Most lines of a data file
// are plain, and this costs about half of what the csv.Reader spends on
// them. It returns nil, having read nothing, for any other line.
func (c *csvRows) plainRow() []string {
	buf, _ := c.br.Peek(c.br.Buffered())
	n := bytes.IndexByte(buf, '\n')
	if n <= 0 || bytes.IndexByte(buf[:n], '"') >= 0 || bytes.IndexByte(buf[:n], '\r') >= 0 {
		return nil
	}
	line := string(buf[:n])
	_, _ = c.br.Discard(n + 1)
	c.plain++
	c.rec = c.rec[:0]
	for {
		i := strings.IndexByte(line, ',')
		if i < 0 {
			c.rec = append(c.rec, line)
			return c.rec
		}
		c.rec = append(c.rec, line[:i])
		line = line[i+1:]
	}
}

// XLSXRows reads the first sheet of a workbook row by row; its first row
// is the header. Rows are streamed from the sheet, though the workbook's
// zip directory is read first.
func XLSXRows(r io.Reader) (Rows, func() error, error) {
	f, err := excelize.OpenReader(r)
	if err != nil {
		return nil, nil, ErrFormat
	}
	sheet := f.GetSheetName(0)
	it, err := f.Rows(sheet)
	if err != nil {
		f.Close()
		return nil, nil, ErrFormat
	}
	x := &xlsxRows{f: f, it: it}
	if !it.Next() {
		x.Close()
		return nil, nil, ErrEmpty
	}
	if x.header, err = it.Columns(); err != nil {
		x.Close()
		return nil, nil, ErrFormat
	}
	return x, x.Close, nil
}

type xlsxRows struct {
	f      *excelize.File
	it     *excelize.Rows
	header []string
}

func (x *xlsxRows) Header() []string { return x.header }

func (x *xlsxRows) Next() ([]string, error) {
	for x.it.Next() {
		row, err := x.it.Columns()
		if err != nil {
			return nil, ErrFormat
		}
		if strings.TrimSpace(strings.Join(row, "")) == "" {
			continue // empty rows a spreadsheet leaves behind
		}
		return row, nil
	}
	if err := x.it.Error(); err != nil {
		return nil, ErrFormat
	}
	return nil, io.EOF
}

func (x *xlsxRows) Close() error {
	x.it.Close()
	return x.f.Close()
}

// JSONRows reads JSON Lines: one object per line, keyed by machine names,
// with "_op" for deletes. cols fixes the header.
func JSONRows(r io.Reader, cols []Column) Rows {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	h := make([]string, 0, len(cols)+1)
	idx := map[string]int{}
	for i, c := range cols {
		h = append(h, c.MachineName)
		idx[c.MachineName] = i
	}
	h = append(h, "_op")
	idx["_op"] = len(cols)
	return &jsonRows{sc: sc, header: h, idx: idx}
}

type jsonRows struct {
	sc     *bufio.Scanner
	header []string
	idx    map[string]int
	line   int
}

func (j *jsonRows) Header() []string { return j.header }

func (j *jsonRows) Next() ([]string, error) {
	for j.sc.Scan() {
		j.line++
		b := bytes.TrimSpace(j.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // an 18-digit number stays exact
		if err := dec.Decode(&obj); err != nil {
			return nil, ErrFormat.With(fmt.Sprintf("第%d行不是 JSON 对象", j.line), fmt.Sprintf("line %d is not a JSON object", j.line)).OnRow(j.line)
		}
		row := make([]string, len(j.header))
		for k, v := range obj {
			i, ok := j.idx[k]
			if !ok {
				return nil, ErrHeader.With(fmt.Sprintf("第%d行的“%s”不是该资源的信息项", j.line, k), fmt.Sprintf("line %d: %q is not a data item of the resource", j.line, k)).OnRow(j.line)
			}
			switch x := v.(type) {
			case nil:
			case string:
				row[i] = x
			case bool:
				row[i] = strconv.FormatBool(x)
			case json.Number:
				row[i] = x.String()
			default:
				return nil, ErrFormat.With(fmt.Sprintf("第%d行“%s”的值应为文本、数字或布尔值", j.line, k), fmt.Sprintf("line %d: %q must be text, a number or a boolean", j.line, k)).OnRow(j.line)
			}
		}
		return row, nil
	}
	if err := j.sc.Err(); err != nil {
		return nil, ErrFormat
	}
	return nil, io.EOF
}
