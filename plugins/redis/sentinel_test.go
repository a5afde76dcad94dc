package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
)

// newSentinelHandler builds a Handler the way the plugin does, from
// TINA4_SESSION_REDIS_ADDRS (the Sentinels) and TINA4_SESSION_REDIS_MASTER,
// stopped when the test ends.
func newSentinelHandler(t *testing.T, sentinels, master string) (*Handler, *logBuffer) {
	t.Helper()
	opts, err := OptionsFromEnv(env(map[string]string{EnvAddrs: sentinels, EnvMaster: master}))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	opts.Logger = logs.logger()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	if _, ok := h.client.(*redis.Client); !ok || opts.Redis.MasterName != master {
		t.Fatalf("%s and %s set: want a failover client for master %q, got %T for %q", EnvAddrs, EnvMaster, master, h.client, opts.Redis.MasterName)
	}
	return h, logs
}

func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, master, "sessions")
	h, logs := newSentinelHandler(t, sentinel.Addr(), "sessions")
	ctx := context.Background()

	if !strings.Contains(logs.String(), "connected to redis") || !strings.Contains(logs.String(), "sentinel master sessions via "+sentinel.Addr()) {
		t.Errorf("start-up log: want \"connected to redis\" naming the sentinel master, got:\n%s", logs)
	}
	if err := h.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}

	id := randomID(t)
	rec := sdk.Record{Data: []byte("sealed token"), Expires: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
	if err := h.Save(ctx, id, rec); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := h.Load(ctx, id)
	if err != nil || string(got.Data) != "sealed token" || !got.Expires.Equal(rec.Expires) {
		t.Fatalf("Load: want %q expiring %v, got %q expiring %v, %v", rec.Data, rec.Expires, got.Data, got.Expires, err)
	}
	// The key is on the master, and replicated.
	want := storedValue("sealed token", rec.Expires, got.Version)
	if v, err := master.Client().Get(ctx, DefaultPrefix+id).Result(); err != nil || v != want {
		t.Errorf("GET on the master %s: want magic + expiry + version + token %q, got %q, %v", master.Addr(), want, v, err)
	}
	waitReplicated(t, replica, DefaultPrefix+id, want)

	if err := h.Close(ctx, id); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := h.Load(ctx, id); err != sdk.ErrNotFound {
		t.Errorf("Load after Close: want sdk.ErrNotFound, got %v", err)
	}
	if n, err := master.Client().Exists(ctx, DefaultPrefix+id).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS on the master after Close: want 0, got %d, %v", n, err)
	}
}

func TestSentinelWrongMasterName(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "sessions")
	h, logs := newSentinelHandler(t, sentinel.Addr(), "nosuchmaster")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// go-redis reports a master name the Sentinels do not know as
	// "redis: all sentinels specified in configuration are unreachable:
	// redis: nil" (the Sentinel answered get-master-addr-by-name with a
	// null); the handler puts the master's name and the Sentinels in front.
	where := "redis sentinel master nosuchmaster via " + sentinel.Addr()
	const cause = "all sentinels specified in configuration are unreachable: redis: nil"
	if !strings.Contains(logs.String(), "redis does not answer yet") || !strings.Contains(logs.String(), where) {
		t.Errorf("start-up log with a wrong master name: want a warning naming %q, got:\n%s", where, logs)
	}
	err := h.Health(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), where+": ") || !strings.Contains(err.Error(), cause) {
		t.Errorf("Health with a wrong master name: want %q, got %v", where+": redis: "+cause, err)
	}
	err = h.Save(ctx, randomID(t), sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)})
	if err == nil || !strings.HasPrefix(err.Error(), where+": save session ") || !strings.Contains(err.Error(), cause) {
		t.Errorf("Save with a wrong master name: want %q, got %v", where+": save session …: redis: "+cause, err)
	}
	if n, err := master.Client().DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE on the real master: want 0, got %d, %v", n, err)
	}

	// Load must fail too, never answer "not found" (the host would then
	// hand out a fresh session).
	_, err = h.Load(ctx, randomID(t))
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		t.Errorf("Load with a wrong Sentinel master name: want an error naming %q, got sdk.ErrNotFound", where)
	case err == nil || !strings.HasPrefix(err.Error(), where+": load session ") || !strings.Contains(err.Error(), cause):
		t.Errorf("Load with a wrong master name: want %q, got %v", where+": load session …: redis: "+cause, err)
	}
}

func TestSentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, master, "sessions")
	sentinel.WaitSentinelReplicas("sessions", 15*time.Second, replica)
	h, _ := newSentinelHandler(t, sentinel.Addr(), "sessions")
	ctx := context.Background()

	before := randomID(t)
	rec := sdk.Record{Data: []byte("saved before the failover"), Expires: time.Now().Add(time.Hour)}
	ver, err := h.SaveIf(ctx, before, rec, 0)
	if err != nil {
		t.Fatalf("SaveIf: %v", err)
	}
	// Replication is asynchronous: kill the master only once the replica
	// has the session, or the failover would rightly lose it.
	waitReplicated(t, replica, DefaultPrefix+before, storedValue(string(rec.Data), rec.Expires, ver))

	killed := time.Now()
	master.Kill()
	took := sentinel.WaitSentinelMaster("sessions", replica.Addr(), 20*time.Second)
	t.Logf("Sentinel promoted the replica %s %s after the master was killed", replica.Addr(), took)

	// The same Handler follows the failover by itself. Allow a few
	// attempts while go-redis drops its connections to the old master.
	var got sdk.Record
	attempts := 0
	for deadline := time.Now().Add(5 * time.Second); ; {
		attempts++
		opCtx, cancel := context.WithTimeout(ctx, time.Second)
		got, err = h.Load(opCtx, before)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		t.Logf("Load attempt %d after the failover: %v", attempts, err)
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || string(got.Data) != string(rec.Data) || got.Version != ver {
		t.Fatalf("Load after the failover (%d attempts): want %q version %d, got %q version %d, %v", attempts, rec.Data, ver, got.Data, got.Version, err)
	}
	t.Logf("Load works again %s after the kill, at attempt %d", time.Since(killed), attempts)

	after := randomID(t)
	afterRec := sdk.Record{Data: []byte("saved after the failover"), Expires: time.Now().Add(time.Hour)}
	afterVer, err := h.SaveIf(ctx, after, afterRec, 0)
	if err != nil {
		t.Fatalf("SaveIf after the failover: %v", err)
	}
	if v, err := replica.Client().Get(ctx, DefaultPrefix+after).Result(); err != nil || v != storedValue(string(afterRec.Data), afterRec.Expires, afterVer) {
		t.Errorf("GET on the new master %s: want the value saved after the failover, got %q, %v", replica.Addr(), v, err)
	}
	if got, err := h.Load(ctx, after); err != nil || string(got.Data) != "saved after the failover" {
		t.Errorf("Load after the failover: want the new token, got %q, %v", got.Data, err)
	}
	if err := h.Health(ctx); err != nil {
		t.Errorf("Health after the failover: %v", err)
	}
}

// waitReplicated polls replica until key holds want, failing the test after
// 5 seconds. (WAIT on another connection than the writer's proves nothing:
// Redis counts acknowledgements of that connection's own last write.)
func waitReplicated(t *testing.T, replica *redistest.Server, key, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		v, err := replica.Client().Get(ctx, key).Result()
		if err == nil && v == want {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("GET %s on the replica %s: want %q, got %q, %v", key, replica.Addr(), want, v, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
