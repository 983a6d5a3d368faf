package dataservicebench

import "govshare/internal/benchstat"

// Memory is the bench process's peak memory during one phase. The
// server runs in this process, so this is the server's memory, with the
// baseline's idle pool and the bench's own bookkeeping besides.
type Memory = benchstat.Memory

// watchMemory starts watching; the returned function stops and reports.
func watchMemory() func() Memory { return benchstat.WatchMemory() }
