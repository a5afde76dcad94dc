package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests build the real binaries (bin/tina4-host and
// bin/plugins/SessionFileHandler, as `make build` lays them out) and talk to
// the running server over HTTP with a cookie jar.

var hostBin, pluginsDir, hostileDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tina4-host-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hostBin = filepath.Join(dir, "tina4-host")
	pluginsDir = filepath.Join(dir, "plugins")
	hostileDir = filepath.Join(dir, "hostile") // plugins that misbehave on purpose
	for out, pkg := range map[string]string{
		hostBin: "github.com/tina4go/sessions/host/cmd/tina4-host",
		filepath.Join(pluginsDir, "SessionFileHandler"): "github.com/tina4go/sessions/plugins/file/cmd/SessionFileHandler",
		filepath.Join(hostileDir, "Spawner"):            "github.com/tina4go/sessions/loader/testdata/spawner",
		filepath.Join(hostileDir, "Hunter"):             "github.com/tina4go/sessions/loader/testdata/hunter",
		filepath.Join(hostileDir, "SmallMsg"):           "github.com/tina4go/sessions/loader/testdata/smallmsg",
		filepath.Join(hostileDir, "Probe"):              "github.com/tina4go/sessions/loader/testdata/probe",
	} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	os.Chmod(pluginsDir, 0o755)
	os.Chmod(hostileDir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSecret = "e2e-test-secret-0123456789abcdef0123456789"

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is one running tina4-host process.
type hostProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	dir    string // working directory
	folder string // session folder
	log    *syncBuffer
	done   chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// env is a base environment: PATH and HOME only, so the developer's own
// TINA4_* variables cannot change what the tests see.
func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
}

type serverOpts struct {
	dir      string   // working directory (default: a new temp dir)
	folder   string   // session folder (default: dir/sessions)
	env      []string // extra KEY=VALUE
	noSecret bool
}

// startServer starts a host process and waits until /healthz is 200.
func startServer(t *testing.T, o serverOpts) *hostProc {
	t.Helper()
	s := launchServer(t, o)
	waitHealthy(t, s, 20*time.Second)
	return s
}

// launchServer starts a host process and waits until /healthz answers at
// all, whatever its status.
func launchServer(t *testing.T, o serverOpts) *hostProc {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	if o.folder == "" {
		o.folder = filepath.Join(o.dir, "sessions")
	}
	s := &hostProc{t: t, addr: freeAddr(t), dir: o.dir, folder: o.folder, log: &syncBuffer{}, done: make(chan struct{})}
	env := append(baseEnv(), "TINA4_ADDR="+s.addr, "TINA4_PLUGIN_DIR="+pluginsDir, "TINA4_SESSION_FOLDER="+o.folder)
	if !o.noSecret {
		env = append(env, "TINA4_SECRET="+testSecret)
	}
	s.cmd = exec.Command(hostBin, "serve")
	s.cmd.Dir = o.dir
	s.cmd.Env = append(env, o.env...)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(s.url("/healthz")); err == nil {
			resp.Body.Close()
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("tina4-host exited during start-up:\n%s", s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tina4-host did not answer /healthz within 20s:\n%s", s.log)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitHealthy polls /healthz until it is 200. The bound only keeps a broken
// build from hanging the test.
func waitHealthy(t *testing.T, s *hostProc, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, m := s.health(t)
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz not 200 within %s, last %d %v\n%s", within, code, m, s.log)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *hostProc) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *hostProc) url(p string) string { return "http://" + s.addr + p }

func (s *hostProc) health(t *testing.T) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(s.url("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (s *hostProc) pluginPID(t *testing.T) int {
	t.Helper()
	code, m := s.health(t)
	if code != 200 {
		t.Fatalf("healthz %d: %v", code, m)
	}
	pid, _ := m["pid"].(float64)
	if pid <= 1 {
		// Never hand a test pid 1 to kill: healthz must report the pid the
		// host sees, not the plugin's own (1 inside its PID namespace).
		t.Fatalf("healthz reports pid %v; want the plugin's pid as the host sees it", m["pid"])
	}
	return int(pid)
}

func newClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

type apiResult struct {
	Code   int
	Values map[string]any
	Error  string
	Resp   *http.Response
}

// call sends one API request and decodes its JSON answer; any failure
// (transport, or a body that is not JSON) ends the test.
func call(t *testing.T, c *http.Client, method, u, body string) apiResult {
	t.Helper()
	r, err := tryCall(c, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "tina4_session" {
			return c
		}
	}
	return nil
}

func jarID(t *testing.T, c *http.Client, s *hostProc) string {
	u, _ := url.Parse(s.url("/"))
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "tina4_session" {
			return ck.Value
		}
	}
	return ""
}

// stripeLock is the name of the file handler's fixed lock files
// (.lock-00 to .lock-3f), which every session folder holds.
var stripeLock = regexp.MustCompile(`^\.lock-[0-9a-f]{2}$`)

// storedFiles lists the names in a session folder other than the file
// handler's stripe lock files: what requests stored.
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		switch {
		case stripeLock.MatchString(e.Name()):
		case e.IsDir() && subfolder.MatchString(e.Name()):
			sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range sub {
				names = append(names, e.Name()+"/"+f.Name())
			}
		default:
			names = append(names, e.Name())
		}
	}
	return names
}

// subfolder matches the names of the file handler's subfolders, 00 to 3f.
var subfolder = regexp.MustCompile(`^[0-3][0-9a-f]$`)

// sessionFile returns the file in which the file handler keeps session id
// under folder (in one of its subfolders), or a path that does not exist
// when there is none.
func sessionFile(t *testing.T, folder, id string) string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(folder, "[0-3][0-9a-f]", id+".sess"))
	if err != nil {
		t.Fatal(err)
	}
	switch len(found) {
	case 0:
		return filepath.Join(folder, "no-such-subfolder", id+".sess")
	case 1:
		return found[0]
	}
	t.Fatalf("session %s is in more than one subfolder: %v", id, found)
	return ""
}

// grepTree reports the files under dir whose bytes contain marker.
func grepTree(t *testing.T, dir, marker string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(marker)) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}

func waitGone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return true
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func readLines(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
