package dataservicebench

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Memory is the bench process's peak memory during one phase. The
// server runs in this process, so this is the server's memory, with the
// baseline's idle pool and the bench's own bookkeeping besides.
type Memory struct {
	// Before is the resident set when the phase began (after a
	// collection that returned freed memory to the system).
	Before uint64
	// PeakRSS is the resident high-water mark during the phase: VmHWM
	// of /proc/self/status, reset at the start by writing 5 to
	// /proc/self/clear_refs (HWMReset), else the highest VmRSS sampled
	// every 20 ms.
	PeakRSS  uint64
	HWMReset bool
	// PeakHeap is the largest Go heap sampled (live and unswept objects).
	PeakHeap uint64
}

// watchMemory starts watching; the returned function stops and reports.
func watchMemory() func() Memory {
	runtime.GC()
	debug.FreeOSMemory()
	var m Memory
	m.Before, _ = procStatus("VmRSS")
	m.HWMReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var mu sync.Mutex
	sample := func() {
		metrics.Read(samples)
		rss, _ := procStatus("VmRSS")
		mu.Lock()
		defer mu.Unlock()
		if samples[0].Value.Kind() == metrics.KindUint64 {
			m.PeakHeap = max(m.PeakHeap, samples[0].Value.Uint64())
		}
		m.PeakRSS = max(m.PeakRSS, rss)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() Memory {
		close(stop)
		<-done
		sample()
		if hwm, ok := procStatus("VmHWM"); ok && m.HWMReset {
			m.PeakRSS = max(m.PeakRSS, hwm)
		}
		return m
	}
}
