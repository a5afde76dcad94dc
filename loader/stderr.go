package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// tailBuffer keeps the last lines a plugin wrote to stderr, so a crash can be
// logged with what the plugin said last.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := t.partial[:i]
		t.partial = t.partial[i+1:]
		if bytes.Contains(line, []byte(`"@level":"debug"`)) || bytes.Contains(line, []byte(`"@level":"trace"`)) {
			continue // go-plugin's own chatter; keep what the handler said
		}
		t.lines = append(t.lines, string(line))
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
	}
	if len(t.partial) > 4096 {
		t.partial = nil
	}
	return len(p), nil
}

// String returns the kept lines joined by newlines.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(append([]string(nil), lines...), string(t.partial))
	}
	return strings.Join(lines, "\n")
}

// maxLine is the longest stderr line the host keeps whole.
const maxLine = 64 << 10

// pipeStderr logs every line a plugin writes to stderr: to its stderr pipe
// (go-plugin copies each raw line here) and, for a Go plugin, to the
// os.Stderr go-plugin streams over gRPC once the plugin serves (one
// pipeStderr each, as lines of the two may interleave). go-plugin's own
// parsing of the pipe's lines is turned off (stderrMuted): it drops plain
// lines and JSON lines whose timestamp is not hclog's to debug level, and
// it panics, taking the host with it, on a JSON line whose "@message" or
// "@level" is not a string. Here:
//
//   - an hclog JSON line ({"@level":..., "@message":...}) is logged at its
//     level, with its other fields (trace and debug are dropped, as the
//     host's own are);
//   - a line starting "[TRACE]" ... "[ERROR]" at that level;
//   - "panic: " or "fatal error: " and every line after it at error;
//   - any other line, at info.
//
// Every line is tagged with the handler's name and kept in tail.
type pipeStderr struct {
	tail    *tailBuffer
	log     *slog.Logger
	mu      sync.Mutex
	partial []byte
	inPanic bool
}

func (s *pipeStderr) Write(p []byte) (int, error) {
	s.tail.Write(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.logLine(s.partial[:i])
		s.partial = s.partial[i+1:]
	}
	if len(s.partial) > maxLine {
		// A plugin writing without newlines must not grow the host: log
		// what came so far as one (cut) line and start again.
		s.logLine(s.partial[:maxLine])
		s.partial = s.partial[:0]
	}
	if cap(s.partial) > 4*maxLine && len(s.partial) == 0 {
		s.partial = nil
	}
	return len(p), nil
}

var hclogLevels = map[string]slog.Level{
	"trace": slog.LevelDebug - 4, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "error": slog.LevelError,
}

func (s *pipeStderr) logLine(line []byte) {
	text := strings.TrimRight(string(line), "\r")
	ctx := context.Background()
	switch {
	case text == "":
		return
	case s.inPanic:
		s.log.Error(text)
		return
	case strings.HasPrefix(text, "panic: "), strings.HasPrefix(text, "fatal error: "):
		s.inPanic = true
		s.log.Error(text)
		return
	case strings.HasPrefix(text, "{") && json.Valid(line):
		s.logJSON(line)
		return
	}
	for _, p := range []struct {
		prefix string
		level  slog.Level
	}{{"[TRACE]", slog.LevelDebug - 4}, {"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERROR]", slog.LevelError}} {
		if rest, ok := strings.CutPrefix(text, p.prefix); ok {
			s.log.Log(ctx, p.level, strings.TrimSpace(rest))
			return
		}
	}
	s.log.Info(text)
}

// logJSON logs an hclog JSON line at its level with its fields; JSON of
// another shape is logged whole, at info.
func (s *pipeStderr) logJSON(line []byte) {
	var rec map[string]any
	if json.Unmarshal(line, &rec) != nil {
		return
	}
	lvl, _ := rec["@level"].(string)
	level, known := hclogLevels[strings.ToLower(lvl)]
	msg, ok := rec["@message"].(string)
	if !known || !ok {
		s.log.Info(string(line))
		return
	}
	var attrs []any
	for k, v := range rec {
		if !strings.HasPrefix(k, "@") {
			attrs = append(attrs, k, v)
		}
	}
	s.log.Log(context.Background(), level, msg, attrs...)
}

// stderrMuted is the logger go-plugin gets: its own messages go through, but
// the logger it makes to parse the plugin's stderr (named after the binary)
// is off, so that go-plugin neither logs those lines nor parses them
// (pipeStderr does both).
type stderrMuted struct {
	hclog.Logger
	binary string
}

func (l stderrMuted) Named(name string) hclog.Logger {
	if name == l.binary {
		return hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard})
	}
	return l.Logger.Named(name)
}
