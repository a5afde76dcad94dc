package token

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// sign must make exactly the token golang-jwt makes for the same claims,
// for every combination of the optional claims and for strings that
// encoding/json escapes.
func TestSignMatchesGolangJWT(t *testing.T) {
	c := newCodec(t, testSecret)
	k := &c.keys[0]
	yes, no := true, false
	for i, cl := range []claims{
		{SID: "r6DZGLaC-M-XTQnvkprozb1IIq6lGE6ucLf4cAjpXhs", IAT: 1795637555, EXP: 1795639355, Dat: "ZIhiAreRv6MUUeGAKmNfjtHAizYDAqn-KFzgVN8gJgUU"},
		{SID: "s", IAT: 1, EXP: 2, Dat: "", CRT: 3, TTL: 4, Per: &yes, Prn: "p-abc_DEF-123"},
		{SID: "s", IAT: -5, EXP: 9_000_000_000, Dat: "x", Per: &no},
		{SID: `a"b\c<d>e&f`, IAT: 0, EXP: 1, Dat: "tab\there", Prn: "é\u2028\x00\xff"},
		{SID: "sess-abc", IAT: 1_700_000_000, EXP: 1_700_001_800, Dat: "d", TTL: 90},
	} {
		want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &cl).SignedString(k.mac)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 3 { // the pooled HMAC state is reset between uses
			if got := k.sign(&cl); !bytes.Equal(got, []byte(want)) {
				t.Errorf("claims %d, round %d:\n got  %s\n want %s", i, round, got, want)
			}
		}
	}
}

// A token sealed with sign opens with golang-jwt's parser (the one Open
// uses) through a Codec that never saw it, for many sizes of values.
func TestSealedTokensOpenInFull(t *testing.T) {
	sealer, opener := newCodec(t, testSecret), newCodec(t, testSecret)
	for n := 0; n < 300; n += 7 {
		id := fmt.Sprintf("sess-%d", n)
		values := bytes.Repeat([]byte("v"), n)
		tok, err := sealer.SealMeta(id, values, issued, expires, Meta{Created: issued, Principal: "p-1"})
		if err != nil {
			t.Fatal(err)
		}
		got, _, meta, err := opener.OpenMeta(id, tok, during)
		if err != nil || !bytes.Equal(got, values) || meta.Principal != "p-1" {
			t.Fatalf("%d bytes: opened %d bytes, %+v, %v", n, len(got), meta, err)
		}
	}
}

// BenchmarkSign compares sign with golang-jwt's SignedString on the claims
// of a typical session token (what SealMeta spends on signing).
func BenchmarkSign(b *testing.B) {
	c, err := New(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	k := &c.keys[0]
	yes := true
	cl := claims{SID: "r6DZGLaC-M-XTQnvkprozb1IIq6lGE6ucLf4cAjpXhs", IAT: 1795637555, EXP: 1795639355, CRT: 1795637000,
		Per: &yes, Dat: string(bytes.Repeat([]byte("ZIhiAreRv6MUUeGAKmNfjtHA"), 4))}
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k.sign(&cl)
		}
	})
	b.Run("golang-jwt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &cl).SignedString(k.mac); err != nil {
				b.Fatal(err)
			}
		}
	})
}
