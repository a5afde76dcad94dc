package loader

import (
	"os/exec"
	"syscall"
)

// dieWithHost asks the kernel to SIGKILL the plugin when the host goes away,
// and puts the plugin in a process group of its own so killGroup can reach
// anything it started. The death signal follows the thread that forked, not
// the process; Go threads only exit when a goroutine locked to one ends,
// which the loader never does, and sdk.Serve also watches its parent pid.
func dieWithHost(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills the plugin's whole process group, so children it left
// behind cannot hold its output pipes open.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil && cmd.Process.Pid > 0 {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
