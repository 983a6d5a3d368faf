package todo_test

import (
	"context"
	"testing"
	"time"

	"govshare/internal/policy"
	"govshare/internal/todo"
)

type fixed []todo.Item

func (f fixed) Todos(context.Context, policy.Actor) ([]todo.Item, error) { return f, nil }

func TestOverdueFirstThenByDeadline(t *testing.T) {
	now := time.Now()
	in := todo.New(fixed{
		{Title: "no deadline", Since: now.Add(-time.Hour)},
		{Title: "later", Deadline: now.Add(72 * time.Hour)},
		{Title: "overdue", Deadline: now.Add(-time.Hour)},
		{Title: "sooner", Deadline: now.Add(25 * time.Hour)},
	})
	items, err := in.List(context.Background(), policy.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"overdue", "sooner", "later", "no deadline"}
	for i, w := range want {
		if items[i].Title != w {
			t.Fatalf("order: got %v", items)
		}
	}
	if !items[0].Overdue || items[1].DaysLeft != 1 {
		t.Fatalf("flags: %+v", items[:2])
	}
}
