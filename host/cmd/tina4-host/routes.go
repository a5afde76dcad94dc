package main

import (
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tina4go/sessions/host"
)

const maxBody = 1 << 20 // 1 MiB

type server struct {
	h   *host.Host
	log *slog.Logger
}

func newServer(h *host.Host, log *slog.Logger) http.Handler {
	s := &server{h: h, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("POST /{$}", s.pageSet)
	mux.HandleFunc("GET /api/session", s.apiGet)
	mux.HandleFunc("POST /api/session", s.apiPost)
	mux.HandleFunc("DELETE /api/session", s.apiDelete)
	mux.HandleFunc("POST /api/session/regenerate", s.apiRegenerate)
	mux.HandleFunc("POST /api/session/incr/{key}", s.apiIncr)
	mux.HandleFunc("POST /api/session/remember", s.apiRemember)
	mux.HandleFunc("POST /api/session/login/{user}", s.apiLogin)
	withSessions := h.Wrap(mux)

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", s.healthz) // no session needed
	root.HandleFunc("DELETE /api/users/{user}/sessions", s.apiDestroyAll)
	// The default registry: the host's metrics (serve opens it with
	// host.WithMetrics(nil)) and the Go runtime and process collectors.
	root.Handle("GET /metrics", promhttp.Handler())
	root.Handle("/", withSessions)
	return root
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonUnavailable(w http.ResponseWriter, _ *http.Request, err error) {
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "session store unavailable; try again shortly"})
}

func (s *server) apiGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"values": host.FromRequest(r).All()})
}

// maxDelay bounds the ?delay= of the API routes.
const maxDelay = 10 * time.Second

// pause honours ?delay=<duration> (at most maxDelay): the request waits
// that long after loading its session and before changing it, so that
// overlapping requests on one session can be tried by hand. It answers 400
// and returns false for a delay it cannot parse.
func pause(w http.ResponseWriter, r *http.Request) bool {
	v := r.URL.Query().Get("delay")
	if v == "" {
		return true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxDelay {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "delay must be a duration from 0 to " + maxDelay.String()})
		return false
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

// apiLogin is a login as an app does it: a new id, the user attached (for
// DELETE /api/users/{user}/sessions) and kept as a value.
func (s *server) apiLogin(w http.ResponseWriter, r *http.Request) {
	sess := host.FromRequest(r)
	user := r.PathValue("user")
	sess.Regenerate()
	sess.SetUser(user)
	if err := sess.Set("user", user); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"values": sess.All()})
}

// apiDestroyAll ends every session of a user, on every host (log out
// everywhere). The reference server does not authenticate anyone: a real app
// must only let a user (or an admin) do this for themselves.
func (s *server) apiDestroyAll(w http.ResponseWriter, r *http.Request) {
	n, err := s.h.DestroyAll(r.Context(), r.PathValue("user"))
	if err != nil {
		s.log.Error("destroy all sessions of a user failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"destroyed": n})
}

func (s *server) apiRegenerate(w http.ResponseWriter, r *http.Request) {
	if !pause(w, r) {
		return
	}
	sess := host.FromRequest(r)
	sess.Regenerate()
	writeJSON(w, http.StatusOK, map[string]any{"values": sess.All()})
}

// apiRemember sets the session's cookie choice from ?on=true|false
// (Session.RememberMe): on, a persistent cookie (Max-Age); off, a
// browser-session cookie. The choice sticks to the session; a session with
// no values is not stored, so set a value first (or in the same request).
func (s *server) apiRemember(w http.ResponseWriter, r *http.Request) {
	on, err := strconv.ParseBool(r.URL.Query().Get("on"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "on must be true or false"})
		return
	}
	sess := host.FromRequest(r)
	sess.RememberMe(on)
	writeJSON(w, http.StatusOK, map[string]any{"values": sess.All(), "remember": on})
}

// apiIncr adds one to the number stored under key: a read-modify-write,
// exact only with TINA4_SESSION_LOCK.
func (s *server) apiIncr(w http.ResponseWriter, r *http.Request) {
	if !pause(w, r) {
		return
	}
	sess := host.FromRequest(r)
	key := r.PathValue("key")
	var n int64
	if _, err := sess.Decode(key, &n); err != nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	if err := sess.Set(key, n+1); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"values": sess.All()})
}

func (s *server) apiPost(w http.ResponseWriter, r *http.Request) {
	if !pause(w, r) {
		return
	}
	body := http.MaxBytesReader(w, r.Body, maxBody)
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(body)
	if err := dec.Decode(&obj); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body is larger than 1 MiB"})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a JSON object: " + err.Error()})
		return
	}
	if obj == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a JSON object, not null"})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must hold exactly one JSON object"})
		return
	}
	sess := host.FromRequest(r)
	for k, v := range obj {
		var val any
		if err := json.Unmarshal(v, &val); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if err := sess.Set(k, val); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"values": sess.All()})
}

func (s *server) apiDelete(w http.ResponseWriter, r *http.Request) {
	if !pause(w, r) {
		return
	}
	host.FromRequest(r).Destroy()
	writeJSON(w, http.StatusOK, map[string]any{"values": map[string]any{}})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	info, err := s.h.Health(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "handler": info.Name, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "handler": info.Name, "version": info.Version, "pid": info.PID, "built_in": info.BuiltIn, "transport": info.Transport})
}

type row struct{ Key, Value string }

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	sess := host.FromRequest(r)
	var visits int
	if _, err := sess.Decode("visits", &visits); err != nil {
		visits = 0
	}
	visits++
	if err := sess.Set("visits", visits); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var rows []row
	for k, v := range sess.All() {
		b, _ := json.Marshal(v)
		rows = append(rows, row{k, string(b)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, map[string]any{
		"Visits": visits, "Rows": rows, "Handler": s.h.Config().Handler, "TTL": s.h.TTL().String(),
	})
}

func (s *server) pageSet(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	sess := host.FromRequest(r)
	key := strings.TrimSpace(r.PostForm.Get("key"))
	switch {
	case r.PostForm.Get("action") == "destroy":
		sess.Destroy()
	case key != "" && r.PostForm.Get("action") == "unset":
		sess.Unset(key)
	case key != "":
		if err := sess.Set(key, r.PostForm.Get("value")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tina4-host · sessions</title>
<style>
 :root{--fg:#1d2330;--mute:#6b7385;--line:#e3e6ee;--acc:#2f6fed;--bg:#f6f7fb}
 *{box-sizing:border-box} body{margin:0;font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;color:var(--fg);background:var(--bg)}
 main{max-width:720px;margin:40px auto;padding:0 20px}
 h1{font-size:22px;margin:0 0 4px} .sub{color:var(--mute);margin:0 0 24px}
 .card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.03)}
 .big{font-size:40px;font-weight:650;color:var(--acc)} table{width:100%;border-collapse:collapse}
 th,td{text-align:left;padding:8px 6px;border-bottom:1px solid var(--line);font-family:ui-monospace,Menlo,monospace;font-size:14px;word-break:break-all}
 th{font-family:inherit;color:var(--mute);font-weight:600} form.row{display:flex;gap:8px;flex-wrap:wrap}
 input{flex:1;min-width:120px;padding:8px 10px;border:1px solid var(--line);border-radius:6px;font:inherit}
 button{padding:8px 14px;border:0;border-radius:6px;background:var(--acc);color:#fff;font:inherit;cursor:pointer}
 button.ghost{background:#fff;color:#b4232c;border:1px solid #f0c7ca} .empty{color:var(--mute)}
</style></head>
<body><main>
 <h1>tina4go/sessions</h1>
 <p class="sub">Handler <b>{{.Handler}}</b> · idle lifetime {{.TTL}}</p>
 <div class="card"><div class="big">{{.Visits}}</div>visits in this session</div>
 <div class="card"><table><tr><th>key</th><th>value (JSON)</th></tr>
 {{range .Rows}}<tr><td>{{.Key}}</td><td>{{.Value}}</td></tr>{{else}}<tr><td colspan="2" class="empty">no values</td></tr>{{end}}
 </table></div>
 <div class="card"><form class="row" method="post" action="/">
  <input name="key" placeholder="key" required maxlength="200"><input name="value" placeholder="value">
  <button name="action" value="set">Set</button></form></div>
 <form method="post" action="/"><button class="ghost" name="action" value="destroy">Destroy session</button></form>
</main></body></html>
`))
