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

// sessionPath is where h keeps the session id: in the id's subfolder.
func sessionPath(h *Handler, id string) string {
	p, err := h.path(id)
	if err != nil {
		panic(err)
	}
	return p
}

// writeRaw puts content into the folder itself under name, bypassing Save:
// where an earlier version kept session files, and where damaged or foreign
// files are planted.
func writeRaw(t *testing.T, h *Handler, name string, content []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.folder, name), content, 0o600); err != nil {
		t.Fatal(err)
	}
}

// listFolder returns the sorted names in dir and in its subfolders 00 to
// 3f (a file in a subfolder as "<subfolder>/<name>"), leaving out the stripe
// lock files (.lock-00 to .lock-3f) and the subfolders themselves, which
// every Handler keeps there; stripeFiles lists the stripe files.
func listFolder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		switch {
		case isStripeName(e.Name()):
		case e.IsDir() && isShardName(e.Name()):
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
	sort.Strings(names)
	return names
}

// inShard is name as listFolder lists it when it sits in id's subfolder.
func inShard(id, name string) string { return shardName(int(stripeIndex(id))) + "/" + name }

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
