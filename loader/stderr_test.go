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
		`{"@level":"warn","@message":"js timestamp","@timestamp":"2026-11-26T00:00:00.123Z","store":"sqlite"}` + "\n",
		`{"msg":"json without a level"}` + "\n",
		`{"@level":"debug","@message":"chatter","@timestamp":"2026-11-26T00:00:00.000000Z"}` + "\n",
		"half a ", "line\n",
		`{"@message":42}` + "\n", // go-plugin's own parser panics on this
		"panic: boom\n", "goroutine 1 [running]:\n",
	} {
		s.Write([]byte(chunk))
	}
	got := out.String()
	for _, want := range []string{`level=INFO msg="listening on 127.0.0.1:1234" handler=SessionPyHandler`, `msg="half a line"`,
		`level=INFO msg="hclog line" handler=SessionPyHandler`, `level=WARN msg="prefixed line"`,
		`level=WARN msg="js timestamp" handler=SessionPyHandler store=sqlite`, `level=INFO msg="{\"msg\":\"json without a level\"}"`,
		`level=ERROR msg="panic: boom"`, `level=ERROR msg="goroutine 1 [running]:"`, `level=INFO msg="{\"@message\":42}"`} {
		if !strings.Contains(got, want) {
			t.Errorf("host log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "chatter") {
		t.Errorf("a debug line reached the host log at info:\n%s", got)
	}
	if tail := s.tail.String(); !strings.Contains(tail, "panic: boom") || !strings.Contains(tail, "listening on") {
		t.Errorf("the crash tail lost lines: %q", tail)
	}
}
