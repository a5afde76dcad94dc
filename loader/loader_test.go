package loader

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/shared"
)

func testID(c byte) string { return strings.Repeat(string(c), shared.IDLength) }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func open(t *testing.T, cfg Config) *Handler {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	h, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() { h.Shutdown() })
	return h
}

func TestUnknownHandlerNamesDirAndListsWhatIsThere(t *testing.T) {
	dir := pluginDir(t, "SessionFileHandler", "Hang")
	_, err := Open(context.Background(), Config{Name: "SessionMongoHandler", Dir: dir, Logger: quietLogger(),
		Builtins: map[string]Builtin{"SessionFileHandler": nil}})
	if !errors.Is(err, ErrUnknownHandler) {
		t.Fatalf("want ErrUnknownHandler, got %v", err)
	}
	for _, want := range []string{dir, "SessionMongoHandler", "Hang, SessionFileHandler", "built in: SessionFileHandler"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q should mention %q", err, want)
		}
	}
}

func TestUnknownHandlerInMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := Open(context.Background(), Config{Name: "X", Dir: dir, Logger: quietLogger()})
	if !errors.Is(err, ErrUnknownHandler) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("want ErrUnknownHandler naming %s as missing, got %v", dir, err)
	}
}

func TestNamesWithPathsAreRefused(t *testing.T) {
	dir := pluginDir(t, "SessionFileHandler")
	for _, name := range []string{"../SessionFileHandler", "plugins/SessionFileHandler", "..", ".", "", "/bin/true", "Session.Handler", "a\x00b", "-x"} {
		_, err := Open(context.Background(), Config{Name: name, Dir: dir, Logger: quietLogger()})
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("name %q: want ErrInvalidName, got %v", name, err)
		}
	}
}

func TestBinaryWinsOverBuiltin(t *testing.T) {
	dir := pluginDir(t, "SessionFileHandler")
	called := false
	h := open(t, Config{Name: "SessionFileHandler", Dir: dir,
		Env:      []string{"TINA4_SESSION_FOLDER=" + t.TempDir()},
		Builtins: map[string]Builtin{"SessionFileHandler": func() (shared.Store, error) { called = true; return nil, nil }}})
	if called || h.Path() == "" || h.PID() == os.Getpid() {
		t.Fatalf("want the binary in %s to run as its own process, got path=%q pid=%d builtin called=%v", dir, h.Path(), h.PID(), called)
	}
}

func TestBuiltinUsedWhenNoBinary(t *testing.T) {
	dir := t.TempDir()
	h := open(t, Config{Name: "Mem", Dir: dir, Builtins: map[string]Builtin{"Mem": func() (shared.Store, error) { return newMem(), nil }}})
	if h.Path() != "" || h.PID() != os.Getpid() {
		t.Fatalf("want the built-in in process, got path=%q pid=%d", h.Path(), h.PID())
	}
	if err := h.Save(context.Background(), testID('a'), shared.Record{Data: []byte("x"), Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

func environOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		t.Fatalf("read environ of plugin %d: %v", pid, err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestPluginEnvironmentIsAnAllowList(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs /proc (Linux)")
	}
	t.Setenv("TINA4_SECRET", "host-secret-must-not-leak-0123456789")
	t.Setenv("HOST_ONLY_VARIABLE", "must-not-leak")
	folder := t.TempDir()
	h := open(t, Config{Name: "SessionFileHandler", Dir: pluginDir(t, "SessionFileHandler"),
		Env: []string{"TINA4_SESSION_FOLDER=" + folder, "TINA4_SECRET=from-dotenv-must-not-leak", "TINA4_SECRET_FILE=/x", "NOT_TINA4=1",
			"TINA4_JWT_SECRET=app-secret", "TINA4_SESSION_REDIS_SECRET=handler-password"},
		ExtraEnv: []string{"PYTHONPATH=/opt/handler-lib", "TINA4_SECRET=extra-must-not-leak", "PLUGIN_PROTOCOL_VERSIONS=99", "APP_SECRET=x"}})
	env := environOf(t, h.PID())
	if env["PYTHONPATH"] != "/opt/handler-lib" {
		t.Errorf("a variable TINA4_PLUGIN_ENV lists must reach the plugin, got PYTHONPATH=%q", env["PYTHONPATH"])
	}
	if env["PLUGIN_PROTOCOL_VERSIONS"] == "99" || env["APP_SECRET"] != "" || strings.Contains(env["TINA4_SECRET"], "extra") {
		t.Errorf("extra variables overrode what the host sets or passed a secret: %v", env)
	}
	if env["TINA4_SESSION_REDIS_SECRET"] != "handler-password" {
		t.Errorf("a handler's own TINA4_SESSION_* password must reach it, got %q", env["TINA4_SESSION_REDIS_SECRET"])
	}
	for _, k := range []string{"TINA4_SECRET", "TINA4_SECRET_FILE", "TINA4_JWT_SECRET", "HOST_ONLY_VARIABLE", "NOT_TINA4"} {
		if v, ok := env[k]; ok {
			t.Errorf("plugin environment holds %s=%q; it must not", k, v)
		}
	}
	if env["TINA4_SESSION_FOLDER"] != folder {
		t.Errorf("plugin environment TINA4_SESSION_FOLDER=%q, want %q", env["TINA4_SESSION_FOLDER"], folder)
	}
	if env["PATH"] == "" {
		t.Errorf("plugin environment should keep PATH")
	}
}

func TestKilledPluginFailsFastThenRestartsWithSessionsIntact(t *testing.T) {
	folder := t.TempDir()
	h := open(t, Config{Name: "SessionFileHandler", Dir: pluginDir(t, "SessionFileHandler"),
		Env: []string{"TINA4_SESSION_FOLDER=" + folder}, CallTimeout: time.Minute})
	ctx := context.Background()
	id := testID('k')
	want := []byte("sealed-token-bytes")
	if err := h.Save(ctx, id, shared.Record{Data: want, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	oldPID := h.PID()
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Until the plugin is back, every call fails with ErrUnavailable, not a
	// wait for the one-minute call timeout.
	sawUnavailable := false
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err := h.Load(ctx, id)
		if err == nil && h.PID() != oldPID {
			if !bytes.Equal(rec.Data, want) {
				t.Fatalf("after restart, loaded %q, want %q", rec.Data, want)
			}
			break
		}
		if err != nil {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("while the plugin is down, want ErrUnavailable, got %v", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a dead plugin must fail fast, not time out: %v", err)
			}
			sawUnavailable = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin not restarted within 30s (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawUnavailable {
		t.Errorf("expected at least one call to fail with ErrUnavailable while the plugin was down")
	}
	if h.PID() == oldPID || h.PID() == 0 {
		t.Errorf("want a new plugin process, pid %d (old %d)", h.PID(), oldPID)
	}
}

func TestHungPluginCannotHangACall(t *testing.T) {
	h := open(t, Config{Name: "Hang", Dir: pluginDir(t, "Hang"), CallTimeout: 300 * time.Millisecond})
	_, err := h.Load(context.Background(), testID('h'))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrUnavailable wrapping DeadlineExceeded, got %v", err)
	}
	if !strings.Contains(err.Error(), "TINA4_PLUGIN_TIMEOUT") {
		t.Errorf("error should name TINA4_PLUGIN_TIMEOUT: %v", err)
	}
}

func TestShutdownStopsThePlugin(t *testing.T) {
	h := open(t, Config{Name: "SessionFileHandler", Dir: pluginDir(t, "SessionFileHandler"), Env: []string{"TINA4_SESSION_FOLDER=" + t.TempDir()}})
	pid := h.PID()
	h.Shutdown()
	if !processGone(pid, 5*time.Second) {
		t.Fatalf("plugin %d still running after Shutdown", pid)
	}
	if _, err := h.Load(context.Background(), testID('a')); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after Shutdown want ErrUnavailable, got %v", err)
	}
}

func processGone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		// a zombie child still answers kill(0); check /proc state
		if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil {
			if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestUnusableBinariesAreRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"not executable", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(binDir, "SessionFileHandler"), filepath.Join(dir, "X"), 0o644)
		}, "not executable"},
		{"directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "X"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"world-writable file", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(binDir, "SessionFileHandler"), filepath.Join(dir, "X"), 0o757)
		}, "group- or world-writable"},
		{"symlink leaving the dir", func(t *testing.T, dir string) {
			outside := filepath.Join(t.TempDir(), "X")
			copyFile(t, filepath.Join(binDir, "SessionFileHandler"), outside, 0o755)
			if err := os.Symlink(outside, filepath.Join(dir, "X")); err != nil {
				t.Fatal(err)
			}
		}, "symlink that leaves the plugin directory"},
		{"world-writable plugin dir", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(binDir, "SessionFileHandler"), filepath.Join(dir, "X"), 0o755)
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "plugin directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := pluginDir(t)
			tt.setup(t, dir)
			_, err := Open(context.Background(), Config{Name: "X", Dir: dir, Logger: quietLogger()})
			if !errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want ErrUnusable saying %q, got %v", tt.want, err)
			}
		})
	}
}

func TestBinaryReportingAnotherNameIsRefused(t *testing.T) {
	dir := pluginDir(t)
	copyFile(t, filepath.Join(binDir, "SessionFileHandler"), filepath.Join(dir, "Renamed"), 0o755)
	_, err := Open(context.Background(), Config{Name: "Renamed", Dir: dir, Logger: quietLogger(), Env: []string{"TINA4_SESSION_FOLDER=" + t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), `reports its name as "SessionFileHandler"`) {
		t.Fatalf("want a refusal naming the reported name, got %v", err)
	}
}

// mem is a tiny in-process store for built-in tests.
type mem struct{ m map[string]shared.Record }

func newMem() *mem { return &mem{m: map[string]shared.Record{}} }

func (m *mem) Info(context.Context) (shared.Info, error) {
	return shared.Info{Name: "Mem", PID: os.Getpid()}, nil
}
func (m *mem) Health(context.Context) error { return nil }
func (m *mem) Load(_ context.Context, id string) (shared.Record, error) {
	r, ok := m.m[id]
	if !ok {
		return r, shared.ErrNotFound
	}
	return r, nil
}
func (m *mem) Save(_ context.Context, id string, r shared.Record) error { m.m[id] = r; return nil }
func (m *mem) Close(_ context.Context, id string) error                 { delete(m.m, id); return nil }
