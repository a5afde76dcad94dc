package redis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/sdk/handlertest"
)

// storedValueV3 is what Save and SaveIf write for a record with principal
// p: the magic "\x00t4\x03", the expiry and version as in format 2, the
// principal's length in one byte, the principal, then the token. Spelt out
// here, not built from the handler's constants.
func storedValueV3(token string, expires time.Time, ver uint64, p string) string {
	v2 := storedValue("", expires, ver)
	return "\x00t4\x03" + v2[4:] + string([]byte{byte(len(p))}) + p + token
}

// setExpiry is the Unix millisecond at which key expires (-1 none, -2 no key).
func setExpiry(t *testing.T, srv *redistest.Server, key string) int64 {
	t.Helper()
	ms, err := srv.Client().Do(context.Background(), "PEXPIRETIME", key).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestPrincipalIsStoredInFormat3AndIndexed(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	setKey := DefaultPrefix + "principal:" + p

	id := randomID(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token-1"), Expires: exp, Principal: p}); err != nil {
		t.Fatal(err)
	}
	got, err := h.Load(ctx, id)
	if err != nil || string(got.Data) != "token-1" || !got.Expires.Equal(exp) {
		t.Fatalf("Load of a format-3 value: %q until %v, %v", got.Data, got.Expires, err)
	}
	raw, err := srv.Client().Get(ctx, DefaultPrefix+id).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := storedValueV3("token-1", exp, got.Version, p); raw != want {
		t.Fatalf("stored value:\n got %q\nwant %q", raw, want)
	}
	members, err := srv.Client().ZRangeWithScores(ctx, setKey, 0, -1).Result()
	if err != nil || len(members) != 1 || members[0].Member != id || int64(members[0].Score) != exp.UnixMilli() {
		t.Fatalf("the principal's set holds %v, %v; want the id scored with its expiry", members, err)
	}
	if got := setExpiry(t, srv, setKey); got != exp.UnixMilli() {
		t.Fatalf("the set expires at %d, want the session's expiry %d", got, exp.UnixMilli())
	}

	// A second session that lives longer moves the set's expiry; one that
	// lives shorter does not bring it back.
	later := exp.Add(time.Hour)
	if _, err := h.SaveIf(ctx, randomID(t), sdk.Record{Data: []byte("2"), Expires: later, Principal: p}, 0); err != nil {
		t.Fatal(err)
	}
	if got := setExpiry(t, srv, setKey); got != later.UnixMilli() {
		t.Fatalf("after a later session the set expires at %d, want %d", got, later.UnixMilli())
	}
	if err := h.Save(ctx, randomID(t), sdk.Record{Data: []byte("3"), Expires: exp.Add(-time.Minute), Principal: p}); err != nil {
		t.Fatal(err)
	}
	if got := setExpiry(t, srv, setKey); got != later.UnixMilli() {
		t.Fatalf("after an earlier session the set expires at %d, want still %d", got, later.UnixMilli())
	}
	// A session saved already expired is deleted, not indexed.
	if err := h.Save(ctx, randomID(t), sdk.Record{Data: []byte("4"), Expires: time.Now().Add(-time.Minute), Principal: p}); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Client().ZCard(ctx, setKey).Result(); n != 3 {
		t.Fatalf("the set has %d members, want 3", n)
	}
	// A member's score only grows: a save of an id with an earlier expiry
	// leaves it.
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token-1"), Expires: exp.Add(-time.Minute), Principal: p}); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.Client().ZScore(ctx, setKey, id).Result(); int64(got) != exp.UnixMilli() {
		t.Fatalf("a save with an earlier expiry moved the score to %v", got)
	}

	// Re-saved without a principal: format 2 again, and CloseAll leaves it.
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token-2"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	got, _ = h.Load(ctx, id)
	if raw, _ := srv.Client().Get(ctx, DefaultPrefix+id).Result(); raw != storedValue("token-2", exp, got.Version) {
		t.Fatalf("a record without a principal is not stored in format 2: %q", raw)
	}
	if n, err := h.CloseAll(ctx, p); err != nil || n != 2 {
		t.Fatalf("CloseAll: %d, %v; want 2", n, err)
	}
	if _, err := h.Load(ctx, id); err != nil {
		t.Fatalf("a session re-saved without a principal went with CloseAll: %v", err)
	}
	// The member of the session CloseAll left stays (its save might have
	// been between its two steps), until its score passes.
	if members, _ := srv.Client().ZRange(ctx, setKey, 0, -1).Result(); len(members) != 1 || members[0] != id {
		t.Fatalf("the set after CloseAll holds %q, want only the session it left", members)
	}
	if got := setExpiry(t, srv, setKey); got != later.UnixMilli() {
		t.Fatalf("the set expires at %d, want %d still", got, later.UnixMilli())
	}
}

func TestIndexDropsExpiredMembers(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	setKey := DefaultPrefix + "principal:" + p
	gone := randomID(t)
	srv.Client().ZAdd(ctx, setKey, redis.Z{Score: float64(time.Now().Add(-time.Minute).UnixMilli()), Member: gone})
	id := randomID(t)
	exp := time.Now().Add(time.Hour)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: exp, Principal: p}); err != nil {
		t.Fatal(err)
	}
	if members, _ := srv.Client().ZRange(ctx, setKey, 0, -1).Result(); len(members) != 1 || members[0] != id {
		t.Fatalf("after an add the set holds %q; the expired member should be gone", members)
	}
	// CloseAll drops an expired member it reads, and leaves a live one
	// whose session it did not find.
	pending := randomID(t)
	srv.Client().ZAdd(ctx, setKey, redis.Z{Score: float64(time.Now().Add(-time.Minute).UnixMilli()), Member: gone},
		redis.Z{Score: float64(exp.UnixMilli()), Member: pending})
	if n, err := h.CloseAll(ctx, p); err != nil || n != 1 {
		t.Fatalf("CloseAll: %d, %v", n, err)
	}
	if members, _ := srv.Client().ZRange(ctx, setKey, 0, -1).Result(); len(members) != 1 || members[0] != pending {
		t.Fatalf("after CloseAll the set holds %q, want only the live member without a session", members)
	}
}

// Two handlers (two hosts): one keeps creating sessions of a principal
// while the other keeps closing them. However they interleave, every
// session of the principal left in Redis is still in its set, so a final
// CloseAll gets them all.
func TestCloseAllRacingSavesLosesNoSession(t *testing.T) {
	a, srv, _ := startHandler(t)
	b, _ := newTestHandler(t, []string{srv.Addr()})
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	const sessions = 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(stop)
		for i := range sessions {
			rec := sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour), Principal: p}
			var err error
			if i%2 == 0 {
				err = a.Save(ctx, randomID(t), rec)
			} else {
				_, err = a.SaveIf(ctx, randomID(t), rec, 0)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	closed := 0
	go func() {
		defer wg.Done()
		for {
			n, err := b.CloseAll(ctx, p)
			if err != nil {
				t.Error(err)
				return
			}
			closed += n
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	wg.Wait()
	n, err := a.CloseAll(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if closed+n != sessions {
		t.Fatalf("CloseAll closed %d while saves ran and %d after, want %d in all", closed, n, sessions)
	}
	if keys, _ := srv.Client().DBSize(ctx).Result(); keys != 0 {
		t.Fatalf("%d keys left after the last CloseAll", keys)
	}
}

func TestCloseAllLeavesValuesOfOtherFormatsAndTypes(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	q := handlertest.NewPrincipal()
	setKey := DefaultPrefix + "principal:" + p
	exp := time.Now().Add(time.Hour)
	others := map[string]string{
		"format 1":                 formatV1Value("t", exp),
		"format 2":                 storedValue("t", exp, 9),
		"bare token":               "t",
		"another principal":        storedValueV3("t", exp, 9, q),
		"a principal that extends": storedValueV3("t", exp, 9, p+"0"),
		"a principal it extends":   storedValueV3("t", exp, 9, p[:63]),
	}
	for what, v := range others {
		id := randomID(t)
		if err := srv.Client().Set(ctx, DefaultPrefix+id, v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		srv.Client().ZAdd(ctx, setKey, redis.Z{Score: float64(exp.UnixMilli()), Member: id})
		others[what] = id
	}
	hashID := randomID(t)
	srv.Client().HSet(ctx, DefaultPrefix+hashID, "f", "v")
	for _, m := range []string{hashID, "not an id", randomID(t)} {
		srv.Client().ZAdd(ctx, setKey, redis.Z{Score: float64(exp.UnixMilli()), Member: m})
	}
	mine := randomID(t)
	if err := h.Save(ctx, mine, sdk.Record{Data: []byte("mine"), Expires: exp, Principal: p}); err != nil {
		t.Fatal(err)
	}
	if n, err := h.CloseAll(ctx, p); err != nil || n != 1 {
		t.Fatalf("CloseAll: %d, %v; want 1", n, err)
	}
	for what, id := range others {
		if n, _ := srv.Client().Exists(ctx, DefaultPrefix+id).Result(); n != 1 {
			t.Errorf("CloseAll deleted a value of %s", what)
		}
	}
	if n, _ := srv.Client().Exists(ctx, DefaultPrefix+hashID).Result(); n != 1 {
		t.Errorf("CloseAll deleted a key of another type")
	}
	left, _ := srv.Client().ZRange(ctx, setKey, 0, -1).Result()
	if len(left) != len(others)+2 { // the sessions it left, and the id without a key
		t.Errorf("the set after CloseAll holds %d members, want %d", len(left), len(others)+2)
	}
	for _, m := range left {
		if m == mine || m == "not an id" {
			t.Errorf("the set still holds %q", m)
		}
	}
	// A key of another type where the set should be is nothing to close.
	srv.Client().Set(ctx, DefaultPrefix+"principal:"+q, "x", time.Hour)
	if n, err := h.CloseAll(ctx, q); err != nil || n != 0 {
		t.Errorf("CloseAll over a key that is not a set: %d, %v", n, err)
	}
	if _, err := h.CloseAll(ctx, "NotHex"); !errors.Is(err, sdk.ErrInvalidID) {
		t.Errorf("CloseAll of an invalid principal: want ErrInvalidID, got %v", err)
	}
	if err := h.Save(ctx, mine, sdk.Record{Data: []byte("x"), Expires: exp, Principal: "../x"}); !errors.Is(err, sdk.ErrInvalidPrincipal) {
		t.Errorf("Save with an invalid principal: want ErrInvalidPrincipal, got %v", err)
	}
}

func TestCloseAllOfManySessions(t *testing.T) {
	// More sessions than one SSCAN batch, over two handlers (two hosts).
	h, srv, _ := startHandler(t)
	other, _ := newTestHandler(t, []string{srv.Addr()})
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	const sessions = 3*closeAllBatch + 17
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = randomID(t)
		via := h
		if i%2 == 1 {
			via = other
		}
		if err := via.Save(ctx, ids[i], sdk.Record{Data: []byte(fmt.Sprint(i)), Expires: time.Now().Add(time.Hour), Principal: p}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := other.CloseAll(ctx, p)
	if err != nil || n != sessions {
		t.Fatalf("CloseAll: %d, %v; want %d", n, err, sessions)
	}
	if keys, _ := srv.Client().DBSize(ctx).Result(); keys != 0 {
		t.Fatalf("%d keys left after CloseAll", keys)
	}
}

func TestSaveIfConflictLeavesAHarmlessEntry(t *testing.T) {
	h, srv, _ := startHandler(t)
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	id := randomID(t)
	v1, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("no one's"), Expires: time.Now().Add(time.Hour)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A stale SaveIf with a principal: refused, but indexed first.
	if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("p's"), Expires: time.Now().Add(time.Hour), Principal: p}, v1+1); !isConflict(err, true) {
		t.Fatalf("stale SaveIf: want a conflict, got %v", err)
	}
	if _, err := srv.Client().ZScore(ctx, DefaultPrefix+"principal:"+p, id).Result(); err != nil {
		t.Fatalf("the index entry is written before the record: %v", err)
	}
	if n, err := h.CloseAll(ctx, p); err != nil || n != 0 {
		t.Fatalf("CloseAll: %d, %v; want 0 (the record has no principal)", n, err)
	}
	if got, err := h.Load(ctx, id); err != nil || string(got.Data) != "no one's" {
		t.Fatalf("the record after CloseAll: %q, %v", got.Data, err)
	}
	// A conflict carries a format-3 record back whole.
	v2, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("p's"), Expires: time.Now().Add(time.Hour), Principal: p}, v1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, v1)
	var ce *sdk.ConflictError
	if !errors.As(err, &ce) || !ce.Found || string(ce.Current.Data) != "p's" || ce.Current.Version != v2 {
		t.Fatalf("a conflict over a format-3 value: %v %+v", err, ce)
	}
}

func TestIndexWithoutPEXPIRETIME(t *testing.T) {
	// Redis before 7.0 has no PEXPIRETIME; the index needs none.
	h, srv, _ := startHandler(t, "--rename-command", "PEXPIRETIME", "")
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	exp := time.Now().Add(time.Hour)
	for i, e := range []time.Time{exp, exp.Add(time.Hour), exp.Add(-time.Minute)} {
		if err := h.Save(ctx, randomID(t), sdk.Record{Data: []byte("x"), Expires: e, Principal: p}); err != nil {
			t.Fatalf("Save #%d: %v", i, err)
		}
	}
	ttl, err := srv.Client().PTTL(ctx, DefaultPrefix+"principal:"+p).Result()
	if want := 2 * time.Hour; err != nil || ttl > want || ttl < want-time.Minute {
		t.Fatalf("the set's TTL: %v, %v; want about %v (the latest session's)", ttl, err, want)
	}
	if n, err := h.CloseAll(ctx, p); err != nil || n != 3 {
		t.Fatalf("CloseAll: %d, %v", n, err)
	}
}

func TestIndexNeedsItsCommands(t *testing.T) {
	// A user with only the rights of a handler before the index: a session
	// with a principal is not written at all (the index comes first), and
	// the error names the commands.
	srv := redistest.Start(t,
		"--user", "alice", "on", ">alicepw", "~tina4:session:*", "+get", "+set", "+del", "+multi", "+exec", "+pexpiretime", "+pttl", "+pexpire", "+evalsha", "+eval", "+ping")
	h, _ := newTestHandler(t, []string{srv.Addr()}, func(o *Options) { o.Redis.Username, o.Redis.Password = "alice", "alicepw" })
	ctx := context.Background()
	id := randomID(t)
	err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour), Principal: handlertest.NewPrincipal()})
	if err == nil || !strings.Contains(err.Error(), "ZADD") {
		t.Fatalf("Save with a principal as a user without ZADD: want an error naming ZADD, got %v", err)
	}
	if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("the session was written although its index entry was not: %v", err)
	}
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Save without a principal needs nothing new: %v", err)
	}
}

// The value layout test helper agrees with binary.BigEndian (guards the
// helper itself).
func TestStoredValueV3Helper(t *testing.T) {
	v := storedValueV3("tok", time.UnixMilli(1000), 5, "ab")
	if len(v) != 4+8+8+1+2+3 || v[20] != 2 || binary.BigEndian.Uint64([]byte(v[12:20])) != 5 {
		t.Fatalf("storedValueV3: %q", v)
	}
}
