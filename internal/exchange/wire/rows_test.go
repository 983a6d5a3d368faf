package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

// rowsCases are rows as a center or a node may send them, and rows that
// are not valid.
var rowsCases = []string{
	`{"id":"b1","rows":[["1","张三",null],["2","",null]],"columns":["a","b","c"]}`,
	`{"rows":[]}`, `{"rows":null}`, `{"rows":[[]]}`, `{"columns":["a"]}`,
	`{ "rows" : [ [ "a" , null ] , [ null , "b" ] ] , "seq" : 3 }`,
	`{"rows":[["tab\there","quote\"","back\\slash","\u00e9\ud83d\ude00","\/","bad\ud800"]]}`,
	"{\"rows\":[[\"\xff\xfe\",\"ok\xe4\xb8\xad\"]]}",
	`{"rows":[["a"],["b","c"]],"deletes":[["x"]],"sent":{"rows":2},"published":"2026-11-21T10:00:00Z"}`,
	`{"rows":[[1]]}`, `{"rows":[["a",]]}`, `{"rows":[["a"]`, `{"rows":[["a"]]]}`, `{"rows":[["a"] ["b"]]}`,
	`{"rows":[[nul]]}`, "{\"rows\":[[\"a\x01\"]]}", `{"rows":{}}`, `{"rows":"x"}`, `{"seq":"x","rows":[["a"]]}`, `[1]`, ``,
	`{"columns":["rows"],"rows":[["a"]]}`, `{"rows":[["a"]],"rows":null}`, `{"rows":[["a"]],"ROWS":[["b"]]}`, `{"r\u006fws":[["a"]]}`,
	`{"rows":[null,["a"],null]}`, `{"rows":[nul]}`, `{"rows":[null["a"]]}`, `{"rows":null,"x":1}`,
	`{"rows":[["a"]]} x`, `{"rows":[["a"]]}}`, `{}`, `{"x":{"rows":[[1]]},"rows":[["b"]]}`,
}

// TestRowsReadAsEncodingJSONReadsThem: the rows reader gives what
// encoding/json gives, and refuses what it refuses.
func TestRowsReadAsEncodingJSONReadsThem(t *testing.T) {
	for _, c := range rowsCases {
		checkRowsLikeJSON(t, []byte(c))
	}
}

func FuzzRowsReadAsEncodingJSONReadsThem(f *testing.F) {
	for _, c := range rowsCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkRowsLikeJSON(t, b) })
}

func checkRowsLikeJSON(t *testing.T, raw []byte) {
	t.Helper()
	var want, got Delivery
	wantErr := json.Unmarshal(raw, &want)
	gotErr := decodeWithRows(raw, &got, &got.Rows)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: error %v, encoding/json says %v", raw, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: read %#v, encoding/json reads %#v", raw, got, want)
	}
}
