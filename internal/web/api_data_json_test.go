package web

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"govshare/internal/dataservice"
)

// The page writer escapes strings byte for byte as encoding/json does.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "<a href='x'>&amp;</a>", "tab\tnew\nline\rret\x00\x1f\x7f",
		"张三 350102199003071234", "\u2028\u2029", "bad \xff\xfe utf8 \xe4\xb8", "emoji 😀", "\xed\xa0\x80"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	}
}

// A page decodes to what the documented shape holds, items in order.
func TestAppendDataJSONDecodes(t *testing.T) {
	v1, v2 := "张*", "350102********1234"
	res := dataservice.Result{Resource: "101/000001", Items: []string{"name", "id_number", "phone"},
		Records: [][]*string{{&v1, &v2, nil}, {nil, &v2, &v1}}, Next: "abc"}
	var got dataJSON
	if err := json.Unmarshal(appendDataJSON(nil, res), &got); err != nil {
		t.Fatal(err)
	}
	want := dataJSON{Resource: res.Resource, Items: res.Items, Next: "abc", Records: []map[string]*string{
		{"name": &v1, "id_number": &v2, "phone": nil}, {"name": nil, "id_number": &v2, "phone": &v1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	var empty map[string]any
	if err := json.Unmarshal(appendDataJSON(nil, dataservice.Result{Resource: "r", Items: []string{"a"}, Records: [][]*string{}}), &empty); err != nil ||
		len(empty["records"].([]any)) != 0 || empty["next_cursor"] != nil {
		t.Fatalf("empty page: %v %v", empty, err)
	}
}
