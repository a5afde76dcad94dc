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
	"github.com/tina4go/sessions/sdk/handlertest"
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

// SaveIf and the lock are one script on one key each, so they work on a
// Cluster: every session's own master runs them.
func TestClusterSaveIfAndLock(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	a, _ := newTestHandler(t, addrs)
	b, _ := newTestHandler(t, addrs) // a second app server
	if _, ok := a.client.(*redis.ClusterClient); !ok {
		t.Fatalf("3 addresses: want a cluster client, got %T", a.client)
	}
	ctx := context.Background()

	const sessions = 60
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = randomID(t)
		rec := sdk.Record{Data: []byte(fmt.Sprintf("session %d", i)), Expires: time.Now().Add(time.Hour)}
		v1, err := a.SaveIf(ctx, ids[i], rec, 0)
		if err != nil {
			t.Fatalf("SaveIf #%d: %v", i, err)
		}
		if _, err := b.SaveIf(ctx, ids[i], sdk.Record{Data: []byte("stale"), Expires: time.Now().Add(time.Hour)}, v1+1); !isConflict(err, true) {
			t.Errorf("SaveIf #%d with a stale version through the other handler: want a conflict, got %v", i, err)
		}
		v2, err := b.SaveIf(ctx, ids[i], rec, v1)
		if err != nil || v2 == v1 {
			t.Errorf("SaveIf #%d with the current version through the other handler: want a new version, got %d, %v", i, v2, err)
		}
		if got, err := a.Load(ctx, ids[i]); err != nil || got.Version != v2 {
			t.Errorf("Load #%d: want version %d, got %d, %v", i, v2, got.Version, err)
		}
		if got, err := a.Lock(ctx, ids[i], "token-a", time.Minute); err != nil || !got {
			t.Errorf("Lock #%d: want true, got %v, %v", i, got, err)
		}
		if got, err := b.Lock(ctx, ids[i], "token-b", time.Minute); err != nil || got {
			t.Errorf("Lock #%d with another token through the other handler: want false, got %v, %v", i, got, err)
		}
	}
	// Sessions and their locks are spread over the masters.
	used := 0
	for _, n := range nodes {
		size, err := n.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("want sessions on at least 2 of the 3 masters, got %d", used)
	}
	for i, id := range ids {
		if err := b.Unlock(ctx, id, "token-a"); err != nil {
			t.Errorf("Unlock #%d: %v", i, err)
		}
	}

	// And the whole conformance kit, versions and lock included.
	handlertest.Run(t, a)
}
