package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
)

// SIGHUP swaps the handler binary under load: 16 clients keep counting in
// their own sessions while the binary is replaced 10 times; no request may
// fail and no increment may be lost.

// swapUnderLoad runs the clients against s, and for each of swaps rounds
// replaces the binary in dir (a new file renamed over the old, as a deploy
// does), sends SIGHUP and waits for the new plugin process.
func swapUnderLoad(t *testing.T, s *hostProc, dir string, swaps int) {
	const clients = 16
	var stop atomic.Bool
	var failed atomic.Int64
	var firstErr atomic.Value
	done := make([]int, clients)
	ids := make([]string, clients)
	var wg sync.WaitGroup
	for c := range clients {
		ids[c] = create(t, s, `{"n":0}`)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				r, _, err := tryAs(s, "POST", "/api/session/incr/n", "", ids[c])
				if err == nil && r.Code != 200 {
					err = fmt.Errorf("client %d: %d %s", c, r.Code, r.Error)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done[c]++
			}
		}()
	}
	bin := filepath.Join(dir, s.handlerName())
	for i := range swaps {
		old := s.pluginPID(t)
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(filepath.Dir(dir), fmt.Sprintf("new-%d", i))
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(tmp, 0o755)
		if err := os.Rename(tmp, bin); err != nil {
			t.Fatal(err)
		}
		s.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(20 * time.Second)
		for {
			if code, m := s.health(t); code == 200 {
				if p, _ := m["pid"].(float64); int(p) != old && p > 1 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("swap %d: no new plugin process within 20s:\n%s", i, s.log)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // let the clients use the new one
	}
	stop.Store(true)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed during %d swaps; the first: %v", n, swaps, firstErr.Load())
	}
	total := 0
	for c := range clients {
		got := values(t, s, ids[c])["n"]
		if got != float64(done[c]) {
			t.Errorf("client %d: n = %v after %d answered increments: a swap lost a session's writes", c, got, done[c])
		}
		total += done[c]
	}
	if total < clients*swaps {
		t.Errorf("only %d increments in all: the clients hardly ran during the swaps", total)
	}
	if got := strings.Count(s.log.String(), "session handler swapped"); got != swaps {
		t.Errorf("the log reports %d swaps, want %d", got, swaps)
	}
}

// handlerName is the handler the host runs, from /healthz.
func (s *hostProc) handlerName() string {
	_, m := s.health(s.t)
	name, _ := m["handler"].(string)
	return name
}

// ownPluginDir copies the file handler binary into a plugin directory of
// the test's own, which it may replace.
func ownPluginDir(t *testing.T, names ...string) string {
	dir := filepath.Join(t.TempDir(), "plugins")
	os.Mkdir(dir, 0o755)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(pluginsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o755)
		os.Chmod(filepath.Join(dir, name), 0o755)
	}
	return dir
}

func TestSIGHUPSwapsTheHandlerWithoutDroppingARequest(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := ownPluginDir(t, "SessionFileHandler")
		s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + dir}})
		swapUnderLoad(t, s, dir, 10)
	})
	t.Run("redis", func(t *testing.T) {
		redisPlugin(t)
		dir := ownPluginDir(t, "SessionRedisHandler")
		rs := redistest.Start(t)
		s := startServer(t, serverOpts{env: append(redisEnv(rs), "TINA4_PLUGIN_DIR="+dir)})
		swapUnderLoad(t, s, dir, 10)
	})
}

func TestAReloadThatFailsItsChecksKeepsTheOldHandler(t *testing.T) {
	dir := ownPluginDir(t, "SessionFileHandler")
	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + dir}})
	id := create(t, s, `{"user":"alice"}`)
	pid := s.pluginPID(t)
	// The deploy pins a checksum the binary does not have.
	os.WriteFile(filepath.Join(s.dir, ".env"), []byte("TINA4_SESSION_HANDLER_SHA256="+strings.Repeat("ab", 32)+"\n"), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.log.String(), "reload failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'reload failed' in the log:\n%s", s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(s.log.String(), "checksum") {
		t.Errorf("the log does not say which check failed:\n%s", s.log)
	}
	if got := s.pluginPID(t); got != pid {
		t.Fatalf("a failed reload replaced the plugin (pid %d -> %d)", pid, got)
	}
	if got := values(t, s, id); got["user"] != "alice" {
		t.Fatalf("after a failed reload the session reads %v", got)
	}
}
