package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"
)

// Deliveries passed on as stored read back as the deliveries, each at
// its position in the stream; a cut body is an error, not fewer rows.
func TestStoredDeliveriesReadBackAtTheirPositions(t *testing.T) {
	v := "张三"
	want := []Delivery{
		{Subscription: 7, Epoch: 2, Seq: 41, Run: 3, Part: 1, Parts: 2, Columns: []string{"id", "name"}, Rows: [][]*string{{&v, nil}}},
		{Subscription: 7, Epoch: 2, Seq: 44, Run: 3, Part: 2, Parts: 2, Columns: []string{"id", "name"}, Deletes: [][]string{{"9"}}},
	}
	var body []byte
	for _, d := range want {
		seq := d.Seq
		d.Seq = 0 // the bus stores a delivery without its position
		enc, err := Encode(d)
		if err != nil {
			t.Fatal(err)
		}
		body = AppendDelivery(body, seq, enc)
	}
	got, err := DecodeDeliveries(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, cut := range []int{1, 2, len(body) - 1} {
		if _, err := DecodeDeliveries(body[:cut]); err == nil {
			t.Fatalf("a body cut at %d of %d bytes was read", cut, len(body))
		}
	}
}

// encodeCases are values of rows as a source may hold them, those that
// need escaping among them.
var encodeCases = []string{"", "1", "张三", "O'Brien", `quote"`, `back\slash`, "tab\there", "line\nbreak", "\x01", "<b>&</b>",
	"\u2028\u2029", "\xff\xfe", "ok\xe4\xb8\xad", "é😀", "2026-11-21T10:00:00Z", "12345.67", "\x7f"}

// TestEncodeWritesWhatEncodingJSONWrites: a batch's or a delivery's rows
// are written without reflection, byte for byte as json.Marshal writes
// them, and read back as they were.
func TestEncodeWritesWhatEncodingJSONWrites(t *testing.T) {
	var rows [][]*string
	for i := range encodeCases {
		rows = append(rows, []*string{&encodeCases[i], nil, &encodeCases[(i+1)%len(encodeCases)]})
	}
	rows = append(rows, nil, []*string{})
	for _, rs := range [][][]*string{nil, {}, rows, rows[:1]} {
		checkEncodeLikeJSON(t, &Delivery{Subscription: 7, Epoch: 2, Run: 3, Part: 1, Columns: []string{"a", "b", "c"}, Rows: rs,
			Deletes: [][]string{{"x"}}, Sent: RunCounts{Rows: 9}})
		checkEncodeLikeJSON(t, Batch{ID: `n1-j2-r3-"columns":`, JobID: 2, Columns: nil, Rows: rs, Last: true, Total: &RunCounts{Rows: 1}})
	}
}

func FuzzEncodeWritesWhatEncodingJSONWrites(f *testing.F) {
	for _, c := range encodeCases {
		f.Add(c, "columns")
	}
	f.Fuzz(func(t *testing.T, v, col string) {
		checkEncodeLikeJSON(t, &Batch{ID: col, Columns: []string{col}, Rows: [][]*string{{&v}, {nil, &col}}})
	})
}

func checkEncodeLikeJSON(t *testing.T, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Decode(nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("wrote\n%s\nencoding/json writes\n%s", got, want)
	}
	var back Batch
	if err := Decode(enc, &back); err != nil {
		t.Fatal(err)
	}
	var rows [][]*string
	switch m := v.(type) {
	case *Delivery:
		rows = m.Rows
	case *Batch:
		rows = m.Rows
	case Batch:
		rows = m.Rows
	}
	var wantBack Batch
	_ = json.Unmarshal(want, &wantBack)
	if !reflect.DeepEqual(back.Rows, wantBack.Rows) || len(rows) != len(back.Rows) {
		t.Fatalf("read back %v, want %v", back.Rows, wantBack.Rows)
	}
}

// TestBatchHeadRefusesWhatDecodeRefuses: the node endpoint reads a
// batch's identity without its rows, and refuses the bodies the intake
// could not read.
func TestBatchHeadRefusesWhatDecodeRefuses(t *testing.T) {
	for _, c := range rowsCases {
		body := s2.Encode(nil, []byte(c))
		var full Batch
		fullErr := Decode(body, &full)
		head, err := DecodeBatchHead(body)
		if (err == nil) != (fullErr == nil) {
			t.Fatalf("%q: error %v, Decode says %v", c, err, fullErr)
		}
		if err != nil {
			continue
		}
		if len(full.Rows) > 0 && head.Rows != nil {
			t.Fatalf("%q: the rows were kept", c)
		}
		full.Rows, head.Rows = nil, nil
		if !reflect.DeepEqual(head, full) {
			t.Fatalf("%q: read %+v, Decode reads %+v", c, head, full)
		}
	}
	if _, err := DecodeBatchHead([]byte("not s2")); err == nil {
		t.Fatal("a body that is not S2 was read")
	}
}
