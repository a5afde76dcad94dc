package loader

import (
	"context"
	"slices"
	"sync"
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
