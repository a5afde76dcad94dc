package token

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef")
	issued     = time.Unix(1_700_000_000, 0)
	expires    = issued.Add(30 * time.Minute)
	during     = issued.Add(time.Minute)
)

const testID = "sess-abc"

func newCodec(t *testing.T, secret []byte) *Codec {
	t.Helper()
	c, err := New(secret)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func seal(t *testing.T, c *Codec, id string, values []byte) []byte {
	t.Helper()
	tok, err := c.Seal(id, values, issued, expires)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return tok
}

func TestRoundTrip(t *testing.T) {
	c := newCodec(t, testSecret)
	for _, values := range [][]byte{
		[]byte(`{"user":"ann","n":1}`),
		{},
		nil,
		bytes.Repeat([]byte("x"), 64<<10),
	} {
		tok := seal(t, c, testID, values)
		got, exp, err := c.Open(testID, tok, during)
		if err != nil {
			t.Fatalf("Open(%d-byte values): %v", len(values), err)
		}
		if !bytes.Equal(got, values) {
			t.Errorf("Open returned %q, want %q", got, values)
		}
		if !exp.Equal(expires) {
			t.Errorf("Open expiry = %v, want %v", exp, expires)
		}
	}
}

func TestExpiryTruncatedToSeconds(t *testing.T) {
	c := newCodec(t, testSecret)
	tok, err := c.Seal(testID, nil, issued, expires.Add(900*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, exp, err := c.Open(testID, tok, during)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(expires) {
		t.Errorf("expiry = %v, want whole second %v", exp, expires)
	}
}

func TestSealsAreDistinct(t *testing.T) {
	c := newCodec(t, testSecret)
	a, b := seal(t, c, testID, []byte("same")), seal(t, c, testID, []byte("same"))
	if bytes.Equal(a, b) {
		t.Error("two seals of the same values are identical; want a fresh nonce each time")
	}
}

func TestValuesNotVisible(t *testing.T) {
	c := newCodec(t, testSecret)
	marker := []byte("MARKER-1234")
	tok := seal(t, c, testID, []byte(`{"secret":"MARKER-1234"}`))
	if bytes.Contains(tok, marker) {
		t.Fatalf("token bytes contain %q", marker)
	}
	segs := strings.Split(string(tok), ".")
	if len(segs) != 3 {
		t.Fatalf("token has %d segments, want 3", len(segs))
	}
	for i, seg := range segs {
		dec, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			t.Fatalf("segment %d is not base64url: %v", i, err)
		}
		if bytes.Contains(dec, marker) {
			t.Errorf("decoded segment %d contains %q: %s", i, marker, dec)
		}
	}
	// The payload carries sid, iat and exp in the clear and nothing else but dat.
	payload, _ := base64.RawURLEncoding.DecodeString(segs[1])
	for _, want := range []string{`"sid":"sess-abc"`, `"iat":1700000000`, `"exp":1700001800`, `"dat":"`} {
		if !bytes.Contains(payload, []byte(want)) {
			t.Errorf("payload %s lacks %s", payload, want)
		}
	}
}

// mutate returns a copy of tok with segment seg changed at its middle.
func mutate(tok []byte, seg int) []byte {
	segs := strings.Split(string(tok), ".")
	b := []byte(segs[seg])
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	segs[seg] = string(b)
	return []byte(strings.Join(segs, "."))
}

func wantInvalid(t *testing.T, c *Codec, id string, tok []byte) {
	t.Helper()
	got, exp, err := c.Open(id, tok, during)
	t.Logf("Open: %v", err)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open = %q, %v, %v; want ErrInvalid", got, exp, err)
	}
	if errors.Is(err, ErrExpired) {
		t.Errorf("error %v is both invalid and expired", err)
	}
	if got != nil || !exp.IsZero() {
		t.Errorf("Open returned values %q and expiry %v with an error; want nil and zero", got, exp)
	}
}

func TestTamperedIsInvalid(t *testing.T) {
	c := newCodec(t, testSecret)
	tok := seal(t, c, testID, []byte(`{"a":1}`))
	for name, seg := range map[string]int{"header": 0, "payload": 1, "signature": 2} {
		t.Run(name, func(t *testing.T) { wantInvalid(t, c, testID, mutate(tok, seg)) })
	}
	t.Run("payload with later exp, original signature", func(t *testing.T) {
		segs := strings.Split(string(tok), ".")
		payload, err := base64.RawURLEncoding.DecodeString(segs[1])
		if err != nil {
			t.Fatal(err)
		}
		longer := bytes.Replace(payload, []byte(`"exp":1700001800`), []byte(`"exp":1900001800`), 1)
		if bytes.Equal(longer, payload) {
			t.Fatalf("payload %s has no exp to change", payload)
		}
		segs[1] = base64.RawURLEncoding.EncodeToString(longer)
		wantInvalid(t, c, testID, []byte(strings.Join(segs, ".")))
	})
	t.Run("signature trailing bits", func(t *testing.T) {
		// The last base64 character of a 32-byte signature carries 2 unused
		// bits; a lenient decoder would accept this change.
		b := bytes.Clone(tok)
		last := &b[len(b)-1]
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		*last = alphabet[strings.IndexByte(alphabet, *last)^1]
		wantInvalid(t, c, testID, b)
	})
}

func TestTruncatedIsInvalid(t *testing.T) {
	c := newCodec(t, testSecret)
	tok := seal(t, c, testID, []byte(`{"a":1}`))
	for _, n := range []int{0, 1, len(tok) / 3, len(tok) / 2, bytes.LastIndexByte(tok, '.'), bytes.LastIndexByte(tok, '.') + 1, len(tok) - 1} {
		wantInvalid(t, c, testID, tok[:n])
	}
}

func TestOtherIDIsInvalid(t *testing.T) {
	c := newCodec(t, testSecret)
	tok := seal(t, c, testID, []byte(`{"a":1}`))
	wantInvalid(t, c, "sess-other", tok)
	wantInvalid(t, c, "", tok)
}

func TestOtherSecretIsInvalid(t *testing.T) {
	tok := seal(t, newCodec(t, testSecret), testID, []byte(`{"a":1}`))
	wantInvalid(t, newCodec(t, []byte("another secret of 32 characters!")), testID, tok)
}

// resign builds a token with the given method and claims, signed with key.
func resign(t *testing.T, m jwt.SigningMethod, cl jwt.MapClaims, key any) []byte {
	t.Helper()
	s, err := jwt.NewWithClaims(m, cl).SignedString(key)
	if err != nil {
		t.Fatalf("sign with %s: %v", m.Alg(), err)
	}
	return []byte(s)
}

func TestAlgorithmConfusionIsInvalid(t *testing.T) {
	c := newCodec(t, testSecret)
	tok := seal(t, c, testID, []byte(`{"a":1}`))
	segs := strings.Split(string(tok), ".")

	// Re-signed tokens reuse the genuine claims, including the genuine dat.
	t.Run("none", func(t *testing.T) {
		wantInvalid(t, c, testID, resign(t, jwt.SigningMethodNone, parsedClaims(t, tok), jwt.UnsafeAllowNoneSignatureType))
	})
	t.Run("HS512 with the real key", func(t *testing.T) {
		wantInvalid(t, c, testID, resign(t, jwt.SigningMethodHS512, parsedClaims(t, tok), c.keys[0].mac))
	})
	t.Run("HS384 with the real key", func(t *testing.T) {
		wantInvalid(t, c, testID, resign(t, jwt.SigningMethodHS384, parsedClaims(t, tok), c.keys[0].mac))
	})
	for _, alg := range []string{"none", "HS512", "RS256", "hs256"} {
		t.Run("header alg "+alg, func(t *testing.T) {
			hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
			wantInvalid(t, c, testID, []byte(hdr+"."+segs[1]+"."+segs[2]))
		})
	}
	t.Run("header alg none, signature stripped", func(t *testing.T) {
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		wantInvalid(t, c, testID, []byte(hdr+"."+segs[1]+"."))
	})
}

func parsedClaims(t *testing.T, tok []byte) jwt.MapClaims {
	t.Helper()
	cl := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(string(tok), cl); err != nil {
		t.Fatalf("ParseUnverified: %v", err)
	}
	return cl
}

func TestResignedGenuineClaimsOpen(t *testing.T) {
	// Control for the re-signing tests: the helper itself makes good tokens,
	// so their failures come from what each test changed.
	c := newCodec(t, testSecret)
	tok := resign(t, jwt.SigningMethodHS256, parsedClaims(t, seal(t, c, testID, []byte(`{"a":1}`))), c.keys[0].mac)
	if got, _, err := c.Open(testID, tok, during); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("Open(re-signed genuine claims) = %q, %v; want the values", got, err)
	}
}

func TestMissingExpiryIsInvalid(t *testing.T) {
	c := newCodec(t, testSecret)
	cl := parsedClaims(t, seal(t, c, testID, []byte(`{"a":1}`)))
	delete(cl, "exp")
	wantInvalid(t, c, testID, resign(t, jwt.SigningMethodHS256, cl, c.keys[0].mac))
}

func TestSwappedDatIsInvalid(t *testing.T) {
	// Even correctly signed, dat sealed for one id does not decrypt under another.
	c := newCodec(t, testSecret)
	cl := parsedClaims(t, seal(t, c, testID, []byte(`{"a":1}`)))
	cl["sid"] = "sess-other"
	wantInvalid(t, c, "sess-other", resign(t, jwt.SigningMethodHS256, cl, c.keys[0].mac))
}

func TestExpired(t *testing.T) {
	c := newCodec(t, testSecret)
	tok := seal(t, c, testID, []byte(`{"a":1}`))
	for _, now := range []time.Time{expires, expires.Add(time.Second), expires.Add(24 * time.Hour)} {
		got, exp, err := c.Open(testID, tok, now)
		if !errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalid) {
			t.Errorf("Open at exp%+v = %v; want ErrExpired only", now.Sub(expires), err)
		}
		if got != nil || !exp.IsZero() {
			t.Errorf("expired Open returned %q, %v; want nil, zero", got, exp)
		}
	}
	if _, _, err := c.Open(testID, tok, expires.Add(-time.Second)); err != nil {
		t.Errorf("Open one second before expiry: %v", err)
	}
	// An expired token under the wrong id is invalid, not expired.
	if _, _, err := c.Open("sess-other", tok, expires.Add(time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Errorf("expired token under another id: %v; want ErrInvalid", err)
	}
}

func TestShortSecretRejected(t *testing.T) {
	for _, s := range [][]byte{nil, []byte("short"), []byte("fifteen bytes!!")} {
		_, err := New(s)
		if err == nil || !strings.Contains(err.Error(), "TINA4_SECRET") {
			t.Errorf("New(%d-byte secret) = %v; want an error naming TINA4_SECRET", len(s), err)
		}
	}
	if _, err := New([]byte("sixteen bytes!!!")); err != nil {
		t.Errorf("New(16-byte secret): %v", err)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	c := newCodec(t, testSecret)
	other := newCodec(t, testSecret)
	if !bytes.Equal(c.keys[0].mac, other.keys[0].mac) {
		t.Error("same secret gave different signing keys")
	}
	if bytes.Equal(c.keys[0].mac, testSecret) {
		t.Error("signing key is the raw secret")
	}
}

func TestSealRejectsBadInput(t *testing.T) {
	c := newCodec(t, testSecret)
	if _, err := c.Seal("", nil, issued, expires); err == nil {
		t.Error("Seal with empty id succeeded")
	}
	if _, err := c.Seal(testID, nil, issued, time.Time{}); err == nil {
		t.Error("Seal with zero expiry succeeded")
	}
}

func BenchmarkSeal(b *testing.B) {
	c, _ := New(testSecret)
	v := []byte(`{"user":"ann","cart":[1,2,3],"csrf":"0123456789abcdef"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Seal(testID, v, issued, expires); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	c, _ := New(testSecret)
	tok, _ := c.Seal(testID, []byte(`{"user":"ann","cart":[1,2,3],"csrf":"0123456789abcdef"}`), issued, expires)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Open(testID, tok, during); err != nil {
			b.Fatal(err)
		}
	}
}
