package benchstat

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

// Memory is the peak memory of this process during one side of a bench.
type Memory struct {
	// Before is the resident set when the side began (after a collection
	// that returned freed memory to the system).
	Before uint64
	// PeakRSS is the resident set's high-water mark: VmHWM of
	// /proc/self/status, reset when the side began by writing 5 to
	// /proc/self/clear_refs (HWMReset), or, where that cannot be reset,
	// the highest VmRSS sampled every 20 ms. It counts everything in the
	// process: the Go heap, memory allocated outside it (modernc SQLite's
	// page cache), buffers and code.
	PeakRSS  uint64
	HWMReset bool
	// PeakHeap is the largest Go heap sampled (live and not yet swept
	// objects, /memory/classes/heap/objects:bytes), and PeakGo all memory
	// the Go runtime had mapped (/memory/classes/total:bytes).
	PeakHeap, PeakGo uint64
}

// WatchMemory samples memory every 20 ms until the returned function is
// called, which reports the peaks.
func WatchMemory() func() Memory {
	runtime.GC()
	debug.FreeOSMemory()
	var m Memory
	m.Before, _ = ProcStatus("VmRSS")
	m.HWMReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	var mu sync.Mutex
	sample := func() {
		metrics.Read(samples)
		rss, _ := ProcStatus("VmRSS")
		mu.Lock()
		defer mu.Unlock()
		if samples[0].Value.Kind() == metrics.KindUint64 {
			m.PeakHeap = max(m.PeakHeap, samples[0].Value.Uint64())
			m.PeakGo = max(m.PeakGo, samples[1].Value.Uint64())
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
		if hwm, ok := ProcStatus("VmHWM"); ok && m.HWMReset {
			m.PeakRSS = max(m.PeakRSS, hwm)
		}
		return m
	}
}

// ProcStatus reads a "kB" field of /proc/self/status, in bytes; false
// where there is no such file or field.
func ProcStatus(field string) (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		return n * 1024, err == nil
	}
	return 0, false
}
