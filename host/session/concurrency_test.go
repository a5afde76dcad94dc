package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// stored creates a session with values and returns its id.
func stored(t *testing.T, m *Manager, kv map[string]any) string {
	t.Helper()
	s := m.New()
	for k, v := range kv {
		s.Set(k, v)
	}
	if _, err := m.Commit(ctx, s); err != nil {
		t.Fatal(err)
	}
	return s.ID()
}

// reload returns the stored session's keys and values (nil when gone).
func reload(t *testing.T, m *Manager, id string) map[string]any {
	t.Helper()
	s, err := m.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release(s)
	if s.IsNew() {
		return nil
	}
	return s.All()
}

func load(t *testing.T, m *Manager, id string) *Session {
	t.Helper()
	s, err := m.Load(ctx, id)
	if err != nil || s.IsNew() {
		t.Fatalf("Load(%s): %v (new: %v)", id, err, s.IsNew())
	}
	return s
}

func commit(t *testing.T, m *Manager, s *Session) CookieAction {
	t.Helper()
	a, err := m.Commit(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	m.Release(s)
	return a
}

func TestConcurrentRequestsKeepEachOthersKeys(t *testing.T) {
	m, _, _ := newManager(t)
	id := stored(t, m, map[string]any{"x": "old", "keep": 1.0})
	a, b := load(t, m, id), load(t, m, id)
	a.Set("a", "from a")
	a.Unset("x")
	b.Set("b", "from b")
	commit(t, m, a)
	commit(t, m, b) // b loaded before a committed: it must not write a's view back
	got := reload(t, m, id)
	want := map[string]any{"a": "from a", "b": "from b", "keep": 1.0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after two overlapping requests: %v, want %v", got, want)
	}
}

func TestTheLastCommitWinsForOneKey(t *testing.T) {
	m, _, _ := newManager(t)
	id := stored(t, m, map[string]any{"k": 0.0})
	a, b := load(t, m, id), load(t, m, id)
	a.Set("k", 1)
	b.Set("k", 2)
	commit(t, m, b)
	commit(t, m, a)
	if got := reload(t, m, id)["k"]; got != 1.0 {
		t.Fatalf("k = %v, want 1 (a committed last)", got)
	}
}

func TestDestroyWinsOverRequestsThatLoadedBeforeIt(t *testing.T) {
	m, _, _ := newManager(t)
	id := stored(t, m, map[string]any{"user": "alice"})
	stale := load(t, m, id)
	logout := load(t, m, id)
	logout.Destroy()
	if a := commit(t, m, logout); a != CookieExpire {
		t.Fatalf("logout: cookie action %v, want expire", a)
	}
	stale.Set("cart", "3 items")
	if a := commit(t, m, stale); a != CookieKeep {
		t.Errorf("a stale request after logout: cookie action %v, want keep (the client has no cookie any more)", a)
	}
	if got := reload(t, m, id); got != nil {
		t.Fatalf("the logged-out session came back: %v", got)
	}
}

func TestRegenerateKillsTheOldIDForStaleRequests(t *testing.T) {
	m, _, _ := newManager(t)
	id := stored(t, m, map[string]any{"n": 1.0})
	stale := load(t, m, id)
	login := load(t, m, id)
	login.Regenerate()
	login.Set("user", "alice")
	commit(t, m, login)
	newID := login.ID()
	stale.Set("n", 2)
	commit(t, m, stale)
	if got := reload(t, m, id); got != nil {
		t.Fatalf("the old id came back after Regenerate: %v", got)
	}
	if got := reload(t, m, newID); got["user"] != "alice" || got["n"] != 1.0 {
		t.Fatalf("the new id holds %v, want user=alice and n=1", got)
	}
}

func TestManyConcurrentWritersAllKept(t *testing.T) {
	m, _, _ := newManager(t)
	id := stored(t, m, map[string]any{"start": true})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := m.Load(ctx, id)
			if err != nil {
				t.Error(err)
				return
			}
			s.Set(fmt.Sprintf("k%02d", i), i)
			if _, err := m.Commit(ctx, s); err != nil {
				t.Error(err)
			}
			m.Release(s)
		}()
	}
	wg.Wait()
	got := reload(t, m, id)
	if len(got) != 65 {
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Fatalf("64 concurrent writes of distinct keys kept %d of 64: %v", len(got)-1, keys)
	}
	m.local.mu.Lock()
	left := len(m.local.m)
	m.local.mu.Unlock()
	if left != 0 {
		t.Errorf("%d host-local entries left after every request released its session", left)
	}
}

func TestACommitWaitingForItsSessionStopsWithItsContext(t *testing.T) {
	m, _, _ := newManager(t)
	id := stored(t, m, map[string]any{"n": 1.0})
	busy, waiting := load(t, m, id), load(t, m, id)
	defer m.Release(busy)
	defer m.Release(waiting)
	busy.entry.commit <- struct{}{} // another commit of the session is running
	defer func() { <-busy.entry.commit }()
	waiting.Set("n", 2)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Commit(cctx, waiting); !errors.Is(err, context.Canceled) {
		t.Fatalf("want the caller's context error, got %v", err)
	}
}
