package audit

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// The hash covers the same bytes encoding/json wrote for the event's
// fields as a JSON array (the form chains were written with before), so
// every stored chain still verifies.
func TestCanonicalIsTheJSONArrayOfTheFields(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	text := func() string {
		pool := []string{"", "张三", `a "quoted" \\ <b>&</b>`, "\u2028", "bad \xff", "\x00\x1f\t\n", "app_k3y", "data.query", `{"items":["name"],"records":1}`}
		return pool[rng.IntN(len(pool))] + pool[rng.IntN(len(pool))]
	}
	for i := range 2000 {
		e := &Event{Seq: rng.Int64N(1 << 40), Time: time.Unix(rng.Int64N(2e9), rng.Int64N(1e9)).In(time.FixedZone("CST", 8*3600)),
			ActorType: text(), ActorID: text(), ActorName: text(), DeptID: rng.Int64N(1000) - int64(i%2)*500,
			Action: text(), ObjectType: text(), ObjectID: text(), Result: text(), ClientAddr: text(), RequestID: text(), Purpose: text(), Details: text()}
		want, _ := json.Marshal([]any{
			e.Seq, e.Time.UTC().Format(timeLayout), e.ActorType, e.ActorID, e.ActorName, e.DeptID,
			e.Action, e.ObjectType, e.ObjectID, e.Result, e.ClientAddr, e.RequestID, e.Purpose, e.Details,
		})
		if got := canonical(e); string(got) != string(want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
