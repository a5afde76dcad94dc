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
//
// The checks run once per transport the handler offers, as subtests named
// after it: "fast" (the private socket every handler built with sdk.Serve
// offers unless it sets GRPCOnly) and "grpc" (what the host uses for
// handlers in other languages). A handler that offers no fast transport runs
// them over gRPC only.
func RunBinary(t *testing.T, dir, name string, env []string, opts ...Options) {
	t.Helper()
	for _, transport := range []string{"", loader.TransportGRPC} {
		h, err := loader.Open(context.Background(), loader.Config{
			Name: name, Dir: dir, Env: env, Transport: transport,
			CallTimeout: 30 * time.Second,
			Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatalf("launch %s from %s: %v", name, dir, err)
		}
		got := h.Transport()
		if transport == "" && got == loader.TransportGRPC {
			h.Shutdown()
			t.Logf("%s offers no fast transport; checking it over gRPC only", name)
			continue
		}
		t.Run(got, func(t *testing.T) {
			defer h.Shutdown()
			Run(t, h, opts...)
		})
	}
}
