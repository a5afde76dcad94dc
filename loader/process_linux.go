package loader

import (
	"errors"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// noPIDNamespace is set once the kernel has refused to start a plugin in a
// PID namespace of its own (no user namespaces for this user, a seccomp
// profile, ...); later launches then go without one.
var noPIDNamespace atomic.Bool

// setProcAttr prepares cmd so that nothing the plugin starts can outlive
// it or its host:
//
//   - Pdeathsig: the kernel SIGKILLs the plugin when the host goes away
//     (the signal follows the forking thread, not the process; Go threads
//     only exit when a goroutine locked to one ends, which the loader never
//     does, and sdk.Serve also watches its parent).
//   - A process group of its own, so killGroup reaches its children.
//   - When isolate is set and the kernel allows it, a PID namespace of its
//     own (with a user namespace mapping only the host's own uid and gid
//     when the host is not root): the plugin is its init process, and when
//     it exits, for any reason, the kernel kills every process it started,
//     including those that left its process group with setsid. Children
//     holding the plugin's output pipes therefore cannot stall a restart or
//     a shutdown, and a host killed with SIGKILL leaves nothing behind.
func setProcAttr(cmd *exec.Cmd, isolate bool) {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if isolate {
		attr.Cloneflags = syscall.CLONE_NEWPID
		if os.Geteuid() != 0 {
			attr.Cloneflags |= syscall.CLONE_NEWUSER
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
			attr.GidMappingsEnableSetgroups = false
		}
	}
	cmd.SysProcAttr = attr
}

// namespaceRefused reports whether err is the kernel refusing the
// namespaces setProcAttr asked for, rather than a problem with the binary.
func namespaceRefused(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS)
}

// killGroup kills the plugin's whole process group, so children it left
// behind cannot hold its output pipes open.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil && cmd.Process.Pid > 0 {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// watchExit closes exited as soon as the process pid ends, without reaping
// it (go-plugin does that, but only once the process's output pipes have
// closed, which a child holding them can delay for ever).
func watchExit(pid int, exited chan<- struct{}) {
	defer close(exited)
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			return // it exited, or it is not ours to watch any more (reaped)
		}
	}
}
