package token

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func payload(t *testing.T, tok []byte) []byte {
	t.Helper()
	segs := strings.Split(string(tok), ".")
	p, err := base64.RawURLEncoding.DecodeString(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMetaRoundTrip(t *testing.T) {
	c := newCodec(t, testSecret)
	off := false
	created := issued.Add(-2 * time.Hour)
	tok, err := c.SealMeta(testID, []byte(`{"a":1}`), issued, expires, Meta{Created: created, TTL: 5*time.Minute + 900*time.Millisecond, Persist: &off})
	if err != nil {
		t.Fatal(err)
	}
	p := payload(t, tok)
	for _, want := range []string{`"crt":1699992800`, `"ttl":300`, `"per":false`} {
		if !bytes.Contains(p, []byte(want)) {
			t.Errorf("payload %s lacks %s", p, want)
		}
	}
	vals, exp, mt, err := c.OpenMeta(testID, tok, during)
	if err != nil || string(vals) != `{"a":1}` || !exp.Equal(expires) {
		t.Fatalf("OpenMeta: %q %v %v", vals, exp, err)
	}
	if !mt.Created.Equal(created) || mt.TTL != 5*time.Minute || mt.Persist == nil || *mt.Persist {
		t.Fatalf("meta: %+v", mt)
	}
	// Open still opens it, and ignores the new claims.
	if vals, _, err := c.Open(testID, tok, during); err != nil || string(vals) != `{"a":1}` {
		t.Fatalf("Open: %q %v", vals, err)
	}
}

// Seal, and SealMeta with an empty Meta, write none of the new claims; such
// a token (as older hosts sealed) opens as created at its issue time.
func TestMetaAbsent(t *testing.T) {
	c := newCodec(t, testSecret)
	for _, tok := range [][]byte{seal(t, c, testID, nil), must(c.SealMeta(testID, nil, issued, expires, Meta{}))} {
		p := payload(t, tok)
		for _, claim := range []string{`"crt"`, `"ttl"`, `"per"`} {
			if bytes.Contains(p, []byte(claim)) {
				t.Errorf("payload %s has %s", p, claim)
			}
		}
		_, _, mt, err := c.OpenMeta(testID, tok, during)
		if err != nil || !mt.Created.Equal(issued) || mt.TTL != 0 || mt.Persist != nil {
			t.Fatalf("OpenMeta: %+v %v", mt, err)
		}
	}
}

// The claims are signed: changing one breaks the token.
func TestMetaIsSigned(t *testing.T) {
	c := newCodec(t, testSecret)
	on := true
	tok := must(c.SealMeta(testID, nil, issued, expires, Meta{Created: issued, Persist: &on}))
	segs := strings.Split(string(tok), ".")
	p := bytes.Replace(payload(t, tok), []byte(`"per":true`), []byte(`"per":false`), 1)
	segs[1] = base64.RawURLEncoding.EncodeToString(p)
	if _, _, _, err := c.OpenMeta(testID, []byte(strings.Join(segs, ".")), during); err == nil {
		t.Fatal("a token with a changed claim must not open")
	}
}

func must(tok []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return tok
}

func TestPrincipalKeysAreKeyedAndFollowRotation(t *testing.T) {
	a, _ := New([]byte("secret-A-0123456789abcdef"))
	b, _ := New([]byte("secret-B-0123456789abcdef"), []byte("secret-A-0123456789abcdef"))
	pa := a.Principals("alice")
	pb := b.Principals("alice")
	if len(pa) != 1 || len(pb) != 2 || pb[1] != pa[0] || pb[0] == pa[0] {
		t.Fatalf("principal keys: %v and %v; want the current secret's first and the old secret's key kept", pa, pb)
	}
	if len(pa[0]) != 64 || strings.Contains(pa[0], "alice") || a.Principals("bob")[0] == pa[0] {
		t.Fatalf("principal key %q: want 64 hex digits, distinct per user, not the user id", pa[0])
	}
	tok, err := a.SealMeta("sid-1", []byte(`{}`), time.Now(), time.Now().Add(time.Hour), Meta{Principal: pa[0]})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, mt, err := a.OpenMeta("sid-1", tok, time.Now()); err != nil || mt.Principal != pa[0] {
		t.Fatalf("the principal did not round trip through the token: %q, %v", mt.Principal, err)
	}
}
