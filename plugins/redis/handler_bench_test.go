package redis

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
)

// benchTokenSize is about the size of a sealed session token.
const benchTokenSize = 512

// benchHandler starts a redis-server and returns a Handler for it holding one
// session, whose id and token it returns.
func benchHandler(b *testing.B) (*Handler, *redistest.Server, string, []byte) {
	b.Helper()
	srv := redistest.Start(b)
	h, err := New(Options{Redis: &redis.UniversalOptions{Addrs: []string{srv.Addr()}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Stop)
	id := "BenchmarkLoadBenchmarkLoadBenchmarkLoad-___"
	token := bytes.Repeat([]byte("eyJhbGciOiJIUzI1NiJ9."), benchTokenSize/21+1)[:benchTokenSize]
	if err := h.Save(context.Background(), id, sdk.Record{Data: token, Expires: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	return h, srv, id, token
}

// BenchmarkLoad measures one Load of a live session, one caller at a time,
// against a real redis-server on loopback.
func BenchmarkLoad(b *testing.B) {
	h, _, id, token := benchHandler(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rec, err := h.Load(ctx, id)
		if err != nil || len(rec.Data) != len(token) {
			b.Fatalf("Load: want the %d-byte token, got %d bytes, %v", len(token), len(rec.Data), err)
		}
	}
}

// BenchmarkLoadParallel is BenchmarkLoad with GOMAXPROCS callers sharing one
// Handler.
func BenchmarkLoadParallel(b *testing.B) {
	h, _, id, token := benchHandler(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec, err := h.Load(ctx, id)
			if err != nil || len(rec.Data) != len(token) {
				b.Errorf("Load: want the %d-byte token, got %d bytes, %v", len(token), len(rec.Data), err)
				return
			}
		}
	})
}

// BenchmarkLoadLegacy measures Load of a value written by an earlier version
// of the handler (the bare token, expiry only on the key): a GET, then
// MULTI, GET, PEXPIRETIME, EXEC.
func BenchmarkLoadLegacy(b *testing.B) {
	h, srv, id, token := benchHandler(b)
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "SET", DefaultPrefix+id, token, "PXAT", time.Now().Add(time.Hour).UnixMilli()).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec, err := h.Load(ctx, id)
		if err != nil || len(rec.Data) != len(token) {
			b.Fatalf("Load: want the %d-byte token, got %d bytes, %v", len(token), len(rec.Data), err)
		}
	}
}

// BenchmarkSave measures one Save of a live session (SET ... PXAT), one
// caller at a time.
func BenchmarkSave(b *testing.B) {
	h, _, id, token := benchHandler(b)
	ctx := context.Background()
	rec := sdk.Record{Data: token, Expires: time.Now().Add(time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Save(ctx, id, rec); err != nil {
			b.Fatalf("Save: %v", err)
		}
	}
}

// BenchmarkSaveIf measures one SaveIf over the version the previous one
// wrote (the host's write with capability "versions"): one EVALSHA that
// reads the value, compares the version and SETs.
func BenchmarkSaveIf(b *testing.B) {
	h, _, id, token := benchHandler(b)
	ctx := context.Background()
	rec := sdk.Record{Data: token, Expires: time.Now().Add(time.Hour)}
	ver, err := h.SaveIf(ctx, id, rec, legacyVersion) // benchHandler saved it in format 2; find its version
	var ce *sdk.ConflictError
	if errors.As(err, &ce) {
		ver, err = h.SaveIf(ctx, id, rec, ce.Current.Version)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ver, err = h.SaveIf(ctx, id, rec, ver); err != nil {
			b.Fatalf("SaveIf: %v", err)
		}
	}
}

// BenchmarkLockUnlock measures taking and releasing a session's lock: two
// EVALSHAs.
func BenchmarkLockUnlock(b *testing.B) {
	h, _, id, _ := benchHandler(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if got, err := h.Lock(ctx, id, "0123456789abcdef0123456789abcdef", 5*time.Second); err != nil || !got {
			b.Fatalf("Lock: %v, %v", got, err)
		}
		if err := h.Unlock(ctx, id, "0123456789abcdef0123456789abcdef"); err != nil {
			b.Fatalf("Unlock: %v", err)
		}
	}
}
