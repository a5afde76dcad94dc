package loader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/proctest"
	"github.com/tina4go/sessions/shared"
)

const markKey = "TINA4_SESSION_SPAWN_MARK"

// openSpawner launches the Spawner plugin (itself, a child holding its
// pipes and a setsid grandchild) with a fresh marker, and waits for all
// three processes.
func openSpawner(t *testing.T) (*Handler, string, []int) {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	mark := hex.EncodeToString(b)
	t.Cleanup(func() { proctest.KillMarked(markKey, mark) })
	h := open(t, Config{Name: "Spawner", Dir: pluginDir(t, "Spawner"), Env: []string{markKey + "=" + mark}})
	return h, mark, proctest.WaitFor(t, markKey, mark, 3, 10*time.Second)
}

func TestPluginsRunInAPIDNamespace(t *testing.T) {
	h, _, _ := openSpawner(t)
	if noPIDNamespace.Load() {
		t.Fatalf("this machine can start plugins in a PID namespace (root, or user namespaces); the loader gave up on it")
	}
	info, err := h.Info(context.Background())
	if err != nil || info.PID != h.PID() || info.PID <= 1 {
		t.Fatalf("Info must report the pid the host sees (%d), got %d, %v", h.PID(), info.PID, err)
	}
}

func TestCrashWithChildrenHoldingThePipesRestarts(t *testing.T) {
	h, _, family := openSpawner(t)
	oldPID := h.PID()
	if _, err := h.Load(context.Background(), "crash"+testID('x')[5:]); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call that crashes the plugin: want ErrUnavailable, got %v", err)
	}
	// Before the fix, go-plugin waited for the children to close the pipes
	// and the plugin was never restarted.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := h.Load(context.Background(), testID('a'))
		if errors.Is(err, shared.ErrNotFound) && h.PID() != oldPID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin was not restarted after its crash: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !proctest.Gone(family, 5*time.Second) {
		t.Errorf("processes of the crashed plugin survive: %v", family)
	}
}

func TestShutdownWithChildrenHoldingThePipes(t *testing.T) {
	h, mark, family := openSpawner(t)
	done := make(chan struct{})
	go func() { h.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown hangs while the plugin's children hold its pipes")
	}
	if !proctest.Gone(family, 5*time.Second) {
		t.Errorf("processes left after Shutdown: %v (marked now: %v)", family, proctest.Marked(markKey, mark))
	}
}

func TestWithoutPIDNamespaceACrashStillRestarts(t *testing.T) {
	noPIDNamespace.Store(true)
	t.Cleanup(func() { noPIDNamespace.Store(false) })
	h, mark, family := openSpawner(t)
	oldPID := h.PID()
	h.Load(context.Background(), "crash"+testID('x')[5:])
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := h.Load(context.Background(), testID('a'))
		if errors.Is(err, shared.ErrNotFound) && h.PID() != oldPID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("without a PID namespace the plugin was not restarted after its crash: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The child in the plugin's process group is killed with it; the
	// setsid grandchild is out of reach without a PID namespace (the docs
	// say so).
	var survivors []int
	for _, pid := range family {
		if !proctest.Gone([]int{pid}, 2*time.Second) {
			survivors = append(survivors, pid)
		}
	}
	if len(survivors) > 1 {
		t.Errorf("without a PID namespace only the setsid grandchild may survive, found %v", survivors)
	}
	if now := proctest.Marked(markKey, mark); !slices.Contains(now, h.PID()) {
		t.Errorf("the new plugin %d is not among the marked processes %v", h.PID(), now)
	}
}
