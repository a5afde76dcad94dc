package loader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every way a file in the plugin directory can be wrong is refused with a
// message that says which way.
func TestMisbehavingBinariesAreRefusedClearly(t *testing.T) {
	tests := []struct {
		name  string // installed under this name
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{"NotAPlugin", func(t *testing.T, dir string) {
			copyFile(t, "/bin/true", filepath.Join(dir, "NotAPlugin"), 0o755)
		}, []string{"without the plugin handshake", "not a tina4 session handler"}},
		{"JunkScript", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "JunkScript"), []byte("#!/bin/sh\necho 'this is not a plugin'\nsleep 30\n"), 0o755)
		}, []string{`printed "this is not a plugin" on stdout`, "not a tina4 session handler"}},
		{"StdoutFirst", nil, []string{"hello from a handler that prints to stdout", "wrote to stdout before serving"}},
		{"WrongCookie", nil, []string{"without the plugin handshake", "magic cookie", "not meant to be executed directly"}},
		{"WrongProtocol", nil, []string{"Plugin version: 99", "protocol versions this host speaks (2 1)"}},
		{"CrashAtStart", nil, []string{"without the plugin handshake", "panic: misbehave: crashing at start on purpose"}},
		{"HangAtStart", nil, []string{"did not complete the plugin handshake within 1s (TINA4_PLUGIN_START_TIMEOUT)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := pluginDir(t)
			if tt.setup != nil {
				tt.setup(t, dir)
			} else {
				copyFile(t, filepath.Join(binDir, "misbehave"), filepath.Join(dir, tt.name), 0o755)
			}
			_, err := Open(context.Background(), Config{Name: tt.name, Dir: dir, StartTimeout: time.Second, Logger: quietLogger()})
			if err == nil {
				t.Fatalf("%s must be refused", tt.name)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error should say %q:\n%v", w, err)
				}
			}
		})
	}
}

func sha(t *testing.T, p string) string {
	t.Helper()
	s, err := FileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestChecksumPinning(t *testing.T) {
	dir := pluginDir(t, "SessionFileHandler")
	bin := filepath.Join(dir, "SessionFileHandler")
	good := sha(t, bin)
	bad := strings.Repeat("0", 64)
	env := []string{"TINA4_SESSION_FOLDER=" + t.TempDir()}

	t.Run("matching pin runs a private copy", func(t *testing.T) {
		h := open(t, Config{Name: "SessionFileHandler", Dir: dir, Env: env, SHA256: good})
		exe, err := os.Readlink(filepath.Join("/proc", itoa(h.PID()), "exe"))
		if err != nil {
			t.Fatal(err)
		}
		if exe == bin || !strings.Contains(exe, "tina4-plugin-") {
			t.Fatalf("a pinned handler must run from a private copy, runs %s", exe)
		}
		copyDir := filepath.Dir(exe)
		h.Shutdown()
		if _, err := os.Stat(copyDir); !os.IsNotExist(err) {
			t.Errorf("the private copy %s should be removed at shutdown", copyDir)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		_, err := Open(context.Background(), Config{Name: "SessionFileHandler", Dir: dir, Env: env, SHA256: bad, Logger: quietLogger()})
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("want ErrChecksum naming both sums, got %v", err)
		}
	})
	t.Run("sums file", func(t *testing.T) {
		sums := filepath.Join(t.TempDir(), "SHA256SUMS")
		os.WriteFile(sums, []byte("# pinned handlers\n"+good+"  SessionFileHandler\n"+bad+"  Other\n"), 0o644)
		h := open(t, Config{Name: "SessionFileHandler", Dir: dir, Env: env, SumsFile: sums})
		if h.PID() == 0 {
			t.Fatal("no plugin")
		}
		os.WriteFile(sums, []byte(bad+"  SessionFileHandler\n"), 0o644)
		if _, err := Open(context.Background(), Config{Name: "SessionFileHandler", Dir: dir, Env: env, SumsFile: sums, Logger: quietLogger()}); !errors.Is(err, ErrChecksum) {
			t.Fatalf("a sums file mismatch must be refused, got %v", err)
		}
		os.WriteFile(sums, []byte(good+"  Other\n"), 0o644)
		_, err := Open(context.Background(), Config{Name: "SessionFileHandler", Dir: dir, Env: env, SumsFile: sums, Logger: quietLogger()})
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "not listed") {
			t.Fatalf("a handler missing from the sums file must be refused, got %v", err)
		}
	})
	t.Run("sums file inside the plugin dir", func(t *testing.T) {
		d := pluginDir(t, "SessionFileHandler")
		sums := filepath.Join(d, "SHA256SUMS")
		os.WriteFile(sums, []byte(good+"  SessionFileHandler\n"), 0o644)
		_, err := Open(context.Background(), Config{Name: "SessionFileHandler", Dir: d, Env: env, SumsFile: sums, Logger: quietLogger()})
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "inside the plugin directory") {
			t.Fatalf("want a refusal of a sums file inside the plugin dir, got %v", err)
		}
	})
	t.Run("pin without a binary", func(t *testing.T) {
		_, err := Open(context.Background(), Config{Name: "SessionFileHandler", Dir: t.TempDir(), SHA256: good, Logger: quietLogger(),
			Builtins: map[string]Builtin{"SessionFileHandler": nil}})
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("a pinned handler must not fall back to a built-in, got %v", err)
		}
	})
}

func TestCrashLoopKeepsRestartingAndSaysWhy(t *testing.T) {
	var log syncBuffer
	h, err := Open(context.Background(), Config{Name: "CrashLoop", Dir: pluginDirWith(t, "CrashLoop"), MaxBackoff: 400 * time.Millisecond,
		Logger: textLogger(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(log.String(), "session handler exited; restarting") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("want at least 3 restarts within 20s, log:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := log.String()
	for _, want := range []string{"handler=CrashLoop", "last words before exiting"} {
		if !strings.Contains(out, want) {
			t.Errorf("the crash log should contain %q:\n%s", want, out)
		}
	}
	// Whatever the moment, a call either works or fails fast with ErrUnavailable.
	if err := h.Health(context.Background()); err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want nil or ErrUnavailable, got %v", err)
	}
}
