package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
)

// isConflict reports whether err is a *sdk.ConflictError with Found found.
func isConflict(err error, found bool) bool {
	var ce *sdk.ConflictError
	return errors.As(err, &ce) && ce.Found == found && errors.Is(err, sdk.ErrConflict)
}

// conflictOver checks that err is a conflict carrying the record data
// expiring at expires (within tolerance) with version ver.
func conflictOver(t *testing.T, what string, err error, data string, expires time.Time, tolerance time.Duration, ver uint64) {
	t.Helper()
	var ce *sdk.ConflictError
	if !errors.As(err, &ce) || !ce.Found {
		t.Errorf("%s: want a conflict carrying the stored record, got %v", what, err)
		return
	}
	if d := ce.Current.Expires.Sub(expires); string(ce.Current.Data) != data || ce.Current.Version != ver || d < -tolerance || d > tolerance {
		t.Errorf("%s: want the conflict to carry %q expiring %v version %d, got %q expiring %v version %d",
			what, data, expires, ver, ce.Current.Data, ce.Current.Expires, ce.Current.Version)
	}
}

func TestSaveIfWritesOnlyOverTheVersionItWasGiven(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)

	if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: expires}, 42); !isConflict(err, false) {
		t.Errorf("SaveIf with a version over no record: want a conflict with Found=false, got %v", err)
	}
	if n, _ := srv.Client().DBSize(ctx).Result(); n != 0 {
		t.Errorf("after a refused SaveIf: want no keys, got %d", n)
	}
	v1, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("first"), Expires: expires}, 0)
	if err != nil || v1 <= 1 {
		t.Fatalf("SaveIf of a new id: want a version above 1, got %d, %v", v1, err)
	}
	if got, err := srv.Client().Get(ctx, DefaultPrefix+id).Result(); err != nil || got != storedValue("first", expires, v1) {
		t.Errorf("GET after SaveIf: want %q, got %q, %v", storedValue("first", expires, v1), got, err)
	}
	if got, err := srv.Client().PExpireTime(ctx, DefaultPrefix+id).Result(); err != nil || got.Milliseconds() != expires.UnixMilli() {
		t.Errorf("PEXPIRETIME after SaveIf: want %d, got %d, %v", expires.UnixMilli(), got.Milliseconds(), err)
	}
	for _, stale := range []uint64{0, 1, v1 + 1} {
		_, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("stale"), Expires: expires}, stale)
		conflictOver(t, fmt.Sprintf("SaveIf with version %d", stale), err, "first", expires, 0, v1)
	}
	v2, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("second"), Expires: expires.Add(time.Minute)}, v1)
	if err != nil || v2 <= 1 || v2 == v1 {
		t.Fatalf("SaveIf with the current version: want a new version, got %d, %v", v2, err)
	}
	if got, err := h.Load(ctx, id); err != nil || string(got.Data) != "second" || got.Version != v2 || !got.Expires.Equal(expires.Add(time.Minute)) {
		t.Errorf("Load after SaveIf: want %q version %d, got %q version %d expiring %v, %v", "second", v2, got.Data, got.Version, got.Expires, err)
	}

	// One EVALSHA per SaveIf once Redis has the script.
	if err := srv.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ver := v2
	for range 3 {
		if ver, err = h.SaveIf(ctx, id, sdk.Record{Data: []byte("again"), Expires: expires}, ver); err != nil {
			t.Fatal(err)
		}
	}
	stats := commandStats(t, srv)
	if stats["evalsha"] != "3" || stats["eval"] != "" {
		t.Errorf("INFO commandstats after 3 SaveIfs: want 3 EVALSHA and no EVAL, got %v", stats)
	}
}

func TestSaveIfWithPastExpiresLeavesNoRecord(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	live := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for _, past := range []time.Time{time.Now().Add(-time.Minute), time.Now(), {}} {
		// Over no record, with version 0: nothing is stored.
		id := randomID(t)
		if ver, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("dead"), Expires: past}, 0); err != nil || ver <= 1 {
			t.Errorf("SaveIf of an expired record over no record: want it accepted with a version, got %d, %v", ver, err)
		}
		if n, _ := srv.Client().Exists(ctx, DefaultPrefix+id).Result(); n != 0 {
			t.Errorf("SaveIf of an expired record over no record: want no key, EXISTS says %d", n)
		}

		// Over a live record with its version: the record is gone.
		v1, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("live"), Expires: live}, 0)
		if err != nil {
			t.Fatal(err)
		}
		// With another version: a conflict, and the record stays.
		_, err = h.SaveIf(ctx, id, sdk.Record{Data: []byte("dead"), Expires: past}, v1+1)
		conflictOver(t, "SaveIf of an expired record with a stale version", err, "live", live, 0, v1)
		v2, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("dead"), Expires: past}, v1)
		if err != nil || v2 <= 1 || v2 == v1 {
			t.Errorf("SaveIf of an expired record with the current version: want a new version, got %d, %v", v2, err)
		}
		if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("Load after SaveIf of an expired record: want sdk.ErrNotFound, got %v", err)
		}
		if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("back"), Expires: live}, v2); !isConflict(err, false) {
			t.Errorf("SaveIf with the version of the expired write: want a conflict with no record, got %v", err)
		}
	}
	if n, _ := srv.Client().DBSize(ctx).Result(); n != 0 {
		t.Errorf("DBSIZE: want no keys, got %d", n)
	}
}

// Values written by earlier versions of the handler have version 1: SaveIf
// with 1 writes over them, any other version conflicts.
func TestLegacyValuesHaveVersionOne(t *testing.T) {
	run := func(t *testing.T, args ...string) {
		h, srv, _ := startHandler(t, args...)
		ctx := context.Background()
		c := srv.Client()
		expires := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli() + 7)
		token := "eyJhbGciOiJIUzI1NiJ9.legacy.token"
		tolerance := time.Duration(0)
		if len(args) > 0 {
			tolerance = time.Second // PTTL: exact to within the round trip
		}
		for _, tc := range []struct {
			name  string
			value string
		}{
			{"bare token, expiry on the key", token},
			{"format 1", formatV1Value(token, expires)},
			{"format 2 with version 0", storedValue(token, expires, 0)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := randomID(t)
				put := func() {
					t.Helper()
					if err := c.Do(ctx, "SET", DefaultPrefix+id, tc.value, "PXAT", expires.UnixMilli()).Err(); err != nil {
						t.Fatal(err)
					}
				}
				put()
				got, err := h.Load(ctx, id)
				if d := got.Expires.Sub(expires); err != nil || string(got.Data) != token || got.Version != 1 || d < -tolerance || d > tolerance {
					t.Fatalf("Load: want %q expiring %v version 1, got %q expiring %v version %d, %v", token, expires, got.Data, got.Expires, got.Version, err)
				}
				for _, other := range []uint64{0, 2, 12345} {
					_, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("other"), Expires: expires}, other)
					conflictOver(t, fmt.Sprintf("SaveIf with version %d", other), err, token, expires, tolerance, 1)
				}
				if v, err := c.Get(ctx, DefaultPrefix+id).Result(); err != nil || v != tc.value {
					t.Errorf("after refused SaveIfs: want the value untouched, got %q, %v", v, err)
				}
				later := expires.Add(time.Minute)
				ver, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("rewritten"), Expires: later}, 1)
				if err != nil || ver <= 1 {
					t.Fatalf("SaveIf with version 1: want it saved with a new version, got %d, %v", ver, err)
				}
				if v, err := c.Get(ctx, DefaultPrefix+id).Result(); err != nil || v != storedValue("rewritten", later, ver) {
					t.Errorf("GET after SaveIf over the legacy value: want %q, got %q, %v", storedValue("rewritten", later, ver), v, err)
				}
				if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("again"), Expires: later}, 1); !isConflict(err, true) {
					t.Errorf("SaveIf with version 1 once the value is rewritten: want a conflict, got %v", err)
				}
			})
		}
		// A bare token without an expiry is no record, for Load and SaveIf.
		id := randomID(t)
		if err := c.Set(ctx, DefaultPrefix+id, token, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: expires}, 1); !isConflict(err, false) {
			t.Errorf("SaveIf with version 1 over a bare token without expiry: want a conflict with no record, got %v", err)
		}
		if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: expires}, 0); err != nil {
			t.Errorf("SaveIf with version 0 over a bare token without expiry: want it saved, got %v", err)
		}
	}
	t.Run("redis 7", func(t *testing.T) { run(t) })
	// Redis before 7.0 has no PEXPIRETIME; the script then asks PTTL.
	t.Run("without PEXPIRETIME", func(t *testing.T) { run(t, "--rename-command", "PEXPIRETIME", "") })
}

// Two Handlers are two app servers sharing one Redis: of SaveIfs racing on
// one version, through both, exactly one wins, and every loser is told the
// winner's record.
func TestSaveIfRaceAcrossTwoHandlersHasOneWinner(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newTestHandler(t, []string{srv.Addr()})
	b, _ := newTestHandler(t, []string{srv.Addr()})
	hosts := []*Handler{a, b}
	ctx := context.Background()
	id := randomID(t)
	const writers, rounds = 32, 20
	var current uint64 // round 0 creates the record
	for round := range rounds {
		type outcome struct {
			data string
			ver  uint64
			err  error
		}
		out := make([]outcome, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				data := fmt.Sprintf("round %d writer %d", round, w)
				<-start
				ver, err := hosts[w%2].SaveIf(ctx, id, sdk.Record{Data: []byte(data), Expires: time.Now().Add(time.Hour)}, current)
				out[w] = outcome{data, ver, err}
			})
		}
		close(start)
		wg.Wait()
		var winners []outcome
		for _, o := range out {
			switch {
			case o.err == nil:
				winners = append(winners, o)
			case !isConflict(o.err, true):
				t.Fatalf("round %d: SaveIf: want success or a conflict with the stored record, got %v", round, o.err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d of %d SaveIfs on version %d through two handlers were saved, want exactly 1", round, len(winners), writers, current)
		}
		win := winners[0]
		for _, o := range out {
			var ce *sdk.ConflictError
			if errors.As(o.err, &ce) && (ce.Current.Version != win.ver || string(ce.Current.Data) != win.data) {
				t.Errorf("round %d: a loser's conflict carries %q version %d, want the winner's %q version %d", round, ce.Current.Data, ce.Current.Version, win.data, win.ver)
			}
		}
		for _, h := range hosts {
			if got, err := h.Load(ctx, id); err != nil || string(got.Data) != win.data || got.Version != win.ver {
				t.Fatalf("round %d: Load: want the winner's %q version %d, got %q version %d, %v", round, win.data, win.ver, got.Data, got.Version, err)
			}
		}
		current = win.ver
	}
}

func TestLockKeyExpiryAndIndependenceFromTheRecord(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newTestHandler(t, []string{srv.Addr()})
	b, _ := newTestHandler(t, []string{srv.Addr()})
	ctx := context.Background()
	c := srv.Client()
	id := randomID(t)
	lockKey := DefaultPrefix + id + ":lock"

	if got, err := a.Lock(ctx, id, "token-a", 1500*time.Microsecond+10*time.Second); err != nil || !got {
		t.Fatalf("Lock of a free session: want true, got %v, %v", got, err)
	}
	if v, err := c.Get(ctx, lockKey).Result(); err != nil || v != "token-a" {
		t.Errorf("GET %s: want the holder's token, got %q, %v", lockKey, v, err)
	}
	if pttl, err := c.PTTL(ctx, lockKey).Result(); err != nil || pttl > 10002*time.Millisecond || pttl < 9*time.Second {
		t.Errorf("PTTL of the lock: want about the ttl (10.0015s, rounded up to 10.002s), got %v, %v", pttl, err)
	}
	// Another host cannot take it; the holder extends it.
	if got, err := b.Lock(ctx, id, "token-b", time.Minute); err != nil || got {
		t.Errorf("Lock from another handler with another token: want false, got %v, %v", got, err)
	}
	if got, err := b.Lock(ctx, id, "token-a", time.Minute); err != nil || !got {
		t.Errorf("Lock with the holder's token from another handler: want true, got %v, %v", got, err)
	}
	if pttl, _ := c.PTTL(ctx, lockKey).Result(); pttl < 50*time.Second {
		t.Errorf("PTTL after the holder took the lock again for a minute: want it extended, got %v", pttl)
	}

	// The lock is not the record: Load, Save, SaveIf and Close ignore it.
	if _, err := a.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load of a locked session with no record: want sdk.ErrNotFound, got %v", err)
	}
	ver, err := a.SaveIf(ctx, id, sdk.Record{Data: []byte("record"), Expires: time.Now().Add(time.Hour)}, 0)
	if err != nil {
		t.Fatalf("SaveIf with version 0 on a locked session with no record: %v", err)
	}
	if err := a.Save(ctx, id, sdk.Record{Data: []byte("saved"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Load(ctx, id); err != nil || string(got.Data) != "saved" || got.Version == ver {
		t.Errorf("Load: want %q with a version newer than %d, got %q version %d, %v", "saved", ver, got.Data, got.Version, err)
	}
	if err := a.Close(ctx, id); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, lockKey).Result(); err != nil || v != "token-a" {
		t.Errorf("after Close of the session: want the lock kept, GET says %q, %v", v, err)
	}

	// Only the holder releases it.
	if err := b.Unlock(ctx, id, "token-b"); err != nil {
		t.Errorf("Unlock with a token that does not hold the lock: want nil, got %v", err)
	}
	if n, _ := c.Exists(ctx, lockKey).Result(); n != 1 {
		t.Errorf("after Unlock with the wrong token: want the lock kept, EXISTS says %d", n)
	}
	if err := b.Unlock(ctx, id, "token-a"); err != nil {
		t.Errorf("Unlock with the holder's token: %v", err)
	}
	if n, _ := c.DBSize(ctx).Result(); n != 0 {
		t.Errorf("after Unlock and Close: want no keys, got %d", n)
	}
	if err := b.Unlock(ctx, id, "token-a"); err != nil {
		t.Errorf("Unlock of a free lock: want nil, got %v", err)
	}

	// A lock taken by one host expires for the others.
	if got, err := a.Lock(ctx, id, "token-a", 100*time.Millisecond); err != nil || !got {
		t.Fatalf("Lock: %v, %v", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := b.Lock(ctx, id, "token-b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Lock from another handler 5s after a lock of 100ms was taken: still held")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A token and a positive ttl are needed.
	for _, tc := range []struct {
		token string
		ttl   time.Duration
	}{{"", time.Minute}, {"t", 0}, {"t", -time.Second}} {
		if got, err := a.Lock(ctx, randomID(t), tc.token, tc.ttl); err == nil || got {
			t.Errorf("Lock with token %q and ttl %v: want an error, got %v, %v", tc.token, tc.ttl, got, err)
		}
	}
}

func TestLockRaceAcrossTwoHandlersHasOneWinner(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newTestHandler(t, []string{srv.Addr()})
	b, _ := newTestHandler(t, []string{srv.Addr()})
	hosts := []*Handler{a, b}
	ctx := context.Background()
	for round := range 20 {
		id := randomID(t)
		const contenders = 32
		won := make([]bool, contenders)
		errs := make([]error, contenders)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range contenders {
			wg.Go(func() {
				<-start
				won[c], errs[c] = hosts[c%2].Lock(ctx, id, fmt.Sprintf("token-%d", c), time.Minute)
			})
		}
		close(start)
		wg.Wait()
		n := 0
		for c := range contenders {
			if errs[c] != nil {
				t.Fatalf("round %d: Lock: %v", round, errs[c])
			}
			if won[c] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("round %d: %d of %d Locks with distinct tokens through two handlers succeeded, want exactly 1", round, n, contenders)
		}
	}
}

func TestLockAndUnlockAreOneScriptCallEach(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	// Load the scripts.
	if _, err := h.Lock(ctx, id, "warm", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(ctx, id, "warm"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Lock(ctx, id, "t", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Lock(ctx, id, "t", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(ctx, id, "t"); err != nil {
		t.Fatal(err)
	}
	stats := commandStats(t, srv)
	delete(stats, "config|resetstat")
	// Commands a script calls count too: GET+SET (take), GET+PEXPIRE
	// (extend), GET+DEL (release).
	want := map[string]string{"evalsha": "3", "get": "3", "set": "1", "pexpire": "1", "del": "1"}
	if !maps.Equal(stats, want) {
		t.Errorf("INFO commandstats after Lock, Lock again, Unlock: want %v, got %v", want, stats)
	}
}

// After SCRIPT FLUSH (or a failover to a Redis that never saw the scripts),
// the next call loads them again (EVALSHA answers NOSCRIPT, then EVAL).
func TestScriptsSurviveScriptFlush(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	id := randomID(t)
	for i := range 2 {
		if err := srv.Client().ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		ver, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0)
		if i == 0 && (err != nil || ver <= 1) {
			t.Fatalf("SaveIf after SCRIPT FLUSH: want it saved, got %d, %v", ver, err)
		}
		if i == 1 && !isConflict(err, true) {
			t.Fatalf("SaveIf after SCRIPT FLUSH: want a conflict, got %v", err)
		}
		if err := srv.Client().ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Lock(ctx, id, "t", time.Minute); err != nil || !got {
			t.Fatalf("Lock after SCRIPT FLUSH: want true, got %v, %v", got, err)
		}
		if err := srv.Client().ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := h.Unlock(ctx, id, "t"); err != nil {
			t.Fatalf("Unlock after SCRIPT FLUSH: %v", err)
		}
	}
}

// SaveIf's script first looks only at the value's header (GETRANGE) and
// writes when it is a live format-2 or format-3 header with the expected
// version. Values whose header bytes 13..20 hold the expected version but
// that are no live record of that version must still fall through to the
// full check, and not be written over.
func TestSaveIfHeaderPathWritesOnlyOverALiveRecordOfThatVersion(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	const ver = uint64(0x0102030405060708)
	live := time.Now().Add(time.Hour)
	value := func(format byte, expires time.Time, principal string, data string) []byte {
		v := encodeValue(expiryMillis(expires), ver, principal, []byte(data))
		v[len(magicPrefix)] = format
		return v
	}
	truncated := value(formatV3, live, "p-abcdefgh", "data")[:headerV3+3] // shorter than its principal
	for _, c := range []struct {
		what      string
		value     []byte
		ttl       time.Duration // on the key; 0: none
		wantWrite bool
	}{
		{"a live format-2 value of that version", value(formatV2, live, "", "x"), time.Hour, true},
		{"a live format-3 value of that version", value(formatV3, live, "p-abcdefgh", "x"), time.Hour, true},
		{"a format-2 value past its header's expiry (key still there)", value(formatV2, time.Now().Add(-time.Second), "", "x"), time.Hour, false},
		{"a format-3 value shorter than its principal", truncated, time.Hour, false},
		{"a format-1 value whose data holds those bytes", value(formatV1, live, "", "\x01\x02\x03\x04\x05\x06\x07\x08"), time.Hour, false},
		{"a format this handler does not know", value(9, live, "", "x"), time.Hour, false},
		{"a bare token with those bytes", append([]byte("not-a-magic!"), value(formatV2, live, "", "")[12:20]...), time.Hour, false},
	} {
		id := randomID(t)
		key := DefaultPrefix + id
		if err := srv.Client().Set(ctx, key, c.value, c.ttl).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("new"), Expires: live}, ver)
		got, _ := srv.Client().Get(ctx, key).Bytes()
		wrote := hasMagic(got) && string(got[len(got)-3:]) == "new"
		switch {
		case c.wantWrite && (err != nil || !wrote):
			t.Errorf("%s: want SaveIf with its version to write, got %v (wrote: %v)", c.what, err, wrote)
		case !c.wantWrite && (err == nil || wrote):
			t.Errorf("%s: want a conflict and the value left as it was, got %v (wrote: %v)", c.what, err, wrote)
		}
	}
}
