package web

import (
	"encoding/json"
	"reflect"
	"testing"

	"govshare/internal/dataservice"
)

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
