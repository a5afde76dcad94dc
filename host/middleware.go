package host

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/tina4go/sessions/host/session"
)

type ctxKey struct{}

// FromRequest returns the request's session. It panics when r did not pass
// through Host.Wrap, which is a programming error.
func FromRequest(r *http.Request) *Session {
	s, ok := r.Context().Value(ctxKey{}).(*Session)
	if !ok {
		panic("host.FromRequest: the request did not pass through Host.Wrap")
	}
	return s
}

// Wrap returns next with sessions: a request that carries a session cookie
// has its session loaded before next runs (a store failure answers 503 and
// next does not run); a request without one gets an empty session and costs
// no store call unless next sets a value. Changes are committed just before
// the response's headers are sent (or when next returns without writing),
// together with the Set-Cookie header. A failed commit answers 503 instead
// of next's response.
func (h *Host) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *Session
		if c, err := r.Cookie(h.cfg.CookieName); err == nil && c.Value != "" {
			s, err = h.mgr.Load(r.Context(), c.Value)
			if err != nil {
				h.errs.Error("session load failed", "error", err, "path", r.URL.Path)
				h.onError(w, r, err)
				return
			}
		} else {
			s = h.mgr.New()
		}
		defer h.mgr.Release(s)
		sw := &responseWriter{ResponseWriter: w, h: h, s: s, r: r}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
		if sw.hijacked && !sw.committed {
			// The handler took the connection over: nothing more can be
			// written on it. Save what changed; a cookie that had to
			// change should have gone out with host.Commit before.
			before := s.ID()
			action, err := h.mgr.Commit(context.WithoutCancel(r.Context()), s)
			if err != nil {
				h.errs.Error("session save after hijack failed", "error", err, "path", r.URL.Path)
			} else if needsNewCookie(before, s.ID(), action) && !sw.cookieSet {
				h.log.Warn("session changed in a hijacked handler without host.Commit first; its cookie could not be sent", "path", r.URL.Path)
			}
			return
		}
		if !sw.committed {
			sw.commit()
			if !sw.failed {
				sw.ResponseWriter.WriteHeader(http.StatusOK)
			}
			return
		}
		if sw.failed {
			return
		}
		// Changes made after the response started can still be saved, but
		// the cookie has gone: a session that needs a new cookie is lost.
		before := s.ID()
		action, err := h.mgr.Commit(context.WithoutCancel(r.Context()), s)
		if err != nil {
			h.errs.Error("session save after response failed", "error", err, "path", r.URL.Path)
		} else if needsNewCookie(before, s.ID(), action) {
			h.log.Warn("session changed after the response started; its cookie could not be updated", "path", r.URL.Path)
		}
	})
}

// responseWriter commits the session just before the first byte of the
// response goes out.
type responseWriter struct {
	http.ResponseWriter
	h         *Host
	s         *Session
	r         *http.Request
	committed bool
	failed    bool
	varied    bool // Vary: Cookie added
	hijacked  bool // the handler took the connection over
	cookieSet bool // a session cookie is in the headers (host.Commit)
}

// Hijack lets the handler take the connection over (a WebSocket upgrade),
// and notes it, so the middleware writes nothing on it afterwards.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, buf, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, buf, err
}

func (w *responseWriter) commit() {
	w.committed = true
	action, err := w.h.mgr.Commit(w.r.Context(), w.s)
	if err != nil {
		w.failed = true
		w.h.errs.Error("session save failed", "error", err, "path", w.r.URL.Path)
		w.h.onError(w.ResponseWriter, w.r, err)
		return
	}
	w.setCookie(action)
}

// setCookie puts the session cookie action asks for in the response's
// headers (replacing one set by an earlier explicit Commit).
func (w *responseWriter) setCookie(action session.CookieAction) {
	if !w.varied {
		w.Header().Add("Vary", "Cookie")
		w.varied = true
	}
	if c := w.s.Cookie(action, w.h.cookie); c != nil {
		h := w.Header()
		kept := h.Values("Set-Cookie")[:0:0]
		for _, v := range h.Values("Set-Cookie") {
			if !strings.HasPrefix(v, c.Name+"=") {
				kept = append(kept, v)
			}
		}
		h.Del("Set-Cookie")
		for _, v := range kept {
			h.Add("Set-Cookie", v)
		}
		http.SetCookie(w.ResponseWriter, c)
		w.cookieSet = true
		if h.Get("Cache-Control") == "" {
			// Keep shared caches from storing a response that sets the session cookie.
			h.Set("Cache-Control", `no-cache="Set-Cookie"`)
		}
	}
}

func (w *responseWriter) WriteHeader(code int) {
	if w.committed {
		if !w.failed {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	w.commit()
	if !w.failed {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.committed {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client, committing the session first.
func (w *responseWriter) Flush() {
	if !w.committed {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.failed {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
