package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"govshare/internal/exchange/wire"
)

// OnceProgress is where a single run (`govshare agent run JOB --once`) is.
type OnceProgress struct {
	Job       string
	Phase     string // extracting, forwarding, reconciling
	Extracted int64  // rows extracted by this run so far
	Queued    int64  // batches in the node's store the center has not taken yet
}

// RunOnce runs one job of this node once, now, whatever its schedule: it
// extracts into the node's store, forwards everything to the center and
// waits until the center has counted the run on its side. progress is
// called a few times a second. The node's daemon must not be running on
// the same data folder.
func (a *Agent) RunOnce(ctx context.Context, job string, progress func(OnceProgress)) ([]wire.RunResult, error) {
	var c wire.Commands
	if err := a.call(ctx, http.MethodGet, wire.PathCommands, url.Values{"after": {"-1"}}, nil, "", &c); err != nil {
		return nil, fmt.Errorf("commands from the center: %w", err)
	}
	var spec wire.JobSpec
	var names []string
	for _, j := range c.Jobs {
		names = append(names, fmt.Sprintf("%d %s", j.ID, j.Name))
		if j.Name == job || strconv.FormatInt(j.ID, 10) == job {
			spec = j
		}
	}
	if spec.ID == 0 {
		return nil, fmt.Errorf("the center gives this node no job %q; its jobs: %s", job, strings.Join(names, ", "))
	}
	a.mu.Lock()
	a.cmds = c
	a.nodeID.Store(c.NodeID)
	a.mu.Unlock()

	fwdCtx, stopForwarding := context.WithCancel(ctx)
	fwdDone := make(chan struct{})
	go func() { defer close(fwdDone); a.forwardLoop(fwdCtx) }()
	defer func() { stopForwarding(); <-fwdDone }()

	r := &jobRunner{a: a}
	r.init(spec, "idle")
	before, err := a.lastCheckpoint(ctx, spec.ID)
	if err != nil {
		return nil, err
	}
	first := before.Run + 1
	if !before.Last && before.Run > 0 {
		first = before.Run // an interrupted run is finished first
	}
	phase := "extracting"
	setPhase := func(p string) {
		r.mu.Lock()
		phase = p
		r.mu.Unlock()
	}
	tick := func() {
		r.mu.Lock()
		p := OnceProgress{Job: spec.Name, Phase: phase, Extracted: r.progress}
		r.mu.Unlock()
		p.Queued, _ = a.outboxPending(spec.ID)
		progress(p)
	}
	stopTicks := make(chan struct{})
	ticksDone := make(chan struct{})
	go func() {
		defer close(ticksDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopTicks:
				return
			case <-t.C:
				tick()
			}
		}
	}()
	// Progress is reported from one goroutine at a time: the ticker's,
	// then, once it has stopped, the last report's.
	var stopOnce sync.Once
	stopTicking := func() { stopOnce.Do(func() { close(stopTicks); <-ticksDone }) }
	defer stopTicking()

	if _, err := r.runOnce(ctx, spec); err != nil {
		return nil, err
	}
	after, err := a.lastCheckpoint(ctx, spec.ID)
	if err != nil {
		return nil, err
	}
	setPhase("forwarding")
	for {
		n, err := a.outboxPending(spec.ID)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	setPhase("reconciling")
	for {
		st := wire.Status{Version: a.version, Started: a.started, Jobs: []wire.JobStatus{r.report()}}
		body, _ := json.Marshal(st)
		var reply wire.StatusReply
		if err := a.call(ctx, http.MethodPost, wire.PathStatus, nil, body, "application/json", &reply); err == nil {
			var runs []wire.RunResult
			done := true
			for run := first; run <= after.Run; run++ {
				found := false
				for _, x := range reply.Runs {
					if x.JobID == spec.ID && x.Run == run {
						found, done = true, done && x.State != "running"
						runs = append(runs, x)
					}
				}
				done = done && found
			}
			if done {
				stopTicking()
				tick()
				for _, x := range runs {
					if x.State != "complete" {
						return runs, fmt.Errorf("run %d: the center's counts differ from the node's (%s); see the runs page", x.Run, x.State)
					}
				}
				return runs, nil
			}
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return nil, err
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
