package loader

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
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
//
// cred, when not nil, is the user the plugin runs as (TINA4_PLUGIN_USER).
func setProcAttr(cmd *exec.Cmd, isolate bool, cred *credential) {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if cred != nil {
		attr.Credential = &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid, Groups: []uint32{}}
	}
	if isolate {
		attr.Cloneflags = syscall.CLONE_NEWPID
		if os.Geteuid() != 0 && cred == nil {
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

// pluginCredential resolves TINA4_PLUGIN_USER (a user name or a numeric
// uid) to the credential a plugin runs with: that user's uid and primary
// gid, no supplementary groups. "" means the host's own user (nil).
func pluginCredential(name string) (*credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("TINA4_PLUGIN_USER=%s: no such user", name)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("TINA4_PLUGIN_USER=%s: uid %q, gid %q are not numbers", name, u.Uid, u.Gid)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("TINA4_PLUGIN_USER=%s: switching a plugin to another user needs the host to run as root (it runs as uid %d); unset it, or start the host as root", name, os.Geteuid())
	}
	return &credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// protectMemory makes the host process non-dumpable: its /proc entries
// (environ, mem, maps, cwd, fd) become readable only by root, ptrace by
// another process of the same user is refused, and no core dump is written.
// Root needs it because it does not give plugins a user namespace (they
// run as root, or as TINA4_PLUGIN_USER); an unprivileged host whose plugins
// get no user namespace needs it too. It is not done otherwise because the
// kernel only lets a dumpable process map a user namespace for a child.
func protectMemory() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }

// ownedByMe reports whether fi belongs to this process's effective user.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
