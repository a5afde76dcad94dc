// Package sdk is everything a session handler author imports: the Handler
// interface, the Record it stores, the errors it returns and Serve, which
// turns a Handler into a plugin binary the tina4go/sessions host can launch.
//
// A handler stores opaque bytes under a session id until an expiry. The host
// seals every session (signed and encrypted) before it reaches a handler, so a
// handler never sees session values, never needs a key and writes no crypto.
package sdk

import (
	"context"

	"github.com/tina4go/sessions/shared"
)

// Record is what a handler stores for one session. Data is an opaque token
// sealed by the host; store it byte for byte. Expires is when the store may
// forget it; after that instant Load must report ErrNotFound.
type Record = shared.Record

// ErrNotFound is what Load returns when no record exists for an id, or when
// the record has expired. It is not a failure: the host starts a new session.
var ErrNotFound = shared.ErrNotFound

// ErrTooLarge is what a call returns for a record larger than
// MaxRecordSize. Serve refuses such records on both sides of the handler.
var ErrTooLarge = shared.ErrTooLarge

// MaxRecordSize is the largest Record.Data the host stores (16 MiB).
const MaxRecordSize = shared.MaxRecordSize

// ErrInvalidID is what a handler returns for an id it refuses. Serve already
// refuses every id that fails ValidID before the handler sees it.
var ErrInvalidID = shared.ErrInvalidID

// ValidID reports whether id has the session id format: exactly 43
// characters of A-Z a-z 0-9 '-' '_'. Ids that pass cannot contain a path
// separator, a dot or a control character.
func ValidID(id string) bool { return shared.ValidID(id) }

// Handler stores session records. Serve calls it from many goroutines at
// once, so every method must be safe for concurrent use. Every id a Handler
// receives has passed ValidID. Every ctx carries the host's deadline: honour
// it and return ctx.Err() (wrapped or not) when it is done.
type Handler interface {
	// Load returns the record stored under id. It returns ErrNotFound (and
	// nothing else) when there is no record or the record's Expires is in
	// the past. Any other error means the store failed; the host answers
	// the request with 503 rather than starting an empty session.
	Load(ctx context.Context, id string) (Record, error)

	// Save creates or replaces the record under id. The write must be
	// atomic: a concurrent Load sees the old record or the new one, never a
	// mix. The store should forget the record once r.Expires has passed.
	Save(ctx context.Context, id string, r Record) error

	// Close destroys the record under id. Closing an id that has no record
	// is not an error and returns nil.
	Close(ctx context.Context, id string) error
}

// HealthChecker is an optional interface. A Handler that implements it is
// asked for the state of its store by the host's health check; return an
// error saying what is wrong (for example "redis 127.0.0.1:6379: connection
// refused").
type HealthChecker interface {
	Health(ctx context.Context) error
}

// Stopper is an optional interface. Serve calls Stop once before the plugin
// process exits because its host went away, so the handler can flush or
// release what it holds.
type Stopper interface {
	Stop()
}
