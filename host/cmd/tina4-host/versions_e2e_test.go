package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/shared"
)

// Two hosts sharing one store, as a fleet behind a load balancer: the
// requests of one session land on either. Each test runs against two
// tina4-host processes, each with its own plugin process, on one session
// folder (SessionFileHandler) and on one redis-server (SessionRedisHandler).

type pair struct{ a, b *hostProc }

// pick is the host the i-th request goes to: they alternate.
func (p pair) pick(i int) *hostProc {
	if i%2 == 0 {
		return p.a
	}
	return p.b
}

func filePair(t *testing.T, env ...string) pair {
	folder := filepath.Join(t.TempDir(), "sessions")
	return pair{
		startServer(t, serverOpts{folder: folder, env: env}),
		startServer(t, serverOpts{folder: folder, env: env}),
	}
}

func redisPair(t *testing.T, env ...string) pair {
	rs := redistest.Start(t)
	return pair{startRedisHost(t, rs, env...), startRedisHost(t, rs, env...)}
}

// bothStores runs f against a pair of hosts on each store.
func bothStores(t *testing.T, f func(t *testing.T, mk func(t *testing.T, env ...string) pair)) {
	t.Run("file", func(t *testing.T) { f(t, filePair) })
	t.Run("redis", func(t *testing.T) { f(t, redisPair) })
}

// as sends one API request carrying session id (none when ""), the way a
// browser tab that holds that cookie does, and returns the answer and the
// session cookie it set ("" when none).
func as(t *testing.T, s *hostProc, method, path, body, id string) (apiResult, string) {
	t.Helper()
	r, cookie, err := tryAs(s, method, path, body, id)
	if err != nil {
		t.Fatal(err)
	}
	return r, cookie
}

func tryAs(s *hostProc, method, path, body, id string) (apiResult, string, error) {
	jar := http.Client{Timeout: 60 * time.Second, Transport: cookieTransport(id)}
	r, err := tryCall(&jar, method, s.url(path), body)
	if err != nil {
		return r, "", err
	}
	set := ""
	if c := sessionCookie(r.Resp); c != nil {
		set = c.Value
	}
	return r, set, nil
}

// cookieTransport adds the session cookie to every request.
type cookieTransport string

func (id cookieTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if id != "" {
		req.Header.Set("Cookie", "tina4_session="+string(id))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// create starts a session on p.a holding body and returns its id.
func create(t *testing.T, s *hostProc, body string) string {
	t.Helper()
	r, id := as(t, s, "POST", "/api/session", body, "")
	if r.Code != 200 || id == "" {
		t.Fatalf("create a session: %d %s (cookie %q)", r.Code, r.Error, id)
	}
	return id
}

// values reads the session id on s: nil when it is gone (a new session).
func values(t *testing.T, s *hostProc, id string) map[string]any {
	t.Helper()
	r, _ := as(t, s, "GET", "/api/session", "", id)
	if r.Code != 200 {
		t.Fatalf("GET on %s: %d %s", s.addr, r.Code, r.Error)
	}
	if len(r.Values) == 0 {
		return nil
	}
	return r.Values
}

// parallel runs n requests at once and fails the test on any error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f(i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestTwoHostsKeepConcurrentWritesToOneSession(t *testing.T) {
	bothStores(t, func(t *testing.T, mk func(*testing.T, ...string) pair) {
		p := mk(t)
		id := create(t, p.a, `{"start":1}`)
		parallel(t, 64, func(i int) error {
			r, _, err := tryAs(p.pick(i), "POST", "/api/session", fmt.Sprintf(`{"k%02d":%d}`, i, i), id)
			if err == nil && r.Code != 200 {
				err = fmt.Errorf("POST k%02d: %d %s", i, r.Code, r.Error)
			}
			return err
		})
		for _, s := range []*hostProc{p.a, p.b} {
			got := values(t, s, id)
			var missing []string
			for i := range 64 {
				if _, ok := got[fmt.Sprintf("k%02d", i)]; !ok {
					missing = append(missing, fmt.Sprintf("k%02d", i))
				}
			}
			if len(missing) > 0 {
				t.Fatalf("64 concurrent writes of distinct keys over two hosts lost %d (read on %s): %s", len(missing), s.addr, strings.Join(missing, " "))
			}
		}
	})
}

func TestALogoutRacingSlowRequestsOnTwoHostsStaysALogout(t *testing.T) {
	bothStores(t, func(t *testing.T, mk func(*testing.T, ...string) pair) {
		p := mk(t)
		id := create(t, p.a, `{"user":"alice"}`)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each loads the session now and writes 1s later.
				r, set, err := tryAs(p.pick(i), "POST", "/api/session?delay=1s", fmt.Sprintf(`{"late%02d":true}`, i), id)
				switch {
				case err != nil:
				case r.Code != 200:
					err = fmt.Errorf("slow POST %d: %d %s", i, r.Code, r.Error)
				case set != "":
					err = fmt.Errorf("slow POST %d after the logout set a session cookie", i)
				}
				errs <- err
			}()
		}
		time.Sleep(300 * time.Millisecond) // the slow requests have loaded the session
		r, set := as(t, p.b, "DELETE", "/api/session", "", id)
		if r.Code != 200 || set != "" {
			t.Fatalf("logout: %d, cookie %q", r.Code, set)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []*hostProc{p.a, p.b} {
			if got := values(t, s, id); got != nil {
				t.Fatalf("after a logout raced by 32 slow requests the session is back on %s: %v", s.addr, got)
			}
		}
	})
}

func TestRegenerateRacingWritersOnTheOldID(t *testing.T) {
	bothStores(t, func(t *testing.T, mk func(*testing.T, ...string) pair) {
		p := mk(t)
		old := create(t, p.a, `{"cart":3}`)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, _, err := tryAs(p.pick(i), "POST", "/api/session?delay=1s", fmt.Sprintf(`{"old%02d":true}`, i), old)
				if err == nil && r.Code != 200 {
					err = fmt.Errorf("slow POST on the old id %d: %d %s", i, r.Code, r.Error)
				}
				errs <- err
			}()
		}
		time.Sleep(300 * time.Millisecond)
		r, fresh := as(t, p.b, "POST", "/api/session/regenerate", "", old)
		if r.Code != 200 || fresh == "" || fresh == old {
			t.Fatalf("regenerate: %d, new cookie %q", r.Code, fresh)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range []*hostProc{p.a, p.b} {
			if got := values(t, s, old); got != nil {
				t.Fatalf("writers on the old id brought it back after Regenerate (read on %s): %v", s.addr, got)
			}
			if got := values(t, s, fresh); len(got) != 1 || got["cart"] != 3.0 {
				t.Fatalf("the regenerated session holds %v on %s, want just cart=3 (writes to the dead id are dropped)", got, s.addr)
			}
		}
	})
}

func TestTheSessionLockMakesIncrementsExactAcrossHosts(t *testing.T) {
	bothStores(t, func(t *testing.T, mk func(*testing.T, ...string) pair) {
		p := mk(t, "TINA4_SESSION_LOCK=true", "TINA4_SESSION_LOCK_WAIT=60s")
		id := create(t, p.a, `{"n":0}`)
		const clients, each = 8, 200
		parallel(t, clients, func(c int) error {
			for i := range each {
				r, _, err := tryAs(p.pick(c+i), "POST", "/api/session/incr/n", "", id)
				if err != nil {
					return err
				}
				if r.Code != 200 {
					return fmt.Errorf("client %d increment %d: %d %s", c, i, r.Code, r.Error)
				}
			}
			return nil
		})
		if got := values(t, p.b, id)["n"]; got != float64(clients*each) {
			t.Fatalf("n = %v after %d clients x %d increments over two hosts with TINA4_SESSION_LOCK, want exactly %d", got, clients, each, clients*each)
		}
	})
}

func TestALockHeldByAKilledHostExpires(t *testing.T) {
	bothStores(t, func(t *testing.T, mk func(*testing.T, ...string) pair) {
		p := mk(t, "TINA4_SESSION_LOCK=true", "TINA4_SESSION_LOCK_TTL=2s", "TINA4_SESSION_LOCK_WAIT=30s")
		id := create(t, p.a, `{"n":0}`)
		go tryAs(p.a, "POST", "/api/session/incr/n?delay=10s", "", id) // takes the lock and sleeps
		time.Sleep(500 * time.Millisecond)
		p.a.cmd.Process.Signal(syscall.SIGKILL)
		<-p.a.done
		r, _ := as(t, p.b, "POST", "/api/session/incr/n", "", id)
		if r.Code != 200 || r.Values["n"] != 1.0 {
			t.Fatalf("a request after the lock's holder was killed: %d %v %s; want 200 with n=1 once the lock expired", r.Code, r.Values, r.Error)
		}
	})
}

func TestALockWaitPastTheLimitIs503(t *testing.T) {
	p := redisPair(t, "TINA4_SESSION_LOCK=true", "TINA4_SESSION_LOCK_WAIT=300ms")
	id := create(t, p.a, `{"n":0}`)
	done := make(chan struct{})
	go func() { tryAs(p.a, "POST", "/api/session/incr/n?delay=3s", "", id); close(done) }()
	time.Sleep(500 * time.Millisecond)
	r, _ := as(t, p.b, "POST", "/api/session/incr/n", "", id)
	if r.Code != http.StatusServiceUnavailable {
		t.Fatalf("a request that waited past TINA4_SESSION_LOCK_WAIT: %d %v, want 503", r.Code, r.Values)
	}
	<-done
	if !strings.Contains(p.b.log.String(), "TINA4_SESSION_LOCK_WAIT") {
		t.Errorf("the host log does not say which limit was passed:\n%s", p.b.log)
	}
}

func TestPluginsSaysWhatAHandlersCapabilitiesMean(t *testing.T) {
	old := describeConcurrency(shared.Info{Protocols: []int{1}})
	if !strings.Contains(old, "WARNING") || !strings.Contains(old, "last commit") || !strings.Contains(old, "TINA4_SESSION_LOCK refused") {
		t.Errorf("a protocol-1 handler is described as %q; want a warning that the last commit wins and that the lock is refused", old)
	}
	full := describeConcurrency(shared.Info{Protocols: []int{2, 1}, Capabilities: []string{shared.CapabilityVersions, shared.CapabilityLock}})
	if strings.Contains(full, "WARNING") || !strings.Contains(full, "TINA4_SESSION_LOCK available") {
		t.Errorf("a handler with versions and a lock is described as %q", full)
	}
}
