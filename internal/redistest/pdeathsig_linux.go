package redistest

import (
	"os/exec"
	"syscall"
)

// dieWithTest asks the kernel to kill redis-server when the test binary
// dies, so a crashed or timed-out test leaves no server behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
