package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/shared"
)

// vstore is a versioned, locking in-memory store that several Managers
// (several hosts) share.
type vstore struct {
	*countingStore
	seq       uint64
	vers      map[string]uint64
	locks     map[string]vlock
	conflicts int // SaveIfs answered with a conflict
	// always, when set, makes every SaveIf a conflict with a fresh write.
	always bool
}

type vlock struct {
	token string
	until time.Time
}

func newVstore() *vstore {
	return &vstore{countingStore: newStore(), vers: map[string]uint64{}, locks: map[string]vlock{}}
}

func (s *vstore) Load(ctx context.Context, id string) (shared.Record, error) {
	r, err := s.countingStore.Load(ctx, id)
	s.mu.Lock()
	r.Version = s.vers[id]
	s.mu.Unlock()
	return r, err
}

func (s *vstore) Save(ctx context.Context, id string, r shared.Record) error {
	if err := s.countingStore.Save(ctx, id, r); err != nil {
		return err
	}
	s.mu.Lock()
	s.seq++
	s.vers[id] = s.seq
	s.mu.Unlock()
	return nil
}

func (s *vstore) SaveIf(_ context.Context, id string, r shared.Record, expect uint64) (uint64, error) {
	if err := s.record("SaveIf", id); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[id]
	if s.always && ok {
		s.seq++
		s.vers[id] = s.seq
	}
	switch {
	case !ok && expect != 0:
		s.conflicts++
		return 0, &shared.ConflictError{}
	case ok && s.vers[id] != expect:
		s.conflicts++
		cur.Version = s.vers[id]
		return 0, &shared.ConflictError{Found: true, Current: cur}
	}
	s.m[id] = r
	s.seq++
	s.vers[id] = s.seq
	return s.seq, nil
}

func (s *vstore) Lock(_ context.Context, id, token string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[id]; ok && l.token != token && time.Now().Before(l.until) {
		return false, nil
	}
	s.locks[id] = vlock{token, time.Now().Add(ttl)}
	return true, nil
}

func (s *vstore) Unlock(_ context.Context, id, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[id].token == token {
		delete(s.locks, id)
	}
	return nil
}

// twoHosts returns two Managers (two host processes) sharing one versioned
// store, with one key and one clock.
func twoHosts(t *testing.T) (*Manager, *Manager, *vstore) {
	t.Helper()
	a, _, c := newManager(t)
	st := newVstore()
	a.Store, a.Versioned = st, st
	b := &Manager{Store: st, Versioned: st, Codec: a.Codec, TTL: a.TTL, Now: c.now}
	return a, b, st
}

func TestTwoHostsKeepEachOthersKeys(t *testing.T) {
	a, b, st := twoHosts(t)
	id := stored(t, a, map[string]any{"start": true})
	var wg sync.WaitGroup
	for i := range 64 {
		m := a
		if i%2 == 1 {
			m = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := m.Load(ctx, id)
			if err != nil {
				t.Error(err)
				return
			}
			defer m.Release(s)
			s.Set(fmt.Sprintf("k%02d", i), i)
			if _, err := m.Commit(ctx, s); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := reload(t, a, id); len(got) != 65 {
		t.Fatalf("64 concurrent writes of distinct keys from two hosts kept %d", len(got)-1)
	}
	t.Logf("%d conflicting saves were merged", st.conflicts)
}

func TestTwoHostsOverlappingRequestsMerge(t *testing.T) {
	a, b, st := twoHosts(t)
	id := stored(t, a, map[string]any{"x": "old", "keep": 1.0})
	ra, rb := load(t, a, id), load(t, b, id)
	ra.Set("a", "from a")
	ra.Unset("x")
	rb.Set("b", "from b")
	commit(t, a, ra)
	commit(t, b, rb) // b loaded before a committed, on another host
	want := map[string]any{"a": "from a", "b": "from b", "keep": 1.0}
	if got := reload(t, b, id); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after two overlapping requests on two hosts: %v, want %v", got, want)
	}
	if st.conflicts != 1 {
		t.Errorf("%d conflicts, want 1 (b's save must have found a's write)", st.conflicts)
	}
}

func TestTwoHostsLastCommitWinsForOneKey(t *testing.T) {
	a, b, _ := twoHosts(t)
	id := stored(t, a, map[string]any{"k": 0.0})
	ra, rb := load(t, a, id), load(t, b, id)
	ra.Set("k", 1)
	rb.Set("k", 2)
	commit(t, b, rb)
	commit(t, a, ra)
	if got := reload(t, b, id)["k"]; got != 1.0 {
		t.Fatalf("k = %v, want 1 (host a committed last)", got)
	}
}

func TestTwoHostsDestroyWins(t *testing.T) {
	a, b, _ := twoHosts(t)
	id := stored(t, a, map[string]any{"user": "alice"})
	stale := load(t, b, id)
	logout := load(t, a, id)
	logout.Destroy()
	if act := commit(t, a, logout); act != CookieExpire {
		t.Fatalf("logout: cookie action %v, want expire", act)
	}
	stale.Set("cart", "3 items")
	if act := commit(t, b, stale); act != CookieKeep {
		t.Errorf("stale request on the other host: cookie action %v, want keep", act)
	}
	if got := reload(t, a, id); got != nil {
		t.Fatalf("the logged-out session came back through the other host: %v", got)
	}
}

func TestTwoHostsASlidingResaveAfterDestroyWritesNothing(t *testing.T) {
	a, b, st := twoHosts(t)
	id := stored(t, a, map[string]any{"user": "alice"})
	clk := &clock{t: a.now().Add(20 * time.Minute)} // past half the TTL: a load re-saves
	a.Now, b.Now = clk.now, clk.now
	stale := load(t, b, id)
	logout := load(t, a, id)
	logout.Destroy()
	commit(t, a, logout)
	commit(t, b, stale)
	if got := reload(t, a, id); got != nil {
		t.Fatalf("a sliding re-save brought a destroyed session back: %v (store calls %v)", got, st.ops())
	}
}

func TestTwoHostsRegenerateKillsTheOldID(t *testing.T) {
	a, b, _ := twoHosts(t)
	id := stored(t, a, map[string]any{"n": 1.0})
	stale := load(t, b, id)
	login := load(t, a, id)
	login.Regenerate()
	login.Set("user", "alice")
	commit(t, a, login)
	stale.Set("n", 2)
	commit(t, b, stale)
	if got := reload(t, b, id); got != nil {
		t.Fatalf("the old id came back through the other host after Regenerate: %v", got)
	}
	if got := reload(t, b, login.ID()); got["user"] != "alice" || got["n"] != 1.0 {
		t.Fatalf("the new id holds %v, want user=alice and n=1", got)
	}
}

func TestTwoHostsARegenerateAfterALogoutCarriesNothingOn(t *testing.T) {
	a, b, st := twoHosts(t)
	id := stored(t, a, map[string]any{"user": "alice", "cart": "3 items"})
	login := load(t, b, id)
	logout := load(t, a, id)
	logout.Destroy()
	commit(t, a, logout)
	login.Regenerate()
	login.Set("seen", true)
	if act := commit(t, b, login); act != CookieKeep {
		t.Errorf("a regenerate of a destroyed session: cookie action %v, want keep", act)
	}
	st.mu.Lock()
	left := len(st.m)
	st.mu.Unlock()
	if left != 0 {
		t.Fatalf("a regenerate that started before a logout stored %d records; the logout must win", left)
	}
}

func TestTwoHostsARegenerateTakesTheOtherHostsWrites(t *testing.T) {
	a, b, _ := twoHosts(t)
	id := stored(t, a, map[string]any{"n": 1.0})
	login := load(t, b, id)
	other := load(t, a, id)
	other.Set("theme", "dark")
	commit(t, a, other)
	login.Regenerate()
	login.Set("user", "alice")
	commit(t, b, login)
	if got := reload(t, a, login.ID()); got["theme"] != "dark" || got["user"] != "alice" {
		t.Fatalf("the regenerated session holds %v, want the other host's theme and this request's user", got)
	}
}

func TestEndlessConflictsAreABoundedError(t *testing.T) {
	a, _, st := twoHosts(t)
	id := stored(t, a, map[string]any{"n": 1.0})
	s := load(t, a, id)
	defer a.Release(s)
	st.always = true
	s.Set("n", 2)
	if _, err := a.Commit(ctx, s); !errors.Is(err, ErrContention) {
		t.Fatalf("commit under endless conflicts: %v, want ErrContention", err)
	}
	if st.conflicts != maxConflicts {
		t.Errorf("%d conditional saves, want %d", st.conflicts, maxConflicts)
	}
}

// lockingHosts returns two Managers sharing a store with session locks on.
func lockingHosts(t *testing.T) (*Manager, *Manager, *vstore) {
	a, b, st := twoHosts(t)
	for _, m := range []*Manager{a, b} {
		m.Locker, m.LockTTL, m.LockWait = st, 5*time.Second, 10*time.Second
	}
	return a, b, st
}

func TestTheLockMakesIncrementsExactAcrossHosts(t *testing.T) {
	a, b, st := lockingHosts(t)
	id := stored(t, a, map[string]any{"n": 0.0})
	const clients, each = 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		m := a
		if c%2 == 1 {
			m = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				s, err := m.Load(ctx, id)
				if err != nil {
					t.Error(err)
					return
				}
				var n int
				s.Decode("n", &n)
				s.Set("n", n+1)
				if _, err := m.Commit(ctx, s); err != nil {
					t.Error(err)
				}
				m.Release(s)
			}
		}()
	}
	wg.Wait()
	if got := reload(t, a, id)["n"]; got != float64(clients*each) {
		t.Fatalf("n = %v after %d increments from %d clients on two hosts, want exactly %d", got, clients*each, clients, clients*each)
	}
	if st.conflicts != 0 {
		t.Errorf("%d conditional saves found another request's write: the lock did not serialize load to commit", st.conflicts)
	}
}

func TestALockHeldTooLongIsAClearError(t *testing.T) {
	a, b, _ := lockingHosts(t)
	b.LockWait = 100 * time.Millisecond
	id := stored(t, a, map[string]any{"n": 0.0})
	holder := load(t, a, id)
	defer a.Release(holder)
	start := time.Now()
	_, err := b.Load(ctx, id)
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("Load while another host holds the lock: %v, want ErrLockTimeout", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the wait limit", waited)
	}
}

func TestALockOfADeadHostExpires(t *testing.T) {
	a, _, st := lockingHosts(t)
	id := stored(t, a, map[string]any{"n": 0.0})
	// A host took the lock and died: nobody will release it.
	if ok, _ := st.Lock(ctx, id, "dead-host", 300*time.Millisecond); !ok {
		t.Fatal("could not plant the dead host's lock")
	}
	s, err := a.Load(ctx, id)
	if err != nil {
		t.Fatalf("Load after the dead host's lock expired: %v", err)
	}
	a.Release(s)
}

func TestALockOnAnUnknownIDIsReleasedAtOnce(t *testing.T) {
	a, _, st := lockingHosts(t)
	id := NewID()
	s, err := a.Load(ctx, id)
	if err != nil || !s.IsNew() {
		t.Fatalf("Load of an unknown id: %v (new %v)", err, s.IsNew())
	}
	st.mu.Lock()
	held := len(st.locks)
	st.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d locks held after loading an unknown id", held)
	}
	a.Release(s)
}
