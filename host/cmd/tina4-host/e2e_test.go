package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestSetReadDestroyThroughThePluginBinary(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)

	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("fresh GET: want 200 and no values, got %d %v", r.Code, r.Values)
	}
	r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice","n":3}`)
	if r.Code != 200 || r.Values["user"] != "alice" || r.Values["n"] != 3.0 {
		t.Fatalf("POST: want 200 with user=alice n=3, got %d %v", r.Code, r.Values)
	}
	r = call(t, c, "POST", s.url("/api/session"), `{"role":"admin"}`)
	if r.Values["user"] != "alice" || r.Values["role"] != "admin" {
		t.Fatalf("second POST should merge, got %v", r.Values)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Values["user"] != "alice" || r.Values["role"] != "admin" {
		t.Fatalf("GET after POST: want user and role, got %v", r.Values)
	}
	id := jarID(t, c, s)
	file := sessionFile(t, s.folder, id)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("session file for %s: %v", id, err)
	}
	r = call(t, c, "DELETE", s.url("/api/session"), "")
	if r.Code != 200 {
		t.Fatalf("DELETE: %d", r.Code)
	}
	if ck := sessionCookie(r.Resp); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("DELETE must expire the cookie, got %v", ck)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("DELETE must remove the stored session, stat says %v", err)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); len(r.Values) != 0 {
		t.Fatalf("after DELETE want no values, got %v", r.Values)
	}
}

func TestPostValidation(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)
	for _, body := range []string{`{"a":`, `[1,2]`, `"str"`, `null`, `{"a":1} {"b":2}`} {
		if r := call(t, c, "POST", s.url("/api/session"), body); r.Code != 400 || r.Error == "" {
			t.Errorf("POST %s: want 400 with a JSON error, got %d %q", body, r.Code, r.Error)
		}
	}
	big := `{"k":"` + strings.Repeat("x", 1<<20) + `"}`
	if r := call(t, c, "POST", s.url("/api/session"), big); r.Code != 413 {
		t.Errorf("POST of more than 1 MiB: want 413, got %d", r.Code)
	}
	if entries := storedFiles(t, s.folder); len(entries) != 0 {
		t.Errorf("rejected requests must store nothing, folder has %d entries", len(entries))
	}
}

func TestHTMLPageCountsVisits(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)
	for want := 1; want <= 3; want++ {
		resp, err := c.Get(s.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(buf.String(), fmt.Sprintf(`<div class="big">%d</div>`, want)) {
			t.Fatalf("visit %d: want the counter at %d, got %d:\n%s", want, want, resp.StatusCode, buf.String())
		}
	}
	resp, err := c.PostForm(s.url("/"), map[string][]string{"key": {"colour"}, "value": {"<b>teal</b>"}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(buf.String(), "colour") || strings.Contains(buf.String(), "<b>teal</b>") {
		t.Fatalf("form set should show the key with its value escaped:\n%s", buf.String())
	}
}

func TestHealthzReportsHandler(t *testing.T) {
	s := startServer(t, serverOpts{})
	code, m := s.health(t)
	if code != 200 || m["handler"] != "SessionFileHandler" || m["version"] == "" || m["pid"] == nil {
		t.Fatalf("healthz: want 200 with handler, version and pid, got %d %v", code, m)
	}
	if pid := s.pluginPID(t); pid == s.cmd.Process.Pid || pid == 0 {
		t.Fatalf("the handler should run in its own process, healthz pid %d, host pid %d", pid, s.cmd.Process.Pid)
	}
}

func TestCookieAttributes(t *testing.T) {
	s := startServer(t, serverOpts{env: []string{"TINA4_SESSION_TTL=90s", "TINA4_SESSION_SAMESITE=Strict", "TINA4_SESSION_SECURE=true"}})
	r := call(t, newClient(t), "POST", s.url("/api/session"), `{"a":1}`)
	var raw string
	for _, h := range r.Resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "tina4_session=") {
			raw = h
		}
	}
	for _, want := range []string{"Path=/", "Max-Age=90", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(raw, want) {
			t.Errorf("Set-Cookie %q lacks %s", raw, want)
		}
	}
	// Defaults: Lax, not Secure, Max-Age 1800.
	s2 := startServer(t, serverOpts{})
	r = call(t, newClient(t), "POST", s2.url("/api/session"), `{"a":1}`)
	ck := sessionCookie(r.Resp)
	if ck == nil || ck.MaxAge != 1800 || ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || len(ck.Value) != 43 {
		t.Fatalf("default cookie: want 43-char id, Max-Age=1800, HttpOnly, Lax, not Secure; got %+v", ck)
	}
}

func TestStoreHoldsNoReadableValues(t *testing.T) {
	s := startServer(t, serverOpts{})
	const marker = "MARKER-7f3a9c-secret-value"
	call(t, newClient(t), "POST", s.url("/api/session"), `{"note":"`+marker+`","`+marker+`":1}`)
	if hits := grepTree(t, s.folder, marker); len(hits) != 0 {
		t.Fatalf("session values must not be readable in the store; %q found in %v", marker, hits)
	}
	if entries := storedFiles(t, s.folder); len(entries) != 1 {
		t.Fatalf("want one session file, got %d", len(entries))
	}
}

func TestTamperedOrTruncatedFileIsNoSession(t *testing.T) {
	s := startServer(t, serverOpts{})
	for _, damage := range []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)-5] ^= 0x01; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"emptied", func([]byte) []byte { return nil }},
		{"garbage", func([]byte) []byte { return []byte("\x00\xffnot a session at all") }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			c := newClient(t)
			call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`)
			id := jarID(t, c, s)
			file := sessionFile(t, s.folder, id)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, damage.fn(b), 0o600); err != nil {
				t.Fatal(err)
			}
			r := call(t, c, "GET", s.url("/api/session"), "")
			if r.Code != 200 || len(r.Values) != 0 {
				t.Fatalf("a damaged session must read as no session (200, empty), got %d %v", r.Code, r.Values)
			}
			r = call(t, c, "POST", s.url("/api/session"), `{"user":"bob"}`)
			if r.Code != 200 || jarID(t, c, s) == id {
				t.Fatalf("writing after damage must start a new id, got %d, id unchanged=%v", r.Code, jarID(t, c, s) == id)
			}
		})
	}
}

func TestExpiredSessionGetsNewID(t *testing.T) {
	s := startServer(t, serverOpts{env: []string{"TINA4_SESSION_TTL=2"}})
	c := newClient(t)
	call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`)
	old := jarID(t, c, s)
	// The client keeps sending the old cookie (a browser whose clock lags).
	time.Sleep(3 * time.Second)
	req, _ := http.NewRequest("POST", s.url("/api/session"), strings.NewReader(`{"x":1}`))
	req.AddCookie(&http.Cookie{Name: "tina4_session", Value: old})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := sessionCookie(resp)
	if ck == nil || ck.Value == old || len(ck.Value) != 43 {
		t.Fatalf("an expired session must be replaced by a new id in the cookie, got %+v (old %s)", ck, old)
	}
	req, _ = http.NewRequest("GET", s.url("/api/session"), nil)
	req.AddCookie(&http.Cookie{Name: "tina4_session", Value: old})
	resp, _ = http.DefaultClient.Do(req)
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if strings.Contains(buf.String(), "alice") {
		t.Fatalf("expired session values must be gone, got %s", buf.String())
	}
	if _, err := os.Stat(sessionFile(t, s.folder, old)); !os.IsNotExist(err) {
		t.Fatalf("the expired session's file should be gone after it was read, stat: %v", err)
	}
}

func TestHostileCookiesNeverReachTheStore(t *testing.T) {
	s := startServer(t, serverOpts{})
	outside := filepath.Join(s.dir, "victim.txt")
	os.WriteFile(outside, []byte("keep me"), 0o644)
	for _, v := range []string{"../victim.txt", "../../../../etc/passwd", "..", "%2e%2e%2fvictim.txt", "AAAA", strings.Repeat("A", 42) + ".", strings.Repeat("A", 44), "tina4:session:*"} {
		req, _ := http.NewRequest("POST", s.url("/api/session"), strings.NewReader(`{"a":1}`))
		req.AddCookie(&http.Cookie{Name: "tina4_session", Value: v, Quoted: false})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ck := sessionCookie(resp)
		if resp.StatusCode != 200 || ck == nil || ck.Value == v || len(ck.Value) != 43 {
			t.Errorf("cookie %q: want 200 and a fresh 43-char id, got %d %+v", v, resp.StatusCode, ck)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep me" {
		t.Fatalf("a file outside the session folder was touched: %q", b)
	}
	for _, name := range storedFiles(t, s.folder) {
		if len(strings.TrimSuffix(filepath.Base(name), ".sess")) != 43 {
			t.Errorf("unexpected file in the session folder: %s", name)
		}
	}
}

// A session file where SessionFileHandler before 0.3.0 kept it, directly in
// the folder, is read there and moved into its subfolder by the next save.
func TestSessionFileOfAnEarlierLayoutIsReadAndMoved(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice","n":1}`); r.Code != 200 {
		t.Fatalf("POST: %d %q", r.Code, r.Error)
	}
	id := jarID(t, c, s)
	inSub := sessionFile(t, s.folder, id)
	old := filepath.Join(s.folder, id+".sess")
	if err := os.Rename(inSub, old); err != nil {
		t.Fatal(err)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("GET with the file in the folder itself: want user=alice, got %d %v", r.Code, r.Values)
	}
	if r := call(t, c, "POST", s.url("/api/session/incr/n"), ""); r.Code != 200 || r.Values["n"] != 2.0 {
		t.Fatalf("incr: want n=2, got %d %v %q", r.Code, r.Values, r.Error)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("after a save the file in the folder itself should be gone, stat: %v", err)
	}
	if _, err := os.Stat(inSub); err != nil {
		t.Errorf("after a save the session should be back in its subfolder: %v", err)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Values["user"] != "alice" || r.Values["n"] != 2.0 {
		t.Errorf("GET after the move: want user=alice, n=2, got %v", r.Values)
	}
}

func TestNoSaveWhenNothingChanged(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)
	call(t, c, "POST", s.url("/api/session"), `{"a":1}`)
	file := sessionFile(t, s.folder, jarID(t, c, s))
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r := call(t, c, "GET", s.url("/api/session"), "")
		if sessionCookie(r.Resp) != nil {
			t.Errorf("a read-only request should not resend the cookie")
		}
	}
	call(t, c, "POST", s.url("/api/session"), `{"a":1}`) // same value: no change
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatalf("the session file was rewritten by requests that changed nothing")
	}
	// A request with no cookie that never touches the session stores nothing.
	resp, _ := http.Get(s.url("/api/session"))
	resp.Body.Close()
	if sessionCookie(resp) != nil {
		t.Errorf("a request without a session must not get a cookie")
	}
	if entries := storedFiles(t, s.folder); len(entries) != 1 {
		t.Errorf("want still one session file, got %d", len(entries))
	}
}

func TestFilesArePrivate(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)
	call(t, c, "POST", s.url("/api/session"), `{"a":1}`)
	st, err := os.Stat(s.folder)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("session folder mode: want 0700, got %v (%v)", st.Mode().Perm(), err)
	}
	st, err = os.Stat(sessionFile(t, s.folder, jarID(t, c, s)))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session file mode: want 0600, got %v (%v)", st.Mode().Perm(), err)
	}
}

func TestConcurrentRequestsOnOneSession(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)
	call(t, c, "POST", s.url("/api/session"), `{"start":true}`)
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := call(t, c, "POST", s.url("/api/session"), fmt.Sprintf(`{"k%d":"%s"}`, i, strings.Repeat("v", 2000)))
			if r.Code != 200 {
				t.Errorf("concurrent POST %d: %d", i, r.Code)
			}
		}(i)
	}
	wg.Wait()
	r := call(t, c, "GET", s.url("/api/session"), "")
	if r.Code != 200 || r.Values["start"] != true {
		t.Fatalf("after concurrent writes the session must still load whole, got %d %v", r.Code, r.Values)
	}
	entries, _ := os.ReadDir(s.folder)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestKilledPluginIsRestartedAndSessionsSurvive(t *testing.T) {
	s := startServer(t, serverOpts{})
	c := newClient(t)
	call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`)
	old := s.pluginPID(t)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	saw503 := false
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := call(t, c, "GET", s.url("/api/session"), "")
		if r.Code == 200 {
			if r.Values["user"] != "alice" {
				t.Fatalf("after the restart the session must be intact, got %v", r.Values)
			}
			if code, m := s.health(t); code == 200 && int(m["pid"].(float64)) != old {
				break
			}
		} else if r.Code == 503 {
			saw503 = true
			if r.Error == "" {
				t.Errorf("503 should carry a JSON error")
			}
		} else {
			t.Fatalf("while the plugin is down want 503, got %d", r.Code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin not back within 30s:\n%s", s.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !saw503 {
		t.Logf("the plugin came back before any request saw it down")
	}
	if !strings.Contains(s.log.String(), "restart") {
		t.Errorf("the log should say the handler was restarted:\n%s", s.log)
	}
}

func TestPluginDiesWithHost(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			s := startServer(t, serverOpts{})
			pid := s.pluginPID(t)
			s.cmd.Process.Signal(sig)
			<-s.done
			if !waitGone(pid, 10*time.Second) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("plugin %d outlived its host after %v", pid, sig)
			}
		})
	}
}

func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	s := startServer(t, serverOpts{})
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"late":"yes"}`
	fmt.Fprintf(conn, "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	time.Sleep(200 * time.Millisecond) // the request is now in flight, its body not yet sent
	pid := s.pluginPID(t)
	s.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	fmt.Fprint(conn, body)
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	lines := readLines(conn)
	if len(lines) == 0 || !strings.Contains(lines[0], "200") {
		t.Fatalf("the in-flight request should complete with 200, got %q\n%s", lines, s.log)
	}
	<-s.done
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("graceful shutdown should exit 0, got %d", code)
	}
	if !waitGone(pid, 10*time.Second) {
		t.Errorf("plugin %d still running after shutdown", pid)
	}
}

func TestSecretNeverReachesPlugin(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte("TINA4_SECRET_FILE=keyfile\nTINA4_SESSION_SWEEP=30s\n"), 0o600)
	s := startServer(t, serverOpts{dir: dir})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.pluginPID(t)))
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	if strings.Contains(env, "TINA4_SECRET") || strings.Contains(env, testSecret) {
		t.Fatalf("the plugin environment holds the secret:\n%s", strings.ReplaceAll(env, "\x00", "\n"))
	}
	if !strings.Contains(env, "TINA4_SESSION_SWEEP=30s") {
		t.Fatalf("a setting made only in .env must reach the plugin:\n%s", strings.ReplaceAll(env, "\x00", "\n"))
	}
}

func TestDotEnvSettingReachesPlugin(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "from-dotenv")
	os.WriteFile(filepath.Join(dir, ".env"), []byte("TINA4_SESSION_FOLDER="+folder+"\n"), 0o600)
	// No TINA4_SESSION_FOLDER in the environment: serverOpts sets it, so start by hand.
	addr := freeAddr(t)
	cmd := exec.Command(hostBin)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), "TINA4_ADDR="+addr, "TINA4_PLUGIN_DIR="+pluginsDir, "TINA4_SECRET="+testSecret)
	var log syncBuffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	c := newClient(t)
	var r apiResult
	for i := 0; i < 400; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			r = call(t, c, "POST", "http://"+addr+"/api/session", `{"a":1}`)
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if r.Code != 200 {
		t.Fatalf("POST: %d\n%s", r.Code, log.String())
	}
	if entries := storedFiles(t, folder); len(entries) != 1 {
		t.Fatalf("the plugin should store in the folder set only in .env (%s): %v", folder, entries)
	}
}

func TestUnknownHandlerFailsStartupClearly(t *testing.T) {
	for _, name := range []string{"SessionMongoHandler", "../SessionFileHandler"} {
		cmd := exec.Command(hostBin, "serve")
		cmd.Dir = t.TempDir()
		cmd.Env = append(baseEnv(), "TINA4_SESSION_HANDLER="+name, "TINA4_PLUGIN_DIR="+pluginsDir, "TINA4_ADDR="+freeAddr(t), "TINA4_SECRET="+testSecret)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("TINA4_SESSION_HANDLER=%s: the host should refuse to start", name)
		}
		msg := string(out)
		if name == "SessionMongoHandler" {
			for _, want := range []string{pluginsDir, "SessionFileHandler", "SessionMongoHandler"} {
				if !strings.Contains(msg, want) {
					t.Errorf("startup error should mention %q:\n%s", want, msg)
				}
			}
		} else {
			if !strings.Contains(msg, "TINA4_SESSION_HANDLER=../SessionFileHandler") || !strings.Contains(msg, "not a handler name") {
				t.Errorf("a name with a path must be refused as an invalid setting, naming it:\n%s", msg)
			}
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("an invalid TINA4_SESSION_HANDLER exits %d, want 2 (as every invalid setting)", code)
			}
		}
	}
}

func TestTwoHostsShareSessions(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "shared-sessions")
	a := startServer(t, serverOpts{folder: folder})
	b := startServer(t, serverOpts{folder: folder})
	c := newClient(t)
	call(t, c, "POST", a.url("/api/session"), `{"user":"alice"}`)
	id := jarID(t, c, a)
	// The cookie jar is per host:port; carry the cookie across as a load balancer would.
	req, _ := http.NewRequest("GET", b.url("/api/session"), nil)
	req.AddCookie(&http.Cookie{Name: "tina4_session", Value: id})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(buf.String(), `"user":"alice"`) {
		t.Fatalf("host B should read the session host A wrote, got %s", buf.String())
	}
}

func TestKeyFileCreatedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, serverOpts{dir: dir, noSecret: true})
	c := newClient(t)
	call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`)
	keyFile := filepath.Join(dir, ".tina4", "secret.key")
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("want a 0600 key file at %s, got %v %v", keyFile, st, err)
	}
	if !strings.Contains(s.log.String(), keyFile) && !strings.Contains(s.log.String(), ".tina4/secret.key") {
		t.Errorf("the log should say where the key is:\n%s", s.log)
	}
	if !strings.Contains(s.log.String(), "TINA4_SECRET") {
		t.Errorf("the log should tell multi-server setups to set TINA4_SECRET:\n%s", s.log)
	}
	key1, _ := os.ReadFile(keyFile)
	s.stop()
	s2 := startServer(t, serverOpts{dir: dir, noSecret: true})
	req, _ := http.NewRequest("GET", s2.url("/api/session"), nil)
	req.AddCookie(&http.Cookie{Name: "tina4_session", Value: jarID(t, c, s)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(buf.String(), "alice") {
		t.Fatalf("after a restart the session should still open with the same key file, got %s", buf.String())
	}
	if key2, _ := os.ReadFile(keyFile); !bytes.Equal(key1, key2) {
		t.Fatalf("the key file was rewritten on restart")
	}
}

func TestPluginsCommands(t *testing.T) {
	env := append(baseEnv(), "TINA4_PLUGIN_DIR="+pluginsDir, "TINA4_SESSION_FOLDER="+t.TempDir())
	cmd := exec.Command(hostBin, "plugins")
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plugins: %v\n%s", err, out)
	}
	for _, want := range []string{"SessionFileHandler", "sha256:", "usable: yes", "version=", filepath.Join(pluginsDir, "SessionFileHandler"), "transport: fast",
		"protocols=[2 1]", "capabilities=[versions lock index]", "concurrency: record versions", "TINA4_SESSION_LOCK available"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("`plugins` output lacks %q:\n%s", want, out)
		}
	}
	cmd = exec.Command(hostBin, "plugins")
	cmd.Env = append(env, "TINA4_PLUGIN_TRANSPORT=grpc")
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "transport: grpc") || strings.Contains(string(out), "transport: fast") {
		t.Errorf("`plugins` with TINA4_PLUGIN_TRANSPORT=grpc should report gRPC for every handler, got %v:\n%s", err, out)
	}
	cmd = exec.Command(hostBin, "plugins", "verify", "SessionFileHandler")
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS SessionFileHandler") || !strings.Contains(string(out), "ok   transport: fast") {
		t.Fatalf("plugins verify: want PASS over the fast transport, got %v\n%s", err, out)
	}
	cmd = exec.Command(hostBin, "plugins", "verify", "--full", "SessionFileHandler")
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err = cmd.CombinedOutput()
	for _, want := range []string{"PASS SessionFileHandler", "ok   concurrent callers on one id never see a mix", "ok   versions: exactly one of concurrent SaveIfs of one version wins", "ok   lock: a lock expires"} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("plugins verify --full: want %q, got %v\n%s", want, err, out)
		}
	}
	cmd = exec.Command(hostBin, "plugins", "verify", "Nope")
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAIL") {
		t.Fatalf("plugins verify of a missing handler must fail, got %v\n%s", err, out)
	}
}

func TestBuiltInServesWithoutBinaries(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "no-plugins")
	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + empty}})
	code, m := s.health(t)
	if code != 200 || m["built_in"] != true || m["transport"] != "in-process" || int(m["pid"].(float64)) != s.cmd.Process.Pid {
		t.Fatalf("with no binaries the built-in file handler should serve in process, got %d %v", code, m)
	}
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"a":1}`); r.Code != 200 {
		t.Fatalf("built-in POST: %d", r.Code)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Values["a"] != 1.0 {
		t.Fatalf("built-in read back: %v", r.Values)
	}
}

func TestQuickVerifyCatchesGRPCsDefaultMessageLimit(t *testing.T) {
	cmd := exec.Command(hostBin, "plugins", "verify", "SmallMsg")
	cmd.Env = append(baseEnv(), "TINA4_PLUGIN_DIR="+hostileDir)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err == nil || !strings.Contains(string(out), "FAIL the largest record the host allows round trips") || !strings.Contains(string(out), "FAIL SmallMsg") {
		t.Fatalf("plugins verify of a handler with gRPC's 4 MiB message limit: %v; want a FAIL of the large record check\n%s", err, out)
	}
	if !strings.Contains(string(out), "ok   save then load returns the same bytes and expiry") {
		t.Errorf("the rest of the quick checks should pass for this handler:\n%s", out)
	}
}

func TestPlainStderrLinesOfAHandlerReachTheHostLog(t *testing.T) {
	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + hostileDir, "TINA4_SESSION_HANDLER=SmallMsg"}})
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"a":1}`); r.Code != 200 {
		t.Fatalf("the host does not serve after the handler's odd stderr: %d", r.Code)
	}
	s.stop()
	for _, want := range []string{`level=INFO msg="smallmsg: a plain line on stderr, before the handshake" handler=SmallMsg`,
		`level=INFO msg="{\"@message\":42,\"@level\":\"info\"}" handler=SmallMsg`} {
		if !strings.Contains(s.log.String(), want) {
			t.Errorf("the host log lacks %s:\n%s", want, s.log)
		}
	}
}

func TestPluginsListingGatesADeployAndLeavesNothingBehind(t *testing.T) {
	cwd := t.TempDir()
	run := func(env ...string) (string, int) {
		cmd := exec.Command(hostBin, "plugins")
		cmd.Env = append(append(baseEnv(), "TINA4_PLUGIN_DIR="+pluginsDir), env...)
		cmd.Dir = cwd
		out, _ := cmd.Output()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run(); code != 0 || !strings.Contains(out, "selected: TINA4_SESSION_HANDLER=SessionFileHandler (usable)") {
		t.Fatalf("plugins with a usable selected handler: exit %d\n%s", code, out)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("listing handlers left files behind in the working directory: %v", entries)
	}
	if out, code := run("TINA4_SESSION_HANDLER=SessionMongoHandler"); code != 1 || !strings.Contains(out, "FAIL: no binary of that name") {
		t.Errorf("plugins with a missing selected handler: exit %d, want 1\n%s", code, out)
	}
	// An unusable binary: group-writable.
	dir := filepath.Join(t.TempDir(), "plugins")
	os.Mkdir(dir, 0o755)
	bin, err := os.ReadFile(filepath.Join(pluginsDir, "SessionFileHandler"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "SessionFileHandler"), bin, 0o755)
	os.Chmod(filepath.Join(dir, "SessionFileHandler"), 0o775)
	if out, code := run("TINA4_PLUGIN_DIR=" + dir); code != 1 || !strings.Contains(out, "FAIL: unusable") {
		t.Errorf("plugins with an unusable selected handler: exit %d, want 1\n%s", code, out)
	}
}
