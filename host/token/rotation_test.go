package token

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secretA = []byte("secret-A-0123456789abcdef0123456789")
	secretB = []byte("secret-B-0123456789abcdef0123456789")
	secretC = []byte("secret-C-0123456789abcdef0123456789")
	secretX = []byte("secret-X-never-configured-anywhere!")
)

func newRotating(t *testing.T, secret []byte, previous ...[]byte) *Codec {
	t.Helper()
	c, err := New(secret, previous...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func wantOpen(t *testing.T, c *Codec, tok []byte, values string) {
	t.Helper()
	got, exp, err := c.Open(testID, tok, during)
	if err != nil || string(got) != values || !exp.Equal(expires) {
		t.Fatalf("Open = %q, %v, %v; want %q, %v, nil", got, exp, err, values, expires)
	}
}

// The swap step: hosts seal with B and still open what A sealed.
func TestSealedWithOldOpensWithNewAndPrevious(t *testing.T) {
	old := seal(t, newCodec(t, secretA), testID, []byte(`{"u":"ann"}`))
	wantOpen(t, newRotating(t, secretB, secretA), old, `{"u":"ann"}`)
	// Wherever A is listed.
	wantOpen(t, newRotating(t, secretB, secretC, secretA), old, `{"u":"ann"}`)
	// Once A is dropped, the session is gone.
	wantInvalid(t, newCodec(t, secretB), testID, old)
}

// The roll-out step: hosts still seal with A but already open B, so a host
// that has been swapped to B can run beside them.
func TestSealedWithNewOpensWhereListedAsPrevious(t *testing.T) {
	swapped := newRotating(t, secretB, secretA)
	rolledOut := newRotating(t, secretA, secretB)
	fromSwapped := seal(t, swapped, testID, []byte(`{"from":"B"}`))
	fromRolledOut := seal(t, rolledOut, testID, []byte(`{"from":"A"}`))
	wantOpen(t, rolledOut, fromSwapped, `{"from":"B"}`)
	wantOpen(t, swapped, fromRolledOut, `{"from":"A"}`)
	// A host not yet rolled out (A only) cannot open what B sealed.
	wantInvalid(t, newCodec(t, secretA), testID, fromSwapped)
}

func TestSealAlwaysUsesTheCurrentSecret(t *testing.T) {
	tok := seal(t, newRotating(t, secretB, secretA), testID, []byte(`{"a":1}`))
	wantOpen(t, newCodec(t, secretB), tok, `{"a":1}`)
	wantInvalid(t, newCodec(t, secretA), testID, tok)
}

func TestUnknownKeyIsInvalid(t *testing.T) {
	tok := seal(t, newCodec(t, secretX), testID, []byte(`{"a":1}`))
	for _, c := range []*Codec{
		newRotating(t, secretA, secretB),
		newRotating(t, secretB, secretA, secretC),
	} {
		wantInvalid(t, c, testID, tok)
	}
}

func TestTamperedIsInvalidUnderEveryKey(t *testing.T) {
	c := newRotating(t, secretB, secretA, secretC)
	for _, sealer := range []*Codec{newCodec(t, secretB), newCodec(t, secretA), newCodec(t, secretC)} {
		tok := seal(t, sealer, testID, []byte(`{"a":1}`))
		wantOpen(t, c, tok, `{"a":1}`)
		for seg := range 3 {
			wantInvalid(t, c, testID, mutate(tok, seg))
		}
		wantInvalid(t, c, "sess-other", tok)
		wantInvalid(t, c, testID, tok[:len(tok)-1])
	}
}

// Signature and encryption keys come from the same secret: a token signed
// with a previous key whose dat was encrypted under another key of the
// Codec does not open.
func TestKeysOfDifferentSecretsDoNotMix(t *testing.T) {
	c := newRotating(t, secretB, secretA)
	a := newCodec(t, secretA)
	b := newCodec(t, secretB)
	cl := parsedClaims(t, seal(t, b, testID, []byte(`{"a":1}`))) // dat under B's encryption key
	wantInvalid(t, c, testID, resign(t, jwt.SigningMethodHS256, cl, a.keys[0].mac))
	cl = parsedClaims(t, seal(t, a, testID, []byte(`{"a":1}`))) // dat under A's encryption key
	wantInvalid(t, c, testID, resign(t, jwt.SigningMethodHS256, cl, b.keys[0].mac))
}

func TestAlgorithmStaysPinnedWithPreviousKeys(t *testing.T) {
	c := newRotating(t, secretB, secretA)
	a := newCodec(t, secretA)
	cl := parsedClaims(t, seal(t, a, testID, []byte(`{"a":1}`)))
	wantInvalid(t, c, testID, resign(t, jwt.SigningMethodHS512, cl, a.keys[0].mac))
	wantInvalid(t, c, testID, resign(t, jwt.SigningMethodNone, cl, jwt.UnsafeAllowNoneSignatureType))
}

func TestExpiredUnderPreviousKeyIsExpired(t *testing.T) {
	tok := seal(t, newCodec(t, secretA), testID, []byte(`{"a":1}`))
	_, _, err := newRotating(t, secretB, secretA).Open(testID, tok, expires)
	if !errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalid) {
		t.Fatalf("Open after expiry = %v; want ErrExpired only", err)
	}
}

// The error for a token no key opens is the same whichever keys the Codec
// holds: it says nothing about the previous keys.
func TestErrorDoesNotTellKeysApart(t *testing.T) {
	tok := seal(t, newCodec(t, secretX), testID, []byte(`{"a":1}`))
	_, _, alone := newCodec(t, secretB).Open(testID, tok, during)
	_, _, rotating := newRotating(t, secretB, secretA, secretC).Open(testID, tok, during)
	if alone == nil || rotating == nil || alone.Error() != rotating.Error() {
		t.Fatalf("errors differ: %v vs %v", alone, rotating)
	}
	// Failures after the signature check read the same under either key.
	for _, sealer := range []*Codec{newCodec(t, secretB), newCodec(t, secretA)} {
		_, _, err := newRotating(t, secretB, secretA).Open("sess-other", seal(t, sealer, testID, nil), during)
		if err == nil || err.Error() != "invalid session token: sealed for another session id" {
			t.Errorf("another id: %v", err)
		}
	}
}

func TestPreviousSecretsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name     string
		previous [][]byte
		want     string
	}{
		{"short", [][]byte{secretA, []byte("hunter2-short")}, "previous session secret 2 of 2 is 13 bytes, need at least 16"},
		{"empty", [][]byte{{}}, "previous session secret 1 of 1 is 0 bytes"},
		{"same as current", [][]byte{secretA, secretB}, "previous session secret 2 of 2 is the current secret"},
		{"listed twice", [][]byte{secretA, secretC, secretA}, "previous session secrets 1 and 3 of 3 are the same"},
	} {
		_, err := New(secretB, tc.previous...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want one containing %q", tc.name, err, tc.want)
			continue
		}
		for _, p := range tc.previous {
			if len(p) > 0 && strings.Contains(err.Error(), string(p)) {
				t.Errorf("%s: the error shows a secret: %v", tc.name, err)
			}
		}
	}
	if _, err := New(secretB, []byte("sixteen bytes!!!")); err != nil {
		t.Errorf("16-byte previous secret: %v", err)
	}
	// The current secret is checked first, with its own message.
	if _, err := New([]byte("short"), secretA); err == nil || !strings.Contains(err.Error(), "TINA4_SECRET") {
		t.Errorf("short current secret with a previous one: %v", err)
	}
}

func TestNewKeepsNoReferenceToPrevious(t *testing.T) {
	prev := bytes.Clone(secretA)
	c := newRotating(t, secretB, prev)
	tok := seal(t, newCodec(t, secretA), testID, []byte(`{"a":1}`))
	for i := range prev {
		prev[i] = 0
	}
	wantOpen(t, c, tok, `{"a":1}`)
}

// BenchmarkOpenRotation/previous=N/sealed=S opens a token sealed with the current
// key, the last previous key, or no key the codec knows.
func BenchmarkOpenRotation(b *testing.B) {
	values := []byte(`{"user":"ann","cart":[1,2,3],"csrf":"0123456789abcdef"}`)
	for _, n := range []int{0, 2} {
		previous := [][]byte{secretA, secretC}[:n]
		c, err := New(secretB, previous...)
		if err != nil {
			b.Fatal(err)
		}
		sealers := map[string][]byte{"current": secretB, "unknown": secretX}
		if n > 0 {
			sealers["last-previous"] = previous[n-1]
		}
		for _, name := range []string{"current", "last-previous", "unknown"} {
			secret, ok := sealers[name]
			if !ok {
				continue
			}
			sc, _ := New(secret)
			tok, _ := sc.Seal(testID, values, issued, expires)
			b.Run(fmt.Sprintf("previous=%d/sealed=%s", n, name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, _, err := c.Open(testID, tok, during)
					if (err == nil) != (name != "unknown") {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
