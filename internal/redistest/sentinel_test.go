package redistest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartSentinelWatchesTheMaster(t *testing.T) {
	master := Start(t, "--requirepass", "pw")
	replica := StartReplica(t, master)
	s := StartSentinel(t, master, "mymaster")
	ctx := context.Background()

	if got, err := s.SentinelMaster(ctx, "mymaster"); err != nil || got != master.Addr() {
		t.Fatalf("SentinelMaster: want %s, got %q, %v", master.Addr(), got, err)
	}
	if _, err := s.SentinelMaster(ctx, "nosuchmaster"); !errors.Is(err, redis.Nil) {
		t.Errorf("SentinelMaster of an unknown name: want redis.Nil, got %v", err)
	}
	conf, err := os.ReadFile(filepath.Join(s.Dir, sentinelConf))
	if err != nil {
		t.Fatal(err)
	}
	// Sentinel rewrites the file; what it learned stays in it.
	for _, want := range []string{"sentinel monitor mymaster 127.0.0.1 ", "sentinel down-after-milliseconds mymaster 1000", "sentinel failover-timeout mymaster 3000", "sentinel auth-pass mymaster pw"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("sentinel.conf: want a line %q, got:\n%s", want, conf)
		}
	}
	s.WaitSentinelReplicas("mymaster", 15*time.Second, replica)

	// The Sentinel answers PING without a password, like Start's servers.
	if err := s.Client().Ping(ctx).Err(); err != nil {
		t.Errorf("PING the Sentinel: %v", err)
	}
	if got, err := replica.Client().Get(ctx, "nothing").Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET on the replica (with the master's password): want redis.Nil, got %q, %v", got, err)
	}
}
