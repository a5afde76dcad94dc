// Package host puts server-side sessions into a Go web app. It loads the
// session handler named by TINA4_SESSION_HANDLER (a plugin binary, or the
// built-in file handler), and its middleware gives every request a Session:
//
//	h, err := host.Open(ctx)
//	if err != nil { log.Fatal(err) }
//	defer h.Close()
//	http.ListenAndServe(":8080", h.Wrap(mux))
//
//	// in a handler:
//	s := host.FromRequest(r)
//	s.Set("user", "alice")
package host

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/host/metrics"
	"github.com/tina4go/sessions/host/session"
	"github.com/tina4go/sessions/host/token"
	"github.com/tina4go/sessions/loader"
	"github.com/tina4go/sessions/plugins/file"
	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// Session is one request's session; see FromRequest.
type Session = session.Session

// ErrUnavailable is what session operations fail with while the handler
// cannot be reached: its process is restarting, it did not answer within
// TINA4_PLUGIN_TIMEOUT, or the host was closed. A failure the handler itself
// reports (its store is down) is a different error; the middleware answers
// 503 for both.
var ErrUnavailable = loader.ErrUnavailable

// ErrTooLarge is what a commit fails with when the sealed session is larger
// than TINA4_SESSION_MAX_BYTES (default 4 MiB), and what a load fails with
// when the handler holds a larger one. The record is never sent, and a
// larger one is refused before it is read into memory; the error handler
// answers.
var ErrTooLarge = shared.ErrTooLarge

// Host owns a loaded session handler and the session manager around it.
type Host struct {
	cfg     config.Config
	log     *slog.Logger
	errs    *errorLog // per-request failures, rate-limited
	handler *loader.Handler
	mgr     *session.Manager
	cookie  session.CookieOptions
	onError func(http.ResponseWriter, *http.Request, error)
}

// Option changes how Open sets up a Host.
type Option func(*options)

type options struct {
	cfg      *config.Config
	builtins map[string]loader.Builtin
	logger   *slog.Logger
	onError  func(http.ResponseWriter, *http.Request, error)
	dumpable bool
	metrics  bool
	registry prometheus.Registerer
}

// WithDumpable leaves the process dumpable. By default, when a handler
// plugin could otherwise read the host's memory and environment through
// /proc (the host runs as root, or the kernel refuses the plugin a user
// namespace), Open makes the process non-dumpable (Linux PR_SET_DUMPABLE),
// which also turns off its core dumps. Use this option if you need them.
// See docs/architecture.md for the whole threat model.
func WithDumpable() Option { return func(o *options) { o.dumpable = true } }

// WithConfig uses cfg instead of reading the environment and .env.
func WithConfig(cfg config.Config) Option { return func(o *options) { o.cfg = &cfg } }

// WithHandler makes h available in process under name, as a built-in
// handler: it serves when TINA4_SESSION_HANDLER selects name and the plugin
// directory has no binary of that name. Use it to ship a handler inside
// your app, or in tests.
func WithHandler(name, version string, h sdk.Handler) Option {
	return func(o *options) {
		if o.builtins == nil {
			o.builtins = map[string]loader.Builtin{}
		}
		o.builtins[name] = func() (shared.Store, error) { return sdk.NewStore(name, version, h), nil }
	}
}

// WithLogger sends the host's log to l (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMetrics registers the host's Prometheus metrics on reg (nil:
// prometheus.DefaultRegisterer): calls to the session handler by operation
// and outcome, their latency, the plugin's restarts and up state, sessions
// created, destroyed and regenerated, stored tokens rejected, and record
// sizes. Serve them with promhttp. No label holds a session id. See
// docs/user-guide.md ("Operating it: metrics") for the list.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(o *options) { o.metrics, o.registry = true, reg }
}

// WithErrorHandler replaces the response written when the session store
// cannot be reached (default: 503 with a short plain-text message).
func WithErrorHandler(f func(http.ResponseWriter, *http.Request, error)) Option {
	return func(o *options) { o.onError = f }
}

// Open reads the configuration (environment, then .env in the working
// directory, then defaults; see docs/configuration.md), loads the session
// key, and launches the session handler. Close the Host to stop the handler.
func Open(ctx context.Context, opts ...Option) (*Host, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	var cfg config.Config
	if o.cfg != nil {
		cfg = *o.cfg
	} else {
		var err error
		if cfg, err = config.Load(config.Options{}); err != nil {
			return nil, err
		}
	}
	codec, err := newCodec(cfg, o.logger)
	if err != nil {
		return nil, err
	}
	if cfg.SameSite == http.SameSiteNoneMode && !cfg.Secure {
		o.logger.Warn("TINA4_SESSION_SAMESITE=None without TINA4_SESSION_SECURE=true: browsers reject such cookies")
	}
	builtins := map[string]loader.Builtin{
		file.Name: func() (shared.Store, error) {
			// The built-in reads the same settings the plugin binary would.
			getenv := func(k string) string {
				if k == file.EnvFolder {
					return cfg.SessionFolder
				}
				return lookup(cfg.PluginEnv, k)
			}
			fh, err := file.NewFromGetenv(getenv, file.WithLogger(o.logger))
			if err != nil {
				return nil, err
			}
			return sdk.NewStore(file.Name, file.Version, fh), nil
		},
	}
	for name, b := range o.builtins {
		builtins[name] = b
	}
	var observer loader.Observer
	var events session.Events
	if o.metrics {
		m, err := metrics.New(o.registry)
		if err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		observer, events = m.Observer(cfg.Handler), m
	}
	lh, err := loader.Open(ctx, loader.Config{
		Name:          cfg.Handler,
		Dir:           cfg.PluginDir,
		Env:           cfg.HandlerEnv(),
		ExtraEnv:      cfg.ExtraEnv,
		CallTimeout:   cfg.PluginTimeout,
		StartTimeout:  cfg.StartTimeout,
		SHA256:        cfg.HandlerSHA256,
		Transport:     cfg.Transport,
		SumsFile:      cfg.PluginSums,
		User:          cfg.PluginUser,
		KeepDumpable:  o.dumpable,
		MaxRecordSize: cfg.MaxBytes,
		MaxCalls:      cfg.MaxCalls,
		Logger:        o.logger,
		Builtins:      builtins,
		Observer:      observer,
	})
	if err != nil {
		return nil, err
	}
	if lh.Path() == "" {
		o.logger.Info("session handler running in process (built in)", "handler", cfg.Handler, "plugin_dir", cfg.PluginDir)
	}
	mgr := &session.Manager{Store: lh, Codec: codec, TTL: cfg.TTL, Lifetime: cfg.Lifetime, Logger: o.logger, Events: events}
	if err := concurrency(ctx, cfg, lh, mgr, o.logger); err != nil {
		lh.Shutdown()
		return nil, err
	}
	h := &Host{
		cfg:     cfg,
		log:     o.logger,
		errs:    newErrorLog(o.logger),
		handler: lh,
		mgr:     mgr,
		cookie:  session.CookieOptions{Name: cfg.CookieName, TTL: cfg.TTL, SameSite: cfg.SameSite, Secure: cfg.Secure, BrowserSession: !cfg.Persist},
		onError: o.onError,
	}
	if h.onError == nil {
		h.onError = defaultError
	}
	return h, nil
}

// concurrency sets up how mgr keeps concurrent requests on one session from
// losing each other's writes, from what the handler offers: record versions
// make every save conditional (on every host); without them, the last commit
// wins across hosts, which is logged. TINA4_SESSION_LOCK needs the handler's
// lock; without it Open fails rather than run unlocked.
func concurrency(ctx context.Context, cfg config.Config, lh *loader.Handler, mgr *session.Manager, log *slog.Logger) error {
	ictx, cancel := context.WithTimeout(ctx, cfg.PluginTimeout)
	defer cancel()
	info, err := lh.Info(ictx)
	if err != nil {
		return fmt.Errorf("ask session handler %s what it offers: %w", cfg.Handler, err)
	}
	if info.HasCapability(shared.CapabilityVersions) {
		mgr.Versioned = lh
	} else {
		log.Warn("the session handler has no record versions (protocol 1): with more than one host, concurrent requests on one session may overwrite each other's changes (the last commit wins); rebuild the handler against the current sdk with SaveIf",
			"handler", cfg.Handler, "protocols", fmt.Sprint(info.Protocols))
	}
	if info.HasCapability(shared.CapabilityIndex) {
		mgr.Indexer = lh
	}
	if cfg.Lock {
		if !info.HasCapability(shared.CapabilityLock) {
			return fmt.Errorf("TINA4_SESSION_LOCK=true, but session handler %s has no session lock (capability %q; it offers %v): use a handler that implements sdk.Locker (SessionFileHandler and SessionRedisHandler do) or unset TINA4_SESSION_LOCK",
				cfg.Handler, shared.CapabilityLock, info.Capabilities)
		}
		mgr.Locker, mgr.LockWait, mgr.LockTTL = lh, cfg.LockWait, cfg.LockTTL
	}
	return nil
}

// DestroyAll ends every live session attached to userID with
// Session.SetUser, on every host that shares the store (log out everywhere),
// and returns how many it ended. With a handler without the "index"
// capability it returns an error wrapping session.ErrNoIndex that names it.
func (h *Host) DestroyAll(ctx context.Context, userID string) (int, error) {
	return h.mgr.DestroyAll(ctx, userID)
}

// newCodec builds the token codec from TINA4_SECRET, or from a key file
// created on first start when the variable is unset. TINA4_SECRET_PREVIOUS
// adds older secrets that still open tokens (rotation); it needs
// TINA4_SECRET. Errors and log lines never hold a secret's value.
func newCodec(cfg config.Config, log *slog.Logger) (*token.Codec, error) {
	if cfg.Secret != "" {
		c, err := token.New([]byte(cfg.Secret))
		if err != nil {
			return nil, fmt.Errorf("TINA4_SECRET: %w", err)
		}
		if strings.ContainsRune(cfg.Secret, ',') || strings.Trim(cfg.Secret, " \t") != cfg.Secret {
			log.Warn("TINA4_SECRET holds a comma or begins or ends with a space: it cannot be listed in TINA4_SECRET_PREVIOUS (comma-separated, entries trimmed) when you rotate to a new secret, so that rotation will sign everyone out; choose a secret without them")
		}
		if len(cfg.SecretPrev) == 0 {
			return c, nil
		}
		previous := make([][]byte, len(cfg.SecretPrev))
		for i, p := range cfg.SecretPrev {
			previous[i] = []byte(p)
		}
		if c, err = token.New([]byte(cfg.Secret), previous...); err != nil {
			return nil, fmt.Errorf("TINA4_SECRET_PREVIOUS: %w", err)
		}
		log.Info("TINA4_SECRET_PREVIOUS is set: sessions sealed with a previous secret still open, and are sealed with TINA4_SECRET when next saved; remove a previous secret once every host has sealed with TINA4_SECRET for longer than TINA4_SESSION_TTL",
			"previous_secrets", len(previous), "session_ttl", cfg.TTL.String())
		return c, nil
	}
	if len(cfg.SecretPrev) > 0 {
		return nil, fmt.Errorf("TINA4_SECRET_PREVIOUS is set but TINA4_SECRET is not: rotating the secret needs TINA4_SECRET (set it to the new secret), or unset TINA4_SECRET_PREVIOUS to use the key file %s", cfg.SecretFile)
	}
	if err := keyFileApart(cfg); err != nil {
		return nil, err
	}
	key, created, err := token.LoadOrCreateKey(cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("session key (TINA4_SECRET is unset, so the key lives in %s): %w", cfg.SecretFile, err)
	}
	if created {
		log.Warn("TINA4_SECRET is unset: created a random session key; set TINA4_SECRET to the same value on every server if you run more than one", "key_file", cfg.SecretFile)
	} else {
		log.Info("TINA4_SECRET is unset: using the session key file; multi-server setups must set TINA4_SECRET", "key_file", cfg.SecretFile)
	}
	return token.New([]byte(hex.EncodeToString(key)))
}

// Config returns the configuration the Host runs with.
func (h *Host) Config() config.Config { return h.cfg }

// Close stops the session handler (its plugin process, if any).
func (h *Host) Close() error { return h.handler.Shutdown() }

// HandlerInfo describes the running handler.
type HandlerInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	PID     int    `json:"pid"`
	Path    string `json:"path,omitempty"`
	BuiltIn bool   `json:"built_in"`
	// Transport is how the host reaches the handler: "fast" (the private
	// socket Go handlers offer), "grpc" or "in-process" (a built-in).
	Transport string `json:"transport"`
	// Protocols and Capabilities are what the handler reports; without
	// "versions", concurrent requests on several hosts are last-writer-wins.
	Protocols    []int    `json:"protocols"`
	Capabilities []string `json:"capabilities"`
}

// Health asks the handler what it is and whether its store is usable. It
// returns what it could learn and an error when the handler does not answer
// or reports its store unusable.
func (h *Host) Health(ctx context.Context) (HandlerInfo, error) {
	hi := HandlerInfo{Name: h.handler.Name(), Path: h.handler.Path(), BuiltIn: h.handler.Path() == ""}
	info, err := h.handler.Info(ctx)
	if err != nil {
		return hi, err
	}
	hi.Version, hi.PID, hi.Transport = info.Version, info.PID, h.handler.Transport()
	hi.Protocols, hi.Capabilities = info.Protocols, info.Capabilities
	if err := h.handler.Health(ctx); err != nil {
		return hi, err
	}
	return hi, nil
}

func defaultError(w http.ResponseWriter, _ *http.Request, _ error) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, "session store unavailable; try again shortly", http.StatusServiceUnavailable)
}

// Store returns the handler the host loaded, for tools that talk to it directly.
func (h *Host) Store() session.Store { return h.handler }

// TTL is the sessions' idle lifetime.
func (h *Host) TTL() time.Duration { return h.cfg.TTL }

// lookup returns the value of key in a list of "KEY=VALUE" settings.
func lookup(settings []string, key string) string {
	for _, kv := range settings {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// keyFileApart refuses a key file inside a directory handlers are given:
// the session folder (every handler is told it) or the plugin directory.
func keyFileApart(cfg config.Config) error {
	key, err := filepath.Abs(cfg.SecretFile)
	if err != nil {
		return nil
	}
	for _, d := range []struct{ name, dir string }{{"TINA4_SESSION_FOLDER", cfg.SessionFolder}, {"TINA4_PLUGIN_DIR", cfg.PluginDir}} {
		dir, err := filepath.Abs(d.dir)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(dir, key); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("the session key file %s (TINA4_SECRET_FILE) lies inside %s=%s, which session handlers are given; keep the key file outside it, or set TINA4_SECRET", key, d.name, dir)
		}
	}
	return nil
}
