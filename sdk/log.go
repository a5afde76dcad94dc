package sdk

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// Logger returns a logger for handler code. It writes JSON lines to stderr
// in the shape the host understands (hclog's @level/@message keys), so the
// host's log shows them at the right level under the handler's name.
//
// Never write to stdout in a handler: stdout carries the plugin handshake,
// and anything printed there before Serve breaks the launch.
func Logger() *slog.Logger { return newLogger(os.Stderr) }

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
