package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/loader"
	"github.com/tina4go/sessions/sdk/handlertest"
	"github.com/tina4go/sessions/shared"
)

// These tests run the Node.js example handler (docs/example-handler-node)
// the way its README says to: its npm packages installed with `npm ci`, the
// script copied into a plugin directory, selected with
// TINA4_SESSION_HANDLER, and driven through the real host binary. They need
// Node.js 20 or newer and npm on PATH, and the npm registry (or npm's cache)
// when the example's folder has no node_modules from `npm ci`; they never
// skip.

const nodeHandler = "SessionNodeFileHandler"

var (
	nodeLibOnce sync.Once
	nodeLibDir  string
	nodeLibErr  error
)

// nodeExample is the example's folder in this repository.
func nodeExample(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "docs", "example-handler-node"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// requireNode fails the test, saying what to install, when node or npm is
// missing or node is older than 20.
func requireNode(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: the Node.js example handler's tests need Node.js 20 or newer with npm "+
				"(Debian: apt-get install nodejs npm)", tool)
		}
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(strings.TrimSpace(string(out)), ".", 2)[0], "v"))
	if major < 20 {
		t.Fatalf("node %s is too old: the Node.js example handler needs Node.js 20 or newer", strings.TrimSpace(string(out)))
	}
}

// nodeLib returns a folder whose node_modules holds the example's packages
// exactly as its package-lock.json pins them: the example's own folder when
// `npm ci` ran there, else a copy of package.json and package-lock.json in
// which the test runs `npm ci` once per test binary.
func nodeLib(t *testing.T) string {
	t.Helper()
	requireNode(t)
	src := nodeExample(t)
	nodeLibOnce.Do(func() {
		if installedAsLocked(src) {
			nodeLibDir = src
			return
		}
		dir, err := os.MkdirTemp(filepath.Dir(pluginsDir), "node-lib-")
		if err != nil {
			nodeLibErr = err
			return
		}
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				nodeLibErr = err
				return
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				nodeLibErr = err
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		npm := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			nodeLibErr = fmt.Errorf("npm ci in a copy of %s: %v\n%s", src, err, out)
			return
		}
		nodeLibDir = dir
	})
	if nodeLibErr != nil {
		t.Fatalf("install the Node.js example's packages: %v", nodeLibErr)
	}
	return nodeLibDir
}

// installedAsLocked reports whether dir/node_modules is what `npm ci`
// makes of dir/package-lock.json (npm records what it installed in
// node_modules/.package-lock.json).
func installedAsLocked(dir string) bool {
	type pkg struct{ Version, Integrity string }
	read := func(p string) map[string]pkg {
		var lock struct{ Packages map[string]pkg }
		b, err := os.ReadFile(p)
		if err != nil || json.Unmarshal(b, &lock) != nil {
			return nil
		}
		delete(lock.Packages, "") // the project itself
		return lock.Packages
	}
	want := read(filepath.Join(dir, "package-lock.json"))
	return len(want) > 0 && reflect.DeepEqual(want, read(filepath.Join(dir, "node_modules", ".package-lock.json")))
}

// nodePluginDir copies the handler script into a new plugin directory
// (mode 0755, the script 0755) and returns the directory.
func nodePluginDir(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(nodeExample(t), nodeHandler))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, nodeHandler)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return dir
}

func TestNodeHandlerServesSessionsThatSurviveARestart(t *testing.T) {
	lib := nodeLib(t)
	plugins := nodePluginDir(t)
	dir := t.TempDir() // the hosts' working directory; sessions in dir/sessions
	folder := filepath.Join(dir, "sessions")
	env := []string{"TINA4_PLUGIN_DIR=" + plugins, "TINA4_SESSION_HANDLER=" + nodeHandler, "TINA4_SESSION_NODE_LIB=" + lib}

	s := startServer(t, serverOpts{dir: dir, env: env})
	if code, m := s.health(t); code != 200 || m["handler"] != nodeHandler || m["built_in"] != false || m["transport"] != "grpc" {
		t.Fatalf("healthz: want 200 naming %s as a plugin over gRPC, got %d %v", nodeHandler, code, m)
	}
	if pid := s.pluginPID(t); pid == s.cmd.Process.Pid {
		t.Fatalf("the handler should run in its own process")
	}
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice","n":3}`); r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("POST: want 200 with user=alice, got %d %v %q\n%s", r.Code, r.Values, r.Error, s.log)
	}
	if r := call(t, c, "POST", s.url("/api/session"), `{"role":"admin"}`); r.Code != 200 || r.Values["user"] != "alice" || r.Values["role"] != "admin" {
		t.Fatalf("second POST should merge, got %d %v %q", r.Code, r.Values, r.Error)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "alice" || r.Values["role"] != "admin" || r.Values["n"] != 3.0 {
		t.Fatalf("GET after POSTs: want user, role and n, got %d %v", r.Code, r.Values)
	}
	id := jarID(t, c, s)
	file := filepath.Join(folder, id+".sess")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the handler should keep session %s in %s: %v (folder holds %v)", id, file, err, storedFiles(t, folder))
	}
	if !bytes.HasPrefix(b, []byte("tina4-session-v2 ")) || bytes.Contains(b, []byte("alice")) {
		t.Fatalf("the session file should hold a v2 header and the sealed record, not clear values: %.80q", b)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(folder); st.Mode().Perm() != 0o700 {
		t.Errorf("session folder mode %v, want 0700", st.Mode().Perm())
	}
	if !strings.Contains(s.log.String(), "serving sessions from "+folder) {
		t.Errorf("the handler's start-up line should reach the host's log:\n%s", s.log)
	}
	s.stop()

	// A new host on the same folder, now pinning the script (the host runs
	// a private copy of it, in a private directory) and finding the npm
	// packages through NODE_PATH, which TINA4_PLUGIN_ENV forwards.
	script, err := os.ReadFile(filepath.Join(plugins, nodeHandler))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	s = startServer(t, serverOpts{dir: dir, env: []string{
		"TINA4_PLUGIN_DIR=" + plugins, "TINA4_SESSION_HANDLER=" + nodeHandler,
		"TINA4_SESSION_HANDLER_SHA256=" + hex.EncodeToString(sum[:]),
		"NODE_PATH=" + filepath.Join(lib, "node_modules"), "TINA4_PLUGIN_ENV=NODE_PATH",
	}})
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "alice" || r.Values["role"] != "admin" {
		t.Fatalf("after a restart the session should still be there, got %d %v %q\n%s", r.Code, r.Values, r.Error, s.log)
	}
	if r := call(t, c, "POST", s.url("/api/session"), `{"step":2}`); r.Code != 200 || r.Values["step"] != 2.0 || r.Values["user"] != "alice" {
		t.Fatalf("POST after the restart: got %d %v %q", r.Code, r.Values, r.Error)
	}
	s.stop()

	// The files are the Go file handler's format: it reads them too.
	s = startServer(t, serverOpts{dir: dir, env: []string{"TINA4_SESSION_HANDLER=SessionFileHandler"}})
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "alice" || r.Values["step"] != 2.0 {
		t.Fatalf("SessionFileHandler on the same folder should read the session, got %d %v %q", r.Code, r.Values, r.Error)
	}
	s.stop()

	s = startServer(t, serverOpts{dir: dir, env: env})
	r := call(t, c, "DELETE", s.url("/api/session"), "")
	if r.Code != 200 {
		t.Fatalf("DELETE: want 200, got %d %q", r.Code, r.Error)
	}
	if ck := sessionCookie(r.Resp); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("DELETE must expire the cookie, got %v", ck)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("DELETE must remove the session file, stat says %v", err)
	}
	if r := withCookie(t, "GET", s.url("/api/session"), id, ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("the destroyed id sent again: want 200 and no values, got %d %v", r.Code, r.Values)
	}
}

func TestNodeHandlerPluginsVerify(t *testing.T) {
	lib := nodeLib(t)
	plugins := nodePluginDir(t)
	for _, args := range [][]string{
		{"plugins", "verify", nodeHandler},
		{"plugins", "verify", "--full", nodeHandler},
	} {
		cmd := exec.Command(hostBin, args...)
		cmd.Env = append(baseEnv(), "TINA4_PLUGIN_DIR="+plugins, "TINA4_SESSION_NODE_LIB="+lib,
			"TINA4_SESSION_FOLDER="+filepath.Join(t.TempDir(), "sessions"))
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "PASS "+nodeHandler) {
			t.Fatalf("tina4-host %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if skippedBesidesIndex(string(out)) || !strings.Contains(string(out), "transport: grpc") {
			t.Fatalf("tina4-host %s: want every check run over gRPC (only the index checks skipped: the example keeps no user index):\n%s", strings.Join(args, " "), out)
		}
	}
}

func TestNodeHandlerConformance(t *testing.T) {
	lib := nodeLib(t)
	plugins := nodePluginDir(t)
	env := []string{"TINA4_SESSION_FOLDER=" + filepath.Join(t.TempDir(), "sessions"), "TINA4_SESSION_NODE_LIB=" + lib}

	h, err := loader.Open(context.Background(), loader.Config{Name: nodeHandler, Dir: plugins, Env: env,
		CallTimeout: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("launch %s: %v", nodeHandler, err)
	}
	info, err := h.Info(context.Background())
	h.Shutdown()
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != nodeHandler || !slices.Equal(info.Protocols, []int{2, 1}) || info.FastAddr != "" ||
		!info.HasCapability(shared.CapabilityHealth) || !info.HasCapability(shared.CapabilityVersions) || !info.HasCapability(shared.CapabilityLock) {
		t.Fatalf("Info: want %s, protocols [2 1], capabilities health, versions and lock, no fast transport; got %+v", nodeHandler, info)
	}
	// Every check runs but the index ones: the example offers versions and
	// lock, not a user index.
	handlertest.RunBinary(t, plugins, nodeHandler, env)
}

// TestNodeHandlerErrorsReachTheHostAsTheirKinds checks what the kit does
// not: the gRPC status of each failure, as the host's errors.Is sees it.
func TestNodeHandlerErrorsReachTheHostAsTheirKinds(t *testing.T) {
	lib := nodeLib(t)
	plugins := nodePluginDir(t)
	folder := filepath.Join(t.TempDir(), "sessions")
	h, err := loader.Open(context.Background(), loader.Config{Name: nodeHandler, Dir: plugins,
		Env:         []string{"TINA4_SESSION_FOLDER=" + folder, "TINA4_SESSION_NODE_LIB=" + lib},
		CallTimeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("launch %s: %v", nodeHandler, err)
	}
	defer h.Shutdown()
	ctx := context.Background()
	if _, err := h.Load(ctx, "not-a-session-id"); !errors.Is(err, shared.ErrInvalidID) {
		t.Errorf("Load of a malformed id: want shared.ErrInvalidID (INVALID_ARGUMENT), got %v", err)
	}
	id := handlertest.NewID()
	var remote *shared.RemoteError
	if _, err := h.Lock(ctx, id, "", time.Second); !errors.As(err, &remote) {
		t.Errorf("Lock with an empty token: want a *shared.RemoteError (UNKNOWN), got %v", err)
	}
	// The store fails: a directory stands where the session's file goes.
	if err := os.Mkdir(filepath.Join(folder, id+".sess"), 0o700); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"Save": h.Save(ctx, id, shared.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}),
		"Load": func() error { _, err := h.Load(ctx, id); return err }(),
	} {
		if !errors.As(err, &remote) || strings.Contains(err.Error(), id) {
			t.Errorf("%s when the store fails: want a *shared.RemoteError (UNKNOWN) that does not name the whole id, got %v", what, err)
		}
	}
	if entries := storedFiles(t, folder); len(entries) != 1 {
		t.Errorf("a failed Save must remove its temporary file; the folder holds %v", entries)
	}
}

// TestNodeHandlerEmbedsTheWireContract checks that the session proto
// embedded in the script is shared/proto/session.proto (comments, layout
// and the Go package option aside).
func TestNodeHandlerEmbedsTheWireContract(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(nodeExample(t), nodeHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)const SESSION_PROTO = `(.*?)`").FindSubmatch(script)
	if m == nil {
		t.Fatalf("%s holds no SESSION_PROTO", nodeHandler)
	}
	proto, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "proto", "session.proto"))
	if err != nil {
		t.Fatal(err)
	}
	norm := func(b []byte) string {
		s := regexp.MustCompile(`//[^\n]*`).ReplaceAllString(string(b), "")
		s = regexp.MustCompile(`option go_package[^;]*;`).ReplaceAllString(s, "")
		return regexp.MustCompile(`\s+`).ReplaceAllString(s, "")
	}
	if got, want := norm(m[1]), norm(proto); got != want {
		t.Fatalf("the proto embedded in %s differs from shared/proto/session.proto; copy the changes into it\nembedded: %s\nfile:     %s", nodeHandler, got, want)
	}
}

// skippedBesidesIndex reports whether a verify output skipped any check
// other than the index ones (DestroyAll's capability, which the examples in
// other languages do not offer).
func skippedBesidesIndex(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "skip ") && !strings.HasPrefix(line, "skip index:") {
			return true
		}
	}
	return false
}
