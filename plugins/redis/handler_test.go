package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
)

func TestSaveThenLoadReturnsTheSameRecord(t *testing.T) {
	h, _, _ := startHandler(t)
	big := make([]byte, 6<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"text", []byte("eyJhbGciOiJIUzI1NiJ9.sealed.token")},
		{"binary with CRLF and NUL", []byte("line1\r\n$5\r\n\x00\xff\xfe*2\r\n")},
		{"6 MiB", big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			id := randomID(t)
			expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
			if err := h.Save(ctx, id, sdk.Record{Data: tc.data, Expires: expires}); err != nil {
				t.Fatalf("Save: want nil, got %v", err)
			}
			got, err := h.Load(ctx, id)
			if err != nil {
				t.Fatalf("Load: want the saved record, got error %v", err)
			}
			if !bytes.Equal(got.Data, tc.data) {
				t.Errorf("Load: want the %d saved bytes back unchanged, got %d bytes that differ", len(tc.data), len(got.Data))
			}
			if !got.Expires.Equal(expires) {
				t.Errorf("Load: want Expires %v to the millisecond, got %v", expires, got.Expires)
			}
		})
	}
}

func TestSaveStoresTheTokenAsIsUnderPrefixPlusID(t *testing.T) {
	for _, prefix := range []string{"", "myapp:sess:"} {
		t.Run(fmt.Sprintf("prefix %q", prefix), func(t *testing.T) {
			srv := redistest.Start(t)
			h, _ := newTestHandler(t, []string{srv.Addr()}, func(o *Options) { o.Prefix = prefix })
			want := prefix
			if want == "" {
				want = DefaultPrefix
			}
			ctx := context.Background()
			id := randomID(t)
			expires := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli() + 123)
			if err := h.Save(ctx, id, sdk.Record{Data: []byte("sealed\x00token"), Expires: expires}); err != nil {
				t.Fatalf("Save: %v", err)
			}
			keys, err := srv.Client().Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keys, []string{want + id}) {
				t.Fatalf("keys in Redis: want only %q, got %q", want+id, keys)
			}
			if got, err := srv.Client().Get(ctx, want+id).Result(); err != nil || got != "sealed\x00token" {
				t.Errorf("GET %s: want the token byte for byte, got %q, %v", want+id, got, err)
			}
			if got, err := srv.Client().PExpireTime(ctx, want+id).Result(); err != nil || got != time.Duration(expires.UnixMilli())*time.Millisecond {
				t.Errorf("PEXPIRETIME: want %d (Expires in Unix ms), got %d, %v", expires.UnixMilli(), got.Milliseconds(), err)
			}
		})
	}
}

func TestSaveReplacesTheRecord(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	first := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	second := first.Add(time.Hour)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("first, and longer than the second"), Expires: first}); err != nil {
		t.Fatal(err)
	}
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("second"), Expires: second}); err != nil {
		t.Fatal(err)
	}
	got, err := h.Load(ctx, id)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if string(got.Data) != "second" || !got.Expires.Equal(second) {
		t.Errorf("Load after two Saves: want %q expiring %v, got %q expiring %v", "second", second, got.Data, got.Expires)
	}
	if n, _ := srv.Client().DBSize(ctx).Result(); n != 1 {
		t.Errorf("DBSIZE: want 1 key, got %d", n)
	}
}

func TestLoadUnknownIDIsNotFound(t *testing.T) {
	h, _, _ := startHandler(t)
	_, err := h.Load(context.Background(), randomID(t))
	if !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load of an id never saved: want sdk.ErrNotFound, got %v", err)
	}
}

func TestCloseDeletesTheKeyAndIsIdempotent(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if err := h.Close(ctx, id); err != nil {
			t.Errorf("Close #%d: want nil, got %v", i, err)
		}
	}
	if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load after Close: want sdk.ErrNotFound, got %v", err)
	}
	if n, _ := srv.Client().Exists(ctx, DefaultPrefix+id).Result(); n != 0 {
		t.Errorf("after Close: want the key deleted, EXISTS says %d", n)
	}
	if err := h.Close(ctx, randomID(t)); err != nil {
		t.Errorf("Close of an id never saved: want nil, got %v", err)
	}
}

func TestRedisExpiresTheSession(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	key := DefaultPrefix + id
	expires := time.Now().Add(1500 * time.Millisecond)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("short-lived"), Expires: expires}); err != nil {
		t.Fatal(err)
	}
	// Redis's own view of the expiry; the tolerance covers a slow machine
	// between Save and PTTL, not anything the handler does.
	pttl, err := srv.Client().PTTL(ctx, key).Result()
	if err != nil || pttl > 1500*time.Millisecond || pttl < 500*time.Millisecond {
		t.Fatalf("PTTL right after Save with Expires 1.5s ahead: want at most 1.5s and close to it, got %v, %v", pttl, err)
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		rec, err := h.Load(ctx, id)
		if errors.Is(err, sdk.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("Load while waiting for expiry: %v", err)
		}
		if now := time.Now(); !rec.Expires.After(now) {
			t.Fatalf("Load returned a record whose Expires %v is not after now %v", rec.Expires, now)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Load: want sdk.ErrNotFound once Expires has passed, still found 15s later")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if time.Now().Before(expires) {
		t.Errorf("Load: reported not found at %v, before Expires %v", time.Now(), expires)
	}
	// Redis drops a key once its clock is past the key's millisecond; allow
	// it that millisecond (bounded wait, not a timing assertion).
	gone := time.Now().Add(time.Second)
	for {
		n, err := srv.Client().Exists(ctx, key).Result()
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(gone) {
			t.Errorf("after expiry: want the key gone from Redis, EXISTS says %d, %v", n, err)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSaveWithPastExpiresStoresNothing(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	for _, expires := range []time.Time{time.Now().Add(-time.Second), time.Now(), {}} {
		id := randomID(t)
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: expires}); err != nil {
			t.Errorf("Save with Expires %v: want nil, got %v", expires, err)
		}
		if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("Load after Save with Expires %v: want sdk.ErrNotFound, got %v", expires, err)
		}
	}
	// A past Expires also removes the record saved before.
	id := randomID(t)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("live"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("dead"), Expires: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load after saving an expired record over a live one: want sdk.ErrNotFound, got %v", err)
	}
	if n, _ := srv.Client().DBSize(ctx).Result(); n != 0 {
		t.Errorf("DBSIZE: want no keys, got %d", n)
	}
}

func TestHostileIDsAreRefusedBeforeRedis(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	valid := randomID(t)
	if err := h.Save(ctx, valid, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	hostile := []string{
		"",
		"*",
		"?",
		strings.Repeat("a", 42),
		strings.Repeat("a", 44),
		strings.Repeat("a", 42) + "*",
		strings.Repeat("a", 41) + "\r\n",
		"../../../../../../../../../../../etc/passwd",
		strings.Repeat("a", 39) + "{ab}",
		strings.Repeat("a", 40) + " xx",
		strings.Repeat("a", 42) + ":",
		strings.Repeat("é", 21) + "a",
		valid[:42] + "\x00",
	}
	for _, id := range hostile {
		rec := sdk.Record{Data: []byte("evil"), Expires: time.Now().Add(time.Hour)}
		if err := h.Save(ctx, id, rec); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("Save(%q): want sdk.ErrInvalidID, got %v", id, err)
		}
		if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("Load(%q): want sdk.ErrInvalidID, got %v", id, err)
		}
		if err := h.Close(ctx, id); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("Close(%q): want sdk.ErrInvalidID, got %v", id, err)
		}
	}
	stats, err := srv.Client().Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"get", "set", "del", "multi", "exec", "pexpiretime"} {
		if strings.Contains(stats, "cmdstat_"+cmd+":") {
			t.Errorf("after refusing hostile ids: want no %s sent to Redis, INFO commandstats says:\n%s", strings.ToUpper(cmd), stats)
		}
	}
	var keys []string
	iter := srv.Client().Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{DefaultPrefix + valid}) {
		t.Errorf("SCAN: want only the valid session's key %q, got %q", DefaultPrefix+valid, keys)
	}
}

func TestLoadTreatsKeysItDidNotWriteAsNotFound(t *testing.T) {
	h, srv, logs := startHandler(t)
	ctx := context.Background()
	c := srv.Client()
	noTTL, list := randomID(t), randomID(t)
	if err := c.Set(ctx, DefaultPrefix+noTTL, "no expiry", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.RPush(ctx, DefaultPrefix+list, "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]string{"string without expiry": noTTL, "list": list} {
		if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("Load of a %s: want sdk.ErrNotFound, got %v", name, err)
		}
		if strings.Contains(logs.String(), id) {
			t.Errorf("log must not contain a whole session id, got %q", logs.String())
		}
		want := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("mine"), Expires: want}); err != nil {
			t.Fatalf("Save over a %s: %v", name, err)
		}
		if got, err := h.Load(ctx, id); err != nil || string(got.Data) != "mine" || !got.Expires.Equal(want) {
			t.Errorf("Load after Save over a %s: want %q expiring %v, got %q expiring %v, %v", name, "mine", want, got.Data, got.Expires, err)
		}
	}
	for _, want := range []string{"no expiry", "not a string"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log: want a warning containing %q, got %q", want, logs.String())
		}
	}
}

func TestLoadFallsBackToPTTLWithoutPEXPIRETIME(t *testing.T) {
	// Redis before 7.0 has no PEXPIRETIME; renaming it away looks the same.
	h, _, logs := startHandler(t, "--rename-command", "PEXPIRETIME", "")
	ctx := context.Background()
	for range 2 {
		id := randomID(t)
		expires := time.Now().Add(time.Hour)
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("token"), Expires: expires}); err != nil {
			t.Fatal(err)
		}
		got, err := h.Load(ctx, id)
		if err != nil {
			t.Fatalf("Load from a Redis without PEXPIRETIME: want the record, got %v", err)
		}
		if d := got.Expires.Sub(expires); string(got.Data) != "token" || d < -time.Second || d > time.Second {
			t.Errorf("Load: want %q expiring about %v, got %q expiring %v", "token", expires, got.Data, got.Expires)
		}
	}
	if n := strings.Count(logs.String(), "PTTL"); n != 1 {
		t.Errorf("log: want one message about falling back to PTTL, got %d in %q", n, logs.String())
	}
}

func TestConcurrentSessionsStayApart(t *testing.T) {
	h, _, _ := startHandler(t)
	ctx := context.Background()
	const workers, ops = 64, 50
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		id := randomID(t)
		wg.Go(func() {
			for i := range ops {
				want := fmt.Sprintf("worker %d op %d %s", w, i, strings.Repeat("x", i*31))
				if err := h.Save(ctx, id, sdk.Record{Data: []byte(want), Expires: time.Now().Add(time.Hour)}); err != nil {
					errs <- fmt.Errorf("worker %d: Save #%d: %w", w, i, err)
					return
				}
				got, err := h.Load(ctx, id)
				if err != nil {
					errs <- fmt.Errorf("worker %d: Load #%d: %w", w, i, err)
					return
				}
				if string(got.Data) != want {
					errs <- fmt.Errorf("worker %d: Load #%d: want %.30q..., got %.30q...", w, i, want, got.Data)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestContextDeadlineIsHonoured(t *testing.T) {
	// A server that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 100)
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		l.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	h, _ := newTestHandler(t, []string{l.Addr().String()})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = h.Load(ctx, randomID(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Load from a Redis that never answers: want an error wrapping context.DeadlineExceeded, got %v", err)
	}
	// go-redis's own read timeout is 5s; returning well before it shows the
	// host's deadline was applied.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Load with a 200ms deadline took %v", took)
	}
	if err != nil && !strings.Contains(err.Error(), "redis "+l.Addr().String()) {
		t.Errorf("Load error: want it to name redis %s, got %q", l.Addr(), err)
	}

	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, err := h.Load(cancelled, randomID(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: want context.Canceled, got %v", err)
	}
	if err := h.Save(cancelled, randomID(t), sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context: want context.Canceled, got %v", err)
	}
	if err := h.Close(cancelled, randomID(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a cancelled context: want context.Canceled, got %v", err)
	}
}

func TestStopClosesTheClient(t *testing.T) {
	h, _, _ := startHandler(t)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(h.Stop)
	}
	wg.Wait()
	h.Stop()
	_, err := h.Load(context.Background(), randomID(t))
	if err == nil || errors.Is(err, sdk.ErrNotFound) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Load after Stop: want an error saying the handler was stopped, got %v", err)
	}
}
