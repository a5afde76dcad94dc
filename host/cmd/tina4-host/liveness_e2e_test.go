package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
)

// A plugin process that is alive but answers nothing is recycled; one whose
// store is slow or down is not (the liveness probe asks go-plugin's health
// service, which touches no store).

func TestAPluginThatStopsAnsweringIsRecycled(t *testing.T) {
	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_TIMEOUT=500ms"}})
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`); r.Code != 200 {
		t.Fatalf("create: %d", r.Code)
	}
	pid := s.pluginPID(t)
	syscall.Kill(pid, syscall.SIGSTOP) // alive, answering nothing: a wedged plugin
	defer syscall.Kill(pid, syscall.SIGCONT)
	for deadline := time.Now().Add(5 * time.Second); ; {
		// A SIGSTOP is delivered asynchronously: wait for the stopped state.
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d did not stop", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 503 {
		t.Fatalf("a request while the plugin is wedged: %d, want 503", r.Code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, m := s.health(t)
		if p, _ := m["pid"].(float64); code == 200 && int(p) != pid && p > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the wedged plugin (pid %d) was not replaced within 20s:\n%s", pid, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("after the recycle: %d %v; want the session back", r.Code, r.Values)
	}
	if !strings.Contains(s.log.String(), "stopped answering its liveness probe") {
		t.Errorf("the host log does not say why it killed the plugin:\n%s", s.log)
	}
}

func TestAPluginWhoseStoreHangsIsNotRecycled(t *testing.T) {
	rs := redistest.Start(t)
	s := startRedisHost(t, rs, "TINA4_PLUGIN_TIMEOUT=500ms")
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`); r.Code != 200 {
		t.Fatalf("create: %d", r.Code)
	}
	pid := s.pluginPID(t)
	rs.Pause() // the store hangs; the plugin still answers its liveness probe
	end := time.Now().Add(6 * time.Second)
	for time.Now().Before(end) {
		if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 503 {
			t.Fatalf("a request while Redis hangs: %d, want 503", r.Code)
		}
	}
	rs.Resume()
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("after Redis came back: %d %v", r.Code, r.Values)
	}
	if got := s.pluginPID(t); got != pid {
		t.Fatalf("the plugin was restarted (pid %d -> %d) although only its store hung:\n%s", pid, got, s.log)
	}
	if strings.Contains(s.log.String(), "liveness probe") {
		t.Errorf("the host blamed the plugin for a hung store:\n%s", s.log)
	}
}

func TestStopRunsWhenTheHostShutsDownGracefully(t *testing.T) {
	log := filepath.Join(t.TempDir(), "probe.log")
	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + hostileDir, "TINA4_SESSION_HANDLER=Probe", "TINA4_SESSION_PROBE_LOG=" + log}})
	s.stop() // SIGTERM
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "stopped") {
		t.Fatalf("the handler's sdk.Stopper.Stop did not run on the host's graceful shutdown; its log: %q\n%s", b, s.log)
	}
}
