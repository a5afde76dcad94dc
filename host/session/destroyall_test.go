package session

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// istore is a vstore that indexes records by principal.
type istore struct{ *vstore }

func (s istore) CloseAll(_ context.Context, principal string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, r := range s.m {
		if r.Principal == principal {
			delete(s.m, id)
			n++
		}
	}
	return n, nil
}

func indexedHosts(t *testing.T) (*Manager, *Manager, istore) {
	a, b, vs := twoHosts(t)
	st := istore{vs}
	a.Indexer, b.Indexer = st, st
	return a, b, st
}

func TestDestroyAllEndsTheUsersSessionsOnly(t *testing.T) {
	a, b, _ := indexedHosts(t)
	login := func(m *Manager, user string) string {
		s := m.New()
		s.Set("x", 1)
		s.SetUser(user)
		commit(t, m, s)
		return s.ID()
	}
	a1, a2, bob := login(a, "alice"), login(b, "alice"), login(a, "bob")
	anon := stored(t, a, map[string]any{"guest": true})
	// A session regenerated keeps its user.
	s := load(t, b, a2)
	s.Regenerate()
	commit(t, b, s)
	a2 = s.ID()
	n, err := b.DestroyAll(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("DestroyAll(alice) = %d, %v; want 2", n, err)
	}
	for _, id := range []string{a1, a2} {
		if got := reload(t, a, id); got != nil {
			t.Fatalf("alice's session %s survived: %v", id, got)
		}
	}
	if reload(t, a, bob) == nil || reload(t, b, anon) == nil {
		t.Fatal("DestroyAll(alice) ended another session")
	}
}

func TestSetUserEmptyDetachesAndDestroyForgetsTheUser(t *testing.T) {
	a, _, st := indexedHosts(t)
	s := a.New()
	s.Set("x", 1)
	s.SetUser("dave")
	commit(t, a, s)
	id := s.ID()
	s = load(t, a, id)
	s.SetUser("")
	commit(t, a, s)
	st.mu.Lock()
	prn := st.m[id].Principal
	st.mu.Unlock()
	if prn != "" {
		t.Fatalf("after SetUser(\"\") the record is still indexed under %q", prn)
	}
	s = load(t, a, id)
	s.SetUser("erin")
	s.Destroy()
	s.Set("y", 2) // a new session: not erin's
	commit(t, a, s)
	if n, _ := a.DestroyAll(ctx, "erin"); n != 0 {
		t.Fatalf("a session started after Destroy kept the destroyed one's user (%d ended)", n)
	}
}

func TestDestroyAllNeedsAnIndex(t *testing.T) {
	m, _, _ := newManager(t)
	if _, err := m.DestroyAll(ctx, "alice"); !errors.Is(err, ErrNoIndex) {
		t.Fatalf("DestroyAll without an index: %v, want ErrNoIndex", err)
	}
}

func TestTheStoreNeverSeesTheUserID(t *testing.T) {
	a, _, st := indexedHosts(t)
	s := a.New()
	s.Set("x", 1)
	s.SetUser("frank@example.com")
	commit(t, a, s)
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, r := range st.m {
		if len(r.Principal) != 64 {
			t.Fatalf("principal key %q: want 64 hex digits", r.Principal)
		}
		if bytes.Contains(r.Data, []byte("frank")) || strings.Contains(r.Principal, "frank") {
			t.Fatal("the user id is readable in the store")
		}
	}
}
