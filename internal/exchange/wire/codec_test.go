package wire

import (
	"reflect"
	"testing"
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
