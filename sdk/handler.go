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
	"time"

	"github.com/tina4go/sessions/shared"
)

// Record is what a handler stores for one session. Data is an opaque token
// sealed by the host; store it byte for byte. Expires is when the store may
// forget it; after that instant Load must report ErrNotFound. Version is
// for a VersionedHandler, Principal for an Indexer (a handler that is not
// one never sees a Principal).
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

// ErrConflict is what SaveIf's *ConflictError matches with errors.Is.
var ErrConflict = shared.ErrConflict

// ConflictError is SaveIf's answer when the stored record is not the
// version it was given: the record stored now, or Found=false when there is
// none (destroyed or expired).
type ConflictError = shared.ConflictError

// VersionedHandler is an optional interface (protocol 2, capability
// "versions"). With it, concurrent requests on one session keep each
// other's writes across every host that shares the store, and a destroyed
// session stays destroyed: the host saves with SaveIf, giving the version it
// loaded, and on a conflict applies its changes to the record it gets back
// and tries again.
//
// A VersionedHandler's Load must fill Record.Version.
type VersionedHandler interface {
	Handler
	// SaveIf stores r under id only if the live record under id has
	// version expect, or, when expect is 0, only if id has no live record.
	// It returns the version of the new record: never 0, and never a
	// version id had before (a random 64-bit number is fine; r.Version is
	// ignored). When the stored version is another, SaveIf writes nothing
	// and returns &ConflictError{Found: true, Current: <the stored record>};
	// when there is no live record (none, or expired) and expect is not 0,
	// it returns &ConflictError{Found: false}. The check and the write must
	// be one atomic step, also against other processes that share the
	// store (a Lua script in Redis, a transaction in SQL, a conditional
	// write in DynamoDB or Mongo).
	SaveIf(ctx context.Context, id string, r Record, expect uint64) (uint64, error)
}

// Locker is an optional interface (protocol 2, capability "lock"). It backs
// TINA4_SESSION_LOCK, which serializes the requests of one session from load
// to commit across every host that shares the store.
type Locker interface {
	// Lock takes the lock of session id for token until ttl has passed and
	// returns true, unless another token holds a lock on id that has not
	// expired (then false). Taking it again with the same token extends it.
	// The lock is not the session record: Load, Save and Close ignore it.
	Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error)
	// Unlock releases the lock of id if token holds it, and otherwise does
	// nothing; it returns nil in both cases.
	Unlock(ctx context.Context, id, token string) error
}

// ValidPrincipal reports whether p has the principal key format: 1 to 128
// characters of 0-9 a-f. Serve refuses every other principal, with an error
// wrapping ErrInvalidID, before an Indexer sees it.
func ValidPrincipal(p string) bool { return shared.ValidPrincipal(p) }

// ErrInvalidPrincipal is what a call returns for a principal key that fails
// ValidPrincipal; such an error also matches ErrInvalidID.
var ErrInvalidPrincipal = shared.ErrInvalidPrincipal

// Indexer is an optional interface (protocol 2, capability "index"). It
// backs the host's "log out everywhere": an app attaches a user to a
// session, and ending every session of that user ends them on every host
// that shares the store.
//
// The store never sees the user: for a session that has one, the host sets
// Record.Principal on every Save and SaveIf to an opaque principal key (the
// hex of a keyed hash of the user id; 1 to 128 characters of 0-9 a-f, which
// needs no escaping in a key or a file name). What an Indexer must do:
//
//   - Save and SaveIf store r.Principal with the record (where Load does not
//     have to read it: a field of the value's header, a column) and add id
//     to an index of r.Principal (a Redis set, a file, a table). A write
//     with another principal, or with "" (none), replaces the record's
//     principal; the old principal's index may keep listing id, since
//     CloseAll checks the record before it deletes it. An index entry for
//     a write that then did not happen (a SaveIf conflict, a failure) is
//     harmless for the same reason, so write the index entry before the
//     record: a live record of a principal must never be missing from its
//     index.
//   - CloseAll(ctx, principal) deletes every record listed in principal's
//     index whose current principal is principal, checking and deleting
//     each as one atomic step against other processes (as SaveIf writes),
//     and returns how many live (unexpired) records it deleted. A record
//     written since with another principal or none stays; an unknown
//     principal is 0, nil. After CloseAll the records are gone as after
//     Close: a SaveIf with their old version is a conflict with
//     Found=false.
//   - CloseAll drops an index entry only with the record it deleted (and
//     not if a save has added the id again since), or once the entry's
//     own expiry has passed. An entry whose record is missing or another
//     principal's stays: it may belong to a save that has written the
//     entry but not yet the record.
//   - Close deletes the record; its index entry may stay until CloseAll or
//     a sweep finds it dead.
//   - An index never outlives the records it lists: expire it at the
//     latest expiry of the records added to it (or sweep it then). It
//     holds ids only, never session data.
type Indexer interface {
	Handler
	CloseAll(ctx context.Context, principal string) (int, error)
}

// Stopper is an optional interface. Serve calls Stop once, so the handler
// can flush or release what it holds:
//
//   - when the host stops the plugin: the host's graceful shutdown
//     (SIGTERM, Host.Close) and a restart of the plugin by the host; Stop
//     must return within about 2 seconds, after which the host kills the
//     process;
//   - when the host went away without stopping it and the plugin notices
//     (its parent process changed), on systems without a parent-death
//     signal.
//
// It is not called when the plugin is killed: on Linux a host that dies
// without stopping its plugin (SIGKILL, a crash) takes the plugin with it
// through the kernel's parent-death signal, at once, and a plugin the host
// kills because it stopped answering gets no chance either. Keep nothing
// in a handler that only Stop would save.
type Stopper interface {
	Stop()
}
