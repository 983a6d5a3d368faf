package jsontext

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// Strings are escaped byte for byte as encoding/json does.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
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
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	}
}

// Objects are written as encoding/json writes the same map; values of
// other types are left to it.
func TestAppendObjectMatchesEncodingJSON(t *testing.T) {
	cases := []map[string]any{
		{},
		{"items": []string{"name", "id_number"}, "filters": []string{"id_number:eq"}, "records": 1, "grant": int64(42)},
		{"reason": "data.not_granted", "<key>": "a&b", "empty": []string{}, "nil": nil, "none": []string(nil), "ok": true, "n": int32(-7)},
		{"张三": "\u2028\u2029 \xff", "z": "", "a": "\t\n"},
	}
	for _, m := range cases {
		want, _ := json.Marshal(m)
		got, ok := AppendObject([]byte("prefix"), m)
		if !ok || string(got) != "prefix"+string(want) {
			t.Fatalf("%v: got %s, want %s", m, got, want)
		}
	}
	for _, v := range []any{1.5, map[string]any{}, []int{1}, struct{}{}} {
		if got, ok := AppendObject([]byte("x"), map[string]any{"a": "b", "v": v}); ok || string(got) != "x" {
			t.Fatalf("%T: %s %v", v, got, ok)
		}
	}
}
