package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/tina4go/sessions/shared"
)

// Store is what the Manager needs from a session handler.
type Store interface {
	Load(ctx context.Context, id string) (shared.Record, error)
	Save(ctx context.Context, id string, r shared.Record) error
	Close(ctx context.Context, id string) error
}

// Codec seals session values into the opaque token a store holds, and opens
// it again (host/token implements it).
type Codec interface {
	Seal(id string, values []byte, issued, expires time.Time) ([]byte, error)
	Open(id string, token []byte, now time.Time) (values []byte, expires time.Time, err error)
}

// Manager loads and commits sessions.
type Manager struct {
	Store Store
	Codec Codec
	// TTL is the idle lifetime: a session not saved for TTL is gone.
	TTL time.Duration
	// Now returns the current time (time.Now when nil).
	Now func() time.Time
	// Logger receives notes about rejected or unreadable sessions.
	Logger *slog.Logger

	local localSessions // requests holding the same session in this process
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
	gen := e.gen.Load()
	values, expires, err := m.loadValues(ctx, id)
	if err != nil || values == nil {
		m.local.release(id, e)
		if err != nil {
			return nil, err
		}
		return fresh, nil
	}
	return &Session{id: id, cookieID: id, values: values, expires: expires, stored: true, entry: e, entryID: id, loadedGen: gen}, nil
}

// loadValues loads and opens the record of id. A missing, expired,
// tampered or unreadable record gives nil values and no error.
func (m *Manager) loadValues(ctx context.Context, id string) (map[string]json.RawMessage, time.Time, error) {
	rec, err := m.Store.Load(ctx, id)
	if errors.Is(err, shared.ErrNotFound) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load session: %w", err)
	}
	raw, expires, err := m.Codec.Open(id, rec.Data, m.now())
	if err != nil {
		m.log().Info("stored session rejected; starting a new one", "reason", err.Error())
		return nil, time.Time{}, nil
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		m.log().Warn("stored session unreadable; starting a new one", "error", err.Error())
		return nil, time.Time{}, nil
	}
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	return values, expires, nil
}

// Release ends the request's hold on its session: call it once the request
// is done with s (the middleware does). Nothing is written.
func (m *Manager) Release(s *Session) {
	s.mu.Lock()
	e, id := s.entry, s.entryID
	s.entry = nil
	s.mu.Unlock()
	if e != nil {
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
		if e.gen.Load() != s.loadedGen && s.id == s.entryID && (s.dirty || s.stored && s.expires.Sub(m.now()) < m.TTL/2) {
			// Another request committed this session since this one
			// loaded it: apply this request's changes, key by key, to the
			// record as it is now, so the other request's changes stay.
			if err := m.merge(ctx, s); err != nil {
				return CookieKeep, err
			}
		}
		closing := slices.Contains(s.toClose, s.entryID)
		action, wrote, err := m.commit(ctx, s)
		if (err == nil && s.id != s.entryID) || (closing && !slices.Contains(s.toClose, s.entryID)) {
			// This request deleted the loaded id (Destroy, Regenerate, or
			// it emptied the session): the others still holding it are
			// stale from now on.
			e.destroyed.Store(true)
		}
		if wrote {
			s.loadedGen = e.gen.Add(1)
		}
		return action, err
	}
	action, _, err := m.commit(ctx, s)
	return action, err
}

// merge replaces s's values with the stored record's plus this request's
// changes; a record that is gone gives just this request's changes.
func (m *Manager) merge(ctx context.Context, s *Session) error {
	fresh, _, err := m.loadValues(ctx, s.id)
	if err != nil {
		return err
	}
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
	return nil
}

// commit writes s as it is now and reports whether it wrote to the store;
// s.mu is held.
func (m *Manager) commit(ctx context.Context, s *Session) (action CookieAction, wrote bool, err error) {
	for len(s.toClose) > 0 {
		if err := m.Store.Close(ctx, s.toClose[0]); err != nil {
			return CookieKeep, wrote, fmt.Errorf("destroy session: %w", err)
		}
		s.toClose = s.toClose[1:]
		wrote = true
	}
	now := m.now()
	if len(s.values) == 0 {
		if s.stored {
			if err := m.Store.Close(ctx, s.id); err != nil {
				return CookieKeep, wrote, fmt.Errorf("destroy emptied session: %w", err)
			}
			wrote = true
			s.stored = false
			s.id = ""
		}
		s.dirty = false
		if s.cookieID != "" || s.destroyed {
			s.cookieID = ""
			s.destroyed = false
			return CookieExpire, wrote, nil
		}
		return CookieKeep, wrote, nil
	}
	sliding := s.stored && s.expires.Sub(now) < m.TTL/2
	if !s.dirty && !sliding {
		return CookieKeep, wrote, nil
	}
	if s.id == "" {
		s.id = NewID()
	}
	raw, err := json.Marshal(s.values)
	if err != nil {
		return CookieKeep, wrote, fmt.Errorf("encode session: %w", err)
	}
	expires := now.Add(m.TTL).Truncate(time.Second)
	tok, err := m.Codec.Seal(s.id, raw, now, expires)
	if err != nil {
		return CookieKeep, wrote, fmt.Errorf("seal session: %w", err)
	}
	if err := m.Store.Save(ctx, s.id, shared.Record{Data: tok, Expires: expires}); err != nil {
		return CookieKeep, wrote, fmt.Errorf("save session: %w", err)
	}
	s.stored, s.dirty, s.expires, s.cookieID, s.destroyed = true, false, expires, s.id, false
	s.changes = nil
	return CookieSet, true, nil
}

// CookieOptions are the attributes of the session cookie.
type CookieOptions struct {
	Name     string
	TTL      time.Duration
	SameSite http.SameSite
	Secure   bool
}

// Cookie returns the cookie for action (nil for CookieKeep): HttpOnly,
// Path=/, SameSite and Secure as configured, Max-Age = TTL (or -1 to expire).
func (s *Session) Cookie(action CookieAction, o CookieOptions) *http.Cookie {
	c := &http.Cookie{Name: o.Name, Path: "/", HttpOnly: true, Secure: o.Secure, SameSite: o.SameSite}
	switch action {
	case CookieSet:
		c.Value = s.ID()
		c.MaxAge = int(o.TTL / time.Second)
	case CookieExpire:
		c.MaxAge = -1
	default:
		return nil
	}
	return c
}
