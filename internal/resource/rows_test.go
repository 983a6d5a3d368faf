package resource

import (
	"encoding/csv"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestCSVRowsReadAsEncodingCSV: files of plain lines, quoted fields,
// line breaks in quotes, CRLF, empty lines and broken quotes, longer than
// the read buffer, give the rows encoding/csv gives, and its error at the
// same line.
func TestCSVRowsReadAsEncodingCSV(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	broken := 0
	fields := []string{"", "a", "张三", "1,5", `say "hi"`, "two\nlines", "x\r\ny", " padded ", "350102199001011234", "\xff"}
	for doc := range 60 {
		var b strings.Builder
		b.WriteString("a,b,c\n")
		for line := range 2000 + rng.IntN(2000) {
			n := 1 + rng.IntN(4)
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				f := fields[rng.IntN(len(fields))]
				if strings.ContainsAny(f, ",\"\r\n") || rng.IntN(10) == 0 {
					f = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
				}
				b.WriteString(f)
			}
			switch r := rng.IntN(50); {
			case r == 0:
				b.WriteString("\r\n")
			case r == 1:
				b.WriteString("\n\n")
			case r == 2 && doc%3 == 0 && line > 1500:
				b.WriteString(`,bad"quote` + "\n")
			default:
				b.WriteByte('\n')
			}
		}
		if doc%2 == 0 {
			b.WriteString("last,line,without,newline")
		}
		in := b.String()

		want := csv.NewReader(strings.NewReader(in))
		want.FieldsPerRecord = -1
		if _, err := want.Read(); err != nil {
			t.Fatal(err)
		}
		got, err := CSVRows(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		for row := 1; ; row++ {
			w, werr := want.Read()
			g, gerr := got.Next()
			if werr != nil || gerr != nil {
				if errors.Is(werr, io.EOF) != errors.Is(gerr, io.EOF) || (werr == nil) != (gerr == nil) ||
					werr != nil && !errors.Is(werr, io.EOF) && !strings.Contains(gerr.Error(), werr.Error()) {
					t.Fatalf("document %d, row %d: error %v, encoding/csv says %v", doc, row, gerr, werr)
				}
				if werr != nil && !errors.Is(werr, io.EOF) {
					broken++
				}
				break
			}
			if !slices.Equal(g, w) {
				t.Fatalf("document %d, row %d: %q, encoding/csv reads %q", doc, row, g, w)
			}
		}
	}
	if broken < 10 {
		t.Errorf("%d broken documents, want more to compare errors", broken)
	}
}
