package session

import (
	"crypto/rand"
	"encoding/base64"
)

// NewID returns a fresh session id: 32 bytes (256 bits) from crypto/rand,
// base64url-encoded without padding (43 characters, see shared.ValidID).
func NewID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}
