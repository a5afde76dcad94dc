// Package token seals session values into the bytes a session store holds,
// and opens them again.
//
// A sealed session is a compact JWT signed with HS256. Its claims are the
// session id ("sid"), the issue time ("iat") and the expiry ("exp"), all in the
// clear, and "dat": the session values encrypted with AES-256-GCM using the
// session id as additional data. Whoever reads the store (a file, a Redis key)
// sees when a session expires but not what it holds, cannot change it without
// the host's key, and cannot move it to another session id.
//
// Both keys derive from one secret (TINA4_SECRET, or a key file made by
// [LoadOrCreateKey]); the secret never leaves the host process.
package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalid reports a token that cannot be trusted: malformed or truncated,
// tampered with, signed with another key or another algorithm, missing a
// required claim, or sealed for a different session id. Callers treat it as
// "no session".
var ErrInvalid = errors.New("invalid session token")

// ErrExpired reports a token that is genuine and belongs to the session id it
// was opened under, but whose expiry has passed. Callers treat it as
// "no session"; it is distinct from [ErrInvalid] only so that logs and metrics
// can tell the two apart.
var ErrExpired = errors.New("session token expired")

// minSecretLen is the shortest secret [New] accepts.
const minSecretLen = 16

const (
	macInfo = "tina4 session mac v1"
	encInfo = "tina4 session enc v1"
	keyLen  = 32
)

// validMethods pins the signing algorithm: anything else, "none" included, is
// refused before the key is ever used.
var validMethods = []string{jwt.SigningMethodHS256.Alg()}

// Codec seals and opens session tokens with keys derived from one secret.
// A Codec is safe for concurrent use by multiple goroutines.
type Codec struct {
	macKey []byte      // HS256 key
	aead   cipher.AEAD // AES-256-GCM; random 96-bit nonce prepended to the ciphertext
	// parser checks the algorithm (HS256 only), the signature and the
	// encoding; Open checks the expiry itself against its own now, so one
	// parser serves every call.
	parser *jwt.Parser
}

// New derives two independent 32-byte keys from secret with HKDF-SHA256: one
// signs tokens (HS256), the other encrypts session values (AES-256-GCM).
// secret must be at least 16 bytes; a shorter one is refused with an error
// that says to set TINA4_SECRET to at least 32 random characters. New does not
// keep a reference to secret.
func New(secret []byte) (*Codec, error) {
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("session secret is %d bytes, need at least %d: set TINA4_SECRET to at least 32 random characters (or unset it to use a generated key file)",
			len(secret), minSecretLen)
	}
	macKey, err := hkdf.Key(sha256.New, secret, nil, macInfo, keyLen)
	if err != nil {
		return nil, fmt.Errorf("derive session signing key: %w", err)
	}
	encKey, err := hkdf.Key(sha256.New, secret, nil, encInfo, keyLen)
	if err != nil {
		return nil, fmt.Errorf("derive session encryption key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("session encryption key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("session encryption key: %w", err)
	}
	parser := jwt.NewParser(jwt.WithValidMethods(validMethods), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation())
	return &Codec{macKey: macKey, aead: aead, parser: parser}, nil
}

// claims is the token body. Times are whole Unix seconds, independent of
// jwt.TimePrecision, so Open can return exactly time.Unix(exp, 0).
type claims struct {
	SID string `json:"sid"`
	IAT int64  `json:"iat"`
	EXP int64  `json:"exp"`
	Dat string `json:"dat"`
}

func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) {
	if c.EXP == 0 {
		return nil, nil // missing; the parser requires it
	}
	return &jwt.NumericDate{Time: time.Unix(c.EXP, 0)}, nil
}

func (c *claims) GetIssuedAt() (*jwt.NumericDate, error) {
	if c.IAT == 0 {
		return nil, nil
	}
	return &jwt.NumericDate{Time: time.Unix(c.IAT, 0)}, nil
}

func (c *claims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }
func (c *claims) GetIssuer() (string, error)              { return "", nil }
func (c *claims) GetSubject() (string, error)             { return "", nil }
func (c *claims) GetAudience() (jwt.ClaimStrings, error)  { return nil, nil }

// Seal returns a compact JWT (HS256) for session id holding values, issued at
// issued and expiring at expires. Both times are truncated to whole seconds,
// as JWT requires, so a token sealed to expire at 10:00:00.9 expires at
// 10:00:00.
//
// values are opaque bytes (the caller's JSON); they are encrypted with
// AES-256-GCM under a fresh random nonce, with id as additional data, and
// carried as the "dat" claim: base64url(nonce || ciphertext). nil and empty
// values both open as empty.
//
// Seal fails if id is empty or expires is not after the Unix epoch (a zero
// time.Time is a caller bug, not a session that never expires).
func (c *Codec) Seal(id string, values []byte, issued, expires time.Time) ([]byte, error) {
	if id == "" {
		return nil, errors.New("seal session token: empty session id")
	}
	exp := expires.Unix()
	if exp <= 0 {
		return nil, fmt.Errorf("seal session token: expiry %v is not after the Unix epoch", expires)
	}
	sealed := c.aead.Seal(nil, nil, values, []byte(id))
	cl := &claims{
		SID: id,
		IAT: issued.Unix(),
		EXP: exp,
		Dat: base64.RawURLEncoding.EncodeToString(sealed),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, cl).SignedString(c.macKey)
	if err != nil {
		return nil, fmt.Errorf("seal session token: %w", err)
	}
	return []byte(s), nil
}

// Open verifies token and decrypts the values it holds for session id, as of
// now. It returns the values and the token's expiry, time.Unix(exp, 0).
//
// The token must be a well-formed JWT signed with HS256 under this Codec's
// key (any other algorithm, "none" included, is refused), carry an "exp"
// claim, carry a "sid" claim equal to id, and its "dat" must decrypt with id
// as additional data, so a token copied to another session id does not open.
// Any such failure returns an error wrapping [ErrInvalid]. A genuine token
// for id whose expiry is at or before now returns an error wrapping
// [ErrExpired]. On error, values is nil and expires is the zero time.
func (c *Codec) Open(id string, token []byte, now time.Time) (values []byte, expires time.Time, err error) {
	if id == "" {
		return nil, time.Time{}, fmt.Errorf("%w: empty session id", ErrInvalid)
	}
	var cl claims
	if _, err = c.parser.ParseWithClaims(string(token), &cl, c.key); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// The signature is good, so the claims are the host's own.
	switch {
	case cl.EXP == 0:
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	case cl.SID != id:
		return nil, time.Time{}, fmt.Errorf("%w: sealed for another session id", ErrInvalid)
	case !now.Before(time.Unix(cl.EXP, 0)):
		return nil, time.Time{}, fmt.Errorf("%w at %s", ErrExpired, time.Unix(cl.EXP, 0).UTC().Format(time.RFC3339))
	}
	buf, err := base64.RawURLEncoding.Strict().DecodeString(cl.Dat)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: malformed dat claim", ErrInvalid)
	}
	// Decrypt in place: the plaintext reuses buf's storage.
	values, err = c.aead.Open(buf[:0], nil, buf, []byte(id))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: values do not decrypt", ErrInvalid)
	}
	return slices.Clip(values), time.Unix(cl.EXP, 0), nil
}

// key is the jwt.Keyfunc: the parser has already refused any method other
// than HS256; the type check is a second lock on the same door.
func (c *Codec) key(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, fmt.Errorf("unexpected signing method %q", t.Method.Alg())
	}
	return c.macKey, nil
}
