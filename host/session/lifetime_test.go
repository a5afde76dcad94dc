package session

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/host/token"
	"github.com/tina4go/sessions/shared"
)

// lifetimeManager is newManager with TTL 30m and an absolute lifetime of 1h.
func lifetimeManager(t *testing.T) (*Manager, *countingStore, *clock) {
	t.Helper()
	m, st, c := newManager(t)
	m.Lifetime = time.Hour
	return m, st, c
}

// sealedMeta opens the record stored under id and returns its expiry and
// settings.
func sealedMeta(t *testing.T, m *Manager, st *countingStore, id string) (time.Time, token.Meta) {
	t.Helper()
	st.mu.Lock()
	rec, ok := st.m[id]
	st.mu.Unlock()
	if !ok {
		t.Fatalf("no record under %s", id)
	}
	_, exp, mt, err := m.Codec.OpenMeta(id, rec.Data, m.now())
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	if !rec.Expires.Equal(exp) {
		t.Fatalf("record expiry %v, token expiry %v", rec.Expires, exp)
	}
	return exp, mt
}

// cookieFor commits s and returns the cookie the middleware would send.
func cookieFor(t *testing.T, m *Manager, s *Session, o CookieOptions) *http.Cookie {
	t.Helper()
	a, err := m.Commit(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	m.Release(s)
	return s.Cookie(a, o)
}

var opts = CookieOptions{Name: "tina4_session", TTL: 30 * time.Minute, SameSite: http.SameSiteLaxMode}

// visit sets the clock to at and makes a request on id that changes
// nothing.
func visit(t *testing.T, m *Manager, c *clock, id string, at time.Time) {
	t.Helper()
	c.t = at
	commit(t, m, load(t, m, id))
}

func saves(st *countingStore, from int) int {
	n := 0
	for _, op := range st.ops()[from:] {
		if strings.HasPrefix(op, "Save ") {
			n++
		}
	}
	return n
}

func TestLifetimeCutsAnActiveSession(t *testing.T) {
	m, st, c := lifetimeManager(t)
	t0 := c.t
	id := stored(t, m, map[string]any{"user": "ann"})
	if exp, mt := sealedMeta(t, m, st, id); !mt.Created.Equal(t0) || !exp.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("new session: created %v expires %v; want %v and +30m", mt.Created, exp, t0)
	}
	// A request every 10 minutes: the session slides at 20m (to 50m) and
	// at 40m, where the lifetime caps it at 60m.
	for _, step := range []struct {
		at      time.Duration
		saved   bool
		expires time.Duration
		maxAge  int
	}{
		{10 * time.Minute, false, 30 * time.Minute, 0},
		{20 * time.Minute, true, 50 * time.Minute, 1800},
		{30 * time.Minute, false, 50 * time.Minute, 0},
		{40 * time.Minute, true, 60 * time.Minute, 1200},
		{50 * time.Minute, false, 60 * time.Minute, 0}, // past half its TTL, but the expiry cannot move
		{59*time.Minute + 59*time.Second, false, 60 * time.Minute, 0},
	} {
		c.t = t0.Add(step.at)
		n := len(st.ops())
		s := load(t, m, id)
		ck := cookieFor(t, m, s, opts)
		if got := saves(st, n) == 1; got != step.saved {
			t.Fatalf("at %v: saved=%v, want %v (%v)", step.at, got, step.saved, st.ops()[n:])
		}
		if exp, _ := sealedMeta(t, m, st, id); !exp.Equal(t0.Add(step.expires)) {
			t.Fatalf("at %v: expires %v, want +%v", step.at, exp.Sub(t0), step.expires)
		}
		if step.saved && (ck == nil || ck.MaxAge != step.maxAge) {
			t.Fatalf("at %v: cookie %v, want Max-Age %d", step.at, ck, step.maxAge)
		}
	}
	c.t = t0.Add(time.Hour)
	if v := reload(t, m, id); v != nil {
		t.Fatalf("a session past its lifetime must be gone, got %v", v)
	}
}

func TestLifetimeCapsTheExpiryOfEveryWrite(t *testing.T) {
	m, st, c := lifetimeManager(t)
	t0 := c.t
	id := stored(t, m, map[string]any{"n": 0})
	for i := 1; i <= 12; i++ {
		c.t = t0.Add(time.Duration(i) * 5 * time.Minute)
		s, err := m.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if i == 12 {
			if !s.IsNew() {
				t.Fatalf("at 60m the session must be gone")
			}
			break
		}
		s.Set("n", i)
		ck := cookieFor(t, m, s, opts)
		exp, mt := sealedMeta(t, m, st, id)
		if !mt.Created.Equal(t0) || exp.After(t0.Add(time.Hour)) {
			t.Fatalf("write %d: created %v expires %v; want creation kept and expiry by +1h", i, mt.Created, exp.Sub(t0))
		}
		if left := int(t0.Add(time.Hour).Sub(c.t) / time.Second); ck.MaxAge > left || ck.MaxAge > 1800 {
			t.Fatalf("write %d: Max-Age %d, but %ds of lifetime left", i, ck.MaxAge, left)
		}
	}
}

func TestLifetimeEndingDuringARequestDropsItsChanges(t *testing.T) {
	m, st, c := lifetimeManager(t)
	t0 := c.t
	id := stored(t, m, map[string]any{"user": "ann"})
	visit(t, m, c, id, t0.Add(20*time.Minute)) // slides to 50m
	visit(t, m, c, id, t0.Add(40*time.Minute)) // slides to the end of its lifetime
	c.t = t0.Add(59 * time.Minute)
	s := load(t, m, id)
	c.t = t0.Add(time.Hour + time.Second) // the request outlives the session
	s.Set("more", 1)
	if a := commit(t, m, s); a != CookieExpire {
		t.Fatalf("want the cookie expired, got %v", a)
	}
	st.mu.Lock()
	_, ok := st.m[id]
	st.mu.Unlock()
	if ok || len(st.m) != 0 {
		t.Fatalf("nothing may be stored for a session past its lifetime: %v", st.ops())
	}
}

func TestRegenerateKeepsCreation(t *testing.T) {
	m, st, c := lifetimeManager(t)
	t0 := c.t
	old := stored(t, m, map[string]any{"cart": 1})
	visit(t, m, c, old, t0.Add(20*time.Minute))
	c.t = t0.Add(40 * time.Minute)
	s := load(t, m, old)
	s.Regenerate()
	s.Set("user", "ann") // a login
	ck := cookieFor(t, m, s, opts)
	id := s.ID()
	if id == old {
		t.Fatal("Regenerate must give a new id")
	}
	if exp, mt := sealedMeta(t, m, st, id); !mt.Created.Equal(t0) || !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("regenerated: created %v expires +%v; want the old creation time and +1h", mt.Created, exp.Sub(t0))
	}
	if ck.MaxAge != 1200 {
		t.Fatalf("regenerated cookie: Max-Age %d, want the 1200s left", ck.MaxAge)
	}
	c.t = t0.Add(time.Hour)
	if v := reload(t, m, id); v != nil {
		t.Fatalf("a new id must not extend the lifetime: %v", v)
	}
}

func TestDestroyStartsANewLifetime(t *testing.T) {
	m, st, c := lifetimeManager(t)
	t0 := c.t
	old := stored(t, m, map[string]any{"user": "ann"})
	visit(t, m, c, old, t0.Add(20*time.Minute))
	c.t = t0.Add(40 * time.Minute)
	s := load(t, m, old)
	s.RememberMe(false)
	s.SetTTL(5 * time.Minute)
	s.Destroy()
	s.SetTTL(10 * time.Minute) // set after Destroy: it belongs to the new session
	s.Set("flash", "bye")
	ck := cookieFor(t, m, s, opts)
	_, mt := sealedMeta(t, m, st, s.ID())
	if !mt.Created.Equal(c.t) || mt.Persist != nil || mt.TTL != 10*time.Minute {
		t.Fatalf("after Destroy: %+v; want created now, no RememberMe, TTL 10m", mt)
	}
	if ck.MaxAge != 600 {
		t.Fatalf("after Destroy: cookie %v, want Max-Age 600", ck)
	}
}

func TestOldTokensWithoutCreationCountFromIssue(t *testing.T) {
	m, st, c := lifetimeManager(t)
	t0 := c.t
	codec := m.Codec.(*token.Codec)
	put := func(issued, expires time.Time) string {
		id := NewID()
		tok, err := codec.Seal(id, []byte(`{"user":"ann"}`), issued, expires)
		if err != nil {
			t.Fatal(err)
		}
		st.mu.Lock()
		st.m[id] = shared.Record{Data: tok, Expires: expires}
		st.mu.Unlock()
		return id
	}
	// Issued 50m ago, by a host without lifetimes: 10m of lifetime left.
	id := put(t0.Add(-50*time.Minute), t0.Add(10*time.Minute))
	s := load(t, m, id)
	s.Set("n", 1)
	if ck := cookieFor(t, m, s, opts); ck.MaxAge != 600 {
		t.Fatalf("old token: cookie %v, want Max-Age 600", ck)
	}
	if exp, mt := sealedMeta(t, m, st, id); !mt.Created.Equal(t0.Add(-50*time.Minute)) || !exp.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("resealed old token: created %v expires %v; want its iat and +10m", mt.Created.Sub(t0), exp.Sub(t0))
	}
	// Issued 61m ago and still within its own expiry (a lifetime set, or
	// shortened, after it was sealed): past the lifetime, gone.
	id = put(t0.Add(-61*time.Minute), t0.Add(5*time.Minute))
	if v := reload(t, m, id); v != nil {
		t.Fatalf("a token older than the lifetime must not load: %v", v)
	}
	// Without a lifetime, neither matters.
	m.Lifetime = 0
	id = put(t0.Add(-61*time.Minute), t0.Add(5*time.Minute))
	if v := reload(t, m, id); v == nil {
		t.Fatal("without a lifetime an old token loads as before")
	}
}

func TestRememberMeCookie(t *testing.T) {
	m, _, _ := newManager(t)
	for _, tc := range []struct {
		name     string
		browser  bool  // TINA4_SESSION_PERSIST=false
		remember *bool // nil: no call
		maxAge   int
	}{
		{"default persistent", false, nil, 1800},
		{"RememberMe(false)", false, ptr(false), 0},
		{"RememberMe(true)", false, ptr(true), 1800},
		{"PERSIST=false", true, nil, 0},
		{"PERSIST=false, RememberMe(true)", true, ptr(true), 1800},
	} {
		s := m.New()
		if tc.remember != nil {
			s.RememberMe(*tc.remember)
		}
		s.Set("user", "ann")
		o := opts
		o.BrowserSession = tc.browser
		ck := cookieFor(t, m, s, o)
		if ck == nil || ck.MaxAge != tc.maxAge || ck.Value != s.ID() {
			t.Fatalf("%s: cookie %v, want Max-Age %d", tc.name, ck, tc.maxAge)
		}
		if line := ck.String(); (tc.maxAge == 0) == strings.Contains(line, "Max-Age") || strings.Contains(line, "Expires") {
			t.Fatalf("%s: Set-Cookie %q", tc.name, line)
		}
	}
	// Expiring is unaffected.
	s := m.New()
	s.RememberMe(false)
	if ck := s.Cookie(CookieExpire, opts); ck.MaxAge != -1 {
		t.Fatalf("expire: %v", ck)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRememberMePersists(t *testing.T) {
	m, st, _ := newManager(t)
	s := m.New()
	s.Set("user", "ann")
	s.RememberMe(false)
	cookieFor(t, m, s, opts)
	id := s.ID()

	s = load(t, m, id)
	if keys := s.Keys(); len(keys) != 1 || keys[0] != "user" {
		t.Fatalf("RememberMe must not be a session value: %v", keys)
	}
	s.RememberMe(false) // unchanged: nothing to write
	n := len(st.ops())
	if a := commit(t, m, s); a != CookieKeep || saves(st, n) != 0 {
		t.Fatalf("an unchanged choice must not save: %v %v", a, st.ops()[n:])
	}

	s = load(t, m, id)
	s.Set("page", 2) // a later change keeps the choice
	if ck := cookieFor(t, m, s, opts); ck == nil || ck.MaxAge != 0 {
		t.Fatalf("later commit: cookie %v, want no Max-Age", ck)
	}
	if _, mt := sealedMeta(t, m, st, id); mt.Persist == nil || *mt.Persist {
		t.Fatalf("token: %+v, want per=false", mt)
	}

	s = load(t, m, id)
	s.RememberMe(true) // a change alone re-sends the cookie
	if ck := cookieFor(t, m, s, opts); ck == nil || ck.MaxAge != 1800 {
		t.Fatalf("RememberMe(true): cookie %v, want Max-Age 1800", ck)
	}

	s = load(t, m, id)
	s.RememberMe(false)
	s.Regenerate() // kept across a new id
	cookieFor(t, m, s, opts)
	if _, mt := sealedMeta(t, m, st, s.ID()); mt.Persist == nil || *mt.Persist {
		t.Fatalf("after Regenerate: %+v, want per=false", mt)
	}
}

func TestSetTTL(t *testing.T) {
	m, st, c := newManager(t)
	t0 := c.t
	s := m.New()
	s.Set("user", "ann")
	cookieFor(t, m, s, opts)
	id := s.ID()

	s = load(t, m, id)
	s.SetTTL(5 * time.Minute)
	if ck := cookieFor(t, m, s, opts); ck == nil || ck.MaxAge != 300 {
		t.Fatalf("SetTTL(5m): cookie %v, want Max-Age 300", ck)
	}
	if exp, mt := sealedMeta(t, m, st, id); !exp.Equal(t0.Add(5*time.Minute)) || mt.TTL != 5*time.Minute {
		t.Fatalf("SetTTL(5m): expires +%v, %+v", exp.Sub(t0), mt)
	}
	// It slides at half of its own TTL, and keeps it.
	c.t = t0.Add(2 * time.Minute)
	n := len(st.ops())
	commit(t, m, load(t, m, id))
	if saves(st, n) != 0 {
		t.Fatal("no slide before half of 5m")
	}
	c.t = t0.Add(3 * time.Minute)
	if ck := cookieFor(t, m, load(t, m, id), opts); ck == nil || ck.MaxAge != 300 {
		t.Fatalf("slide at 3m: cookie %v, want Max-Age 300", ck)
	}
	c.t = t0.Add(8*time.Minute + time.Second)
	if v := reload(t, m, id); v != nil {
		t.Fatalf("idle longer than its own TTL: still there %v", v)
	}

	// Out of range: clamped, never an error.
	for _, tc := range []struct {
		d      time.Duration
		maxAge int
	}{
		{2 * time.Hour, 1800}, // longer than TINA4_SESSION_TTL: TTL
		{1500 * time.Millisecond, 1},
		{time.Millisecond, 1},
		{0, 1800},
		{-time.Minute, 1800},
	} {
		s := m.New()
		s.Set("x", 1)
		s.SetTTL(tc.d)
		if ck := cookieFor(t, m, s, opts); ck.MaxAge != tc.maxAge {
			t.Errorf("SetTTL(%v): Max-Age %d, want %d", tc.d, ck.MaxAge, tc.maxAge)
		}
	}

	// Within a lifetime, the lifetime still wins.
	m.Lifetime = time.Hour
	c.t = t0
	s = m.New()
	s.Set("x", 1)
	s.SetTTL(20 * time.Minute)
	cookieFor(t, m, s, opts)
	id = s.ID()
	for _, at := range []time.Duration{15 * time.Minute, 30 * time.Minute, 45 * time.Minute} {
		c.t = t0.Add(at)
		s = load(t, m, id)
		s.Set("at", at.String())
		ck := cookieFor(t, m, s, opts)
		if want := min(1200, int((time.Hour-at)/time.Second)); ck.MaxAge != want {
			t.Fatalf("SetTTL(20m) at %v: Max-Age %d, want %d", at, ck.MaxAge, want)
		}
	}
	if exp, _ := sealedMeta(t, m, st, id); !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("SetTTL(20m) within a 1h lifetime: expires +%v, want +1h", exp.Sub(t0))
	}
}

// A request that did not touch RememberMe or SetTTL keeps what another
// request, committed in between, chose: on one host without versions (a
// reload), on one host with them (this host's last write), across two hosts
// (a conflicting SaveIf).
func TestSettingsMergeLikeValues(t *testing.T) {
	check := func(t *testing.T, a, b *Manager) {
		t.Helper()
		id := stored(t, a, map[string]any{"x": 0})
		slow := load(t, b, id)
		fast := load(t, a, id)
		fast.RememberMe(false)
		fast.SetTTL(10 * time.Minute)
		commit(t, a, fast)
		slow.Set("y", 1)
		if ck := cookieFor(t, b, slow, opts); ck == nil || ck.MaxAge != 0 {
			t.Fatalf("the merged commit's cookie: %v, want no Max-Age", ck)
		}
		s := load(t, a, id)
		defer a.Release(s)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.persist == nil || *s.persist || s.ttl != 10*time.Minute || len(s.values) != 2 {
			t.Fatalf("after the merge: persist %v ttl %v values %v", s.persist, s.ttl, s.values)
		}
	}
	t.Run("one host", func(t *testing.T) {
		m, _, _ := newManager(t)
		check(t, m, m)
	})
	t.Run("one host, versions", func(t *testing.T) {
		m, _, _ := newManager(t)
		st := newVstore()
		m.Store, m.Versioned = st, st
		check(t, m, m)
	})
	t.Run("two hosts", func(t *testing.T) {
		a, b, _ := twoHosts(t)
		check(t, a, b)
	})
}

func TestLifetimeConfig(t *testing.T) {
	loadCfg := func(env ...string) (config.Config, error) {
		return config.Load(config.Options{Dir: t.TempDir(), Environ: env})
	}
	c, err := loadCfg()
	if err != nil || c.Lifetime != 0 || !c.Persist {
		t.Fatalf("defaults: lifetime %v persist %v err %v; want 0 and true", c.Lifetime, c.Persist, err)
	}
	for _, tc := range []struct {
		env     []string
		life    time.Duration
		persist bool
	}{
		{[]string{"TINA4_SESSION_LIFETIME=8h"}, 8 * time.Hour, true},
		{[]string{"TINA4_SESSION_LIFETIME=3600"}, time.Hour, true},
		{[]string{"TINA4_SESSION_LIFETIME=30m"}, 30 * time.Minute, true}, // equal to the TTL
		{[]string{"TINA4_SESSION_LIFETIME=0"}, 0, true},
		{[]string{"TINA4_SESSION_LIFETIME=0s"}, 0, true},
		{[]string{"TINA4_SESSION_LIFETIME=3s", "TINA4_SESSION_TTL=2s"}, 3 * time.Second, true},
		{[]string{"TINA4_SESSION_PERSIST=false"}, 0, false},
		{[]string{"TINA4_SESSION_PERSIST=no"}, 0, false},
		{[]string{"TINA4_SESSION_PERSIST=TRUE"}, 0, true},
	} {
		c, err := loadCfg(tc.env...)
		if err != nil || c.Lifetime != tc.life || c.Persist != tc.persist {
			t.Errorf("%v: lifetime %v persist %v err %v", tc.env, c.Lifetime, c.Persist, err)
		}
	}
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"TINA4_SESSION_LIFETIME=10m"}, []string{"TINA4_SESSION_LIFETIME=10m0s", "TINA4_SESSION_TTL=30m0s", "shorter"}},
		{[]string{"TINA4_SESSION_LIFETIME=1h", "TINA4_SESSION_TTL=2h"}, []string{"TINA4_SESSION_LIFETIME", "TINA4_SESSION_TTL"}},
		{[]string{"TINA4_SESSION_LIFETIME=-1h"}, []string{"TINA4_SESSION_LIFETIME=-1h", "0 for none"}},
		{[]string{"TINA4_SESSION_LIFETIME=forever"}, []string{"TINA4_SESSION_LIFETIME=forever"}},
		{[]string{"TINA4_SESSION_PERSIST=maybe"}, []string{"TINA4_SESSION_PERSIST=maybe", "true or false"}},
	} {
		_, err := loadCfg(tc.env...)
		if err == nil {
			t.Errorf("%v: want an error", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.env, err, w)
			}
		}
	}
}

// A request can commit more than once. After a commit that deleted the
// session (its last key unset), values set later start a new session with a
// lifetime of its own; and a setting this request chose before an earlier
// commit does not override what another request chose since.
func TestCommittingTwice(t *testing.T) {
	m, st, c := lifetimeManager(t)
	t0 := c.t
	s := m.New()
	s.Set("user", "ann")
	if a, err := m.Commit(ctx, s); err != nil || a != CookieSet {
		t.Fatalf("created: %v %v", a, err)
	}
	id := s.ID()
	c.t = t0.Add(10 * time.Minute)
	s.Unset("user")
	if a, err := m.Commit(ctx, s); err != nil || a != CookieExpire {
		t.Fatalf("emptied: %v %v", a, err)
	}
	s.Set("x", 1)
	if a, err := m.Commit(ctx, s); err != nil || a != CookieSet || s.ID() == id {
		t.Fatalf("refilled: %v %v", a, err)
	}
	if _, mt := sealedMeta(t, m, st, s.ID()); !mt.Created.Equal(c.t) {
		t.Fatalf("a session started after the old one was deleted: created +%v, want +10m", mt.Created.Sub(t0))
	}

	id = s.ID()
	first := load(t, m, id)
	first.RememberMe(false)
	if _, err := m.Commit(ctx, first); err != nil {
		t.Fatal(err)
	}
	other := load(t, m, id)
	other.RememberMe(true)
	commit(t, m, other)
	first.Set("y", 2)
	if ck := cookieFor(t, m, first, opts); ck == nil || ck.MaxAge == 0 {
		t.Fatalf("the other request's RememberMe(true) must stand: %v", ck)
	}
}
