package session

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tina4go/sessions/host/token"
)

// localSessions coordinates, within one host process, the requests that
// hold the same session at once. It keeps an entry per session id while at
// least one request holds it:
//
//   - a generation, bumped by every commit that writes or deletes the
//     record, so a request can tell whether another one committed since it
//     loaded (and then merges its own changes into the current record
//     instead of overwriting it);
//   - whether a request destroyed the id (Destroy, Regenerate, or emptying
//     it), so the other requests still holding it cannot write it back;
//   - a mutex that serializes commits of the id.
//
// It covers one process. Requests for one session on several hosts are
// not coordinated (see docs/user-guide.md, Concurrency).
type localSessions struct {
	mu sync.Mutex
	m  map[string]*localEntry
}

type localEntry struct {
	commit    chan struct{} // a one-slot lock held for a whole commit of the id
	held      chan struct{} // the session lock's place in line on this host (TINA4_SESSION_LOCK)
	gen       atomic.Uint64
	destroyed atomic.Bool
	holders   int // under localSessions.mu

	// What the last commit of this host wrote, for a versioned store: the
	// values, their version and expiry (lastVersion 0: none kept). Kept
	// only while other requests hold the session, so that their commits
	// start from it instead of a conditional save that must fail. Read and
	// written under the commit lock.
	lastValues  map[string]json.RawMessage
	lastVersion uint64
	lastExpires time.Time
	lastMeta    token.Meta // and the settings it sealed (creation time, RememberMe, SetTTL)
}

// shared reports whether requests other than the caller hold e.
func (l *localSessions) shared(e *localEntry) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return e.holders > 1
}

// acquire returns id's entry, counting the caller as a holder until release.
func (l *localSessions) acquire(id string) *localEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]*localEntry)
	}
	e := l.m[id]
	if e == nil {
		e = &localEntry{commit: make(chan struct{}, 1), held: make(chan struct{}, 1)}
		l.m[id] = e
	}
	e.holders++
	return e
}

// release drops the caller's hold on id's entry; the last holder removes
// it (no request on this host can then commit the id from an old load).
func (l *localSessions) release(id string, e *localEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.holders--; e.holders == 0 && l.m[id] == e {
		delete(l.m, id)
	}
}
