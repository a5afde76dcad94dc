package session

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventLog is an Events that writes down what it is told.
type eventLog struct {
	mu    sync.Mutex
	got   []string
	sizes []int
}

func (e *eventLog) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, s)
}

func (e *eventLog) SessionCreated()          { e.add("created") }
func (e *eventLog) SessionDestroyed()        { e.add("destroyed") }
func (e *eventLog) SessionRegenerated()      { e.add("regenerated") }
func (e *eventLog) TokenRejected(why string) { e.add("rejected " + why) }
func (e *eventLog) RecordSaved(n int)        { e.add("saved"); e.sizes = append(e.sizes, n) }
func (e *eventLog) take() (got []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	got, e.got = e.got, nil
	return got
}

// eventManagers returns a Manager of an unversioned store and one of a
// versioned store.
func eventManagers(t *testing.T) map[string]*Manager {
	m1, _, _ := newManager(t)
	m2, _, _ := newManager(t)
	vs := newVstore()
	m2.Store, m2.Versioned = vs, vs
	return map[string]*Manager{"unversioned": m1, "versioned": m2}
}

func wantEvents(t *testing.T, ev *eventLog, step string, want ...string) {
	t.Helper()
	if got := ev.take(); !slices.Equal(got, want) {
		t.Fatalf("%s: events %q, want %q", step, got, want)
	}
}

func TestEventsOfASessionsLife(t *testing.T) {
	for name, m := range eventManagers(t) {
		t.Run(name, func(t *testing.T) {
			ev := &eventLog{}
			m.Events = ev
			s := m.New()
			commit(t, m, s)
			wantEvents(t, ev, "untouched new session")

			s = m.New()
			s.Set("user", "alice")
			commit(t, m, s)
			wantEvents(t, ev, "first commit", "saved", "created")
			id := s.ID()

			s = load(t, m, id)
			s.Set("role", "admin")
			commit(t, m, s)
			wantEvents(t, ev, "update", "saved")

			s = load(t, m, id)
			commit(t, m, s)
			wantEvents(t, ev, "read only")

			s = load(t, m, id)
			s.Regenerate()
			commit(t, m, s)
			wantEvents(t, ev, "regenerate", "saved", "regenerated")
			if s.ID() == id {
				t.Fatal("regenerate kept the id")
			}
			id = s.ID()

			s = load(t, m, id)
			s.Destroy()
			commit(t, m, s)
			wantEvents(t, ev, "destroy", "destroyed")

			// Destroy, then values: the old session ends, a new one starts.
			id = stored(t, m, map[string]any{"a": 1})
			ev.take()
			s = load(t, m, id)
			s.Destroy()
			s.Set("b", 2)
			commit(t, m, s)
			wantEvents(t, ev, "destroy then set", "destroyed", "saved", "created")

			// Every value removed: the record is deleted.
			id = s.ID()
			s = load(t, m, id)
			s.Unset("b")
			commit(t, m, s)
			wantEvents(t, ev, "emptied", "destroyed")

			// Regenerate, then Destroy: one session ended, nothing moved.
			id = stored(t, m, map[string]any{"a": 1})
			ev.take()
			s = load(t, m, id)
			s.Regenerate()
			s.Destroy()
			commit(t, m, s)
			wantEvents(t, ev, "regenerate then destroy", "destroyed")
		})
	}
}

func TestEventsOfRejectedTokens(t *testing.T) {
	m, st, c := newManager(t)
	ev := &eventLog{}
	m.Events = ev

	id := stored(t, m, map[string]any{"a": 1})
	r := st.m[id]
	r.Data[len(r.Data)-3] ^= 1
	if s, _ := m.Load(ctx, id); !s.IsNew() {
		t.Fatal("a tampered record opened")
	}
	wantEvents(t, ev, "tampered", "saved", "created", "rejected invalid")

	// This store hands back expired records (real handlers drop them).
	id = stored(t, m, map[string]any{"a": 1})
	c.t = c.t.Add(m.TTL + time.Second)
	if s, _ := m.Load(ctx, id); !s.IsNew() {
		t.Fatal("an expired record opened")
	}
	wantEvents(t, ev, "expired", "saved", "created", "rejected expired")

	// An id with no record is not a rejected token.
	if s, _ := m.Load(ctx, NewID()); !s.IsNew() {
		t.Fatal("an unknown id opened")
	}
	wantEvents(t, ev, "unknown id")
}

func TestEventsRecordSizes(t *testing.T) {
	m, st, _ := newManager(t)
	ev := &eventLog{}
	m.Events = ev
	s := m.New()
	s.Set("blob", strings.Repeat("x", 10_000))
	commit(t, m, s)
	if len(ev.sizes) != 1 || ev.sizes[0] != len(st.m[s.ID()].Data) {
		t.Fatalf("sizes %v, want the stored record's %d", ev.sizes, len(st.m[s.ID()].Data))
	}
	if ev.sizes[0] < 10_000 {
		t.Fatalf("size %d is less than the value it holds", ev.sizes[0])
	}
}

// A request that loaded a session another request then destroyed writes
// nothing, and reports nothing.
func TestEventsOfAStaleRequest(t *testing.T) {
	for name, m := range eventManagers(t) {
		t.Run(name, func(t *testing.T) {
			ev := &eventLog{}
			m.Events = ev
			id := stored(t, m, map[string]any{"a": 1})
			stale := load(t, m, id)
			killer := load(t, m, id)
			ev.take()
			killer.Destroy()
			commit(t, m, killer)
			stale.Set("b", 2)
			commit(t, m, stale)
			wantEvents(t, ev, "destroy, then a stale write", "destroyed")
		})
	}
}

// Concurrent commits report one creation per session and no other
// lifecycle event.
func TestEventsUnderConcurrency(t *testing.T) {
	for name, m := range eventManagers(t) {
		t.Run(name, func(t *testing.T) {
			ev := &eventLog{}
			m.Events = ev
			id := stored(t, m, map[string]any{"n": 0})
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := m.Load(ctx, id)
					if err != nil {
						t.Error(err)
						return
					}
					s.Set(fmt.Sprint("k", i), i)
					if _, err := m.Commit(ctx, s); err != nil {
						t.Error(err)
					}
					m.Release(s)
				}()
			}
			wg.Wait()
			got := ev.take()
			if got[0] != "saved" || got[1] != "created" {
				t.Fatalf("first events %q", got[:2])
			}
			for _, e := range got[2:] {
				if e != "saved" {
					t.Fatalf("a concurrent update reported %q: %q", e, got)
				}
			}
		})
	}
}
