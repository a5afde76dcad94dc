// Package session holds one request's session (its id and values) and the
// Manager that loads sessions from a store and commits them back, sealed by a
// token codec, with expiry, regeneration and destruction.
package session

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Session is one client's session during one request. Values are kept as
// JSON: Set accepts anything encoding/json can marshal, Get returns what
// encoding/json decodes into an interface{} (numbers are float64), and
// Decode fills a typed value. A Session is safe for concurrent use by the
// goroutines serving one request.
type Session struct {
	mu        sync.Mutex
	id        string // "" until the session needs one
	cookieID  string // a well-formed id the client sent, "" if none
	values    map[string]json.RawMessage
	expires   time.Time // expiry of the stored token; zero if not stored
	stored    bool      // a record exists under id
	dirty     bool
	toClose   []string // ids to destroy at commit (Destroy, Regenerate)
	destroyed bool
	version   uint64 // the stored record's version (versioned stores; 0: none)
	gone      bool   // a commit found the record destroyed by another request
	lockToken string // the session lock this request holds (TINA4_SESSION_LOCK)

	// What this request changed, key by key (a nil value: removed), so a
	// commit can apply exactly these changes to a record another request
	// changed in the meantime.
	changes map[string]json.RawMessage
	// The host-local entry of the id this session was loaded under, and
	// its generation at load time (see localSessions); nil for a session
	// that was not loaded from the store.
	entry     *localEntry
	entryID   string
	loadedGen uint64
}

// change notes that this request set key to raw (nil: removed it).
func (s *Session) change(key string, raw json.RawMessage) {
	if s.changes == nil {
		s.changes = make(map[string]json.RawMessage)
	}
	s.changes[key] = raw
}

// ID returns the session id, or "" for a new session that has not been
// saved yet.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// IsNew reports whether the session was started by this request (no stored
// session was found for the client's cookie, or there was no cookie).
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.stored
}

// Get returns the value stored under key, decoded as encoding/json decodes
// into an interface{}, and whether key was set.
func (s *Session) Get(key string) (any, bool) {
	var v any
	if ok, err := s.Decode(key, &v); !ok || err != nil {
		return nil, false
	}
	return v, true
}

// GetString returns the string stored under key, or "" when key is unset or
// does not hold a string.
func (s *Session) GetString(key string) string {
	v, _ := s.Get(key)
	str, _ := v.(string)
	return str
}

// Decode unmarshals the value stored under key into dst (a pointer) and
// reports whether key was set.
func (s *Session) Decode(key string, dst any) (bool, error) {
	s.mu.Lock()
	raw, ok := s.values[key]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return true, fmt.Errorf("session value %q: %w", key, err)
	}
	return true, nil
}

// Set stores v under key. v must marshal with encoding/json; if it does not,
// Set returns the error and changes nothing. Setting a key to the value it
// already holds does not mark the session changed.
func (s *Session) Set(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("session value %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.values[key]; ok && string(old) == string(raw) {
		return nil
	}
	if s.values == nil {
		s.values = make(map[string]json.RawMessage)
	}
	s.values[key] = raw
	s.change(key, raw)
	s.dirty = true
	return nil
}

// Unset removes key. Removing a key that is not set changes nothing.
func (s *Session) Unset(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[key]; ok {
		delete(s.values, key)
		s.change(key, nil)
		s.dirty = true
	}
}

// Keys returns the set keys in sorted order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.values))
}

// All returns every value, decoded as Get decodes them. The map is a copy.
func (s *Session) All() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]any, len(s.values))
	for k, raw := range s.values {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			out[k] = v
		}
	}
	return out
}

// Destroy ends the session: its values are dropped, its record is deleted
// from the store when the response is committed, and the client's cookie is
// expired. Values set after Destroy start a new session with a new id.
func (s *Session) Destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" && s.stored {
		s.toClose = append(s.toClose, s.id)
	}
	s.id = ""
	s.stored = false
	s.values = nil
	s.changes = nil
	s.dirty = false
	s.destroyed = true
}

// Regenerate gives the session a new id and keeps its values; the record
// under the old id is deleted when the response is committed. Call it when
// a user logs in or changes privilege, so an id an attacker planted before
// login is worthless after it (session fixation).
func (s *Session) Regenerate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" && s.stored {
		s.toClose = append(s.toClose, s.id)
	}
	s.id = ""
	s.stored = false
	s.dirty = true
}
