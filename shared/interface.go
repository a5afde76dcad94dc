// Package shared is the wire contract between the tina4go/sessions host and a
// session handler plugin: the go-plugin handshake, the protocol versions, the
// Go interface both sides agree on, and the gRPC adapters that carry it.
//
// It imports neither the host nor the sdk; both import it.
package shared

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the newest wire protocol this module speaks.
const ProtocolVersion = 1

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
)

// ErrNotFound is returned by Load when no live record exists for an id.
var ErrNotFound = errors.New("session not found")

// ErrInvalidID is returned when an id is not of the session id format.
var ErrInvalidID = errors.New("invalid session id")

// Record is what a handler stores for one session: an opaque, host-sealed
// token and the moment it expires.
type Record struct {
	Data    []byte
	Expires time.Time
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
		switch c := id[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
