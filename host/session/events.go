package session

import (
	"errors"

	"github.com/tina4go/sessions/host/token"
)

// Events receives what a Manager does with sessions, for metrics
// (host/metrics implements it with Prometheus). Its methods are called on
// the request path, concurrently: they must be quick and must not block.
// Nothing they are given identifies a session.
type Events interface {
	// SessionCreated reports a commit that stored a session under a new
	// id, other than by Regenerate.
	SessionCreated()
	// SessionDestroyed reports a stored session deleted by a commit: after
	// Destroy, or because the request removed all its values.
	SessionDestroyed()
	// SessionRegenerated reports a commit that moved a session's values to
	// a new id (Regenerate).
	SessionRegenerated()
	// TokenRejected reports a stored record the codec would not open, with
	// why: RejectExpired or RejectInvalid. The session is then new.
	TokenRejected(reason string)
	// RecordSaved reports the size in bytes of a sealed record a commit
	// stored.
	RecordSaved(bytes int)
}

// Reasons a stored token is rejected, as Events.TokenRejected reports them.
const (
	// RejectExpired: a genuine token past its expiry (handlers usually drop
	// expired records themselves, so the host rarely sees one).
	RejectExpired = "expired"
	// RejectInvalid: a token that cannot be trusted: damaged, tampered
	// with, sealed under another key or for another id.
	RejectInvalid = "invalid"
)

// rejectReason classifies the error the codec's Open returned.
func rejectReason(err error) string {
	if errors.Is(err, token.ErrExpired) {
		return RejectExpired
	}
	return RejectInvalid
}

// events returns m.Events, or one that does nothing.
func (m *Manager) events() Events {
	if m.Events != nil {
		return m.Events
	}
	return nopEvents{}
}

type nopEvents struct{}

func (nopEvents) SessionCreated()      {}
func (nopEvents) SessionDestroyed()    {}
func (nopEvents) SessionRegenerated()  {}
func (nopEvents) TokenRejected(string) {}
func (nopEvents) RecordSaved(int)      {}
