package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
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

// stderrLog receives what a plugin writes to stderr after its handshake
// (go-plugin streams it over gRPC): each line is kept in tail for crash
// reports and logged under the handler's name, at the level the line
// carries when it is a JSON log record from sdk.Logger.
type stderrLog struct {
	tail    *tailBuffer
	log     *slog.Logger
	mu      sync.Mutex
	partial []byte
}

func (s *stderrLog) Write(p []byte) (int, error) {
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

// maxLine is the longest stderr line the host keeps whole.
const maxLine = 64 << 10

func (s *stderrLog) logLine(line []byte) {
	var rec map[string]any
	if json.Unmarshal(line, &rec) != nil {
		s.log.Info(string(line))
		return
	}
	msg, _ := rec["@message"].(string)
	lvl, _ := rec["@level"].(string)
	var attrs []any
	for k, v := range rec {
		if !strings.HasPrefix(k, "@") {
			attrs = append(attrs, k, v)
		}
	}
	level := slog.LevelInfo
	switch lvl {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	s.log.Log(context.Background(), level, msg, attrs...)
}

// pipeStderr receives every line a plugin writes to its stderr pipe
// (go-plugin copies each one here before it logs it). go-plugin logs
// hclog-shaped lines (JSON, or "[LEVEL]" prefixed) and panics itself, but
// plain lines only at debug level, below what the host logs: those, which
// is what a handler in another language prints by default, are logged here
// at info with the handler's name. Every line also goes to tail.
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
		s.logLine(s.partial[:maxLine])
		s.partial = s.partial[:0]
	}
	if cap(s.partial) > 4*maxLine && len(s.partial) == 0 {
		s.partial = nil
	}
	return len(p), nil
}

func (s *pipeStderr) logLine(line []byte) {
	text := strings.TrimRight(string(line), "\r")
	switch {
	case s.inPanic, text == "":
		return
	case strings.HasPrefix(text, "panic: "), strings.HasPrefix(text, "fatal error: "):
		s.inPanic = true // go-plugin logs the rest as errors
		return
	case json.Valid(line) && strings.HasPrefix(text, "{"):
		return // hclog JSON: go-plugin logs it at its level
	}
	for _, prefix := range []string{"[TRACE]", "[DEBUG]", "[INFO]", "[WARN]", "[ERROR]"} {
		if strings.HasPrefix(text, prefix) {
			return
		}
	}
	s.log.Info(text)
}
