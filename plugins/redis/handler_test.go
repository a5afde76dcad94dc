package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
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

func TestSaveStoresMagicExpiryAndTokenUnderPrefixPlusID(t *testing.T) {
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
			rec, err := h.Load(ctx, id)
			if err != nil || rec.Version <= 1 {
				t.Fatalf("Load: want the record with a version above 1, got version %d, %v", rec.Version, err)
			}
			// "\x00t4\x02", Expires as 8 big-endian bytes of Unix ms, the
			// version as 8 big-endian bytes, the token byte for byte.
			ms, v := expires.UnixMilli(), rec.Version
			wantValue := "\x00t4\x02" +
				string([]byte{byte(ms >> 56), byte(ms >> 48), byte(ms >> 40), byte(ms >> 32), byte(ms >> 24), byte(ms >> 16), byte(ms >> 8), byte(ms)}) +
				string([]byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}) +
				"sealed\x00token"
			if wantValue != storedValue("sealed\x00token", expires, v) {
				t.Fatalf("storedValue disagrees with the layout spelt out here")
			}
			if got, err := srv.Client().Get(ctx, want+id).Result(); err != nil || got != wantValue {
				t.Errorf("GET %s: want magic + expiry + version + token %q, got %q, %v", want+id, wantValue, got, err)
			}
			if got, err := srv.Client().PExpireTime(ctx, want+id).Result(); err != nil || got != time.Duration(expires.UnixMilli())*time.Millisecond {
				t.Errorf("PEXPIRETIME: want %d (Expires in Unix ms), got %d, %v", expires.UnixMilli(), got.Milliseconds(), err)
			}
		})
	}
}

func TestSaveRoundsExpiresUpToTheMillisecond(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	// 1ns past a millisecond: the value and the key both say the next one.
	expires := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli()).Add(time.Nanosecond)
	ceil := time.UnixMilli(expires.UnixMilli() + 1)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("t"), Expires: expires}); err != nil {
		t.Fatal(err)
	}
	ver, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("t"), Expires: expires}, 0)
	var ce *sdk.ConflictError
	if !errors.As(err, &ce) || !ce.Found {
		t.Fatalf("SaveIf with version 0 over a record: want a conflict, got %d, %v", ver, err)
	}
	if got, err := srv.Client().Get(ctx, DefaultPrefix+id).Result(); err != nil || got != storedValue("t", ceil, ce.Current.Version) {
		t.Errorf("GET: want %q, got %q, %v", storedValue("t", ceil, ce.Current.Version), got, err)
	}
	if ver, err = h.SaveIf(ctx, id, sdk.Record{Data: []byte("t"), Expires: expires}, ce.Current.Version); err != nil {
		t.Fatalf("SaveIf: %v", err)
	}
	if got, err := srv.Client().Get(ctx, DefaultPrefix+id).Result(); err != nil || got != storedValue("t", ceil, ver) {
		t.Errorf("GET after SaveIf: want %q, got %q, %v", storedValue("t", ceil, ver), got, err)
	}
	if got, err := srv.Client().PExpireTime(ctx, DefaultPrefix+id).Result(); err != nil || got.Milliseconds() != ceil.UnixMilli() {
		t.Errorf("PEXPIRETIME: want %d, got %d, %v", ceil.UnixMilli(), got.Milliseconds(), err)
	}
	if got, err := h.Load(ctx, id); err != nil || !got.Expires.Equal(ceil) {
		t.Errorf("Load: want Expires %v, got %v, %v", ceil, got.Expires, err)
	}
}

func TestLoadIsOneGET(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got, err := h.Load(ctx, id); err != nil || string(got.Data) != "token" {
			t.Fatalf("Load: want %q, got %q, %v", "token", got.Data, err)
		}
	}
	if _, err := h.Load(ctx, randomID(t)); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("Load of an id never saved: want sdk.ErrNotFound, got %v", err)
	}
	stats := commandStats(t, srv)
	delete(stats, "config|resetstat") // the CONFIG RESETSTAT above
	if want := map[string]string{"get": "4"}; !maps.Equal(stats, want) {
		t.Errorf("INFO commandstats after 4 Loads: want only %v calls, got %v", want, stats)
	}
}

func TestLoadReadsValuesSavedByTheEarlierFormat(t *testing.T) {
	h, srv, logs := startHandler(t)
	ctx := context.Background()
	c := srv.Client()
	id := randomID(t)
	// What the previous version of Save wrote: the bare token, expiry on the key.
	expires := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli() + 7)
	token := "eyJhbGciOiJIUzI1NiJ9.legacy.token"
	if err := c.Do(ctx, "SET", DefaultPrefix+id, token, "PXAT", expires.UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	logged := len(logs.String())
	for range 2 {
		got, err := h.Load(ctx, id)
		if err != nil || string(got.Data) != token || !got.Expires.Equal(expires) {
			t.Fatalf("Load of a legacy value: want %q expiring %v, got %q expiring %v, %v", token, expires, got.Data, got.Expires, err)
		}
	}
	if more := logs.String()[logged:]; more != "" {
		t.Errorf("Load of a legacy value: want nothing logged, got %q", more)
	}

	// An expired legacy value is not found.
	if err := c.Do(ctx, "SET", DefaultPrefix+id, token, "PXAT", time.Now().Add(50*time.Millisecond).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load of an expired legacy value: want sdk.ErrNotFound, got %v", err)
	}

	// The next Save rewrites it in the current format.
	if err := c.Do(ctx, "SET", DefaultPrefix+id, token, "PXAT", expires.UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	later := expires.Add(time.Minute)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte(token), Expires: later}); err != nil {
		t.Fatal(err)
	}
	got, err := h.Load(ctx, id)
	if err != nil || string(got.Data) != token || !got.Expires.Equal(later) || got.Version <= 1 {
		t.Errorf("Load after Save over a legacy value: want %q expiring %v with a new version, got %q expiring %v version %d, %v", token, later, got.Data, got.Expires, got.Version, err)
	}
	if v, err := c.Get(ctx, DefaultPrefix+id).Result(); err != nil || v != storedValue(token, later, got.Version) {
		t.Errorf("GET after Save over a legacy value: want %q, got %q, %v", storedValue(token, later, got.Version), v, err)
	}
}

func TestLoadTrustsTheExpiryInTheValue(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	// The value says it expired a second ago; the key would live an hour.
	past := time.Now().Add(-time.Second)
	for _, v := range []string{storedValue("token", past, 1234567), formatV1Value("token", past)} {
		if err := srv.Client().Set(ctx, DefaultPrefix+id, v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("Load of a value whose own expiry has passed (format %d): want sdk.ErrNotFound, got %v", v[3], err)
		}
		// SaveIf agrees: no record.
		if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 1234567); !isConflict(err, false) {
			t.Errorf("SaveIf over a value whose own expiry has passed (format %d): want a conflict with no record, got %v", v[3], err)
		}
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
	// between Save and PTTL, not anything the handler does. Save rounds
	// the expiry up to Redis's millisecond and Redis counts PTTL from its
	// own millisecond clock, so 1.5s can read as 1.501s.
	pttl, err := srv.Client().PTTL(ctx, key).Result()
	if err != nil || pttl > 1501*time.Millisecond || pttl < 500*time.Millisecond {
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
		if _, err := h.SaveIf(ctx, id, rec, 0); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("SaveIf(%q): want sdk.ErrInvalidID, got %v", id, err)
		}
		if _, err := h.Lock(ctx, id, "token", time.Minute); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("Lock(%q): want sdk.ErrInvalidID, got %v", id, err)
		}
		if err := h.Unlock(ctx, id, "token"); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("Unlock(%q): want sdk.ErrInvalidID, got %v", id, err)
		}
	}
	stats, err := srv.Client().Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"get", "set", "del", "multi", "exec", "pexpiretime", "evalsha", "eval", "pexpire"} {
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

func TestLoadTreatsAShortValueWithTheMagicAsNotFound(t *testing.T) {
	h, srv, logs := startHandler(t)
	ctx := context.Background()
	short := []string{
		"\x00t4\x01",
		"\x00t4\x01\x00\x00\x01\x90\x00\x00\x00",
		"\x00t4\x02",
		"\x00t4\x02\x00\x00\x01\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09",               // expiry, 7 of the version's 8 bytes
		"\x00t4\x03\x00\x00\x01\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09",           // expiry, version, no principal length
		"\x00t4\x03\x00\x00\x01\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09\x40abcdef", // a principal of 64 announced, 6 there
	}
	unknown := storedValue("a token of a newer format", time.Now().Add(time.Hour), 77)
	unknown = unknown[:3] + "\x04" + unknown[4:]
	for _, v := range append(short, unknown) {
		id := randomID(t)
		if err := srv.Client().Set(ctx, DefaultPrefix+id, v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("Load of %q (magic, %d bytes): want sdk.ErrNotFound, got %v", v, len(v), err)
		}
		if strings.Contains(logs.String(), id) {
			t.Errorf("log must not contain a whole session id, got %q", logs.String())
		}
		// SaveIf agrees with Load: there is no record.
		rec := sdk.Record{Data: []byte("mine"), Expires: time.Now().Add(time.Hour)}
		if _, err := h.SaveIf(ctx, id, rec, 1); !isConflict(err, false) {
			t.Errorf("SaveIf with version 1 over %q: want a conflict with no record, got %v", v, err)
		}
		if ver, err := h.SaveIf(ctx, id, rec, 0); err != nil || ver <= 1 {
			t.Errorf("SaveIf with version 0 over %q: want it saved with a new version, got %d, %v", v, ver, err)
		}
		if got, err := h.Load(ctx, id); err != nil || string(got.Data) != "mine" {
			t.Errorf("Load after SaveIf over %q: want %q, got %q, %v", v, "mine", got.Data, err)
		}
	}
	if n := strings.Count(logs.String(), "too short to hold its header"); n != len(short) {
		t.Errorf("log: want %d warnings saying the value is too short, got %d in %q", len(short), n, logs.String())
	}
	if n := strings.Count(logs.String(), "format this handler does not know"); n != 1 {
		t.Errorf("log: want 1 warning about an unknown format, got %d in %q", n, logs.String())
	}
}

func TestLoadFallsBackToPTTLWithoutPEXPIRETIME(t *testing.T) {
	// Redis before 7.0 has no PEXPIRETIME; renaming it away looks the same.
	// Only values in the earlier format need it.
	h, srv, logs := startHandler(t, "--rename-command", "PEXPIRETIME", "")
	ctx := context.Background()
	for range 2 {
		id := randomID(t)
		expires := time.Now().Add(time.Hour)
		if err := srv.Client().Do(ctx, "SET", DefaultPrefix+id, "token", "PXAT", expires.UnixMilli()).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := h.Load(ctx, id)
		if err != nil {
			t.Fatalf("Load of a legacy value from a Redis without PEXPIRETIME: want the record, got %v", err)
		}
		if d := got.Expires.Sub(expires); string(got.Data) != "token" || d < -time.Second || d > time.Second {
			t.Errorf("Load: want %q expiring about %v, got %q expiring %v", "token", expires, got.Data, got.Expires)
		}
		// Values in the current format need neither.
		id = randomID(t)
		expires = expires.Truncate(time.Millisecond)
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("new"), Expires: expires}); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Load(ctx, id); err != nil || string(got.Data) != "new" || !got.Expires.Equal(expires) {
			t.Errorf("Load: want %q expiring %v, got %q expiring %v, %v", "new", expires, got.Data, got.Expires, err)
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
	if _, err := h.SaveIf(cancelled, randomID(t), sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("SaveIf with a cancelled context: want context.Canceled, got %v", err)
	}
	if _, err := h.Lock(cancelled, randomID(t), "token", time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a cancelled context: want context.Canceled, got %v", err)
	}
	if err := h.Unlock(cancelled, randomID(t), "token"); !errors.Is(err, context.Canceled) {
		t.Errorf("Unlock with a cancelled context: want context.Canceled, got %v", err)
	}
	// The protocol-2 calls honour a deadline too.
	for name, call := range map[string]func(context.Context) error{
		"SaveIf": func(ctx context.Context) error {
			_, err := h.SaveIf(ctx, randomID(t), sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0)
			return err
		},
		"Lock": func(ctx context.Context) error {
			_, err := h.Lock(ctx, randomID(t), "token", time.Minute)
			return err
		},
		"Unlock": func(ctx context.Context) error { return h.Unlock(ctx, randomID(t), "token") },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(fmt.Sprint(err), "redis "+l.Addr().String()) {
			t.Errorf("%s from a Redis that never answers: want an error naming redis %s wrapping context.DeadlineExceeded, got %v", name, l.Addr(), err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s with a 200ms deadline took %v", name, took)
		}
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

// commandStats returns, from INFO commandstats, how often each command was
// called since the last CONFIG RESETSTAT, by lower-case name.
func commandStats(t *testing.T, srv *redistest.Server) map[string]string {
	t.Helper()
	info, err := srv.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]string{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		stats[name] = calls
	}
	return stats
}
