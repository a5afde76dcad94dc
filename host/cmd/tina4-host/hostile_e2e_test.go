//go:build linux

package main

import (
	"crypto/rand"
	"encoding/hex"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/proctest"
)

const markKey = "TINA4_SESSION_SPAWN_MARK"

// startSpawner serves with the Spawner plugin, which starts a child holding
// its pipes and a setsid grandchild. Every process of the family, and the
// host (which passes TINA4_* settings on), carries a fresh marker.
func startSpawner(t *testing.T) (*hostProc, string, []int) {
	b := make([]byte, 8)
	rand.Read(b)
	mark := hex.EncodeToString(b)
	t.Cleanup(func() { proctest.KillMarked(markKey, mark) })
	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + hostileDir, "TINA4_SESSION_HANDLER=Spawner", markKey + "=" + mark}})
	// The host, the plugin, its child and its setsid grandchild.
	return s, mark, proctest.WaitFor(t, markKey, mark, 4, 10*time.Second)
}

func TestHostSIGKILLLeavesNothingThePluginStarted(t *testing.T) {
	s, mark, family := startSpawner(t)
	s.cmd.Process.Kill()
	<-s.done
	if !proctest.Gone(family, 10*time.Second) {
		t.Fatalf("after the host was killed with SIGKILL, these survive: %v", proctest.Marked(markKey, mark))
	}
}

func TestHostSIGTERMWithChildrenHoldingThePluginsPipes(t *testing.T) {
	s, mark, family := startSpawner(t)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("tina4-host did not exit within 30s of SIGTERM:\n%s", s.log)
	}
	if !proctest.Gone(family, 5*time.Second) {
		t.Fatalf("after SIGTERM these survive: %v", proctest.Marked(markKey, mark))
	}
}
