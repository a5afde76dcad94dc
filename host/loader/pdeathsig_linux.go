package loader

import (
	"os/exec"
	"syscall"
)

// dieWithHost asks the kernel to SIGKILL the plugin when the host goes away.
// The signal follows the thread that forked, not the process; Go threads only
// exit when a goroutine locked to one ends, which the loader never does, and
// sdk.Serve also watches its parent pid for the rest.
func dieWithHost(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
