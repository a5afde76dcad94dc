package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/host/token"
	"github.com/tina4go/sessions/shared"
)

// countingStore is an in-memory store that records every call.
type countingStore struct {
	mu    sync.Mutex
	m     map[string]shared.Record
	calls []string
	fail  error
}

func newStore() *countingStore { return &countingStore{m: map[string]shared.Record{}} }

func (s *countingStore) record(op, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, op+" "+id)
	return s.fail
}

func (s *countingStore) Load(_ context.Context, id string) (shared.Record, error) {
	if err := s.record("Load", id); err != nil {
		return shared.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	if !ok {
		return r, shared.ErrNotFound
	}
	return r, nil
}

func (s *countingStore) Save(_ context.Context, id string, r shared.Record) error {
	if err := s.record("Save", id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = r
	return nil
}

func (s *countingStore) Close(_ context.Context, id string) error {
	if err := s.record("Close", id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

func (s *countingStore) ops() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newManager(t *testing.T) (*Manager, *countingStore, *clock) {
	t.Helper()
	codec, err := token.New([]byte("unit-test-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	st := newStore()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	return &Manager{Store: st, Codec: codec, TTL: 30 * time.Minute, Now: c.now}, st, c
}

var ctx = context.Background()

func TestNewIDFormat(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if !shared.ValidID(id) {
			t.Fatalf("NewID() = %q does not pass ValidID", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestMalformedIDNeverReachesStore(t *testing.T) {
	m, st, _ := newManager(t)
	for _, id := range []string{"../../etc/passwd", "short", strings.Repeat("a", 42) + "/", strings.Repeat("a", 44), "tina4:session:x", ""} {
		s, err := m.Load(ctx, id)
		if err != nil || s.ID() != "" || !s.IsNew() {
			t.Errorf("Load(%q): want a new session with no id, got id=%q err=%v", id, s.ID(), err)
		}
	}
	if ops := st.ops(); len(ops) != 0 {
		t.Fatalf("malformed ids reached the store: %v", ops)
	}
}

func TestUnknownIDIsNotAdopted(t *testing.T) {
	m, _, _ := newManager(t)
	planted := NewID()
	s, err := m.Load(ctx, planted)
	if err != nil {
		t.Fatal(err)
	}
	s.Set("user", "victim")
	if _, err := m.Commit(ctx, s); err != nil {
		t.Fatal(err)
	}
	if s.ID() == planted {
		t.Fatalf("an id the store does not know must never be adopted")
	}
}

func TestRoundTripAndNoSaveWhenUnchanged(t *testing.T) {
	m, st, _ := newManager(t)
	s := m.New()
	if act, _ := m.Commit(ctx, s); act != CookieKeep || len(st.ops()) != 0 {
		t.Fatalf("an untouched new session must cost no store call and no cookie, got %v %v", act, st.ops())
	}
	s.Set("n", 1)
	if act, err := m.Commit(ctx, s); err != nil || act != CookieSet {
		t.Fatalf("first commit: want CookieSet, got %v %v", act, err)
	}
	id := s.ID()
	s2, err := m.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if ok, err := s2.Decode("n", &n); !ok || err != nil || n != 1 {
		t.Fatalf("Decode n: %v %v %d", ok, err, n)
	}
	s2.Set("n", 1) // same value
	before := len(st.ops())
	if act, _ := m.Commit(ctx, s2); act != CookieKeep || len(st.ops()) != before {
		t.Fatalf("a commit with no change must not save: %v", st.ops()[before:])
	}
}

func TestSlidingExpiryRefreshesPastHalfLife(t *testing.T) {
	m, st, c := newManager(t)
	s := m.New()
	s.Set("a", "b")
	m.Commit(ctx, s)
	c.t = c.t.Add(20 * time.Minute) // past half of 30m
	s2, _ := m.Load(ctx, s.ID())
	n := len(st.ops())
	if act, _ := m.Commit(ctx, s2); act != CookieSet || st.ops()[n] != "Save "+s.ID() {
		t.Fatalf("a read past half-life should re-save to slide the expiry, got %v %v", act, st.ops()[n:])
	}
	c.t = c.t.Add(31 * time.Minute)
	s3, _ := m.Load(ctx, s.ID())
	if !s3.IsNew() {
		t.Fatalf("a session idle longer than the TTL must be gone")
	}
}

func TestRegenerateMovesValuesAndDeletesOldID(t *testing.T) {
	m, st, _ := newManager(t)
	s := m.New()
	s.Set("cart", []int{1, 2})
	m.Commit(ctx, s)
	old := s.ID()
	s2, _ := m.Load(ctx, old)
	s2.Regenerate()
	if act, err := m.Commit(ctx, s2); err != nil || act != CookieSet {
		t.Fatalf("regenerate commit: %v %v", act, err)
	}
	if s2.ID() == old || s2.ID() == "" {
		t.Fatalf("regenerate must give a new id")
	}
	if _, ok := st.m[old]; ok {
		t.Fatalf("the old id must be deleted")
	}
	s3, _ := m.Load(ctx, s2.ID())
	if v, _ := s3.Get("cart"); v == nil {
		t.Fatalf("values must survive regeneration")
	}
}

func TestDestroyDeletesAndExpiresCookie(t *testing.T) {
	m, st, _ := newManager(t)
	s := m.New()
	s.Set("user", "alice")
	m.Commit(ctx, s)
	id := s.ID()
	s2, _ := m.Load(ctx, id)
	s2.Destroy()
	if act, err := m.Commit(ctx, s2); err != nil || act != CookieExpire {
		t.Fatalf("destroy: want CookieExpire, got %v %v", act, err)
	}
	if _, ok := st.m[id]; ok {
		t.Fatalf("destroyed session still stored")
	}
	if len(s2.All()) != 0 {
		t.Fatalf("destroyed session still has values")
	}
}

func TestStoreFailureIsAnErrorNotAnEmptySession(t *testing.T) {
	m, st, _ := newManager(t)
	s := m.New()
	s.Set("a", 1)
	m.Commit(ctx, s)
	st.fail = errors.New("disk on fire")
	if _, err := m.Load(ctx, s.ID()); err == nil {
		t.Fatalf("a failing store must give an error, not an empty session")
	}
	s.Set("a", 2)
	if _, err := m.Commit(ctx, s); err == nil {
		t.Fatalf("a failing save must be reported")
	}
}

func TestTamperedRecordIsNewSession(t *testing.T) {
	m, st, _ := newManager(t)
	s := m.New()
	s.Set("a", 1)
	m.Commit(ctx, s)
	r := st.m[s.ID()]
	r.Data[len(r.Data)-3] ^= 1
	s2, err := m.Load(ctx, s.ID())
	if err != nil || !s2.IsNew() || len(s2.All()) != 0 {
		t.Fatalf("tampered record: want a new empty session, got new=%v values=%v err=%v", s2.IsNew(), s2.All(), err)
	}
}

func TestSetRejectsUnmarshalableValue(t *testing.T) {
	s := (&Manager{}).New()
	if err := s.Set("f", func() {}); err == nil {
		t.Fatalf("Set of a func must fail")
	}
	if len(s.Keys()) != 0 {
		t.Fatalf("a failed Set must change nothing")
	}
}
