//go:build linux

// Package proctest finds processes by a marker in their environment, so
// tests can check that everything a plugin started is gone, whatever
// process group, session or PID namespace it ended up in.
package proctest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Marked returns the pids (as this process sees them) of the live
// processes whose environment holds key=value. Zombies are not live.
func Marked(key, value string) []int {
	want := []byte(key + "=" + value + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(d, "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue
			}
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// WaitFor waits up to timeout for exactly n marked processes and returns
// them; it fails the test if they do not appear.
func WaitFor(t testing.TB, key, value string, n int, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pids := Marked(key, value)
		if len(pids) == n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d processes marked %s=%s, found %d: %v", n, key, value, len(pids), pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Gone reports whether none of pids is alive after waiting up to timeout.
func Gone(pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		alive := false
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil && !zombie(pid) {
				alive = true
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && len(stat) > i+2 && stat[i+2] == 'Z'
}

// KillMarked kills every marked process; register it with t.Cleanup so a
// failing test leaves nothing running.
func KillMarked(key, value string) {
	for _, pid := range Marked(key, value) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// SpawnMark is the variable the Spawner test plugin (loader/testdata/spawner)
// and its descendants carry; tests pass it to the plugin as a TINA4_* setting.
const SpawnMark = "TINA4_SESSION_SPAWN_MARK"

// NewMark returns a fresh marker value for SpawnMark and kills every
// process carrying it when t ends, so a failing test leaves nothing running.
func NewMark(t testing.TB) string {
	b := make([]byte, 8)
	rand.Read(b)
	mark := hex.EncodeToString(b)
	t.Cleanup(func() { KillMarked(SpawnMark, mark) })
	return mark
}
