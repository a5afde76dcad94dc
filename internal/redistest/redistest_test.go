package redistest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestStartServesOnLoopbackWithoutPersistence(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	if got, err := s.Client().Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING: want PONG, got %q, %v", got, err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.Port() == 0 {
		t.Errorf("Addr: want 127.0.0.1:<port>, got %s (port %d)", s.Addr(), s.Port())
	}
	cfg, err := s.Client().ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"save": "", "appendonly": "no", "dir": s.Dir, "bind": "127.0.0.1"} {
		if cfg[k] != want {
			t.Errorf("CONFIG GET %s: want %q, got %q", k, want, cfg[k])
		}
	}
}

func TestStartWithPasswordAndACLUser(t *testing.T) {
	s := Start(t, "--requirepass", "pw", "--user", "alice", "on", ">alicepw", "~*", "+@all")
	ctx := context.Background()
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("Client() with --requirepass: want it authenticated, got %v", err)
	}
	noAuth := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer noAuth.Close()
	if err := noAuth.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without a password: want NOAUTH, got %v", err)
	}
	alice := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "alice", Password: "alicepw"})
	defer alice.Close()
	if got, err := alice.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET as ACL user alice: want v, got %q, %v", got, err)
	}
}

func TestRestartKeepsAppendOnlyData(t *testing.T) {
	s := Start(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx := context.Background()
	if err := s.Client().Set(ctx, "k", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	port := s.Port()
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill: want false")
	}
	s.Restart()
	if s.Port() != port {
		t.Errorf("Restart: want the same port %d, got %d", port, s.Port())
	}
	if got, err := s.Client().Get(ctx, "k").Result(); err != nil || got != "kept" {
		t.Errorf("GET after a crash and Restart with appendfsync always: want kept, got %q, %v", got, err)
	}
}

func TestStopThenStartOnTheSamePort(t *testing.T) {
	s := Start(t)
	s.Stop()
	s.Stop() // stopping a stopped server does nothing
	if err := s.Client().Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING after Stop: want an error")
	}
	again := Start(t, "--port", strconv.Itoa(s.Port()))
	if again.Addr() != s.Addr() {
		t.Errorf("Start with --port: want %s, got %s", s.Addr(), again.Addr())
	}
	if err := again.Client().Ping(context.Background()).Err(); err != nil {
		t.Errorf("PING: %v", err)
	}
}

func TestStartTLSServesOnlyTLS(t *testing.T) {
	f := NewTLS(t)
	s := StartTLS(t, f)
	ctx := context.Background()
	if err := s.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
	plain := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("PING in plain text to a TLS-only server: want an error")
	}
}

func TestStartClusterAssignsEverySlot(t *testing.T) {
	nodes := StartCluster(t, 3)
	for _, n := range nodes {
		if _, err := os.Stat(filepath.Join(n.Dir, "nodes.conf")); err != nil {
			t.Errorf("node %s: want nodes.conf in its Dir: %v", n.Addr(), err)
		}
	}
	info, err := nodes[0].Client().ClusterInfo(context.Background()).Result()
	if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384") {
		t.Errorf("CLUSTER INFO: want all 16384 slots assigned, got %q, %v", info, err)
	}
}
