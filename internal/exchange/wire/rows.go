package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"govshare/internal/jsontext"
	"slices"
	"unicode/utf8"
)

// decodeWithRows reads the JSON object raw into v as json.Unmarshal does,
// except its member "rows" (an array of arrays of strings or nulls, the
// bulk of a batch or a delivery), which it reads into *rows itself, in
// the same pass that finds it: encoding/json takes three times the CPU
// for it, through reflection and an allocation per value. A row's values
// share one string. With rows nil, the rows are checked as they would be
// read, and dropped. Anything unusual in the rows (an escape, bytes that
// are not UTF-8) is read by encoding/json, value by value, so the result
// is the same.
func decodeWithRows(raw []byte, v any, rows *[][]*string) error {
	start, end, got, ok, err := rowsMember(raw, rows != nil)
	if !ok {
		return json.Unmarshal(raw, v)
	}
	if err != nil {
		return err
	}
	rest := make([]byte, 0, len(raw)-(end-start)+4)
	rest = append(append(append(rest, raw[:start]...), "null"...), raw[end:]...)
	if err := json.Unmarshal(rest, v); err != nil {
		return err
	}
	if rows != nil {
		*rows = got
	}
	return nil
}

var errRows = errors.New("exchange message: invalid rows")

// rowsMember finds the value of the top-level member "rows" of the JSON
// object raw and reads it (parseRows); ok is false when there is none,
// when another member might be read into the rows as well (a second
// "rows", another case, an escaped name), or when raw is not an object
// this scan understands: json.Unmarshal then reads all of it, and says
// what is wrong. Rows that cannot be read are an error (encoding/json
// would not read them either).
func rowsMember(raw []byte, keep bool) (start, end int, rows [][]*string, ok bool, err error) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return 0, 0, nil, false, nil
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return 0, 0, nil, false, nil
	}
	found := false
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return 0, 0, nil, false, nil
		}
		keyEnd, ok := skipString(raw, i)
		if !ok {
			return 0, 0, nil, false, nil
		}
		key := raw[i+1 : keyEnd-1]
		i = skipSpace(raw, keyEnd)
		if i >= len(raw) || raw[i] != ':' {
			return 0, 0, nil, false, nil
		}
		i = skipSpace(raw, i+1)
		var valEnd int
		switch {
		case bytes.IndexByte(key, '\\') >= 0 || bytes.EqualFold(key, []byte("rows")) && (found || string(key) != "rows"):
			return 0, 0, nil, false, nil
		case string(key) == "rows":
			if rows, valEnd, err = parseRows(raw, i, keep); err != nil {
				return 0, 0, nil, true, err
			}
			start, end, found = i, valEnd, true
		default:
			if valEnd, ok = skipValue(raw, i); !ok {
				return 0, 0, nil, false, nil
			}
		}
		i = skipSpace(raw, valEnd)
		if i < len(raw) && raw[i] == '}' {
			return start, end, rows, found, nil
		}
		if i >= len(raw) || raw[i] != ',' {
			return 0, 0, nil, false, nil
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string starting at b[i] ('"').
func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		for i < len(b) && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the end of the value starting at b[i]: strings and
// nesting are followed, scalars run to the next delimiter (json.Unmarshal
// checks them).
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '[', '{':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = end - 1
			case '[', '{':
				depth++
			case ']', '}':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}
		return 0, false
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, true
		}
	}
	return i, true
}

// parseRows reads [[string|null, …]|null, …] or null at b[i], and
// returns where it ends; keep false only checks it.
func parseRows(b []byte, i int, keep bool) (out [][]*string, end int, err error) {
	if i+4 <= len(b) && string(b[i:i+4]) == "null" {
		return nil, i + 4, nil
	}
	if i >= len(b) || b[i] != '[' {
		return nil, 0, errRows
	}
	var (
		buf  []byte // the row's values, one after the other
		ends []int  // where each value ends in buf; -1: null
		sl   slabs
	)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return [][]*string{}, i + 1, nil
	}
	for {
		null := i+4 <= len(b) && string(b[i:i+4]) == "null"
		if !null && (i >= len(b) || b[i] != '[') {
			return nil, 0, errRows
		}
		buf, ends = buf[:0], ends[:0]
		if null {
			i += 4
		} else if i = skipSpace(b, i+1); i < len(b) && b[i] == ']' {
			i++
		} else {
			for {
				switch {
				case i+4 <= len(b) && string(b[i:i+4]) == "null":
					ends = append(ends, -1)
					i += 4
				case i < len(b) && b[i] == '"':
					if buf, i, err = appendString(buf, b, i); err != nil {
						return nil, 0, err
					}
					ends = append(ends, len(buf))
				default:
					return nil, 0, errRows
				}
				i = skipSpace(b, i)
				if i < len(b) && b[i] == ',' {
					i = skipSpace(b, i+1)
					continue
				}
				if i < len(b) && b[i] == ']' {
					i++
					break
				}
				return nil, 0, errRows
			}
		}
		if keep && null {
			out = append(out, nil)
		} else if keep {
			out = append(out, sl.rowOf(buf, ends))
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return out, i + 1, nil
		}
		return nil, 0, errRows
	}
}

// rowOf makes a row of the values in buf: one string, and its values and
// their pointers cut from slabs shared with the next rows (an allocation
// per row, not three, for the collector to follow).
func (sl *slabs) rowOf(buf []byte, ends []int) []*string {
	n := len(ends)
	if n == 0 {
		return []*string{}
	}
	all := string(buf)
	if len(sl.vals) < n {
		sl.vals, sl.ptrs = make([]string, max(n, slabValues)), make([]*string, max(n, slabValues))
	}
	vals, row := sl.vals[:n:n], sl.ptrs[:n:n]
	sl.vals, sl.ptrs = sl.vals[n:], sl.ptrs[n:]
	from := 0
	for j, e := range ends {
		if e < 0 {
			continue
		}
		vals[j] = all[from:e]
		row[j] = &vals[j]
		from = e
	}
	return row
}

// slabs are where rowOf cuts rows from.
type slabs struct {
	vals []string
	ptrs []*string
}

// slabValues is the size of a slab: a few hundred rows.
const slabValues = 4096

// inString marks the bytes a JSON string's reader must look at: its end,
// an escape, control characters and the bytes of UTF-8 beyond ASCII.
// Other bytes are passed over a table look-up at a time.
var inString = func() (in [256]bool) {
	for c := range 256 {
		in[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return in
}()

// appendString appends the value of the JSON string at b[i] to buf and
// returns the index after it. A string with an escape or with bytes that
// are not plain UTF-8 is read by encoding/json.
func appendString(buf, b []byte, i int) ([]byte, int, error) {
	ascii := true
	for j := i + 1; j < len(b); j++ {
		for j < len(b) && !inString[b[j]] {
			j++
		}
		if j >= len(b) {
			break
		}
		c := b[j]
		switch {
		case c == '"':
			s := b[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return slowString(buf, b, i, j+1)
			}
			return append(buf, s...), j + 1, nil
		case c == '\\':
			end, ok := skipString(b, i)
			if !ok {
				return nil, 0, errRows
			}
			return slowString(buf, b, i, end)
		case c < 0x20:
			return nil, 0, errRows
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, errRows
}

func slowString(buf, b []byte, i, end int) ([]byte, int, error) {
	var s string
	if err := json.Unmarshal(b[i:end], &s); err != nil {
		return nil, 0, err
	}
	return append(buf, s...), end, nil
}

// marshalWithRows appends json.Marshal of a Delivery or a Batch v whose rows
// are given apart (v's own are nil, so json.Marshal leaves the member
// out): the rows are written here, without reflection, where json.Marshal
// puts them — straight after the member "columns", which is always there
// — and escaped as it escapes them, so the bytes are the same.
// encoding/json took a tenth of the center's CPU for a delivery's rows.
func marshalWithRows(out []byte, v any, rows [][]*string) ([]byte, error) {
	rest, err := json.Marshal(v)
	if err != nil || len(rows) == 0 {
		return append(out, rest...), err
	}
	// A key is the only place where `"columns":` can be: in a string,
	// the quote after "columns" would be escaped.
	i := bytes.Index(rest, []byte(`"columns":`))
	if i < 0 {
		return nil, errors.New("exchange message: no columns")
	}
	end, ok := skipValue(rest, i+len(`"columns":`))
	if !ok {
		return nil, errors.New("exchange message: bad columns")
	}
	size := len(rest) + len(`,"rows":[]`)
	for _, row := range rows {
		size += 3 + 5*len(row)
		for _, v := range row {
			if v != nil {
				size += len(*v)
			}
		}
	}
	out = slices.Grow(out, size)
	out = append(out, rest[:end]...)
	out = append(out, `,"rows":[`...)
	for i, row := range rows {
		if i > 0 {
			out = append(out, ',')
		}
		if row == nil {
			out = append(out, "null"...)
			continue
		}
		out = append(out, '[')
		for j, v := range row {
			if j > 0 {
				out = append(out, ',')
			}
			if v == nil {
				out = append(out, "null"...)
			} else {
				out = jsontext.AppendString(out, *v)
			}
		}
		out = append(out, ']')
	}
	out = append(out, ']')
	return append(out, rest[end:]...), nil
}
