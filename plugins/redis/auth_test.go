package redis

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/sdk/handlertest"
)

// roundTrip saves a record and loads it back, failing the test if that
// does not work.
func roundTrip(t *testing.T, h *Handler) {
	t.Helper()
	ctx := context.Background()
	id := randomID(t)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := h.Load(ctx, id)
	if err != nil || string(got.Data) != "token" {
		t.Fatalf("Load: want %q, got %q, %v", "token", got.Data, err)
	}
	if err := h.Health(ctx); err != nil {
		t.Errorf("Health: want nil, got %v", err)
	}
}

// protocol2RoundTrip exercises SaveIf, Lock and Unlock, failing the test if
// they do not work.
func protocol2RoundTrip(t *testing.T, h *Handler) {
	t.Helper()
	ctx := context.Background()
	id := randomID(t)
	ver, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("token"), Expires: time.Now().Add(time.Hour)}, 0)
	if err != nil {
		t.Fatalf("SaveIf: %v", err)
	}
	if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("stale"), Expires: time.Now().Add(time.Hour)}, 0); !isConflict(err, true) {
		t.Errorf("SaveIf with a stale version: want a conflict, got %v", err)
	}
	if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("next"), Expires: time.Now().Add(time.Hour)}, ver); err != nil {
		t.Errorf("SaveIf with the current version: %v", err)
	}
	if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("gone"), Expires: time.Now().Add(-time.Hour)}, 0); !isConflict(err, true) {
		t.Errorf("SaveIf of an expired record with a stale version: want a conflict, got %v", err)
	}
	if got, err := h.Lock(ctx, id, "t", time.Minute); err != nil || !got {
		t.Errorf("Lock: want true, got %v, %v", got, err)
	}
	if got, err := h.Lock(ctx, id, "t", time.Minute); err != nil || !got {
		t.Errorf("Lock again by the holder: want true, got %v, %v", got, err)
	}
	if err := h.Unlock(ctx, id, "t"); err != nil {
		t.Errorf("Unlock: %v", err)
	}
}

// indexRoundTrip saves two sessions of a principal and closes them with
// CloseAll.
func indexRoundTrip(t *testing.T, h *Handler) {
	t.Helper()
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	if err := h.Save(ctx, randomID(t), sdk.Record{Data: []byte("a"), Expires: time.Now().Add(time.Hour), Principal: p}); err != nil {
		t.Fatalf("Save with a principal: %v", err)
	}
	if _, err := h.SaveIf(ctx, randomID(t), sdk.Record{Data: []byte("b"), Expires: time.Now().Add(time.Hour), Principal: p}, 0); err != nil {
		t.Fatalf("SaveIf with a principal: %v", err)
	}
	if n, err := h.CloseAll(ctx, p); err != nil || n != 2 {
		t.Fatalf("CloseAll: %d, %v; want 2", n, err)
	}
}

func TestPasswordAuthentication(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	for _, name := range []string{EnvPassword, EnvSecret} {
		t.Run(name, func(t *testing.T) {
			opts, err := OptionsFromEnv(env(map[string]string{
				EnvHost: "127.0.0.1", EnvPort: itoa(srv.Port()), name: "s3cret",
			}))
			if err != nil {
				t.Fatal(err)
			}
			h, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Stop()
			roundTrip(t, h)
			protocol2RoundTrip(t, h)
		})
	}
}

func TestWrongOrMissingPasswordIsReportedByHealth(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	tests := []struct {
		name, password, want string
	}{
		{"wrong password", "guess", "WRONGPASS"},
		{"no password", "", "NOAUTH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := newTestHandler(t, []string{srv.Addr()}, func(o *Options) { o.Redis.Password = tc.password })
			ctx := context.Background()
			err := h.Health(ctx)
			if err == nil {
				t.Fatal("Health: want an error, got nil")
			}
			for _, want := range []string{"redis " + srv.Addr(), tc.want, EnvPassword} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Health: want the error to contain %q, got %q", want, err)
				}
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("New: want a start-up warning containing %q, log was %q", tc.want, logs.String())
			}
			if _, err := h.Load(ctx, randomID(t)); err == nil || errors.Is(err, sdk.ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: want an error (not sdk.ErrNotFound) containing %q, got %v", tc.want, err)
			}
			rec := sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}
			if err := h.Save(ctx, randomID(t), rec); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Save: want an error containing %q, got %v", tc.want, err)
			}
			if err := h.Close(ctx, randomID(t)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Close: want an error containing %q, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(logs.String(), "s3cret") {
				t.Errorf("the password must not appear in errors or logs: %q / %q", err, logs.String())
			}
		})
	}
}

func TestACLUserAuthentication(t *testing.T) {
	srv := redistest.Start(t,
		// The smallest set of rights docs/handlers/redis.md tells operators to grant.
		"--user", "alice", "on", ">alicepw", "~tina4:session:*", "+get", "+set", "+del", "+multi", "+exec", "+pexpiretime", "+pttl", "+pexpire", "+evalsha", "+eval", "+ping",
		"+zadd", "+zremrangebyscore", "+zrange", "+zscan", "+zscore", "+zrem", "+pexpireat", "+getrange", "+strlen",
		"--user", "bob", "on", ">bobpw", "~*", "+@all", "-pexpiretime",
		"--user", "carol", "on", ">carolpw", "~tina4:session:*", "+get", "+set", "+del", "+ping",
		"--user", "dave", "on", ">davepw", "~tina4:session:*", "+evalsha", "+eval", "+ping",
	)
	opts, err := OptionsFromEnv(env(map[string]string{
		EnvHost: "127.0.0.1", EnvPort: itoa(srv.Port()), EnvUsername: "alice", EnvPassword: "alicepw",
	}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	roundTrip(t, h)
	protocol2RoundTrip(t, h)
	indexRoundTrip(t, h)
	if who, err := srv.Client().Do(context.Background(), "CLIENT", "LIST").Text(); err != nil || !strings.Contains(who, "user=alice") {
		t.Errorf("CLIENT LIST: want a connection as user alice, got %q, %v", who, err)
	}
	// SaveIf over a session in the oldest format, whose script asks
	// PEXPIRETIME, or PTTL when it may not.
	legacyID := randomID(t)
	if err := srv.Client().Do(context.Background(), "SET", DefaultPrefix+legacyID, "token", "PXAT", time.Now().Add(time.Hour).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SaveIf(context.Background(), legacyID, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0); !isConflict(err, true) {
		t.Errorf("SaveIf with version 0 over a legacy value as alice: want a conflict carrying it, got %v", err)
	}
	if _, err := h.SaveIf(context.Background(), legacyID, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 1); err != nil {
		t.Errorf("SaveIf with version 1 over a legacy value as alice: %v", err)
	}

	// Sessions in the current format need only GET, SET, DEL and PING...
	carol, _ := newTestHandler(t, []string{srv.Addr()}, func(o *Options) { o.Redis.Username, o.Redis.Password = "carol", "carolpw" })
	roundTrip(t, carol)
	// ...but SaveIf and the lock are scripts: without EVALSHA the error says
	// which commands the user needs.
	_, err = carol.SaveIf(context.Background(), randomID(t), sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0)
	if err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), "EVALSHA") {
		t.Errorf("SaveIf as a user without EVALSHA: want an error with NOPERM naming the commands needed, got %v", err)
	}
	if _, err := carol.Lock(context.Background(), randomID(t), "t", time.Minute); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("Lock as a user without EVALSHA: want an error with NOPERM, got %v", err)
	}
	// A user that may run scripts but not the commands in them is told too.
	dave, _ := newTestHandler(t, []string{srv.Addr()}, func(o *Options) { o.Redis.Username, o.Redis.Password = "dave", "davepw" })
	_, err = dave.SaveIf(context.Background(), randomID(t), sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0)
	if err == nil || !strings.Contains(err.Error(), "the Redis user needs GET, SET, DEL, EVALSHA") {
		t.Errorf("SaveIf as a user whose scripts may not run GET: want an error naming the commands needed, got %v", err)
	}
	if _, err := dave.Lock(context.Background(), randomID(t), "t", time.Minute); err == nil || !strings.Contains(err.Error(), "the Redis user needs GET, SET, DEL, EVALSHA") {
		t.Errorf("Lock as a user whose scripts may not run GET: want an error naming the commands needed, got %v", err)
	}

	// A user that may not run a command the handler needs gets told which:
	// PEXPIRETIME, for a session saved by an earlier version of the handler.
	bob, _ := newTestHandler(t, []string{srv.Addr()}, func(o *Options) { o.Redis.Username, o.Redis.Password = "bob", "bobpw" })
	roundTrip(t, bob)
	ctx := context.Background()
	legacy := randomID(t)
	if err := srv.Client().Do(ctx, "SET", DefaultPrefix+legacy, "token", "PXAT", time.Now().Add(time.Hour).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = bob.Load(ctx, legacy)
	if err == nil || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), "PEXPIRETIME") {
		t.Errorf("Load of a legacy value as a user without PEXPIRETIME: want an error with NOPERM naming the commands needed, got %v", err)
	}
}

// A user given the rights documented before SaveIf read only the header
// (no GETRANGE, no STRLEN) still saves conditionally: the script falls back
// to reading the whole value. The conflict checks keep working.
func TestSaveIfWithoutGetrangeOrStrlen(t *testing.T) {
	srv := redistest.Start(t,
		"--user", "erin", "on", ">erinpw", "~tina4:session:*", "+get", "+set", "+del", "+multi", "+exec", "+pexpiretime", "+pttl", "+pexpire", "+evalsha", "+eval", "+ping",
		"+zadd", "+zremrangebyscore", "+zrange", "+zscan", "+zscore", "+zrem", "+pexpireat")
	h, _ := newTestHandler(t, []string{srv.Addr()}, func(o *Options) { o.Redis.Username, o.Redis.Password = "erin", "erinpw" })
	ctx := context.Background()
	live := time.Now().Add(time.Hour)
	for _, principal := range []string{"", handlertest.NewPrincipal()} {
		id := randomID(t)
		v1, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("one"), Expires: live, Principal: principal}, 0)
		if err != nil {
			t.Fatalf("principal %q: first SaveIf as erin: %v", principal, err)
		}
		v2, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("two"), Expires: live, Principal: principal}, v1)
		if err != nil {
			t.Fatalf("principal %q: SaveIf over the current version as erin: %v", principal, err)
		}
		if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("stale"), Expires: live, Principal: principal}, v1); !isConflict(err, true) {
			t.Errorf("principal %q: SaveIf over a stale version as erin: want a conflict, got %v", principal, err)
		}
		if rec, err := h.Load(ctx, id); err != nil || string(rec.Data) != "two" || rec.Version != v2 {
			t.Errorf("principal %q: Load: got %q version %d, %v; want \"two\" version %d", principal, rec.Data, rec.Version, err, v2)
		}
	}
	// The header path was tried and refused, so the saves above took the
	// fallback.
	st, err := srv.Client().Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`cmdstat_getrange:.*rejected_calls=[1-9]`).MatchString(st) {
		t.Errorf("want GETRANGE refused to erin at least once, commandstats says:\n%s", st)
	}
}
