package session

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/tina4go/sessions/host/token"
	"github.com/tina4go/sessions/shared"
)

// Store is what the Manager needs from a session handler.
type Store interface {
	Load(ctx context.Context, id string) (shared.Record, error)
	Save(ctx context.Context, id string, r shared.Record) error
	Close(ctx context.Context, id string) error
}

// Codec seals session values, with the session's settings (creation time,
// RememberMe, SetTTL), into the opaque token a store holds, and opens it
// again (host/token implements it).
type Codec interface {
	SealMeta(id string, values []byte, issued, expires time.Time, meta token.Meta) ([]byte, error)
	OpenMeta(id string, tok []byte, now time.Time) (values []byte, expires time.Time, meta token.Meta, err error)
	// Principals returns the principal keys of a user id, the current
	// secret's first (see token.Codec.Principals).
	Principals(userID string) []string
}

// Manager loads and commits sessions.
type Manager struct {
	Store Store
	Codec Codec
	// TTL is the idle lifetime: a session not saved for TTL is gone. A
	// session can shorten its own (Session.SetTTL).
	TTL time.Duration
	// Lifetime, when > 0 (TINA4_SESSION_LIFETIME), is the absolute
	// lifetime: a session created longer ago than Lifetime is gone, however
	// active it is. The creation time is kept across saves and Regenerate.
	// No save sets an expiry past it.
	Lifetime time.Duration
	// Now returns the current time (time.Now when nil).
	Now func() time.Time
	// Logger receives notes about rejected or unreadable sessions.
	Logger *slog.Logger
	// Events, when set, is told of sessions created, destroyed and
	// regenerated, of stored tokens rejected, and of record sizes (metrics).
	Events Events

	// Versioned, when set (a handler with capability "versions"), makes
	// every save conditional on the version loaded: a save that finds the
	// record changed by another request (on any host) applies this
	// request's changes to the record as it is now and tries again, and a
	// save that finds it destroyed writes nothing. Without it, requests on
	// one host still keep each other's changes, but across hosts the last
	// commit wins.
	Versioned shared.Versioned
	// Indexer, when set (a handler with capability "index"), indexes every
	// saved session under the principal its SetUser gave it, for
	// DestroyAll.
	Indexer shared.Indexer
	// Locker, when set (TINA4_SESSION_LOCK), serializes the requests of one
	// session from Load to Release across every host sharing the store.
	Locker shared.Locker
	// LockTTL is how long a lock lives if its holder dies (default 30s).
	LockTTL time.Duration
	// LockWait bounds how long Load waits for a lock (default 10s); past
	// it, Load returns ErrLockTimeout.
	LockWait time.Duration

	local localSessions // requests holding the same session in this process
}

// ErrLockTimeout is what Load returns when TINA4_SESSION_LOCK is on and
// another request held the session's lock for longer than the wait limit.
var ErrLockTimeout = errors.New("session is locked by another request")

// ErrContention is what Commit returns when the record kept changing under
// it: maxConflicts conditional saves in a row found another request's write.
var ErrContention = errors.New("session changed by other requests on every attempt to save it")

// maxConflicts bounds the conditional saves of one commit. Between two
// attempts a commit pauses for a random moment that grows with the
// attempts (at most 2ms), so requests that keep colliding spread out.
const maxConflicts = 64

func (m *Manager) lockTTL() time.Duration {
	if m.LockTTL > 0 {
		return m.LockTTL
	}
	return 30 * time.Second
}

func (m *Manager) lockWait() time.Duration {
	if m.LockWait > 0 {
		return m.LockWait
	}
	return 10 * time.Second
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

// New returns an empty session with no id; nothing touches the store until
// it is committed with values in it.
func (m *Manager) New() *Session { return &Session{} }

// Load returns the session for the id a client sent. An id that is not of
// the session id format never reaches the store. A missing, expired,
// tampered or unreadable record gives a new, empty session (never the
// client's id: ids are only ever made by NewID). An error means the store
// could not be asked; the caller must not treat it as an empty session.
func (m *Manager) Load(ctx context.Context, id string) (*Session, error) {
	if !shared.ValidID(id) {
		if id != "" {
			m.log().Debug("ignored malformed session cookie", "length", len(id))
		}
		return &Session{}, nil
	}
	fresh := &Session{cookieID: id}
	// The generation is read before the record, so a commit that lands in
	// between is noticed (at worst as a needless merge).
	e := m.local.acquire(id)
	var token string
	if m.Locker != nil {
		var err error
		if token, err = m.lock(ctx, id, e); err != nil {
			m.local.release(id, e)
			return nil, err
		}
	}
	gen := e.gen.Load()
	values, expires, mt, version, err := m.loadValues(ctx, id)
	if err != nil || values == nil {
		if token != "" {
			m.unlock(id, e, token)
		}
		m.local.release(id, e)
		if err != nil {
			return nil, err
		}
		return fresh, nil
	}
	return &Session{id: id, cookieID: id, values: values, expires: expires, version: version, stored: true,
		entry: e, entryID: id, loadedGen: gen, lockToken: token,
		created: mt.Created, persist: mt.Persist, ttl: mt.TTL, principal: mt.Principal}, nil
}

// lock takes the session lock of id: first the place in line on this host
// (so requests of one host wait without polling the store), then the lock
// in the store, polled with a growing pause, until LockWait has passed.
func (m *Manager) lock(ctx context.Context, id string, e *localEntry) (string, error) {
	wait := m.lockWait()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	timeout := func() error {
		return fmt.Errorf("%w for longer than %s (TINA4_SESSION_LOCK_WAIT); try again", ErrLockTimeout, wait)
	}
	select {
	case e.held <- struct{}{}:
	case <-timer.C:
		return "", timeout()
	case <-ctx.Done():
		return "", fmt.Errorf("wait for session lock: %w", ctx.Err())
	}
	token := newLockToken()
	pause := 500 * time.Microsecond
	for {
		got, err := m.Locker.Lock(ctx, id, token, m.lockTTL())
		if err != nil {
			<-e.held
			return "", fmt.Errorf("take session lock: %w", err)
		}
		if got {
			return token, nil
		}
		select {
		case <-time.After(pause + time.Duration(rand.Int64N(int64(pause)))):
		case <-timer.C:
			<-e.held
			return "", timeout()
		case <-ctx.Done():
			<-e.held
			return "", fmt.Errorf("wait for session lock: %w", ctx.Err())
		}
		pause = min(2*pause, 4*time.Millisecond)
	}
}

// unlock releases a lock taken by lock. It runs when the request is done,
// whatever happened to its context; a failure only delays the next request
// until the lock expires.
func (m *Manager) unlock(id string, e *localEntry, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Locker.Unlock(ctx, id, token); err != nil {
		m.log().Warn("session lock not released; it expires by itself", "ttl", m.lockTTL(), "error", err.Error())
	}
	<-e.held
}

func newLockToken() string {
	var b [16]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// loadValues loads and opens the record of id. A missing, expired (idle or
// past its lifetime), tampered or unreadable record gives nil values and no
// error.
func (m *Manager) loadValues(ctx context.Context, id string) (map[string]json.RawMessage, time.Time, token.Meta, uint64, error) {
	rec, err := m.Store.Load(ctx, id)
	if errors.Is(err, shared.ErrNotFound) {
		return nil, time.Time{}, token.Meta{}, 0, nil
	}
	if err != nil {
		return nil, time.Time{}, token.Meta{}, 0, fmt.Errorf("load session: %w", err)
	}
	values, expires, mt := m.open(id, rec)
	return values, expires, mt, rec.Version, nil
}

// open opens a stored record; a tampered or unreadable one, or one past its
// lifetime, gives nil.
func (m *Manager) open(id string, rec shared.Record) (map[string]json.RawMessage, time.Time, token.Meta) {
	now := m.now()
	raw, expires, mt, err := m.Codec.OpenMeta(id, rec.Data, now)
	if err != nil {
		m.events().TokenRejected(rejectReason(err))
		m.log().Info("stored session rejected; starting a new one", "reason", err.Error())
		return nil, time.Time{}, token.Meta{}
	}
	if m.ended(mt.Created, now) {
		// Sealed before TINA4_SESSION_LIFETIME was set or shortened (a
		// token sealed under it expires by then).
		m.events().TokenRejected(RejectExpired)
		m.log().Info("stored session rejected; starting a new one", "reason", "older than TINA4_SESSION_LIFETIME", "lifetime", m.Lifetime.String())
		return nil, time.Time{}, token.Meta{}
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		m.log().Warn("stored session unreadable; starting a new one", "error", err.Error())
		return nil, time.Time{}, token.Meta{}
	}
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	return values, expires, mt
}

// Release ends the request's hold on its session: call it once the request
// is done with s (the middleware does). Nothing is written.
func (m *Manager) Release(s *Session) {
	s.mu.Lock()
	e, id, token := s.entry, s.entryID, s.lockToken
	s.entry, s.lockToken = nil, ""
	s.mu.Unlock()
	if e != nil {
		if token != "" {
			m.unlock(id, e, token)
		}
		m.local.release(id, e)
	}
}

// CookieAction says what a commit needs the response's cookie to do.
type CookieAction int

const (
	// CookieKeep leaves the client's cookie as it is.
	CookieKeep CookieAction = iota
	// CookieSet sends the session id with a fresh Max-Age.
	CookieSet
	// CookieExpire tells the client to drop its cookie.
	CookieExpire
)

// Commit writes what the request changed to the store and says what to do
// with the cookie. Nothing is written when nothing changed, except that a
// session past half its lifetime is re-saved so its idle expiry slides. A
// session with no values is not stored (an emptied one is deleted).
func (m *Manager) Commit(ctx context.Context, s *Session) (CookieAction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entry; e != nil {
		// Commits of one session run one at a time on this host; a request
		// whose client goes away stops waiting.
		select {
		case e.commit <- struct{}{}:
			defer func() { <-e.commit }()
		case <-ctx.Done():
			return CookieKeep, fmt.Errorf("commit session: %w", ctx.Err())
		}
		if e.destroyed.Load() {
			// Another request destroyed this session (or gave it a new id)
			// after this one loaded it: nothing of this request may bring
			// it back. Its changes are dropped and its cookie left alone
			// (the client already has the newer one, or none).
			s.dirty, s.changes, s.toClose = false, nil, nil
			return CookieKeep, nil
		}
		if e.gen.Load() != s.loadedGen && s.id == s.entryID && (s.dirty || m.slideDue(s, m.now())) {
			// Another request committed this session since this one
			// loaded it: apply this request's changes, key by key, to the
			// record as it is now, so the other request's changes stay.
			switch {
			case m.Versioned != nil && !s.dirty:
				// Only the expiry was due to slide; that commit slid it.
				return CookieKeep, nil
			case m.Versioned != nil && e.lastVersion != 0:
				// This host wrote the record last, as it holds: start from
				// that, with no store call. If another host wrote since,
				// SaveIf says so and the commit merges again.
				s.rebase(maps.Clone(e.lastValues))
				s.adopt(e.lastMeta)
				s.version, s.expires = e.lastVersion, e.lastExpires
			default:
				if err := m.merge(ctx, s); err != nil {
					return CookieKeep, err
				}
			}
		}
		closing := slices.Contains(s.toClose, s.entryID)
		action, wrote, err := m.commit(ctx, s)
		if s.gone {
			// Another host destroyed it: nothing of this request was
			// written, and no other request here may write it either.
			e.destroyed.Store(true)
			return CookieKeep, nil
		}
		if (err == nil && s.id != s.entryID) || (closing && !slices.Contains(s.toClose, s.entryID)) {
			// This request deleted the loaded id (Destroy, Regenerate, or
			// it emptied the session): the others still holding it are
			// stale from now on.
			e.destroyed.Store(true)
		}
		if wrote {
			s.loadedGen = e.gen.Add(1)
			e.lastVersion = 0
			if err == nil && m.Versioned != nil && s.id == s.entryID && s.version != 0 && m.local.shared(e) {
				// Other requests hold this session: keep what was written
				// for them (see above).
				e.lastValues, e.lastVersion, e.lastExpires = maps.Clone(s.values), s.version, s.expires
				e.lastMeta = s.tokenMeta()
			}
		}
		return action, err
	}
	action, _, err := m.commit(ctx, s)
	if s.gone {
		return CookieKeep, nil
	}
	return action, err
}

// merge replaces s's values with the stored record's plus this request's
// changes; a record that is gone gives just this request's changes.
func (m *Manager) merge(ctx context.Context, s *Session) error {
	fresh, _, mt, version, err := m.loadValues(ctx, s.id)
	if err != nil {
		return err
	}
	if fresh == nil && m.Versioned != nil && s.version != 0 {
		// Destroyed by a request on another host.
		s.drop()
		return nil
	}
	s.rebase(fresh)
	if fresh != nil {
		s.adopt(mt)
	}
	s.version = version
	return nil
}

// rebase replaces s's values with fresh (nil: none) plus this request's
// changes.
func (s *Session) rebase(fresh map[string]json.RawMessage) {
	if fresh == nil {
		fresh = map[string]json.RawMessage{}
	}
	for k, v := range s.changes {
		if v == nil {
			delete(fresh, k)
		} else {
			fresh[k] = v
		}
	}
	s.values = fresh
}

// drop forgets everything s was going to write: another request destroyed
// the record it was loaded from.
func (s *Session) drop() {
	s.dirty, s.changes, s.toClose, s.gone = false, nil, nil, true
}

// checkRegenerate runs before a commit that gives a loaded session a new
// id (Regenerate) with a versioned store: the record under the old id must
// still exist, or another request (on any host) destroyed it and the new id
// must not carry its values on; and when another request changed it, the new
// record starts from the values as they are now. There is a moment between
// this check and the old record's deletion in which a logout elsewhere is
// not seen; it is as short as two store calls.
func (m *Manager) checkRegenerate(ctx context.Context, s *Session) (ok bool, err error) {
	if s.destroyed || s.entryID == "" || s.version == 0 || !slices.Contains(s.toClose, s.entryID) {
		// Not a regenerate of a loaded record (a Destroy needs no check:
		// whatever it then stores is new).
		return true, nil
	}
	rec, err := m.Store.Load(ctx, s.entryID)
	if errors.Is(err, shared.ErrNotFound) {
		s.drop()
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("regenerate session: %w", err)
	}
	if rec.Version != s.version {
		values, _, mt := m.open(s.entryID, rec)
		s.rebase(values)
		if values != nil {
			s.adopt(mt)
		}
	}
	return true, nil
}

// commit writes s as it is now and reports whether it wrote to the store;
// s.mu is held.
func (m *Manager) commit(ctx context.Context, s *Session) (action CookieAction, wrote bool, err error) {
	if m.Versioned != nil {
		if ok, err := m.checkRegenerate(ctx, s); !ok {
			return CookieKeep, false, err
		}
	}
	regen := len(s.toClose) > 0 && !s.destroyed // values move to a new id
	for len(s.toClose) > 0 {
		if err := m.Store.Close(ctx, s.toClose[0]); err != nil {
			return CookieKeep, wrote, fmt.Errorf("destroy session: %w", err)
		}
		s.toClose = s.toClose[1:]
		wrote = true
		if s.destroyed || len(s.values) == 0 {
			m.events().SessionDestroyed()
		}
	}
	now := m.now()
	if !s.destroyed && m.ended(s.created, now) && len(s.values) > 0 {
		// Loaded just before its lifetime ended: it ends now, with what
		// this request changed (or a request held open across the end
		// would carry the session on). Treated as emptied below.
		m.log().Debug("session reached TINA4_SESSION_LIFETIME during a request; its changes are dropped")
		s.values, s.changes = nil, nil
	}
	if len(s.values) == 0 {
		if s.stored {
			if err := m.Store.Close(ctx, s.id); err != nil {
				return CookieKeep, wrote, fmt.Errorf("destroy emptied session: %w", err)
			}
			m.events().SessionDestroyed()
			wrote = true
			s.stored = false
			s.id = ""
		}
		s.dirty = false
		// No record is left: values set later start a new session.
		s.forget()
		s.created = time.Time{}
		if s.cookieID != "" || s.destroyed {
			s.cookieID = ""
			s.destroyed = false
			return CookieExpire, wrote, nil
		}
		return CookieKeep, wrote, nil
	}
	if !s.dirty && !m.slideDue(s, now) {
		return CookieKeep, wrote, nil
	}
	fresh := s.id == ""
	if s.id == "" {
		s.id = NewID()
		s.version = 0
		s.forget()
		if s.created.IsZero() {
			// A new session (Regenerate's new id keeps the creation time
			// and settings of the session it continues).
			s.created = now.Truncate(time.Second)
		}
	}
	expires := m.expiry(s, now)
	for attempt := 1; ; attempt++ {
		rec, err := m.seal(s, now, expires)
		if err != nil {
			return CookieKeep, wrote, err
		}
		if m.Versioned == nil {
			if err := m.Store.Save(ctx, s.id, rec); err != nil {
				return CookieKeep, wrote, fmt.Errorf("save session: %w", err)
			}
			m.events().RecordSaved(len(rec.Data))
			break
		}
		ver, err := m.Versioned.SaveIf(ctx, s.id, rec, s.version)
		if err == nil {
			s.version = ver
			m.events().RecordSaved(len(rec.Data))
			break
		}
		var ce *shared.ConflictError
		switch {
		case !errors.As(err, &ce):
			return CookieKeep, wrote, fmt.Errorf("save session: %w", err)
		case !ce.Found:
			// Destroyed by another request (or expired) since this one
			// loaded it: this request's changes die with it.
			s.drop()
			return CookieKeep, wrote, nil
		case !s.dirty:
			// Only the expiry was due to slide, and another request
			// has just saved the record: nothing left to do.
			s.expires = ce.Current.Expires
			return CookieKeep, wrote, nil
		case attempt == maxConflicts:
			return CookieKeep, wrote, fmt.Errorf("save session: %w (%d attempts)", ErrContention, attempt)
		}
		// Another request wrote the record since this one loaded it:
		// apply this request's changes to it and try again.
		values, _, mt := m.open(s.id, ce.Current)
		if values == nil {
			// A record this host cannot open (another key, or damaged)
			// is replaced, as Load would have done.
			values = map[string]json.RawMessage{}
		} else {
			s.adopt(mt)
		}
		s.rebase(values)
		s.version = ce.Current.Version
		if attempt > 1 {
			pause := time.Duration(min(attempt, 8)) * 250 * time.Microsecond
			select {
			case <-time.After(time.Duration(rand.Int64N(int64(pause)))):
			case <-ctx.Done():
				return CookieKeep, wrote, fmt.Errorf("save session: %w", ctx.Err())
			}
		}
	}
	s.stored, s.dirty, s.expires, s.cookieID, s.destroyed = true, false, expires, s.id, false
	s.changes = nil
	s.persistSet, s.ttlSet = metaKept, metaKept
	s.principalSet, s.user = metaKept, nil
	s.maxAge = m.cookieMaxAge(s, now)
	switch {
	case fresh && regen:
		m.events().SessionRegenerated()
	case fresh:
		m.events().SessionCreated()
	}
	return CookieSet, true, nil
}

// seal encodes and seals s's values into the record to store.
func (m *Manager) seal(s *Session, now, expires time.Time) (shared.Record, error) {
	raw, err := json.Marshal(s.values)
	if err != nil {
		return shared.Record{}, fmt.Errorf("encode session: %w", err)
	}
	if s.user != nil {
		s.principal = ""
		if *s.user != "" {
			s.principal = m.Codec.Principals(*s.user)[0]
		}
	}
	tok, err := m.Codec.SealMeta(s.id, raw, now, expires, s.tokenMeta())
	if err != nil {
		return shared.Record{}, fmt.Errorf("seal session: %w", err)
	}
	rec := shared.Record{Data: tok, Expires: expires}
	if m.Indexer != nil {
		rec.Principal = s.principal
	}
	return rec, nil
}

// ErrNoIndex is what DestroyAll returns with a handler that keeps no index
// of sessions by user (capability "index").
var ErrNoIndex = errors.New("the session handler keeps no index of sessions by user (capability \"index\")")

// DestroyAll ends every live session attached to userID with SetUser, on
// every host that shares the store, and returns how many it ended. Requests
// in flight on those sessions commit nothing (with record versions). It
// needs a handler with the "index" capability; with another it returns
// ErrNoIndex.
func (m *Manager) DestroyAll(ctx context.Context, userID string) (int, error) {
	if m.Indexer == nil {
		return 0, fmt.Errorf("destroy all sessions of a user: %w; use a handler that has it (SessionFileHandler, SessionRedisHandler)", ErrNoIndex)
	}
	if userID == "" {
		return 0, errors.New("destroy all sessions of a user: empty user id")
	}
	total := 0
	for _, key := range m.Codec.Principals(userID) {
		n, err := m.Indexer.CloseAll(ctx, key)
		total += n
		if err != nil {
			return total, fmt.Errorf("destroy all sessions of a user: %w", err)
		}
	}
	if m.Events != nil {
		for range total {
			m.Events.SessionDestroyed()
		}
	}
	return total, nil
}

// CookieOptions are the attributes of the session cookie.
type CookieOptions struct {
	Name string
	// TTL is the Max-Age of a session no commit has worked one out for
	// (a commit that stores a session does: its own TTL, within its
	// lifetime).
	TTL      time.Duration
	SameSite http.SameSite
	Secure   bool
	// BrowserSession (TINA4_SESSION_PERSIST=false) makes the cookie of a
	// session that has not called RememberMe a browser-session cookie (no
	// Max-Age). false: a persistent one.
	BrowserSession bool
}

// Cookie returns the cookie for action (nil for CookieKeep): HttpOnly,
// Path=/, SameSite and Secure as configured. To set the session, Max-Age is
// the session's idle TTL in seconds (SetTTL's, or the Manager's), cut to
// what is left of its lifetime (Manager.Lifetime); or none at all, a
// browser-session cookie, when the session chose RememberMe(false) (or has
// not chosen and o.BrowserSession is set). To expire it, Max-Age is -1
// (sent as Max-Age=0).
func (s *Session) Cookie(action CookieAction, o CookieOptions) *http.Cookie {
	c := &http.Cookie{Name: o.Name, Path: "/", HttpOnly: true, Secure: o.Secure, SameSite: o.SameSite}
	switch action {
	case CookieSet:
		s.mu.Lock()
		c.Value = s.id
		persist := !o.BrowserSession
		if s.persist != nil {
			persist = *s.persist
		}
		maxAge := s.maxAge
		s.mu.Unlock()
		if maxAge <= 0 {
			maxAge = int(o.TTL / time.Second)
		}
		if persist {
			c.MaxAge = maxAge
		}
	case CookieExpire:
		c.MaxAge = -1
	default:
		return nil
	}
	return c
}

// ttlOf returns s's idle TTL: its own (SetTTL), at most m.TTL, or m.TTL.
func (m *Manager) ttlOf(s *Session) time.Duration {
	if s.ttl > 0 && s.ttl < m.TTL {
		return s.ttl
	}
	return m.TTL
}

// lifetimeEnd returns when a session created at created reaches
// m.Lifetime; zero when there is no limit.
func (m *Manager) lifetimeEnd(created time.Time) time.Time {
	if m.Lifetime <= 0 || created.IsZero() {
		return time.Time{}
	}
	return created.Add(m.Lifetime)
}

// ended reports whether a session created at created is past m.Lifetime.
func (m *Manager) ended(created time.Time, now time.Time) bool {
	end := m.lifetimeEnd(created)
	return !end.IsZero() && !now.Before(end)
}

// expiry returns the expiry a save of s at now gives it: its idle TTL from
// now, no later than the end of its lifetime, in whole seconds.
func (m *Manager) expiry(s *Session, now time.Time) time.Time {
	exp := now.Add(m.ttlOf(s))
	if end := m.lifetimeEnd(s.created); !end.IsZero() && end.Before(exp) {
		exp = end
	}
	return exp.Truncate(time.Second)
}

// slideDue reports whether s is stored with less than half its idle TTL
// left, and a save now would move its expiry (near the end of its lifetime
// it cannot).
func (m *Manager) slideDue(s *Session, now time.Time) bool {
	return s.stored && s.expires.Sub(now) < m.ttlOf(s)/2 && m.expiry(s, now).After(s.expires)
}

// cookieMaxAge returns the cookie's Max-Age, in whole seconds (at least 1),
// for s saved at now: its idle TTL, no more than what is left of its
// lifetime.
func (m *Manager) cookieMaxAge(s *Session, now time.Time) int {
	age := m.ttlOf(s)
	if end := m.lifetimeEnd(s.created); !end.IsZero() {
		age = min(age, end.Sub(now))
	}
	return max(int(age/time.Second), 1)
}

// forget drops, when s was destroyed (Destroy), what belonged to the
// session it was, so that values set later start a new one: its creation
// time, and its settings except those set after Destroy. s.mu is held.
func (s *Session) forget() {
	if !s.destroyed {
		return
	}
	s.created = time.Time{}
	if s.persistSet != metaChangedDestroy {
		s.persist = nil
	}
	if s.ttlSet != metaChangedDestroy {
		s.ttl = 0
	}
	if s.principalSet != metaChangedDestroy {
		s.principal, s.user = "", nil
	}
	s.persistSet, s.ttlSet = min(s.persistSet, metaChanged), min(s.ttlSet, metaChanged)
	s.principalSet = min(s.principalSet, metaChanged)
}

// tokenMeta returns the settings of s its token carries. s.mu is held.
func (s *Session) tokenMeta() token.Meta {
	return token.Meta{Created: s.created, TTL: s.ttl, Persist: s.persist, Principal: s.principal}
}

// adopt takes the settings of the record as another request left it,
// except those this request changed. s.mu is held.
func (s *Session) adopt(mt token.Meta) {
	if !mt.Created.IsZero() {
		s.created = mt.Created
	}
	if s.persistSet == metaKept {
		s.persist = mt.Persist
	}
	if s.ttlSet == metaKept {
		s.ttl = mt.TTL
	}
	if s.principalSet == metaKept {
		s.principal = mt.Principal
	}
}
