// Package session holds one request's session (its id and values) and the
// Manager that loads sessions from a store and commits them back, sealed by a
// token codec, with expiry, regeneration and destruction.
package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Session is one client's session during one request. Values are kept as
// JSON: Set accepts anything encoding/json can marshal, Get returns what
// encoding/json decodes into an interface{} (numbers are float64), the
// typed getters (GetString, GetInt, GetInt64, GetFloat, GetBool, GetTime,
// GetBytes) return one kind of value, and Decode fills any typed value. A
// Session is safe for concurrent use by the goroutines serving one request.
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

	// Lifetimes and remember-me (sealed in the token as claims crt, per
	// and ttl; see Manager.Lifetime, RememberMe and SetTTL).
	created      time.Time     // when the session was created; kept by Regenerate; zero until stored
	persist      *bool         // RememberMe's choice; nil: the cookie options' default
	ttl          time.Duration // SetTTL's idle TTL; 0: the Manager's TTL
	principal    string        // the principal key of the session's user (SetUser); "" for none
	user         *string       // the user id this request set with SetUser, until it is saved
	principalSet metaChange    // whether this request called SetUser
	persistSet   metaChange    // whether this request called RememberMe
	ttlSet       metaChange    // whether this request called SetTTL
	maxAge       int           // the cookie's Max-Age in seconds as of the last commit that stored s; 0: not known
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

// The typed getters below (GetString, GetInt, GetInt64, GetFloat, GetBool,
// GetTime, GetBytes) each return the value under key and true, or the zero
// value and false when key is unset or its value is of another type. A
// stored JSON null is of no type: every typed getter reports false for it.

// raw returns the stored JSON text under key, without surrounding space, and
// whether key is set. Stored values are never modified in place, so the
// slice can be read after the lock is released.
func (s *Session) raw(key string) (json.RawMessage, bool) {
	s.mu.Lock()
	raw, ok := s.values[key]
	s.mu.Unlock()
	return bytes.TrimSpace(raw), ok
}

// Has reports whether key is set (to any value, null included).
func (s *Session) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.values[key]
	return ok
}

// GetString returns the string stored under key, and whether key holds a
// string.
func (s *Session) GetString(key string) (string, bool) {
	raw, ok := s.raw(key)
	return decodeString(raw, ok)
}

func decodeString(raw json.RawMessage, ok bool) (string, bool) {
	var str string
	if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &str) != nil {
		return "", false
	}
	return str, true
}

// GetInt returns the integer stored under key, and whether key holds one
// that fits an int. See GetInt64 for what counts as an integer.
func (s *Session) GetInt(key string) (int, bool) {
	raw, ok := s.raw(key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, strconv.IntSize)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// GetInt64 returns the integer stored under key, and whether key holds one
// that fits an int64. The stored number text is parsed exactly, so every
// int64 Set stores comes back unchanged, beyond 2^53 too. An integer is a
// JSON number written without a fraction or an exponent, which is how
// encoding/json writes every integer type and every whole float64 below
// 1e21; a number such as 1.5 is not one (use GetFloat), nor is the string
// "12".
func (s *Session) GetInt64(key string) (int64, bool) {
	raw, ok := s.raw(key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// GetFloat returns the number stored under key as a float64 (the nearest
// one, for an integer beyond 2^53), and whether key holds a JSON number
// within float64's range.
func (s *Session) GetFloat(key string) (float64, bool) {
	raw, ok := s.raw(key)
	if !ok || len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}

// GetBool returns the boolean stored under key, and whether key holds one.
func (s *Session) GetBool(key string) (bool, bool) {
	raw, _ := s.raw(key) // empty when unset
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// GetTime returns the time stored under key, and whether key holds one: a
// string in RFC 3339 form, which is how Set stores a time.Time. The time
// comes back exactly (to the nanosecond, with its UTC offset; a zone name
// and a monotonic clock reading are not stored). Any other string gives
// false.
func (s *Session) GetTime(key string) (time.Time, bool) {
	raw, ok := s.raw(key)
	var t time.Time
	if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &t) != nil {
		return time.Time{}, false
	}
	return t, true
}

// GetBytes returns the bytes stored under key, and whether key holds them:
// a string of standard base64, which is how Set stores a []byte. A string
// that happens to be valid base64 decodes too. A nil []byte is stored as
// JSON null, for which GetBytes reports false; an empty one comes back
// empty and true.
func (s *Session) GetBytes(key string) ([]byte, bool) {
	raw, ok := s.raw(key)
	var b []byte
	if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &b) != nil {
		return nil, false
	}
	return b, true
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
		s.removeLocked(key)
	}
}

// Pop returns the value stored under key, decoded as Get decodes it, and
// removes the key, in one step: of several goroutines popping the same key,
// exactly one gets the value. It reports whether key was set. This is the
// flash-message idiom: set a message in one request, pop it in the next.
func (s *Session) Pop(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.values[key]
	if !ok {
		return nil, false
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	s.removeLocked(key)
	return v, true
}

// PopString returns the string stored under key and removes the key, in one
// step. When key is unset or holds something other than a string it returns
// "" and false and leaves the value where it is.
func (s *Session) PopString(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.values[key]
	str, ok := decodeString(bytes.TrimSpace(raw), ok)
	if ok {
		s.removeLocked(key)
	}
	return str, ok
}

// Clear removes every key this request can see, each as if by Unset, and
// records each removal. The session keeps its id. A key another request
// set after this one loaded the session is not among them: when this
// request sets values after Clear, the commit merges as for any other
// changes and that key stays. When it leaves its view of the session
// empty, the commit is that of emptying a session with Unset, which can
// delete the record, that key with it (see "Concurrency" in
// docs/user-guide.md). To end the session and start a new id, use Destroy.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.values {
		s.removeLocked(key)
	}
}

// removeLocked removes key, which is set, and records the removal. s.mu
// must be held.
func (s *Session) removeLocked(key string) {
	delete(s.values, key)
	s.change(key, nil)
	s.dirty = true
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

// metaChange says whether this request changed a setting of the session
// (RememberMe, SetTTL), and whether before or after Destroy.
type metaChange uint8

const (
	metaKept           metaChange = iota // not changed by this request
	metaChanged                          // changed, and the session was not destroyed since
	metaChangedDestroy                   // changed after Destroy: it belongs to the next session
)

// mark returns how a change made now is noted. s.mu must be held.
func (s *Session) mark() metaChange {
	if s.destroyed {
		return metaChangedDestroy
	}
	return metaChanged
}

// RememberMe chooses the session's cookie: true, a persistent cookie
// (Max-Age: until the session expires); false, a browser-session cookie (no
// Max-Age or Expires: the browser drops it when it closes, and the session
// still expires on the server as usual). Without a call, the session gets
// TINA4_SESSION_PERSIST's choice (default persistent). The choice is kept
// in the session's token, so it holds on later requests, across Regenerate
// too; it is not one of the session's values. A call that changes the
// choice marks the session changed, so the cookie is sent again with it.
// A choice made before Destroy does not carry over to values set after it.
func (s *Session) RememberMe(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.persist != nil && *s.persist == on && (!s.destroyed || s.persistSet == metaChangedDestroy) {
		return
	}
	s.persist = &on
	s.persistSet = s.mark()
	s.dirty = true
}

// SetTTL sets the session's own idle lifetime, in place of
// TINA4_SESSION_TTL, for this request on: each save then sets the session's
// expiry (and the cookie's Max-Age) to d from now, still no later than
// TINA4_SESSION_LIFETIME allows, and the expiry slides at half of d. It can
// only shorten: d is cut to whole seconds, at least 1s, and a d longer than
// TINA4_SESSION_TTL counts as TINA4_SESSION_TTL (no error). d <= 0 goes
// back to TINA4_SESSION_TTL. Like RememberMe, the choice is kept in the
// session's token, and a call that changes it marks the session changed.
func (s *Session) SetTTL(d time.Duration) {
	if d > 0 {
		d = max(d.Truncate(time.Second), time.Second)
	} else {
		d = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ttl == d && (!s.destroyed || s.ttlSet == metaChangedDestroy) {
		return
	}
	s.ttl = d
	s.ttlSet = s.mark()
	s.dirty = true
}

// SetUser attaches the session to the user it belongs to, so that
// Host.DestroyAll(ctx, userID) ends it together with every other session of
// that user, on every host (log out everywhere, after a password change).
// Call it at login, after Regenerate. SetUser("") detaches it. The user id
// is never stored: the store indexes the session under a keyed hash of it
// (the token's "prn" claim and the handler's index), which does not reveal
// the id. It is kept across Regenerate, dropped by Destroy. It needs a
// handler with capability "index" (both built-in handlers have it); with
// another, SetUser is kept in the session's token but DestroyAll reports
// that it cannot work.
func (s *Session) SetUser(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = &userID
	s.principalSet = s.mark()
	s.dirty = true
}
