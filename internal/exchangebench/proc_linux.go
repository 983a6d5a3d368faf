package exchangebench

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a node when the bench process dies, so
// a bench stopped hard leaves no node behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
