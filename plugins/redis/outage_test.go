package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
)

// waitHealthy polls h.Health until it returns nil, failing the test after a
// bound that only keeps a broken handler from hanging it.
func waitHealthy(t *testing.T, h *Handler) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := h.Health(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Health: want nil once Redis is back, still %v after 20s", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisDownAtStartThenUp(t *testing.T) {
	port := redistest.FreePort(t)
	addr := "127.0.0.1:" + itoa(port)
	h, logs := newTestHandler(t, []string{addr})
	ctx := context.Background()

	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("New with Redis down: want a warning with the cause, log was %q", logs.String())
	}
	err := h.Health(ctx)
	if err == nil || !strings.Contains(err.Error(), "redis "+addr+" unreachable") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Health with Redis down: want %q and the cause, got %v", "redis "+addr+" unreachable", err)
	}
	id := randomID(t)
	_, err = h.Load(ctx, id)
	if err == nil || errors.Is(err, sdk.ErrNotFound) || !strings.Contains(err.Error(), "redis "+addr) {
		t.Errorf("Load with Redis down: want an error naming redis %s (not sdk.ErrNotFound), got %v", addr, err)
	}
	rec := sdk.Record{Data: []byte("after the outage"), Expires: time.Now().Add(time.Hour)}
	if err := h.Save(ctx, id, rec); err == nil || !strings.Contains(err.Error(), "redis "+addr) {
		t.Errorf("Save with Redis down: want an error naming redis %s, got %v", addr, err)
	}

	redistest.Start(t, "--port", itoa(port))
	waitHealthy(t, h)
	if err := h.Save(ctx, id, rec); err != nil {
		t.Fatalf("Save once Redis is up, same Handler: %v", err)
	}
	if got, err := h.Load(ctx, id); err != nil || string(got.Data) != string(rec.Data) {
		t.Errorf("Load once Redis is up, same Handler: want %q, got %q, %v", rec.Data, got.Data, err)
	}
}

func TestRedisRestartKeepsAcknowledgedSessions(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	h, _ := newTestHandler(t, []string{srv.Addr()})
	ctx := context.Background()
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = randomID(t)
		rec := sdk.Record{Data: []byte(fmt.Sprintf("session %d", i)), Expires: time.Now().Add(time.Hour)}
		if err := h.Save(ctx, ids[i], rec); err != nil {
			t.Fatalf("Save #%d: %v", i, err)
		}
	}

	srv.Kill() // as a crash would
	_, err := h.Load(ctx, ids[0])
	if err == nil || errors.Is(err, sdk.ErrNotFound) || !strings.Contains(err.Error(), "redis "+srv.Addr()) {
		t.Errorf("Load during the outage: want an error naming redis %s, never sdk.ErrNotFound or data, got %v", srv.Addr(), err)
	}
	if err := h.Health(ctx); err == nil {
		t.Error("Health during the outage: want an error, got nil")
	}

	srv.Restart()
	waitHealthy(t, h)
	for i, id := range ids {
		got, err := h.Load(ctx, id)
		if want := fmt.Sprintf("session %d", i); err != nil || string(got.Data) != want {
			t.Errorf("Load #%d after the restart: want %q, got %q, %v", i, want, got.Data, err)
		}
	}
}
