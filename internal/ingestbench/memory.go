package ingestbench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

// Memory is the peak memory of the process during one side.
type Memory struct {
	// PeakRSS is the resident set's high-water mark (VmHWM in
	// /proc/self/status, reset before the side by writing 5 to
	// /proc/self/clear_refs), or, where that cannot be reset, the highest
	// VmRSS sampled. It counts everything in the process: the Go heap,
	// SQLite's page cache (modernc SQLite allocates outside the Go heap),
	// buffers and code.
	PeakRSS uint64
	// HWMReset says whether PeakRSS is the kernel's high-water mark since
	// the side began (true) or the sampled maximum (false).
	HWMReset bool
	// PeakHeap is the largest Go heap sampled (live and not yet swept
	// objects, runtime/metrics /memory/classes/heap/objects:bytes), and
	// PeakGo all memory the Go runtime had mapped
	// (/memory/classes/total:bytes).
	PeakHeap, PeakGo uint64
}

// watch samples memory every 20 ms until the returned function is called.
func watch() func() Memory {
	runtime.GC()
	var m Memory
	m.HWMReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	var mu sync.Mutex
	sample := func() {
		metrics.Read(samples)
		rss, _ := procStatus("VmRSS")
		mu.Lock()
		defer mu.Unlock()
		if samples[0].Value.Kind() == metrics.KindUint64 {
			m.PeakHeap = max(m.PeakHeap, samples[0].Value.Uint64())
			m.PeakGo = max(m.PeakGo, samples[1].Value.Uint64())
		}
		m.PeakRSS = max(m.PeakRSS, rss)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
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

// rss is the resident set now.
func rss() uint64 {
	v, _ := procStatus("VmRSS")
	return v
}

// procStatus reads a "kB" field of /proc/self/status, in bytes.
func procStatus(field string) (uint64, bool) {
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
