package ingestbench

import "govshare/internal/benchstat"

// Memory is the peak memory of the process during one side.
type Memory = benchstat.Memory

// watch samples memory until the returned function is called.
func watch() func() Memory { return benchstat.WatchMemory() }

// rss is the resident set now.
func rss() uint64 {
	v, _ := benchstat.ProcStatus("VmRSS")
	return v
}
