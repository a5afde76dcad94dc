package redis

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
)

// newTestHandler returns a Handler for the Redis at addrs (one address: a
// single server), logging into the returned buffer, stopped when the test
// ends. change, if given, edits the Options first.
func newTestHandler(t *testing.T, addrs []string, change ...func(*Options)) (*Handler, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts := Options{Redis: &redis.UniversalOptions{Addrs: addrs}, Logger: logs.logger()}
	for _, c := range change {
		c(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: want a handler, got error: %v", err)
	}
	t.Cleanup(h.Stop)
	return h, logs
}

// startHandler starts a fresh redis-server with args and returns it with a
// Handler for it.
func startHandler(t *testing.T, args ...string) (*Handler, *redistest.Server, *logBuffer) {
	t.Helper()
	srv := redistest.Start(t, args...)
	h, logs := newTestHandler(t, []string{srv.Addr()})
	return h, srv, logs
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

// storedValue is what Save and SaveIf write to Redis for token expiring at
// expires with version ver: the magic "\x00t4\x02", expires rounded up to
// the millisecond as 8 big-endian bytes of Unix milliseconds, ver as 8
// big-endian bytes, then the token. It is spelt out here, not built from the
// handler's constants, so a change of the format shows up as a failing test.
func storedValue(token string, expires time.Time, ver uint64) string {
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], ver)
	return "\x00t4\x02" + formatV1Value("", expires)[4:] + string(be[:]) + token
}

// formatV1Value is what the previous version of Save wrote (format 1, no
// version): the magic "\x00t4\x01", expires rounded up to the millisecond
// as 8 big-endian bytes of Unix milliseconds, then the token.
func formatV1Value(token string, expires time.Time) string {
	ms := expires.UnixMilli()
	if expires.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], uint64(ms))
	return "\x00t4\x01" + string(be[:]) + token
}

// env is a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
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
