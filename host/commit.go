package host

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tina4go/sessions/host/session"
)

// ErrTooLate is what Commit returns when the response has already started:
// the session was saved, but the client's cookie could not be set or
// changed any more.
var ErrTooLate = errors.New("the response has started: the session's cookie can no longer be set")

// ErrNotWrapped is what Commit returns for a ResponseWriter that did not come
// from Host.Wrap (or from a writer that unwraps to one).
var ErrNotWrapped = errors.New("host.Commit: the ResponseWriter did not come from Host.Wrap")

// Commit saves the request's session now, and puts its cookie in w's
// headers, instead of just before the response's first byte. Call it in a
// handler that streams (it flushes early) or hijacks the connection (a
// WebSocket upgrade: pass w.Header() on as the upgrade response's headers,
// so Set-Cookie goes out with it), before the response starts.
//
// A failure is returned and nothing is written: the app decides what to
// answer. The middleware still commits once more at the first byte of the
// response (free when nothing changed since). After the response has
// started, Commit still saves what changed, but returns ErrTooLate when the
// session needed a new cookie (a new or regenerated session, a logout).
func Commit(w http.ResponseWriter, r *http.Request) error {
	sw := findWriter(w)
	if sw == nil {
		return ErrNotWrapped
	}
	before := sw.s.ID()
	action, err := sw.h.mgr.Commit(r.Context(), sw.s)
	if err != nil {
		return fmt.Errorf("commit session: %w", err)
	}
	if sw.committed || sw.hijacked {
		if needsNewCookie(before, sw.s.ID(), action) {
			return ErrTooLate
		}
		return nil
	}
	sw.setCookie(action)
	return nil
}

// needsNewCookie reports whether a commit's cookie action changes what the
// client holds (a new or regenerated id, or a logout), rather than only
// refreshing the Max-Age of the id it has.
func needsNewCookie(before, after string, action session.CookieAction) bool {
	switch action {
	case session.CookieExpire:
		return true
	case session.CookieSet:
		return before == "" || before != after
	}
	return false
}

// findWriter follows w's Unwrap chain to the middleware's writer.
func findWriter(w http.ResponseWriter) *responseWriter {
	for w != nil {
		if sw, ok := w.(*responseWriter); ok {
			return sw
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}
