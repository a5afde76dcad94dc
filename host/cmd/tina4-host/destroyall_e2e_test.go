package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// Log out everywhere: DestroyAll ends every session of one user, on every
// host sharing the store, and nothing else.

func destroyAll(t *testing.T, s *hostProc, user string) int {
	t.Helper()
	req, _ := http.NewRequest("DELETE", s.url("/api/users/"+user+"/sessions"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Destroyed int    `json:"destroyed"`
		Error     string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("DELETE /api/users/%s/sessions: %d %s", user, resp.StatusCode, out.Error)
	}
	return out.Destroyed
}

func TestDestroyAllEndsEverySessionOfAUserOnEveryHost(t *testing.T) {
	bothStores(t, func(t *testing.T, mk func(*testing.T, ...string) pair) {
		p := mk(t)
		login := func(s *hostProc, user string) string {
			anon := create(t, s, `{"cart":1}`)
			r, id := as(t, s, "POST", "/api/session/login/"+user, "", anon)
			if r.Code != 200 || id == "" || id == anon {
				t.Fatalf("login %s: %d, cookie %q", user, r.Code, id)
			}
			return id
		}
		alice := []string{login(p.a, "alice"), login(p.b, "alice"), login(p.a, "alice")}
		bob := login(p.b, "bob")
		anon := create(t, p.a, `{"guest":true}`)
		// One of alice's sessions is written again on the other host.
		if r, _ := as(t, p.b, "POST", "/api/session", `{"theme":"dark"}`, alice[0]); r.Code != 200 {
			t.Fatalf("write: %d", r.Code)
		}
		if n := destroyAll(t, p.b, "alice"); n != 3 {
			t.Fatalf("DestroyAll(alice) ended %d sessions, want 3", n)
		}
		for _, s := range []*hostProc{p.a, p.b} {
			for i, id := range alice {
				if got := values(t, s, id); got != nil {
					t.Fatalf("alice's session %d survived DestroyAll (read on %s): %v", i, s.addr, got)
				}
			}
			if got := values(t, s, bob); got["user"] != "bob" {
				t.Fatalf("bob's session was touched: %v", got)
			}
			if got := values(t, s, anon); got["guest"] != true {
				t.Fatalf("a session with no user was touched: %v", got)
			}
		}
		if n := destroyAll(t, p.a, "alice"); n != 0 {
			t.Errorf("a second DestroyAll(alice) ended %d sessions, want 0", n)
		}
	})
}

func TestDestroyAllRacingASlowRequestStaysDone(t *testing.T) {
	p := redisPair(t)
	anon := create(t, p.a, `{"cart":1}`)
	_, id := as(t, p.a, "POST", "/api/session/login/carol", "", anon)
	done := make(chan apiResult, 1)
	go func() {
		r, _, _ := tryAs(p.b, "POST", "/api/session?delay=1s", `{"late":true}`, id)
		done <- r
	}()
	time.Sleep(300 * time.Millisecond) // the slow request has loaded the session
	if n := destroyAll(t, p.a, "carol"); n != 1 {
		t.Fatalf("DestroyAll(carol) ended %d sessions, want 1", n)
	}
	<-done
	if got := values(t, p.a, id); got != nil {
		t.Fatalf("a request that loaded before DestroyAll wrote the session back: %v", got)
	}
}
