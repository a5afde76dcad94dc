package loader

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestPlainStderrLinesReachTheHostLogAtInfo(t *testing.T) {
	var out bytes.Buffer
	s := &pipeStderr{tail: newTailBuffer(20), log: slog.New(slog.NewTextHandler(&out, nil)).With("handler", "SessionPyHandler")}
	for _, chunk := range []string{
		"listening on 127.0.0.1:1234\n",
		`{"@level":"info","@message":"hclog line","@timestamp":"2026-11-26T00:00:00Z"}` + "\n",
		"[WARN] prefixed line\n",
		"half a ", "line\n",
		"panic: boom\n", "goroutine 1 [running]:\n",
	} {
		s.Write([]byte(chunk))
	}
	got := out.String()
	for _, want := range []string{`level=INFO msg="listening on 127.0.0.1:1234" handler=SessionPyHandler`, `msg="half a line"`} {
		if !strings.Contains(got, want) {
			t.Errorf("host log lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"hclog line", "prefixed line", "boom", "goroutine"} {
		if strings.Contains(got, not) {
			t.Errorf("host log has %q, which go-plugin logs itself (it would appear twice):\n%s", not, got)
		}
	}
	if tail := s.tail.String(); !strings.Contains(tail, "panic: boom") || !strings.Contains(tail, "listening on") {
		t.Errorf("the crash tail lost lines: %q", tail)
	}
}
