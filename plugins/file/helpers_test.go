package file

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestHandler returns a Handler on a fresh folder inside t.TempDir(),
// with the background sweeper off, logging into the returned buffer.
func newTestHandler(t *testing.T, opts ...Option) (*Handler, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	all := append([]Option{WithSweepInterval(0), WithLogger(logs.logger())}, opts...)
	h, err := New(filepath.Join(t.TempDir(), "sessions"), all...)
	if err != nil {
		t.Fatalf("New: want a handler, got error: %v", err)
	}
	t.Cleanup(h.Stop)
	return h, logs
}

// randomID returns a fresh valid session id: 32 random bytes, base64url.
func randomID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionPath is where h keeps the session id.
func sessionPath(h *Handler, id string) string {
	return filepath.Join(h.folder, id+suffix)
}

// writeRaw puts content into the folder under name, bypassing Save.
func writeRaw(t *testing.T, h *Handler, name string, content []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.folder, name), content, 0o600); err != nil {
		t.Fatal(err)
	}
}

// listFolder returns the sorted names in dir, leaving out the stripe lock
// files (.lock-00 to .lock-3f) every Handler keeps there; stripeFiles lists
// those.
func listFolder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !isStripeName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// stripeFiles returns the sorted names of the stripe lock files in dir.
func stripeFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if isStripeName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// snapshotTree describes every entry under root (path, type, size, content
// digest of small files) so two snapshots differ if anything was created,
// removed or changed.
func snapshotTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		b.WriteString(rel + " " + info.Mode().String())
		if info.Mode().IsRegular() {
			content, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.WriteString(" " + base64.StdEncoding.EncodeToString(content))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock(now time.Time) *testClock { return &testClock{now: now} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
