package handlertest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tina4go/sessions/loader"
)

// RunBinary launches the handler binary name from the plugin directory dir
// through the host's real loader (go-plugin, gRPC, AutoMTLS, the same checks
// on the file and the environment allow-list) and runs every check against
// it over the wire. env holds the TINA4_* settings the handler needs.
func RunBinary(t *testing.T, dir, name string, env []string, opts ...Options) {
	t.Helper()
	h, err := loader.Open(context.Background(), loader.Config{
		Name: name, Dir: dir, Env: env,
		CallTimeout: 30 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("launch %s from %s: %v", name, dir, err)
	}
	t.Cleanup(func() { h.Shutdown() })
	Run(t, h, opts...)
}
