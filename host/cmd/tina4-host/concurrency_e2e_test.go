package main

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tina4go/sessions/internal/redistest"
)

// concurrentWrites sends 64 POSTs at once on one session, each setting a
// key of its own, then reads the session back: every key must be there.
func concurrentWrites(t *testing.T, s *hostProc) {
	t.Helper()
	c := newClient(t)
	r := call(t, c, "POST", s.url("/api/session"), `{"start":1}`)
	if r.Code != 200 {
		t.Fatalf("create: %d", r.Code)
	}
	u, _ := url.Parse(s.url("/"))
	cookies := c.Jar.Cookies(u)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each request its own client with the same cookie, as tabs
			// of one browser send them.
			jar, _ := cookiejar.New(nil)
			jar.SetCookies(u, cookies)
			r, err := tryCall(&http.Client{Jar: jar}, "POST", s.url("/api/session"), fmt.Sprintf(`{"k%02d":%d}`, i, i))
			if err == nil && r.Code != 200 {
				err = fmt.Errorf("POST k%02d: %d %s", i, r.Code, r.Error)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := call(t, c, "GET", s.url("/api/session"), "").Values
	var missing []string
	for i := range 64 {
		if _, ok := got[fmt.Sprintf("k%02d", i)]; !ok {
			missing = append(missing, fmt.Sprintf("k%02d", i))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("64 concurrent writes of distinct keys to one session lost %d: %s", len(missing), strings.Join(missing, " "))
	}
}

func TestConcurrentWritesToOneSessionAreAllKept(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		concurrentWrites(t, startServer(t, serverOpts{}))
	})
	t.Run("redis", func(t *testing.T) {
		rs := redistest.Start(t)
		concurrentWrites(t, startRedisHost(t, rs))
	})
}
