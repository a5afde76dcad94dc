// Command smallmsg is a test plugin that serves a correct in-memory store
// over gRPC the way a handler written without sdk.Serve might: with gRPC's
// default 4 MiB message limit, no fast transport, and plain text on stderr
// (not hclog's format), including a JSON line that crashes go-plugin's own
// parser. `tina4-host plugins verify` must catch the limit, and the host must
// log the lines and stay up.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

type mem struct {
	mu sync.Mutex
	m  map[string]sdk.Record
}

func (s *mem) Load(ctx context.Context, id string) (sdk.Record, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	if !ok || !time.Now().Before(r.Expires) {
		return sdk.Record{}, sdk.ErrNotFound
	}
	return r, nil
}

func (s *mem) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = sdk.Record{Data: append([]byte(nil), r.Data...), Expires: r.Expires}
	return nil
}

func (s *mem) Close(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

func main() {
	fmt.Fprintln(os.Stderr, "smallmsg: a plain line on stderr, before the handshake")
	// JSON go-plugin v1.8.0's own log parser panics on (a number where it
	// expects the message string); the host must log it, not crash.
	fmt.Fprintln(os.Stderr, `{"@message":42,"@level":"info"}`)
	store := sdk.NewStore("SmallMsg", "1.0.0", &mem{m: map[string]sdk.Record{}})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  shared.Handshake,
		VersionedPlugins: shared.PluginSet(store),
		GRPCServer:       plugin.DefaultGRPCServer, // gRPC's default 4 MiB limit
	})
}
