package dataservicebench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// dieWithParent has the kernel kill the load generator when the bench
// process dies.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processCPU is this process's user and system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU reads the machine's busy and total CPU time so far
// (/proc/stat, in clock ticks), to tell how loaded the cores were.
func machineCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(string(v), 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// clockTick is the kernel's USER_HZ, the unit of /proc times.
const clockTick = 100

// postgresCPU is the CPU time of PostgreSQL on this machine so far: every
// live process named postgres, and what the postmaster's ended children
// (closed connections' backends) used. It needs PostgreSQL on the same
// machine; 0 when none is seen.
func postgresCPU() time.Duration {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks uint64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open || string(b[open+1:close]) != "postgres" {
			continue
		}
		f := bytes.Fields(b[close+1:])
		// After the name: state(0) ppid(1) … utime(11) stime(12)
		// cutime(13) cstime(14).
		if len(f) < 15 {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(string(f[i]), 10, 64); return v }
		ticks += n(11) + n(12)
		if ppid := string(f[1]); !isPostgres(ppid) {
			ticks += n(13) + n(14) // the postmaster: its reaped backends
		}
	}
	return time.Duration(ticks) * time.Second / clockTick
}

func isPostgres(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/comm")
	return err == nil && string(bytes.TrimSpace(b)) == "postgres"
}
