package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
)

func TestClusterSpreadsSessionsOverMasters(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	opts, err := OptionsFromEnv(env(map[string]string{EnvAddrs: strings.Join(addrs, ", ")}))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	opts.Logger = logs.logger()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	if _, ok := h.client.(*redis.ClusterClient); !ok {
		t.Fatalf("%s with 3 addresses: want a cluster client, got %T", EnvAddrs, h.client)
	}
	ctx := context.Background()
	if err := h.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}

	const sessions = 200
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = randomID(t)
		rec := sdk.Record{Data: []byte(fmt.Sprintf("session %d", i)), Expires: time.Now().Add(time.Hour)}
		if err := h.Save(ctx, ids[i], rec); err != nil {
			t.Fatalf("Save #%d: %v", i, err)
		}
	}
	var total, used int64
	for _, n := range nodes {
		size, err := n.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("node %s holds %d sessions", n.Addr(), size)
		total += size
		if size > 0 {
			used++
		}
	}
	if total != sessions || used < 2 {
		t.Errorf("DBSIZE over the masters: want %d sessions spread over at least 2 masters, got %d on %d", sessions, total, used)
	}
	for i, id := range ids {
		got, err := h.Load(ctx, id)
		if want := fmt.Sprintf("session %d", i); err != nil || string(got.Data) != want {
			t.Errorf("Load #%d: want %q, got %q, %v", i, want, got.Data, err)
		}
	}
	if err := h.Close(ctx, ids[0]); err != nil {
		t.Errorf("Close: %v", err)
	}

	// With one master gone, Health names it.
	nodes[1].Kill()
	err = h.Health(ctx)
	if err == nil || !strings.Contains(err.Error(), "redis cluster") || !strings.Contains(err.Error(), nodes[1].Addr()) {
		t.Errorf("Health with node %s down: want an error naming the cluster and that node, got %v", nodes[1].Addr(), err)
	}
}

func TestNewRefusesADatabaseForACluster(t *testing.T) {
	_, err := New(Options{Redis: &redis.UniversalOptions{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, DB: 2}})
	if err == nil || !strings.Contains(err.Error(), "only database 0") {
		t.Errorf("New with DB 2 and two addresses: want an error saying a Cluster has only database 0, got %v", err)
	}
}
