//go:build !linux

package dataservicebench

import (
	"os/exec"
	"time"
)

func dieWithParent(*exec.Cmd)          {}
func processCPU() time.Duration        { return 0 }
func machineCPU() (busy, total uint64) { return 0, 0 }
func postgresCPU() time.Duration       { return 0 }
