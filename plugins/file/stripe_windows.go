//go:build windows

package file

import (
	"os"

	"golang.org/x/sys/windows"
)

// crossProcess reports whether stripe locks exclude other processes.
const crossProcess = true

// lockFile takes an exclusive LockFileEx lock on the first byte of f,
// waiting for it. The lock belongs to the handle, so it excludes every other
// open of the file: other processes and other Handlers in this one.
func lockFile(f *os.File) error {
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, new(windows.Overlapped))
}

func unlockFile(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}
