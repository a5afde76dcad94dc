package loader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// binDir holds the real plugin binaries built once for every test.
var binDir string

// dialEnv makes the test binary, run as a child, only try to connect to the
// Unix socket it names and exit 0 (connected), 3 (permission denied) or 4.
const dialEnv = "TINA4_LOADER_TEST_DIAL"

func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		c, err := net.Dial("unix", path)
		switch {
		case err == nil:
			c.Close()
			os.Exit(0)
		case errors.Is(err, fs.ErrPermission):
			os.Exit(3)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	dir, err := os.MkdirTemp("", "tina4-loader-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	builds := map[string]string{
		"SessionFileHandler": "github.com/tina4go/sessions/plugins/file/cmd/SessionFileHandler",
		"Hang":               "github.com/tina4go/sessions/loader/testdata/hang",
		"misbehave":          "github.com/tina4go/sessions/loader/testdata/misbehave",
		"probe":              "github.com/tina4go/sessions/loader/testdata/probe",
		"Spawner":            "github.com/tina4go/sessions/loader/testdata/spawner",
	}
	for name, pkg := range builds {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pluginDir makes a private plugin directory holding copies of the named
// binaries.
func pluginDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		copyFile(t, filepath.Join(binDir, n), filepath.Join(dir, n), 0o755)
	}
	return dir
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

// pluginDirWith makes a plugin directory holding the misbehave binary under
// each of the given names.
func pluginDirWith(t *testing.T, names ...string) string {
	t.Helper()
	dir := pluginDir(t)
	for _, n := range names {
		copyFile(t, filepath.Join(binDir, "misbehave"), filepath.Join(dir, n), 0o755)
	}
	return dir
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

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func itoa(n int) string { return strconv.Itoa(n) }

// pluginDirB is pluginDir for benchmarks.
func pluginDirB(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(binDir, "SessionFileHandler"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "SessionFileHandler"), src, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}
