package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/tina4go/sessions/plugins/redis"
	"github.com/tina4go/sessions/sdk"
)

// Build the handler from the TINA4_SESSION_REDIS_* settings, as the plugin
// binary does, and use it in process. (Not run by go test: it needs a Redis
// at the configured address.)
func Example() {
	opts, err := redis.OptionsFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err) // names the variable that is wrong
	}
	h, err := redis.New(opts) // succeeds even while Redis is down
	if err != nil {
		log.Fatal(err)
	}
	defer h.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.Health(ctx); err != nil {
		log.Print(err) // e.g. redis localhost:6379 unreachable: dial tcp ...: connection refused
	}

	id := strings.Repeat("a", 43) // the host makes these from 32 random bytes
	rec := sdk.Record{Data: []byte("sealed token"), Expires: time.Now().Add(time.Hour)}
	if err := h.Save(ctx, id, rec); err != nil {
		log.Fatal(err)
	}
	got, err := h.Load(ctx, id)
	fmt.Println(string(got.Data), err)

	_ = h.Close(ctx, id)
	_, err = h.Load(ctx, id)
	fmt.Println(errors.Is(err, sdk.ErrNotFound))
}

// A Redis Cluster: list some or all of its nodes.
func ExampleOptionsFromEnv_cluster() {
	settings := map[string]string{
		"TINA4_SESSION_REDIS_ADDRS":    "redis-1:6379,redis-2:6379,redis-3:6379",
		"TINA4_SESSION_REDIS_PASSWORD": "secret",
		"TINA4_SESSION_REDIS_TLS":      "true",
	}
	opts, err := redis.OptionsFromEnv(func(k string) string { return settings[k] })
	fmt.Println(opts.Redis.Addrs, opts.Redis.TLSConfig != nil, opts.Prefix, err)
	// Output: [redis-1:6379 redis-2:6379 redis-3:6379] true tina4:session: <nil>
}
