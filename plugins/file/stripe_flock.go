//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package file

import (
	"os"
	"syscall"
)

// crossProcess reports whether stripe locks exclude other processes.
const crossProcess = true

// lockFile takes an exclusive flock on f, waiting for it. flock belongs to
// the open file description, so it excludes every other open of the file:
// other processes and other Handlers in this one.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
