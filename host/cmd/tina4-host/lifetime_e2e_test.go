package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawSessionCookie returns the Set-Cookie line of the session cookie, or "".
func rawSessionCookie(resp *http.Response) string {
	for _, h := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "tina4_session=") {
			return h
		}
	}
	return ""
}

// TINA4_SESSION_LIFETIME ends a session that a client keeps active (which
// TINA4_SESSION_TTL alone would never end), even for a client that ignores
// the cookie's Max-Age and keeps sending the id.
func TestLifetimeEndsAnActiveSession(t *testing.T) {
	const ttl, lifetime = 2 * time.Second, 4 * time.Second
	s := startServer(t, serverOpts{env: []string{"TINA4_SESSION_TTL=2s", "TINA4_SESSION_LIFETIME=4s"}})
	start := time.Now()
	first := callWithCookie(t, s, "POST", "/api/session", `{"user":"ann"}`, "")
	ck := sessionCookie(first.Resp)
	if ck == nil || ck.MaxAge != 2 {
		t.Fatalf("first cookie: %v, want Max-Age 2 (the TTL)", ck)
	}
	id := ck.Value

	// The session was created within the second before start (creation is
	// counted in whole seconds), so it lives at least lifetime-1s and at
	// most lifetime from start.
	var goneAt time.Duration
	for {
		time.Sleep(500 * time.Millisecond)
		el := time.Since(start)
		r := callWithCookie(t, s, "GET", "/api/session", "", id)
		if r.Code != 200 {
			t.Fatalf("GET at %v: %d", el, r.Code)
		}
		if ck := sessionCookie(r.Resp); ck != nil && r.Values["user"] == "ann" {
			// A slide: never past the TTL, nor past what is left of the
			// lifetime.
			if left := int((lifetime - el) / time.Second); ck.Value != id || ck.MaxAge < 1 || ck.MaxAge > int(ttl/time.Second) || ck.MaxAge > left+1 {
				t.Fatalf("cookie at %v: %v; want the same id and Max-Age within the %ds left", el, ck, left)
			}
		}
		if r.Values["user"] == "ann" {
			if el > lifetime+300*time.Millisecond {
				t.Fatalf("the session is still there %v after it started (lifetime %v)", el, lifetime)
			}
			continue
		}
		if ck := sessionCookie(r.Resp); ck != nil && ck.MaxAge >= 0 {
			t.Fatalf("the request that found the session gone: cookie %v; want it expired or left alone", ck)
		}
		goneAt = el
		break
	}
	if goneAt < lifetime-time.Second-100*time.Millisecond {
		t.Fatalf("the session ended after %v, before its lifetime (%v, counted from the second it was created)", goneAt, lifetime)
	}
	if goneAt <= ttl {
		t.Fatalf("the session ended after %v: no longer than the idle TTL; the requests should have kept it", goneAt)
	}
	t.Logf("kept active by a request every 0.5s; ended after %v", goneAt.Round(10*time.Millisecond))

	// Still gone on the next request, and a new value starts a new session.
	if r := callWithCookie(t, s, "GET", "/api/session", "", id); len(r.Values) != 0 {
		t.Fatalf("after the lifetime: values %v", r.Values)
	}
	r := callWithCookie(t, s, "POST", "/api/session", `{"n":1}`, id)
	ck = sessionCookie(r.Resp)
	if r.Values["user"] != nil || r.Values["n"] != 1.0 || ck == nil || ck.Value == id || ck.MaxAge != 2 {
		t.Fatalf("after the lifetime: want a new session with only n, got %v, cookie %v", r.Values, ck)
	}
}

// callWithCookie sends one API request carrying session id (none when "")
// and decodes its JSON answer.
func callWithCookie(t *testing.T, s *hostProc, method, path, body, id string) apiResult {
	t.Helper()
	r, _, err := tryAs(s, method, path, body, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// RememberMe: the reference server's POST /api/session/remember?on= toggles
// it; off gives a browser-session cookie (no Max-Age, no Expires), and the
// choice sticks to the session on later requests that re-send the cookie.
func TestRememberMeCookieAttributes(t *testing.T) {
	s := startServer(t, serverOpts{env: []string{"TINA4_SESSION_TTL=90s"}})
	c := newClient(t)
	persistent := func(step string, r apiResult, want bool) {
		t.Helper()
		if r.Code != 200 {
			t.Fatalf("%s: %d %s", step, r.Code, r.Error)
		}
		raw := rawSessionCookie(r.Resp)
		if raw == "" {
			t.Fatalf("%s: no session cookie sent", step)
		}
		if strings.Contains(raw, "Expires") || strings.Contains(raw, "Max-Age=90") != want || strings.Contains(raw, "Max-Age") != want {
			t.Fatalf("%s: Set-Cookie %q; want Max-Age=90: %v", step, raw, want)
		}
		for _, attr := range []string{"Path=/", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(raw, attr) {
				t.Fatalf("%s: Set-Cookie %q lacks %s", step, raw, attr)
			}
		}
	}

	persistent("first value (TINA4_SESSION_PERSIST defaults to true)", call(t, c, "POST", s.url("/api/session"), `{"user":"ann"}`), true)
	id := jarID(t, c, s)
	persistent("remember off", call(t, c, "POST", s.url("/api/session/remember?on=false"), ""), false)
	if jarID(t, c, s) != id {
		t.Fatal("RememberMe must keep the session id")
	}
	persistent("a later change", call(t, c, "POST", s.url("/api/session"), `{"page":2}`), false)
	r := call(t, c, "GET", s.url("/api/session"), "")
	if raw := rawSessionCookie(r.Resp); raw != "" || r.Values["user"] != "ann" || r.Values["page"] != 2.0 {
		t.Fatalf("an unchanged request: cookie %q values %v; want no cookie and both values", raw, r.Values)
	}
	if _, ok := r.Values["remember"]; len(r.Values) != 2 || ok {
		t.Fatalf("the choice must not be a session value: %v", r.Values)
	}
	if raw := rawSessionCookie(call(t, c, "POST", s.url("/api/session/remember?on=false"), "").Resp); raw != "" {
		t.Fatalf("the same choice again changes nothing, yet the cookie was sent: %q", raw)
	}
	persistent("regenerate", call(t, c, "POST", s.url("/api/session/regenerate"), ""), false)
	if jarID(t, c, s) == id {
		t.Fatal("regenerate must change the id")
	}
	persistent("remember on", call(t, c, "POST", s.url("/api/session/remember?on=true"), ""), true)
	persistent("a later change", call(t, c, "POST", s.url("/api/session"), `{"page":3}`), true)

	if r := call(t, c, "POST", s.url("/api/session/remember?on=maybe"), ""); r.Code != 400 {
		t.Fatalf("on=maybe: want 400, got %d", r.Code)
	}

	// TINA4_SESSION_PERSIST=false: browser-session cookies unless the
	// session asks to be remembered.
	s2 := startServer(t, serverOpts{env: []string{"TINA4_SESSION_TTL=90s", "TINA4_SESSION_PERSIST=false"}})
	c2 := newClient(t)
	persistent("PERSIST=false", call(t, c2, "POST", s2.url("/api/session"), `{"user":"bob"}`), false)
	persistent("PERSIST=false, remember on", call(t, c2, "POST", s2.url("/api/session/remember?on=true"), ""), true)
	persistent("PERSIST=false, a later change", call(t, c2, "POST", s2.url("/api/session"), `{"page":2}`), true)
}
