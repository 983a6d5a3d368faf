package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// decodeWithRows reads the JSON object raw into v as json.Unmarshal does,
// except its member "rows" (an array of arrays of strings or nulls, the
// bulk of a batch or a delivery), which it reads into *rows itself:
// encoding/json takes three times the CPU for it, through reflection and
// an allocation per value. A row's values share one string and one slice.
// Anything unusual in the rows (an escape, bytes that are not UTF-8) is
// read by encoding/json, value by value, so the result is the same.
func decodeWithRows(raw []byte, v any, rows *[][]*string) error {
	start, end, ok := rowsMember(raw)
	if !ok {
		return json.Unmarshal(raw, v)
	}
	rest := make([]byte, 0, len(raw)-(end-start)+4)
	rest = append(append(append(rest, raw[:start]...), "null"...), raw[end:]...)
	if err := json.Unmarshal(rest, v); err != nil {
		return err
	}
	got, err := parseRows(raw[start:end])
	if err != nil {
		return err
	}
	*rows = got
	return nil
}

var errRows = errors.New("exchange message: invalid rows")

// rowsMember finds the value of the top-level member "rows" of the JSON
// object raw; ok is false when there is none, when another member might
// be read into the rows as well (a second "rows", another case, an
// escaped name), or when raw is not an object this scan understands:
// json.Unmarshal then reads all of it, and says what is wrong.
func rowsMember(raw []byte) (start, end int, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return 0, 0, false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return 0, 0, false
	}
	found := false
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return 0, 0, false
		}
		keyEnd, ok := skipString(raw, i)
		if !ok {
			return 0, 0, false
		}
		key := raw[i+1 : keyEnd-1]
		i = skipSpace(raw, keyEnd)
		if i >= len(raw) || raw[i] != ':' {
			return 0, 0, false
		}
		i = skipSpace(raw, i+1)
		valEnd, ok := skipValue(raw, i)
		if !ok {
			return 0, 0, false
		}
		switch {
		case bytes.IndexByte(key, '\\') >= 0 || bytes.EqualFold(key, []byte("rows")) && (found || string(key) != "rows"):
			return 0, 0, false
		case string(key) == "rows":
			start, end, found = i, valEnd, true
		}
		i = skipSpace(raw, valEnd)
		if i < len(raw) && raw[i] == '}' {
			return start, end, found
		}
		if i >= len(raw) || raw[i] != ',' {
			return 0, 0, false
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

// parseRows reads [[string|null, …], …] or null.
func parseRows(b []byte) ([][]*string, error) {
	if string(b) == "null" {
		return nil, nil
	}
	if len(b) == 0 || b[0] != '[' {
		return nil, errRows
	}
	var (
		out  [][]*string
		buf  []byte // the row's values, one after the other
		ends []int  // where each value ends in buf; -1: null
	)
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return [][]*string{}, errTrailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '[' {
			return nil, errRows
		}
		buf, ends = buf[:0], ends[:0]
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			i++
		} else {
			for {
				switch {
				case i+4 <= len(b) && string(b[i:i+4]) == "null":
					ends = append(ends, -1)
					i += 4
				case i < len(b) && b[i] == '"':
					var err error
					if buf, i, err = appendString(buf, b, i); err != nil {
						return nil, err
					}
					ends = append(ends, len(buf))
				default:
					return nil, errRows
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
				return nil, errRows
			}
		}
		out = append(out, rowOf(buf, ends))
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			if skipSpace(b, i+1) != len(b) {
				return nil, errRows
			}
			return out, nil
		}
		return nil, errRows
	}
}

func errTrailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errRows
	}
	return nil
}

// rowOf makes a row of the values in buf: one string, one slice of them.
func rowOf(buf []byte, ends []int) []*string {
	all := string(buf)
	vals := make([]string, len(ends))
	row := make([]*string, len(ends))
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

// appendString appends the value of the JSON string at b[i] to buf and
// returns the index after it. A string with an escape or with bytes that
// are not plain UTF-8 is read by encoding/json.
func appendString(buf, b []byte, i int) ([]byte, int, error) {
	ascii := true
	for j := i + 1; j < len(b); j++ {
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
