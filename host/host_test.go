package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// recorder is an in-process handler that records every call it gets.
type recorder struct {
	mu      sync.Mutex
	m       map[string]sdk.Record
	calls   []string
	loadErr error
	saveErr error
}

func (r *recorder) log(op, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, op+" "+id)
}

func (r *recorder) ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *recorder) Load(_ context.Context, id string) (sdk.Record, error) {
	r.log("Load", id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loadErr != nil {
		return sdk.Record{}, r.loadErr
	}
	rec, ok := r.m[id]
	if !ok {
		return rec, sdk.ErrNotFound
	}
	return rec, nil
}

func (r *recorder) Save(_ context.Context, id string, rec sdk.Record) error {
	r.log("Save", id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saveErr != nil {
		return r.saveErr
	}
	r.m[id] = rec
	return nil
}

func (r *recorder) Close(_ context.Context, id string) error {
	r.log("Close", id)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
	return nil
}

func testHost(t *testing.T, rec *recorder) *Host {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_SESSION_HANDLER=Recorder", "TINA4_PLUGIN_DIR=" + dir, "TINA4_SECRET=host-test-secret-0123456789abcdef",
	}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(context.Background(), WithConfig(cfg), WithHandler("Recorder", "test", rec),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// app is a small router over the session API.
func app(t *testing.T, h *Host) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /none", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		user, _ := FromRequest(r).GetString("user")
		io.WriteString(w, user)
	})
	mux.HandleFunc("POST /set", func(w http.ResponseWriter, r *http.Request) {
		if err := FromRequest(r).Set("user", r.URL.Query().Get("v")); err != nil {
			t.Error(err)
		}
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		FromRequest(r).Regenerate()
		FromRequest(r).Set("user", "alice")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) { FromRequest(r).Destroy() })
	srv := httptest.NewServer(h.Wrap(mux))
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

func do(t *testing.T, c *http.Client, method, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestNoHandlerCallForARequestThatNeverTouchesItsSession(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, testHost(t, rec))
	c := client(t)
	do(t, c, "GET", srv.URL+"/none")
	do(t, c, "GET", srv.URL+"/get")
	if ops := rec.ops(); len(ops) != 0 {
		t.Fatalf("requests without a session cookie that change nothing must not call the handler, got %v", ops)
	}
}

func TestMalformedCookieNeverReachesTheHandler(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, testHost(t, rec))
	for _, v := range []string{"../../etc/passwd", "x", strings.Repeat("A", 44), "tina4:session:*", strings.Repeat("A", 42) + "."} {
		req, _ := http.NewRequest("POST", srv.URL+"/set?v=bob", nil)
		req.AddCookie(&http.Cookie{Name: "tina4_session", Value: v})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, op := range rec.ops() {
			if strings.HasSuffix(op, " "+v) {
				t.Fatalf("cookie %q reached the handler: %v", v, rec.ops())
			}
			if strings.HasPrefix(op, "Load") {
				t.Fatalf("a malformed cookie must not cause a Load: %v", rec.ops())
			}
		}
	}
}

func TestNoSaveWhenTheRequestChangedNothing(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, testHost(t, rec))
	c := client(t)
	do(t, c, "POST", srv.URL+"/set?v=alice")
	n := len(rec.ops())
	do(t, c, "GET", srv.URL+"/get")
	do(t, c, "POST", srv.URL+"/set?v=alice")
	for _, op := range rec.ops()[n:] {
		if !strings.HasPrefix(op, "Load ") {
			t.Fatalf("unchanged requests may only Load, got %v", rec.ops()[n:])
		}
	}
}

func TestLoadFailureAnswers503AndNeverRunsTheApp(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, testHost(t, rec))
	c := client(t)
	do(t, c, "POST", srv.URL+"/set?v=alice")
	rec.mu.Lock()
	rec.loadErr = errors.New("store is down")
	rec.mu.Unlock()
	n := len(rec.ops())
	resp, _ := do(t, c, "POST", srv.URL+"/set?v=mallory")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("want 503 when the store fails, got %d", resp.StatusCode)
	}
	for _, op := range rec.ops()[n:] {
		if strings.HasPrefix(op, "Save") {
			t.Fatalf("a failed load must never be followed by a save over real data: %v", rec.ops()[n:])
		}
	}
}

func TestSaveFailureAnswers503(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}, saveErr: errors.New("disk full")}
	srv := app(t, testHost(t, rec))
	resp, _ := do(t, client(t), "POST", srv.URL+"/set?v=alice")
	if resp.StatusCode != http.StatusServiceUnavailable || len(resp.Cookies()) != 0 {
		t.Fatalf("a failed save must answer 503 without a cookie, got %d %v", resp.StatusCode, resp.Cookies())
	}
}

func TestRegenerateOnLoginIssuesANewIDAndDropsTheOld(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, testHost(t, rec))
	c := client(t)
	resp, _ := do(t, c, "POST", srv.URL+"/set?v=anon")
	before := resp.Cookies()[0].Value
	resp, _ = do(t, c, "POST", srv.URL+"/login")
	after := resp.Cookies()[0].Value
	if after == before {
		t.Fatalf("login must issue a new session id")
	}
	if _, ok := rec.m[before]; ok {
		t.Fatalf("the pre-login id must be destroyed")
	}
	if _, body := do(t, c, "GET", srv.URL+"/get"); body != "alice" {
		t.Fatalf("after login the session holds user=alice, got %q", body)
	}
}

func TestLogoutDestroysAndExpiresTheCookie(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, testHost(t, rec))
	c := client(t)
	do(t, c, "POST", srv.URL+"/set?v=alice")
	resp, _ := do(t, c, "POST", srv.URL+"/logout")
	if len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout must expire the cookie, got %v", resp.Cookies())
	}
	if len(rec.m) != 0 {
		t.Fatalf("logout must delete the stored session, %d left", len(rec.m))
	}
	if _, body := do(t, c, "GET", srv.URL+"/get"); body != "" {
		t.Fatalf("after logout the session is empty, got %q", body)
	}
}

func TestFromRequestOutsideWrapPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatalf("FromRequest on a request that did not pass through Wrap must panic")
		}
	}()
	FromRequest(httptest.NewRequest("GET", "/", nil))
}

func TestATooLargeSessionIsNeverSent(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	dir := t.TempDir()
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_SESSION_HANDLER=Recorder", "TINA4_PLUGIN_DIR=" + dir, "TINA4_SECRET=host-test-secret-0123456789abcdef",
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	h, err := Open(context.Background(), WithConfig(cfg), WithHandler("Recorder", "test", rec),
		WithLogger(slog.New(slog.DiscardHandler)),
		WithErrorHandler(func(w http.ResponseWriter, _ *http.Request, err error) {
			got <- err
			w.WriteHeader(http.StatusInsufficientStorage)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		FromRequest(r).Set("blob", strings.Repeat("x", shared.MaxRecordSize))
	})))
	defer srv.Close()
	resp, _ := do(t, client(t), "POST", srv.URL)
	if err := <-got; !errors.Is(err, ErrTooLarge) || resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("want the error handler to get ErrTooLarge, got %v (status %d)", err, resp.StatusCode)
	}
	if ops := rec.ops(); len(ops) != 0 {
		t.Errorf("a too-large session must never reach the handler, it saw %v", ops)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAFailingStoreDoesNotFloodTheLog(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}, saveErr: errors.New("disk full")}
	logs := &lockedBuffer{}
	h := testHost(t, rec)
	h.log = slog.New(slog.NewTextHandler(logs, nil))
	h.errs = newErrorLog(h.log)
	h.errs.window = time.Hour // one window for the flood
	srv := app(t, h)
	c := client(t)
	for range 100 {
		if resp, _ := do(t, c, "POST", srv.URL+"/set?v=x"); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("want 503, got %d", resp.StatusCode)
		}
	}
	if n := strings.Count(logs.String(), "session save failed"); n != 10 {
		t.Fatalf("100 failed requests logged %d lines, want the budget of 10:\n%s", n, logs)
	}
	h.errs.mu.Lock()
	h.errs.msgs["session save failed"].start = time.Now().Add(-2 * time.Hour) // the window ends
	h.errs.mu.Unlock()
	do(t, c, "POST", srv.URL+"/set?v=x")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "session save failed") || !strings.Contains(last, "dropped=90") {
		t.Fatalf("the first line of the next window must count the 90 dropped lines, got %s", last)
	}
}

func TestAKeyFileInsideTheSessionFolderIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_SESSION_HANDLER=Recorder", "TINA4_PLUGIN_DIR=" + dir + "/plugins",
		"TINA4_SESSION_FOLDER=" + dir + "/sessions", "TINA4_SECRET_FILE=" + dir + "/sessions/secret.key",
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), WithConfig(cfg), WithHandler("Recorder", "test", &recorder{m: map[string]sdk.Record{}}),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "TINA4_SESSION_FOLDER") || !strings.Contains(err.Error(), "keep the key file outside it") {
		t.Fatalf("want a start-up error naming TINA4_SESSION_FOLDER, got %v", err)
	}
	if _, err := os.Stat(dir + "/sessions/secret.key"); !os.IsNotExist(err) {
		t.Errorf("no key file may be created there (stat: %v)", err)
	}
}

// fileHost is a host on the built-in file handler in a folder of its own,
// serving app.
func fileHost(t *testing.T, app http.Handler) (*httptest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	folder := filepath.Join(dir, "sessions")
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_PLUGIN_DIR=" + filepath.Join(dir, "no-plugins"), "TINA4_SESSION_FOLDER=" + folder,
		"TINA4_SECRET=host-test-secret-0123456789abcdef",
	}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(context.Background(), WithConfig(cfg), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	srv := httptest.NewServer(h.Wrap(app))
	t.Cleanup(srv.Close)
	return srv, folder
}

func TestALogoutRacingSlowRequestsStaysALogout(t *testing.T) {
	// Slow requests load the session, take their time, then write: the
	// logout commits while they sleep, and they commit after it.
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) { FromRequest(r).Set("user", "alice") })
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		FromRequest(r).Set(r.URL.Query().Get("k"), 1)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) { FromRequest(r).Destroy() })
	srv, folder := fileHost(t, mux)
	c := client(t)
	resp, _ := do(t, c, "POST", srv.URL+"/login")
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		cookie = ck
	}
	if cookie == nil {
		t.Fatal("login set no cookie")
	}
	send := func(path string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return nil
		}
		resp.Body.Close()
		return resp
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() { defer wg.Done(); send(fmt.Sprintf("/slow?k=k%02d", i)) }()
	}
	time.Sleep(100 * time.Millisecond) // the slow requests have loaded the session and sleep
	if r := send("/logout"); r == nil || r.StatusCode != 200 {
		t.Fatalf("logout failed")
	}
	wg.Wait()
	// Nothing may be stored: not the old id, and no new one (a stale
	// request does not start a session of its own either).
	if sessions, _ := filepath.Glob(filepath.Join(folder, "*.sess")); len(sessions) != 0 {
		t.Fatalf("after the logout, requests that loaded the session before it wrote it back: %v", sessions)
	}
}

func TestAProtocol1HandlerIsDrivenWithAWarning(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_SESSION_HANDLER=Recorder", "TINA4_PLUGIN_DIR=" + dir, "TINA4_SECRET=host-test-secret-0123456789abcdef",
	}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	h, err := Open(context.Background(), WithConfig(cfg), WithHandler("Recorder", "test", &recorder{m: map[string]sdk.Record{}}),
		WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !strings.Contains(logs.String(), "no record versions") || !strings.Contains(logs.String(), "last commit wins") {
		t.Errorf("no warning at start for a handler without record versions:\n%s", logs)
	}
	info, err := h.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(info.Capabilities, "versions") {
		t.Errorf("health reports capabilities %v for a protocol-1 handler", info.Capabilities)
	}
}

func TestTheSessionLockNeedsAHandlerThatHasOne(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_SESSION_HANDLER=Recorder", "TINA4_PLUGIN_DIR=" + dir, "TINA4_SECRET=host-test-secret-0123456789abcdef",
		"TINA4_SESSION_LOCK=true",
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), WithConfig(cfg), WithHandler("Recorder", "test", &recorder{m: map[string]sdk.Record{}}),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "TINA4_SESSION_LOCK") || !strings.Contains(err.Error(), `"lock"`) {
		t.Fatalf("Open with TINA4_SESSION_LOCK and a handler without a lock: %v; want an error naming the setting and the missing capability", err)
	}
}
