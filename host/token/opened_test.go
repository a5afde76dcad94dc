package token

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// A token the Codec sealed (or has opened once) opens from its cache, and
// what it gives is exactly what a full open gives: the same values, expiry
// and Meta, for every combination of claims.
func TestOpenFromCacheEqualsFullOpen(t *testing.T) {
	yes, no := true, false
	for i, meta := range []Meta{
		{},
		{Created: issued.Add(-time.Hour)},
		{Created: issued.Add(-time.Hour).Add(700 * time.Millisecond), TTL: 90*time.Second + 300*time.Millisecond, Persist: &no, Principal: "p-123"},
		{TTL: 500 * time.Millisecond, Persist: &yes},
	} {
		sealer, fresh := newCodec(t, testSecret), newCodec(t, testSecret)
		id := fmt.Sprintf("sess-%d", i)
		values := []byte(`{"n":` + fmt.Sprint(i) + `}`)
		tok, err := sealer.SealMeta(id, values, issued.Add(400*time.Millisecond), expires.Add(600*time.Millisecond), meta)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := sealer.opened.get(id, tok); !ok {
			t.Fatalf("meta %d: SealMeta left no cache entry for its token", i)
		}
		fv, fe, fm, ferr := fresh.OpenMeta(id, tok, during) // full: fresh never saw it
		cv, ce, cm, cerr := sealer.OpenMeta(id, tok, during)
		if ferr != nil || cerr != nil {
			t.Fatalf("meta %d: full open %v, cached open %v", i, ferr, cerr)
		}
		if !bytes.Equal(fv, cv) || !bytes.Equal(cv, values) || !fe.Equal(ce) || !reflect.DeepEqual(fm, cm) {
			t.Errorf("meta %d: cached open gives %q %v %+v, full open %q %v %+v", i, cv, ce, cm, fv, fe, fm)
		}
		// The full open filled fresh's cache: its second open must agree too.
		if _, ok := fresh.opened.get(id, tok); !ok {
			t.Fatalf("meta %d: a full open left no cache entry", i)
		}
		gv, ge, gm, err := fresh.OpenMeta(id, tok, during)
		if err != nil || !bytes.Equal(gv, fv) || !ge.Equal(fe) || !reflect.DeepEqual(gm, fm) {
			t.Errorf("meta %d: second open gives %q %v %+v %v, first %q %v %+v", i, gv, ge, gm, err, fv, fe, fm)
		}
	}
}

// The cache never lets through what a full open refuses: a token of the
// session that differs in one byte, the session's token under another id, a
// token past its expiry.
func TestOpenFromCacheRefusesWhatAFullOpenRefuses(t *testing.T) {
	c := newCodec(t, testSecret)
	tok := seal(t, c, testID, []byte(`{"a":1}`))
	for seg := 0; seg < 3; seg++ {
		wantInvalid(t, c, testID, mutate(tok, seg))
	}
	wantInvalid(t, c, testID, tok[:len(tok)-1])
	wantInvalid(t, c, "sess-other", tok)
	// The cached entry is still the good token's, and it still opens.
	if v, _, err := c.Open(testID, tok, during); err != nil || string(v) != `{"a":1}` {
		t.Fatalf("Open of the good token after refusals: %q, %v", v, err)
	}
	for _, now := range []time.Time{expires, expires.Add(time.Hour)} {
		if _, ok := c.opened.get(testID, tok); !ok {
			t.Fatal("no cache entry for the sealed token")
		}
		v, exp, err := c.Open(testID, tok, now)
		want := expiredAt(expires.Unix())
		if !errors.Is(err, ErrExpired) || err.Error() != want.Error() || v != nil || !exp.IsZero() {
			t.Errorf("Open at %v from the cache: got %q %v %v, want nil, zero, %v", now, v, exp, err, want)
		}
	}
}

// What OpenMeta returns belongs to the caller: changing it does not change
// what the next open gives.
func TestOpenFromCacheHandsOutCopies(t *testing.T) {
	c := newCodec(t, testSecret)
	yes := true
	tok, err := c.SealMeta(testID, []byte(`{"a":1}`), issued, expires, Meta{Persist: &yes})
	if err != nil {
		t.Fatal(err)
	}
	v, _, m, err := c.OpenMeta(testID, tok, during)
	if err != nil {
		t.Fatal(err)
	}
	copy(v, "XXXXXXX")
	*m.Persist = false
	v, _, m, err = c.OpenMeta(testID, tok, during)
	if err != nil || string(v) != `{"a":1}` || m.Persist == nil || !*m.Persist {
		t.Errorf("second open after the caller changed the first's result: %q, %+v, %v", v, m, err)
	}
}

// The cache stays within its bounds: openedMaxBytes in all, and a token over
// openedMaxEntry is not kept (and drops the session's earlier entry).
func TestOpenedCacheIsBounded(t *testing.T) {
	c := newCodec(t, testSecret)
	values := []byte(`{"v":"` + strings.Repeat("x", 3000) + `"}`)
	n := openedMaxBytes / 2000
	for i := range n {
		if _, err := c.Seal(fmt.Sprintf("sess-%08d", i), values, issued, expires); err != nil {
			t.Fatal(err)
		}
	}
	total, entries := 0, 0
	for i := range c.opened.shards {
		sh := &c.opened.shards[i]
		sum := 0
		for _, e := range sh.m {
			sum += e.size()
		}
		if sum != sh.bytes || sum > openedMaxBytes/openedShards {
			t.Errorf("shard %d: %d bytes counted, %d held, bound %d", i, sh.bytes, sum, openedMaxBytes/openedShards)
		}
		total += sum
		entries += len(sh.m)
	}
	if total > openedMaxBytes || entries == 0 || entries >= n {
		t.Errorf("after %d seals: %d entries, %d bytes; want some, fewer than sealed, and at most %d bytes", n, entries, total, openedMaxBytes)
	}

	tok := seal(t, c, testID, []byte(`{}`))
	if _, ok := c.opened.get(testID, tok); !ok {
		t.Fatal("a small token was not kept")
	}
	big := seal(t, c, testID, []byte(`{"v":"`+strings.Repeat("y", openedMaxEntry)+`"}`))
	if _, ok := c.opened.get(testID, big); ok {
		t.Error("a token over openedMaxEntry was kept")
	}
	if _, ok := c.opened.get(testID, tok); ok {
		t.Error("the session's earlier entry outlived a later seal that was too big to keep")
	}
	if _, _, err := c.Open(testID, big, during); err != nil {
		t.Errorf("the big token must still open in full: %v", err)
	}
}

// Many goroutines sealing and opening sessions at once (run with -race).
func TestOpenedCacheConcurrent(t *testing.T) {
	c := newCodec(t, testSecret)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprintf("sess-%d-%d", g, i%5)
				want := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				tok := seal(t, c, id, []byte(want))
				if v, _, err := c.Open(id, tok, during); err != nil || string(v) != want {
					t.Errorf("Open: %q, %v; want %s", v, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
