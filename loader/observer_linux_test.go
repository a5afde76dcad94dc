package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/shared"
)

// recordingObserver keeps what a Handler reports.
type recordingObserver struct {
	mu       sync.Mutex
	calls    []string // "op outcome"
	restarts []string
	ups      []bool
}

func (o *recordingObserver) Call(op, outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, op+" "+outcome)
}
func (o *recordingObserver) Restarted(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.restarts = append(o.restarts, reason)
}
func (o *recordingObserver) Up(up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ups = append(o.ups, up)
}

func TestTheObserverSeesCallsRestartsAndUp(t *testing.T) {
	obs := &recordingObserver{}
	h := open(t, Config{Name: "SessionFileHandler", Dir: pluginDir(t, "SessionFileHandler"),
		Env: []string{"TINA4_SESSION_FOLDER=" + t.TempDir()}, Observer: obs, CallTimeout: 10 * time.Second})
	ctx := context.Background()
	id := testID('o')
	h.Load(ctx, id)
	h.Save(ctx, id, shared.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)})
	h.Load(ctx, id)
	h.SaveIf(ctx, id, shared.Record{Data: []byte("y"), Expires: time.Now().Add(time.Hour)}, 12345)
	pid := h.PID()
	syscall.Kill(pid, syscall.SIGKILL)
	waitForRelaunch(t, h, pid)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"Load not_found", "Save ok", "Load ok", "SaveIf conflict"}
	if len(obs.calls) < 4 || !slices.Equal(obs.calls[:4], want) {
		t.Errorf("calls %v, want %v first", obs.calls, want)
	}
	if !slices.Equal(obs.restarts, []string{"exited"}) {
		t.Errorf("restarts %v, want one for the killed process", obs.restarts)
	}
	if !slices.Equal(obs.ups, []bool{true, false, true}) {
		t.Errorf("up states %v, want up, down, up", obs.ups)
	}
}

func TestAPluginThatStopsAnsweringIsRestarted(t *testing.T) {
	obs := &recordingObserver{}
	h := open(t, Config{Name: "SessionFileHandler", Dir: pluginDir(t, "SessionFileHandler"),
		Env: []string{"TINA4_SESSION_FOLDER=" + t.TempDir()}, Observer: obs,
		CallTimeout: 500 * time.Millisecond, ProbeInterval: 100 * time.Millisecond})
	ctx := context.Background()
	id := testID('w')
	if err := h.Save(ctx, id, shared.Record{Data: []byte("kept"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	pid := h.PID()
	syscall.Kill(pid, syscall.SIGSTOP) // alive, answering nothing
	defer syscall.Kill(pid, syscall.SIGCONT)
	waitStopped(t, pid)
	if _, err := h.Load(ctx, id); err == nil {
		t.Fatal("a stopped plugin answered")
	}
	waitForRelaunch(t, h, pid)
	if rec, err := h.Load(ctx, id); err != nil || string(rec.Data) != "kept" {
		t.Fatalf("after the restart: %q, %v", rec.Data, err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if !slices.Equal(obs.restarts, []string{"unresponsive"}) {
		t.Errorf("restarts %v, want one for an unresponsive plugin", obs.restarts)
	}
}

func TestAPluginWhoseStoreIsSlowIsLeftAlone(t *testing.T) {
	dir := pluginDir(t)
	copyFile(t, filepath.Join(binDir, "probe"), filepath.Join(dir, "Probe"), 0o755)
	h := open(t, Config{Name: "Probe", Dir: dir, CallTimeout: 200 * time.Millisecond, ProbeInterval: 50 * time.Millisecond,
		Env: []string{"TINA4_SESSION_PROBE_LOG=" + filepath.Join(t.TempDir(), "probe.log")}})
	pid := h.PID()
	// Every call hangs in the handler until it times out; go-plugin's
	// health service still answers.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		h.Load(context.Background(), probeID("hang"))
	}
	if got := h.PID(); got != pid {
		t.Fatalf("a plugin that answers its liveness probe but whose calls time out was restarted (pid %d -> %d)", pid, got)
	}
}

func TestSwapUnderConcurrentCallsDropsNothing(t *testing.T) {
	dir := pluginDir(t, "SessionFileHandler")
	folder := t.TempDir()
	cfg := Config{Name: "SessionFileHandler", Dir: dir, Env: []string{"TINA4_SESSION_FOLDER=" + folder}, CallTimeout: 10 * time.Second}
	h := open(t, cfg)
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := testID(byte('a' + w))
			for i := 0; !stop.Load(); i++ {
				rec := shared.Record{Data: []byte(fmt.Sprint(i)), Expires: time.Now().Add(time.Hour)}
				if err := h.Save(ctx, id, rec); err != nil {
					errs <- err
					return
				}
				if got, err := h.Load(ctx, id); err != nil || string(got.Data) != fmt.Sprint(i) {
					errs <- fmt.Errorf("load after save %d: %q, %v", i, got.Data, err)
					return
				}
			}
		}()
	}
	for range 5 {
		old := h.PID()
		if err := h.Swap(ctx, cfg, nil); err != nil {
			t.Fatal(err)
		}
		if h.PID() == old {
			t.Fatal("Swap kept the old process")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call failed during the swaps: %v", err)
	}
}

func TestASwapRefusedByItsCheckKeepsTheOldProcess(t *testing.T) {
	cfg := Config{Name: "SessionFileHandler", Dir: pluginDir(t, "SessionFileHandler"), Env: []string{"TINA4_SESSION_FOLDER=" + t.TempDir()}}
	h := open(t, cfg)
	old := h.PID()
	err := h.Swap(context.Background(), cfg, func(shared.Info) error { return errors.New("not this one") })
	if err == nil || !strings.Contains(err.Error(), "not this one") || h.PID() != old {
		t.Fatalf("a refused swap: %v, pid %d -> %d", err, old, h.PID())
	}
	if _, err := h.Load(context.Background(), testID('r')); !errors.Is(err, shared.ErrNotFound) {
		t.Fatalf("the old process does not serve after a refused swap: %v", err)
	}
}

// waitStopped waits until the process pid is in the stopped state (a
// SIGSTOP is delivered asynchronously).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			// The state follows the command name in parentheses.
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d did not stop", pid)
}
