// Package shared is the wire contract between the tina4go/sessions host and a
// session handler plugin: the go-plugin handshake, the protocol versions, the
// Go interface both sides agree on, and the gRPC adapters that carry it.
//
// It imports neither the host nor the sdk; both import it.
package shared

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the newest wire protocol this module speaks. Protocol 2
// added record versions with SaveIf (capability "versions"), session locks
// (capability "lock") and the per-principal index behind CloseAll
// (capability "index"); a host drives protocol-1 handlers as before.
const ProtocolVersion = 2

// Protocols are the protocol versions this module speaks, newest first.
var Protocols = []int{2, 1}

// PluginName is the key under which a handler is dispensed.
const PluginName = "session"

// Handshake is the go-plugin handshake. The magic cookie only stops a user
// from running a plugin binary by hand; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "TINA4_SESSION_PLUGIN",
	MagicCookieValue: "4c7a1f0e-tina4go-sessions-handler",
}

// MaxMessageSize is the largest gRPC message either side accepts: a record
// of MaxRecordSize and room for the rest of the message (gRPC's default of
// 4 MiB is too small for large sessions).
const MaxMessageSize = MaxRecordSize + 64<<10

// Capabilities a handler may report through Info.
const (
	// CapabilityHealth means the handler answers Health with the state of its store.
	CapabilityHealth = "health"
	// CapabilityVersions means Load reports record versions and SaveIf
	// writes only over the version it is given (protocol 2).
	CapabilityVersions = "versions"
	// CapabilityLock means Lock and Unlock keep a per-session lock with an
	// expiry in the store, shared by every host that uses it (protocol 2).
	CapabilityLock = "lock"
	// CapabilityIndex means Save and SaveIf index a record under its
	// Principal and CloseAll destroys every live record of a principal,
	// across every host that uses the store (protocol 2). A host sets
	// Record.Principal only for a handler with it.
	CapabilityIndex = "index"
)

// HasCapability reports whether info lists capability c.
func (info Info) HasCapability(c string) bool {
	for _, have := range info.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// ErrConflict is what SaveIf returns (as a *ConflictError) when the stored
// record is not the version it was given.
var ErrConflict = errors.New("session record changed since it was loaded")

// ConflictError is SaveIf's answer when it did not write: the record that is
// stored now, or Found=false when there is none (it was destroyed, or it
// expired).
type ConflictError struct {
	Found   bool
	Current Record
}

func (e *ConflictError) Error() string {
	if !e.Found {
		return ErrConflict.Error() + ": it no longer exists"
	}
	return ErrConflict.Error()
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrNotFound is returned by Load when no live record exists for an id.
var ErrNotFound = errors.New("session not found")

// ErrInvalidID is returned when an id is not of the session id format.
var ErrInvalidID = errors.New("invalid session id")

// Record is what a handler stores for one session: an opaque, host-sealed
// token and the moment it expires. Version identifies one write of it: a
// handler with the "versions" capability gives every write of an id a
// version that id has not had before (never 0); others leave it 0.
//
// Principal is the opaque key of the principal (the user) the session
// belongs to, "" for none: Save and SaveIf carry it to a handler with the
// "index" capability, which indexes the record under it for CloseAll (see
// Indexer). It is a keyed hash the host makes of the user id (ValidPrincipal
// format), never the id itself. Load does not report it.
type Record struct {
	Data      []byte
	Expires   time.Time
	Version   uint64
	Principal string
}

// Info is what a handler reports about itself.
type Info struct {
	Name         string
	Version      string
	Protocols    []int
	Capabilities []string
	PID          int
	// FastAddr is the handler's fast-transport socket ("" when it serves
	// gRPC only) and FastSecret the secret a host must present on it. The
	// host's loader uses them at launch and then drops the secret.
	FastAddr   string
	FastSecret []byte
}

// Store is the interface both ends of the wire implement: the plugin serves
// it, the host calls it.
type Store interface {
	Info(ctx context.Context) (Info, error)
	// Health returns nil when the store is usable, else an error that says why.
	Health(ctx context.Context) error
	Load(ctx context.Context, id string) (Record, error)
	Save(ctx context.Context, id string, r Record) error
	Close(ctx context.Context, id string) error
}

// Versioned is the Store side of capability "versions".
type Versioned interface {
	// SaveIf stores r under id only if the live record under id has
	// version expect (0: only if there is no live record), and returns the
	// new version. Otherwise it writes nothing and returns a
	// *ConflictError holding the record stored now. The check and the
	// write are one atomic step, also against other hosts.
	SaveIf(ctx context.Context, id string, r Record, expect uint64) (uint64, error)
}

// Locker is the Store side of capability "lock".
type Locker interface {
	// Lock takes the lock of id for token until ttl has passed, unless
	// another token holds it (then it returns false). Taking it again with
	// the token that holds it extends it.
	Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error)
	// Unlock releases the lock of id if token holds it; otherwise it does
	// nothing and returns nil.
	Unlock(ctx context.Context, id, token string) error
}

// Indexer is the Store side of capability "index".
type Indexer interface {
	// CloseAll destroys every live record whose current principal (the
	// Principal of its latest Save or SaveIf) is principal, and returns
	// how many live records it destroyed. A record saved since with
	// another principal, or with none, stays. It drops from principal's
	// index what it no longer needs (sdk.Indexer says what exactly).
	CloseAll(ctx context.Context, principal string) (int, error)
}

// MaxPrincipal is the longest principal key the protocol carries.
const MaxPrincipal = 128

// ErrInvalidPrincipal is returned for a principal key that is not of the
// ValidPrincipal format. An error that wraps it also wraps ErrInvalidID, and
// over the wire it arrives as ErrInvalidID.
var ErrInvalidPrincipal = errors.New("invalid principal key")

// ValidPrincipal reports whether p has the principal key format: 1 to
// MaxPrincipal characters of 0-9 a-f (the host sends 64, the hex of an
// HMAC-SHA256). Such a key needs no escaping in a key, and cannot name a
// path.
func ValidPrincipal(p string) bool {
	if len(p) == 0 || len(p) > MaxPrincipal {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// PrincipalError is the error for a principal key p that is not valid: it
// wraps ErrInvalidPrincipal and ErrInvalidID, and says what the format is
// without repeating p.
func PrincipalError(p string) error {
	return fmt.Errorf("%w (%w): want 1 to %d characters of 0-9 a-f, got %d bytes", ErrInvalidPrincipal, ErrInvalidID, MaxPrincipal, len(p))
}

// MaxLockToken is the longest lock token the protocol carries.
const MaxLockToken = 64

// IDLength is the length of a session id: 32 random bytes, base64url without padding.
const IDLength = 43

// ValidID reports whether id has the session id format: exactly 43
// characters from the URL-safe base64 alphabet (A-Z a-z 0-9 - _). Such an id
// cannot name a path (no '/', '.', or NUL) and needs no escaping in a key.
func ValidID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idByte[id[i]] {
			return false
		}
	}
	return true
}

// idByte marks the bytes of the URL-safe base64 alphabet. ValidID runs on
// every call on the way to a store, several times a request, so it is a
// table lookup a byte.
var idByte = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()
