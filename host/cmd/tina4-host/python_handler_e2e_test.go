package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tina4go/sessions/loader"
	"github.com/tina4go/sessions/sdk/handlertest"
	"github.com/tina4go/sessions/shared"
)

// These tests run the Python example handler (docs/example-handler-python,
// SQLite through Debian's python3-grpcio) behind the real host binary and
// through the conformance kit: a handler in another language, over gRPC.

const pythonHandler = "SessionSQLiteHandler"

// debianPython is the interpreter the script's shebang names.
const debianPython = "/usr/bin/python3"

// pythonExample returns the example's directory and the directory of its
// generated gRPC modules, and fails (never skips) when Debian's Python or
// its gRPC packages are missing.
func pythonExample(t *testing.T) (dir, lib string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "docs", "example-handler-python"))
	if err != nil {
		t.Fatal(err)
	}
	lib = filepath.Join(dir, "lib")
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("the Python example handler needs Debian's Python at %s (%v): apt-get install python3 python3-grpcio python3-protobuf python3-cryptography", debianPython, err)
	}
	probe := exec.Command(debianPython, "-c", "import grpc, google.protobuf, cryptography, session_pb2, health_pb2, grpc_controller_pb2")
	probe.Env = []string{"PYTHONPATH=" + lib, "PYTHONDONTWRITEBYTECODE=1"}
	if out, err := probe.CombinedOutput(); err != nil {
		t.Fatalf("the Python example handler cannot import its modules with %s: %v\n%s\ninstall them: apt-get install python3-grpcio python3-protobuf python3-cryptography",
			debianPython, err, out)
	}
	return dir, lib
}

// pythonPluginDir copies the handler script into a fresh plugin directory
// (mode 0755, as the loader demands: not group- or world-writable).
func pythonPluginDir(t *testing.T, exampleDir string) string {
	t.Helper()
	plugins := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(exampleDir, pythonHandler))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(plugins, pythonHandler)
	if err := os.WriteFile(dst, script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return plugins
}

// sqliteRows counts the rows of the sessions table under id, with Python's
// sqlite3 (no sqlite3 command needed).
func sqliteRows(t *testing.T, db, id string) string {
	t.Helper()
	out, err := exec.Command(debianPython, "-c",
		"import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM sessions WHERE id = ?', (sys.argv[2],)).fetchone()[0])",
		db, id).CombinedOutput()
	if err != nil {
		t.Fatalf("read %s: %v\n%s", db, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestPythonSQLiteHandlerThroughTheHost(t *testing.T) {
	example, lib := pythonExample(t)
	plugins := pythonPluginDir(t, example)
	work := t.TempDir()
	db := filepath.Join(work, "sessions", "sessions.sqlite3")

	// First host: the generated modules found through the handler's own setting.
	s := startServer(t, serverOpts{dir: work, env: []string{
		"TINA4_PLUGIN_DIR=" + plugins, "TINA4_SESSION_HANDLER=" + pythonHandler,
		"TINA4_SESSION_SQLITE_LIB=" + lib,
	}})
	if code, m := s.health(t); code != 200 || m["handler"] != pythonHandler || m["built_in"] != false || m["transport"] != "grpc" {
		t.Fatalf("healthz should report the Python handler as a plugin over gRPC, got %d %v\n%s", code, m, s.log)
	}
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice","n":3}`); r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("POST: want 200 with user=alice, got %d %v %q\n%s", r.Code, r.Values, r.Error, s.log)
	}
	if r := call(t, c, "POST", s.url("/api/session"), `{"role":"admin"}`); r.Code != 200 || r.Values["user"] != "alice" || r.Values["role"] != "admin" {
		t.Fatalf("second POST should merge, got %d %v", r.Code, r.Values)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Values["user"] != "alice" || r.Values["role"] != "admin" || r.Values["n"] != 3.0 {
		t.Fatalf("GET: want user, role and n, got %d %v", r.Code, r.Values)
	}
	id := jarID(t, c, s)
	if got := sqliteRows(t, db, id); got != "1" {
		t.Fatalf("the session should be one row in %s, found %s", db, got)
	}
	if hits := grepTree(t, filepath.Dir(db), "alice"); len(hits) != 0 {
		t.Fatalf("the store must hold sealed tokens only; a session value is readable in %v", hits)
	}

	// A stop must be graceful (GRPCController.Shutdown), not go-plugin's
	// 2-second wait and SIGKILL.
	pid := s.pluginPID(t)
	began := time.Now()
	s.stop()
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("stopping the host took %v; the handler should exit at once on GRPCController.Shutdown", took)
	}
	if strings.Contains(s.log.String(), "failed to exit gracefully") {
		t.Errorf("the handler did not exit on GRPCController.Shutdown:\n%s", s.log)
	}
	if !waitGone(pid, 5*time.Second) {
		t.Errorf("the handler process %d outlived its host", pid)
	}

	// Second host on the same folder: the handler pinned (the host runs a
	// private copy of the script, so nothing beside it can be found) and
	// its modules found through PYTHONPATH, which TINA4_PLUGIN_ENV passes.
	script, err := os.ReadFile(filepath.Join(plugins, pythonHandler))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(script)
	s2 := startServer(t, serverOpts{dir: work, env: []string{
		"TINA4_PLUGIN_DIR=" + plugins, "TINA4_SESSION_HANDLER=" + pythonHandler,
		"TINA4_SESSION_HANDLER_SHA256=" + hex.EncodeToString(sum[:]),
		"PYTHONPATH=" + lib, "TINA4_PLUGIN_ENV=PYTHONPATH",
	}})
	if r := withCookie(t, "GET", s2.url("/api/session"), id, ""); r.Code != 200 || r.Values["user"] != "alice" || r.Values["role"] != "admin" {
		t.Fatalf("after a restart the session should still be there, got %d %v %q\n%s", r.Code, r.Values, r.Error, s2.log)
	}
	r := withCookie(t, "DELETE", s2.url("/api/session"), id, "")
	if r.Code != 200 {
		t.Fatalf("DELETE: want 200, got %d %q", r.Code, r.Error)
	}
	if ck := sessionCookie(r.Resp); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("DELETE must expire the cookie, got %v", ck)
	}
	if r := withCookie(t, "GET", s2.url("/api/session"), id, ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("after DELETE the destroyed id must find nothing, got %d %v", r.Code, r.Values)
	}
	if got := sqliteRows(t, db, id); got != "0" {
		t.Fatalf("DELETE must remove the row from %s, found %s", db, got)
	}
}

func TestPythonSQLiteHandlerPluginsVerify(t *testing.T) {
	example, lib := pythonExample(t)
	plugins := pythonPluginDir(t, example)
	for _, args := range [][]string{
		{"plugins", "verify", pythonHandler},
		{"plugins", "verify", "--full", pythonHandler},
	} {
		t.Run(strings.Join(args[1:], " "), func(t *testing.T) {
			cmd := exec.Command(hostBin, args...)
			cmd.Env = append(baseEnv(), "TINA4_PLUGIN_DIR="+plugins, "TINA4_SESSION_SQLITE_LIB="+lib)
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "PASS "+pythonHandler) {
				t.Fatalf("tina4-host %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, want := range []string{"transport: grpc", "versions", "lock"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("tina4-host %s: output lacks %q:\n%s", strings.Join(args, " "), want, out)
				}
			}
			if skippedBesidesIndex(string(out)) {
				t.Errorf("tina4-host %s skipped checks besides the index ones; the handler offers versions and lock:\n%s", strings.Join(args, " "), out)
			}
		})
	}
}

func TestPythonSQLiteHandlerConformance(t *testing.T) {
	example, lib := pythonExample(t)
	plugins := pythonPluginDir(t, example)
	env := []string{"TINA4_SESSION_FOLDER=" + t.TempDir(), "TINA4_SESSION_SQLITE_LIB=" + lib}

	// The protocol-2 checks skip a handler that does not offer versions and
	// lock; this one must offer both, so none of them may be skipped.
	h, err := loader.Open(context.Background(), loader.Config{Name: pythonHandler, Dir: plugins, Env: env,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("launch %s: %v", pythonHandler, err)
	}
	info, err := h.Info(context.Background())
	transport := h.Transport()
	h.Shutdown()
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != pythonHandler || !slices.Equal(info.Protocols, []int{2, 1}) || transport != loader.TransportGRPC {
		t.Fatalf("Info: want name %s, protocols [2 1], over gRPC; got %s, %v, %s", pythonHandler, info.Name, info.Protocols, transport)
	}
	for _, c := range []string{shared.CapabilityHealth, shared.CapabilityVersions, shared.CapabilityLock} {
		if !info.HasCapability(c) {
			t.Fatalf("Info reports capabilities %v; want %q", info.Capabilities, c)
		}
	}

	handlertest.RunBinary(t, plugins, pythonHandler, env)
}
