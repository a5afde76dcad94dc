package sdk

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
)

// Logger returns a logger for handler code. It writes JSON lines to stderr
// in the shape the host understands (hclog's @level/@message keys), so the
// host's log shows them at the right level under the handler's name.
//
// Never write to stdout in a handler: stdout carries the plugin handshake,
// and anything printed there before Serve breaks the launch.
func Logger() *slog.Logger { return newLogger(stderr{}) }

// hostStderr is the process's stderr as the host started it (the pipe the
// host reads), saved by Serve before go-plugin points os.Stderr at a pipe of
// its own that it forwards over gRPC. Writes to the host's pipe reach the
// kernel at once, so a handler's last lines before a crash are not lost
// with the forwarding goroutine.
var hostStderr atomic.Pointer[os.File]

// stderr writes to the host's stderr pipe once Serve has saved it, else to
// os.Stderr, so a logger made before Serve reaches the host's log too.
type stderr struct{}

func (stderr) Write(p []byte) (int, error) {
	if f := hostStderr.Load(); f != nil {
		return f.Write(p)
	}
	return os.Stderr.Write(p)
}

// hclogTime is the timestamp layout go-plugin's host parses.
const hclogTime = "2006-01-02T15:04:05.000000Z07:00"

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				a.Key = "@timestamp"
				a.Value = slog.StringValue(a.Value.Time().Format(hclogTime))
			case slog.LevelKey:
				a.Key = "@level"
				a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				a.Key = "@message"
			}
			return a
		},
	}))
}
