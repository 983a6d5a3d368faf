package ttlcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOneFetchServesEveryoneWaiting(t *testing.T) {
	c := New[string, int](time.Hour, 10)
	var fetches atomic.Int32
	release := make(chan struct{})
	fetch := func(context.Context) (int, error) {
		fetches.Add(1)
		<-release
		return 42, nil
	}
	var wg sync.WaitGroup
	got := make([]int, 50)
	for i := range got {
		wg.Go(func() {
			v, err := c.Get(context.Background(), "k", fetch)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	// Let the 50 callers arrive before the one fetch ends.
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 50 callers at once, want 1", n)
	}
	for i, v := range got {
		if v != 42 {
			t.Fatalf("caller %d got %d", i, v)
		}
	}
	if _, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 0, errors.New("fetched again") }); err != nil {
		t.Fatalf("a fresh value is fetched again: %v", err)
	}
}

func TestValuesExpire(t *testing.T) {
	c := New[string, int](20*time.Millisecond, 10)
	n := 0
	fetch := func(context.Context) (int, error) { n++; return n, nil }
	if v, _ := c.Get(context.Background(), "k", fetch); v != 1 {
		t.Fatalf("first get %d", v)
	}
	if v, _ := c.Get(context.Background(), "k", fetch); v != 1 {
		t.Fatalf("within the ttl %d, want the kept 1", v)
	}
	time.Sleep(30 * time.Millisecond)
	if v, _ := c.Get(context.Background(), "k", fetch); v != 2 {
		t.Fatalf("after the ttl %d, want a new fetch", v)
	}
}

func TestErrorsAreNotKept(t *testing.T) {
	c := New[string, int](time.Hour, 10)
	boom := errors.New("boom")
	if _, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if v, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("after an error: %d %v, want a new fetch", v, err)
	}
}

// A value fetched before a Drop must not be served after it: that is how
// a grant revoked on this server stops the very next request.
func TestDropDiscardsALoadInProgress(t *testing.T) {
	c := New[string, string](time.Hour, 10)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan string)
	go func() {
		v, _ := c.Get(context.Background(), "k", func(context.Context) (string, error) {
			close(started)
			<-release
			return "before", nil
		})
		done <- v
	}()
	<-started
	c.Drop()
	// A caller after the Drop fetches afresh, without waiting for the
	// load that began before it.
	v, err := c.Get(context.Background(), "k", func(context.Context) (string, error) { return "after", nil })
	if err != nil || v != "after" {
		t.Fatalf("after the drop: %q %v", v, err)
	}
	close(release)
	if v := <-done; v != "before" {
		t.Fatalf("the earlier caller got %q", v)
	}
	if v, _ := c.Get(context.Background(), "k", func(context.Context) (string, error) { return "third", nil }); v != "after" {
		t.Fatalf("the load from before the drop replaced the value: %q", v)
	}
	c.Drop()
	if v, _ := c.Get(context.Background(), "k", func(context.Context) (string, error) { return "third", nil }); v != "third" {
		t.Fatalf("a dropped value was served: %q", v)
	}
}

func TestAWaiterOutlivesACancelledFetcher(t *testing.T) {
	c := New[string, int](time.Hour, 10)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		_, _ = c.Get(ctx, "k", func(ctx context.Context) (int, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		})
	}()
	<-started
	res := make(chan error)
	go func() {
		v, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 5, nil })
		if err == nil && v != 5 {
			err = errors.New("wrong value")
		}
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-res; err != nil {
		t.Fatalf("the waiter failed with its fetcher's cancellation: %v", err)
	}
}

func TestAWaiterStopsWithItsContext(t *testing.T) {
	c := New[string, int](time.Hour, 10)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	go func() {
		_, _ = c.Get(context.Background(), "k", func(context.Context) (int, error) { close(started); <-release; return 1, nil })
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "k", func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the waiter's deadline", err)
	}
}

func TestAPanickingFetchReleasesItsWaiters(t *testing.T) {
	c := New[string, int](time.Hour, 10)
	started, release := make(chan struct{}), make(chan struct{})
	go func() {
		defer func() { _ = recover() }()
		_, _ = c.Get(context.Background(), "k", func(context.Context) (int, error) { close(started); <-release; panic("fetch") })
	}()
	<-started
	res := make(chan error)
	go func() {
		_, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	close(release)
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("the waiter of a panicked fetch got no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter of a panicked fetch is stuck")
	}
}

func TestTheCacheStaysBounded(t *testing.T) {
	c := New[int, int](time.Hour, 3)
	for i := range 10 {
		_, _ = c.Get(context.Background(), i, func(context.Context) (int, error) { return i, nil })
		if len(c.entries) > 3 {
			t.Fatalf("%d entries, max 3", len(c.entries))
		}
	}
}
