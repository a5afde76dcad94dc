// Package token seals session values into the bytes a session store holds,
// and opens them again.
//
// A sealed session is a compact JWT signed with HS256. Its claims are the
// session id ("sid"), the issue time ("iat") and the expiry ("exp"), all in the
// clear, and "dat": the session values encrypted with AES-256-GCM using the
// session id as additional data. Whoever reads the store (a file, a Redis key)
// sees when a session expires but not what it holds, cannot change it without
// the host's key, and cannot move it to another session id. [Codec.SealMeta]
// adds, also in the clear, when the session was created ("crt"), its own idle
// TTL ("ttl") and its cookie choice ("per"); see [Meta].
//
// Both keys derive from one secret (TINA4_SECRET, or a key file made by
// [LoadOrCreateKey]); the secret never leaves the host process. To rotate the
// secret, a Codec can also hold previous secrets (TINA4_SECRET_PREVIOUS): it
// opens what they sealed but seals only with the current one. The token
// carries no key id; Open finds the key by its signature.
package token

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
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

// Codec seals and opens session tokens with keys derived from one secret,
// and can also open tokens sealed with older secrets (see [New]).
// A Codec is safe for concurrent use by multiple goroutines.
type Codec struct {
	// keys[0] derives from the current secret and is the only one that
	// seals; keys[1:] derive from the previous secrets, in the order given,
	// and only open.
	keys []keyPair
	// parser checks the algorithm (HS256 only), the signature and the
	// encoding; Open checks the expiry itself against its own now, so one
	// parser serves every call.
	parser *jwt.Parser
	// opened skips the work of opening a token the Codec sealed or opened
	// itself (see opened.go).
	opened opened
}

// keyPair is the two keys derived from one secret.
type keyPair struct {
	mac  []byte      // HS256 key
	aead cipher.AEAD // AES-256-GCM; random 96-bit nonce prepended to the ciphertext
	prn  []byte      // HMAC-SHA256 key for principal keys (see Principals)
	macs *macPool    // HMAC-SHA256 states under mac, for sign
}

// New derives two independent 32-byte keys from secret with HKDF-SHA256: one
// signs tokens (HS256), the other encrypts session values (AES-256-GCM).
// secret must be at least 16 bytes; a shorter one is refused with an error
// that says to set TINA4_SECRET to at least 32 random characters. New does not
// keep a reference to secret, nor to previous.
//
// previous are older secrets, for rotating the secret without signing
// everyone out: the Codec always seals with secret, and opens a token sealed
// with secret or with any of previous. Each previous secret obeys the same
// length rule, and must differ from secret and from the others; the errors
// say which one (by position, counting from 1) is wrong, never its value.
func New(secret []byte, previous ...[]byte) (*Codec, error) {
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("session secret is %d bytes, need at least %d: set TINA4_SECRET to at least 32 random characters (or unset it to use a generated key file)",
			len(secret), minSecretLen)
	}
	for i, p := range previous {
		switch {
		case len(p) < minSecretLen:
			return nil, fmt.Errorf("previous session secret %d of %d is %d bytes, need at least %d, like every session secret",
				i+1, len(previous), len(p), minSecretLen)
		case bytes.Equal(p, secret):
			return nil, fmt.Errorf("previous session secret %d of %d is the current secret: list only older secrets (when you swap in a new secret, the one it replaces becomes the previous one)",
				i+1, len(previous))
		}
		for j, q := range previous[:i] {
			if bytes.Equal(p, q) {
				return nil, fmt.Errorf("previous session secrets %d and %d of %d are the same: list each older secret once",
					j+1, i+1, len(previous))
			}
		}
	}
	keys := make([]keyPair, 0, 1+len(previous))
	for _, s := range append([][]byte{secret}, previous...) {
		k, err := deriveKeys(s)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	parser := jwt.NewParser(jwt.WithValidMethods(validMethods), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation())
	return &Codec{keys: keys, parser: parser}, nil
}

// deriveKeys derives the signing and the encryption key from one secret.
func deriveKeys(secret []byte) (keyPair, error) {
	macKey, err := hkdf.Key(sha256.New, secret, nil, macInfo, keyLen)
	if err != nil {
		return keyPair{}, fmt.Errorf("derive session signing key: %w", err)
	}
	encKey, err := hkdf.Key(sha256.New, secret, nil, encInfo, keyLen)
	if err != nil {
		return keyPair{}, fmt.Errorf("derive session encryption key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return keyPair{}, fmt.Errorf("session encryption key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return keyPair{}, fmt.Errorf("session encryption key: %w", err)
	}
	prnKey, err := hkdf.Key(sha256.New, secret, nil, prnInfo, keyLen)
	if err != nil {
		return keyPair{}, fmt.Errorf("derive session principal key: %w", err)
	}
	return keyPair{mac: macKey, aead: aead, prn: prnKey, macs: newMACPool(macKey)}, nil
}

// prnInfo is the HKDF info of the key principal keys are made with.
const prnInfo = "tina4 session principal v1"

// Principals returns the principal keys of userID: hex HMAC-SHA256 of the
// user id under a key derived from each secret, the current one first.
// A store indexes sessions under such a key (capability "index") and never
// learns the user id; a user id cannot be found from it without the secret.
// Sessions saved before a rotation are indexed under an older secret's
// key, hence one key per secret.
func (c *Codec) Principals(userID string) []string {
	out := make([]string, len(c.keys))
	for i, k := range c.keys {
		m := hmac.New(sha256.New, k.prn)
		m.Write([]byte(userID))
		out[i] = hex.EncodeToString(m.Sum(nil))
	}
	return out
}

// claims is the token body. Times are whole Unix seconds, independent of
// jwt.TimePrecision, so Open can return exactly time.Unix(exp, 0).
type claims struct {
	SID string `json:"sid"`
	IAT int64  `json:"iat"`
	EXP int64  `json:"exp"`
	Dat string `json:"dat"`
	// See Meta. Absent from tokens sealed by [Codec.Seal] and by hosts
	// older than these claims.
	CRT int64  `json:"crt,omitempty"`
	TTL int64  `json:"ttl,omitempty"`
	Per *bool  `json:"per,omitempty"`
	Prn string `json:"prn,omitempty"`
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
	return c.SealMeta(id, values, issued, expires, Meta{})
}

// Meta is what a token says about its session besides the values: the
// session's lifetime and cookie settings. Like sid, iat and exp, these claims
// are in the clear (signed, not encrypted).
type Meta struct {
	// Created is when the session was created, kept across saves and new
	// ids (claim "crt", whole Unix seconds; not written when zero). Opening
	// a token without "crt" (sealed by [Codec.Seal] or before the claim
	// existed) gives its issue time ("iat") instead.
	Created time.Time
	// TTL is the session's own idle lifetime (claim "ttl", whole seconds,
	// rounded down; not written when under a second); 0: none of its own.
	TTL time.Duration
	// Persist is the session's cookie choice, persistent or not (claim
	// "per"); nil: none of its own (not written).
	Persist *bool
	// Principal is the principal key of the user the session belongs to
	// (claim "prn", see Principals; not written when empty).
	Principal string
}

// SealMeta is [Codec.Seal] with the claims of meta added.
func (c *Codec) SealMeta(id string, values []byte, issued, expires time.Time, meta Meta) ([]byte, error) {
	if id == "" {
		return nil, errors.New("seal session token: empty session id")
	}
	exp := expires.Unix()
	if exp <= 0 {
		return nil, fmt.Errorf("seal session token: expiry %v is not after the Unix epoch", expires)
	}
	k := &c.keys[0]
	sealed := k.aead.Seal(nil, nil, values, []byte(id))
	cl := &claims{
		SID: id,
		IAT: issued.Unix(),
		EXP: exp,
		Dat: base64.RawURLEncoding.EncodeToString(sealed),
		TTL: int64(meta.TTL / time.Second),
		Per: meta.Persist,
		Prn: meta.Principal,
	}
	if !meta.Created.IsZero() {
		cl.CRT = meta.Created.Unix()
	}
	tok := k.sign(cl)
	c.opened.put(id, openedEntry{token: bytes.Clone(tok), values: bytes.Clone(values), exp: exp, meta: cl.meta()})
	return tok, nil
}

// Open verifies token and decrypts the values it holds for session id, as of
// now. It returns the values and the token's expiry, time.Unix(exp, 0).
//
// The token must be a well-formed JWT signed with HS256 under this Codec's
// key or one of its previous keys (any other algorithm, "none" included, is
// refused), carry an "exp" claim, carry a "sid" claim equal to id, and its
// "dat" must decrypt with id as additional data, under the key that signed
// it, so a token copied to another session id does not open. Any such
// failure returns an error wrapping [ErrInvalid]. A genuine token for id
// whose expiry is at or before now returns an error wrapping [ErrExpired].
// On error, values is nil and expires is the zero time. Neither the error nor
// anything else Open returns says which key a token was sealed with.
//
// The current key is tried first, then the previous ones in order; each try
// costs one signature check, and a token that is not a well-formed HS256 JWT
// is refused before any key is tried.
func (c *Codec) Open(id string, token []byte, now time.Time) (values []byte, expires time.Time, err error) {
	values, expires, _, err = c.OpenMeta(id, token, now)
	return values, expires, err
}

// OpenMeta is [Codec.Open], also returning what the token says about its
// session (see [Meta]); on error, meta is the zero Meta.
func (c *Codec) OpenMeta(id string, token []byte, now time.Time) (values []byte, expires time.Time, meta Meta, err error) {
	if e, ok := c.opened.get(id, token); ok {
		// Byte for byte a token this Codec sealed or verified for id.
		if !now.Before(time.Unix(e.exp, 0)) {
			return nil, time.Time{}, Meta{}, expiredAt(e.exp)
		}
		return bytes.Clone(e.values), time.Unix(e.exp, 0), e.meta.own(), nil
	}
	var cl claims
	values, expires, err = c.openInto(id, token, now, &cl)
	if err != nil {
		return nil, time.Time{}, Meta{}, err
	}
	meta = cl.meta()
	c.opened.put(id, openedEntry{token: bytes.Clone(token), values: bytes.Clone(values), exp: cl.EXP, meta: meta})
	return values, expires, meta.own(), nil
}

// own is m with a Persist of its own, so a caller that changes it changes
// no cached Meta.
func (m Meta) own() Meta {
	if m.Persist != nil {
		p := *m.Persist
		m.Persist = &p
	}
	return m
}

// meta is the Meta the claims hold.
func (cl *claims) meta() Meta {
	m := Meta{Created: time.Unix(cl.IAT, 0), Persist: cl.Per, Principal: cl.Prn}
	if cl.CRT != 0 {
		m.Created = time.Unix(cl.CRT, 0)
	}
	if cl.TTL > 0 && cl.TTL <= int64(math.MaxInt64/time.Second) {
		m.TTL = time.Duration(cl.TTL) * time.Second
	}
	return m
}

// expiredAt is the error for a genuine token whose expiry, exp, has passed.
func expiredAt(exp int64) error {
	return fmt.Errorf("%w at %s", ErrExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
}

// openInto is Open, with the verified claims left in cl.
func (c *Codec) openInto(id string, token []byte, now time.Time, cl *claims) (values []byte, expires time.Time, err error) {
	if id == "" {
		return nil, time.Time{}, fmt.Errorf("%w: empty session id", ErrInvalid)
	}
	k, err := c.verify(string(token), cl)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// The signature is good, so the claims are the host's own.
	switch {
	case cl.EXP == 0:
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	case cl.SID != id:
		return nil, time.Time{}, fmt.Errorf("%w: sealed for another session id", ErrInvalid)
	case !now.Before(time.Unix(cl.EXP, 0)):
		return nil, time.Time{}, expiredAt(cl.EXP)
	}
	buf, err := base64.RawURLEncoding.Strict().DecodeString(cl.Dat)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: malformed dat claim", ErrInvalid)
	}
	// Decrypt in place: the plaintext reuses buf's storage.
	values, err = k.aead.Open(buf[:0], nil, buf, []byte(id))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: values do not decrypt", ErrInvalid)
	}
	return slices.Clip(values), time.Unix(cl.EXP, 0), nil
}

// verify parses token into cl, checks its signature and returns the key
// that signed it. The parser decodes the token once and refuses any
// algorithm but HS256 before it asks for a key. With previous keys, the key
// function picks the first key, the current one first, whose HMAC of the
// token matches its signature (one HMAC per key tried), and the parser then
// verifies the signature against that key itself. A token no key signed is
// verified against the current key and fails exactly as it would without
// previous keys, so the error never depends on them. How many keys were
// tried shows only in the time taken, and tokens come from the store, not
// from clients.
func (c *Codec) verify(token string, cl *claims) (*keyPair, error) {
	k := &c.keys[0]
	_, err := c.parser.ParseWithClaims(token, cl, func(t *jwt.Token) (any, error) {
		// The parser has already refused any method other than HS256;
		// the type check is a second lock on the same door.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("unexpected signing method %q", t.Method.Alg())
		}
		if len(c.keys) > 1 {
			// The parser found three segments, so there is a last dot.
			signed := token[:strings.LastIndexByte(token, '.')]
			for i := range c.keys {
				if jwt.SigningMethodHS256.Verify(signed, t.Signature, c.keys[i].mac) == nil {
					k = &c.keys[i]
					break
				}
			}
		}
		return k.mac, nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}
