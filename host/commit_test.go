package host

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tina4go/sessions/sdk"
)

func TestCommitBeforeStreamingSetsTheCookie(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	h := testHost(t, rec)
	errc := make(chan error, 2)
	srv := httptest.NewServer(h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		FromRequest(r).Set("user", "alice")
		errc <- Commit(w, r)
		for i := range 3 {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
		}
		FromRequest(r).Set("late", true) // after the response started: saved, same cookie
		errc <- Commit(w, r)
	})))
	defer srv.Close()
	c := client(t)
	resp, body := do(t, c, "GET", srv.URL)
	if err := <-errc; err != nil {
		t.Fatalf("Commit before streaming: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Commit of a change to a stored session after the response started: %v", err)
	}
	if sessionCookie(resp) == nil || !strings.Contains(body, "chunk 2") {
		t.Fatalf("a streamed response after Commit: cookie %v, body %q", resp.Cookies(), body)
	}
	if n := strings.Count(strings.Join(resp.Header.Values("Set-Cookie"), "\n"), "tina4_session="); n != 1 {
		t.Errorf("%d session cookies in the response, want 1: %v", n, resp.Header.Values("Set-Cookie"))
	}
	got := readBack(t, h, c, srv.URL)
	if got["user"] != "alice" || got["late"] != true {
		t.Fatalf("the stored session holds %v, want user and late", got)
	}
}

func TestCommitAfterTheResponseStartedIsTooLateForANewSession(t *testing.T) {
	h := testHost(t, &recorder{m: map[string]sdk.Record{}})
	errc := make(chan error, 1)
	srv := httptest.NewServer(h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "started")
		w.(http.Flusher).Flush()
		FromRequest(r).Set("user", "alice")
		errc <- Commit(w, r)
	})))
	defer srv.Close()
	do(t, client(t), "GET", srv.URL)
	if err := <-errc; !errors.Is(err, ErrTooLate) {
		t.Fatalf("Commit of a new session after the response started: %v, want ErrTooLate", err)
	}
}

func TestCommitFailureIsReturnedAndNothingWritten(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}, saveErr: errors.New("disk full")}
	h := testHost(t, rec)
	errc := make(chan error, 1)
	srv := httptest.NewServer(h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		FromRequest(r).Set("user", "alice")
		err := Commit(w, r)
		errc <- err
		if err != nil {
			http.Error(w, "could not save your session", http.StatusInternalServerError)
		}
	})))
	defer srv.Close()
	resp, _ := do(t, client(t), "GET", srv.URL)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Commit with a failing store: %v", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if sessionCookie(resp) != nil {
		t.Errorf("a failed commit set a cookie")
	}
}

func TestCommitBeforeHijackPutsTheCookieInTheHeaders(t *testing.T) {
	h := testHost(t, &recorder{m: map[string]sdk.Record{}})
	srv := httptest.NewServer(h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		FromRequest(r).Set("user", "alice")
		if err := Commit(w, r); err != nil {
			t.Error(err)
			return
		}
		hdr := w.Header().Clone()
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n")
		hdr.Write(buf)
		buf.WriteString("\r\nok")
		buf.Flush()
	})))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sessionCookie(resp) == nil {
		t.Fatalf("the hijacked response carries no session cookie: %v", resp.Header)
	}
}

func TestCommitWithAWriterNotFromWrap(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if err := Commit(httptest.NewRecorder(), r); !errors.Is(err, ErrNotWrapped) {
		t.Fatalf("Commit outside Wrap: %v", err)
	}
}

// sessionCookie returns resp's session cookie, or nil.
func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "tina4_session" {
			return c
		}
	}
	return nil
}

// readBack reads the client's session through a fresh handler on h.
func readBack(t *testing.T, h *Host, c *http.Client, url string) map[string]any {
	t.Helper()
	got := make(chan map[string]any, 1)
	srv := httptest.NewServer(h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- FromRequest(r).All()
	})))
	defer srv.Close()
	for _, ck := range c.Jar.Cookies(mustURL(t, url)) {
		c.Jar.SetCookies(mustURL(t, srv.URL), []*http.Cookie{ck})
	}
	do(t, c, "GET", srv.URL)
	return <-got
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
