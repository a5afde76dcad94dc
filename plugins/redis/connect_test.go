package redis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
)

func TestURLSelectsDatabaseAndPassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "pw")
	opts, err := OptionsFromEnv(env(map[string]string{
		EnvURL:  "redis://:pw@127.0.0.1:" + itoa(srv.Port()) + "/2",
		EnvHost: "elsewhere.invalid", // the URL wins
	}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	ctx := context.Background()
	id := randomID(t)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("in db 2"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for db, want := range map[int]int64{0: 0, 2: 1} {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "pw", DB: db})
		n, err := c.Exists(ctx, DefaultPrefix+id).Result()
		c.Close()
		if err != nil || n != want {
			t.Errorf("EXISTS in db %d: want %d, got %d, %v", db, want, n, err)
		}
	}
}

func TestTLSConnection(t *testing.T) {
	certs := redistest.NewTLS(t)
	srv := redistest.StartTLS(t, certs)
	opts, err := OptionsFromEnv(env(map[string]string{
		EnvHost: "localhost", EnvPort: itoa(srv.Port()), EnvTLS: "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := opts.Redis.TLSConfig; got == nil || got.ServerName != "localhost" {
		t.Fatalf("%s=true: want TLS with ServerName localhost, got %+v", EnvTLS, got)
	}

	// The test CA is not among the system's roots: the certificate is
	// checked, so the connection is refused and Health says why.
	untrusting, _ := newTestHandler(t, nil, func(o *Options) { *o = opts; o.Logger = (&logBuffer{}).logger() })
	err = untrusting.Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "redis localhost:"+itoa(srv.Port())) {
		t.Errorf("Health against a certificate from an unknown CA: want an error about the certificate naming the address, got %v", err)
	}

	tlsOpts := opts
	cfg := opts.Redis.TLSConfig.Clone()
	cfg.RootCAs = certs.CAs
	redisOpts := *opts.Redis
	redisOpts.TLSConfig = cfg
	tlsOpts.Redis = &redisOpts
	h, _ := newTestHandler(t, nil, func(o *Options) { *o = tlsOpts; o.Logger = (&logBuffer{}).logger() })
	roundTrip(t, h)
}
