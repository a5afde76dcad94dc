// Command SessionRedisHandler is the Redis session handler as a plugin
// binary for the tina4go/sessions host. It is started by the host, not by
// hand, and reads its settings (TINA4_SESSION_REDIS_*) from the environment
// the host passes it. It starts even when Redis is down and recovers by
// itself when Redis comes back. It writes nothing to stdout: stdout carries
// the plugin handshake.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/plugins/redis"
	"github.com/tina4go/sessions/sdk"
)

func main() {
	log := sdk.Logger()
	// go-redis logs connection trouble on its own; send it through the
	// handler's logger, at debug level: the same causes reach the host in
	// the errors the handler returns.
	goredis.SetLogger(debugLog{log})

	opts, err := redis.OptionsFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	opts.Logger = log
	h, err := redis.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = sdk.Serve(sdk.Config{Name: redis.Name, Version: redis.Version, Handler: h})
	h.Stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// debugLog adapts a slog.Logger to go-redis's logging interface.
type debugLog struct{ l *slog.Logger }

func (d debugLog) Printf(ctx context.Context, format string, v ...any) {
	d.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
