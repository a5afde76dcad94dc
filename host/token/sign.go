package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strconv"
	"sync"
)

// jwtHeader is base64url of {"alg":"HS256","typ":"JWT"}: the header
// golang-jwt writes for HS256, so a token from sign is byte for byte the
// token jwt.NewWithClaims(jwt.SigningMethodHS256, cl).SignedString(key)
// makes (TestSignMatchesGolangJWT).
const jwtHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// macPool hands out HMAC-SHA256 states keyed with one key, reset to their
// start, so sealing builds no HMAC per token.
type macPool struct{ p sync.Pool }

func newMACPool(key []byte) *macPool {
	return &macPool{p: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sign makes the HS256 JWT of cl with k's signing key, in one buffer. Sealing
// runs on every save, and golang-jwt's SignedString (reflection-based JSON,
// three encodings into strings, an HMAC per call) was most of its cost.
// Opening still goes through golang-jwt's parser, which pins the algorithm.
func (k *keyPair) sign(cl *claims) []byte {
	enc := base64.RawURLEncoding
	payload := cl.appendJSON(make([]byte, 0, 96+len(cl.SID)+len(cl.Dat)+len(cl.Prn)))
	signed := len(jwtHeader) + 1 + enc.EncodedLen(len(payload))
	tok := make([]byte, signed+1+enc.EncodedLen(sha256.Size))
	copy(tok, jwtHeader)
	tok[len(jwtHeader)] = '.'
	enc.Encode(tok[len(jwtHeader)+1:signed], payload)
	mac := k.macs.p.Get().(hash.Hash)
	mac.Reset()
	mac.Write(tok[:signed])
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	k.macs.p.Put(mac)
	tok[signed] = '.'
	enc.Encode(tok[signed+1:], sum[:])
	return tok
}

// appendJSON appends cl as encoding/json marshals it: the fields in
// declaration order, the omitempty ones left out when empty, strings escaped
// as encoding/json escapes them.
func (cl *claims) appendJSON(b []byte) []byte {
	b = append(b, `{"sid":`...)
	b = appendJSONString(b, cl.SID)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, cl.IAT, 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, cl.EXP, 10)
	b = append(b, `,"dat":`...)
	b = appendJSONString(b, cl.Dat)
	if cl.CRT != 0 {
		b = append(b, `,"crt":`...)
		b = strconv.AppendInt(b, cl.CRT, 10)
	}
	if cl.TTL != 0 {
		b = append(b, `,"ttl":`...)
		b = strconv.AppendInt(b, cl.TTL, 10)
	}
	if cl.Per != nil {
		b = append(b, `,"per":`...)
		b = strconv.AppendBool(b, *cl.Per)
	}
	if cl.Prn != "" {
		b = append(b, `,"prn":`...)
		b = appendJSONString(b, cl.Prn)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Ids, principal keys and
// base64 are printable ASCII that needs no escaping and are copied as they
// are; anything else is left to encoding/json, so the result is always its.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
