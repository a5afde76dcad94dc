package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tina4go/sessions/shared"
)

// ErrUnavailable is returned by every call while the handler cannot serve:
// its process crashed and is being restarted, it did not answer within the
// call timeout, or the loader was shut down. Callers answer 503.
var ErrUnavailable = errors.New("session handler unavailable")

// Transports a handler can be reached by (Handler.Transport).
const (
	// TransportFast is the private Unix socket every Go handler built with
	// sdk.Serve offers; Load, Save and Close go over it, Info and Health
	// over gRPC.
	TransportFast = "fast"
	// TransportGRPC is go-plugin's gRPC connection, for handlers in other
	// languages, handlers that opt out, or when Config.Transport says so.
	TransportGRPC = "grpc"
	// TransportInProcess is a built-in handler: no process, no wire.
	TransportInProcess = "in-process"
)

// Builtin makes an in-process handler. It is used when the plugin directory
// has no binary of that name.
type Builtin func() (shared.Store, error)

// Config says which handler to load and how.
type Config struct {
	// Name is the handler name (TINA4_SESSION_HANDLER).
	Name string
	// Dir is the plugin directory (TINA4_PLUGIN_DIR).
	Dir string
	// Env holds the TINA4_* settings ("KEY=VALUE") the plugin gets on top of
	// PATH, HOME, TMPDIR, LANG, LC_ALL, TZ and USER. Host key material is
	// dropped (see secretKey).
	Env []string
	// ExtraEnv holds more "KEY=VALUE" variables for the plugin, of any name
	// (TINA4_PLUGIN_ENV: PYTHONPATH, NODE_PATH, ...). Host key material,
	// go-plugin's PLUGIN_* and the handshake cookie are still dropped.
	ExtraEnv []string
	// CallTimeout bounds every call to the handler (default 5s).
	CallTimeout time.Duration
	// StartTimeout bounds a plugin's launch and handshake (default 10s).
	StartTimeout time.Duration
	// Builtins are handlers that run in process when no binary is found.
	Builtins map[string]Builtin
	// Logger receives the loader's and the plugins' log lines.
	Logger *slog.Logger
	// Observer receives every call's outcome and latency and the plugin's
	// restarts and up state (nil: nobody).
	Observer Observer
	// ProbeInterval is how often a plugin process is asked, through
	// go-plugin's health service, whether it is alive (default 1s); after
	// 3 missed probes in a row it is killed and relaunched.
	ProbeInterval time.Duration
	// MaxBackoff caps the wait between restarts of a crashing plugin (default 30s).
	MaxBackoff time.Duration
	// SHA256 pins the handler binary to this SHA-256 (hex); "" for no pin.
	SHA256 string
	// SumsFile names a file of "<sha256>  <name>" lines (sha256sum output),
	// kept outside Dir; when set, the handler must be listed in it.
	SumsFile string
	// User, when set, is the user (name or numeric uid) plugins run as
	// (TINA4_PLUGIN_USER). The host must run as root to switch users. A
	// plugin of another user cannot read the host's key file or memory.
	User string
	// MaxRecordSize is the largest record the host sends to or accepts from
	// the handler (TINA4_SESSION_MAX_BYTES; default and upper bound
	// shared.MaxRecordSize). Both transports refuse a larger answer before
	// reading it into memory.
	MaxRecordSize int
	// MaxCalls caps the calls in flight to the handler at once
	// (TINA4_PLUGIN_MAX_CALLS, default 128); with MaxRecordSize it bounds
	// the memory records can take. A call that finds no free slot within
	// half its timeout fails with ErrUnavailable.
	MaxCalls int
	// KeepDumpable leaves the host process dumpable. Otherwise, when a
	// plugin could read the host's memory and environment through /proc
	// (the host is root, or plugins cannot have a user namespace of their
	// own), the loader makes the process non-dumpable before the first
	// launch.
	KeepDumpable bool
	// Transport is "" (or "auto") to use the fast transport when the
	// handler offers it, or TransportGRPC to make every call over gRPC
	// (TINA4_PLUGIN_TRANSPORT).
	Transport string
}

// withDefaults fills in the documented defaults.
func (c Config) withDefaults() Config {
	if c.CallTimeout <= 0 {
		c.CallTimeout = 5 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxRecordSize <= 0 || c.MaxRecordSize > shared.MaxRecordSize {
		c.MaxRecordSize = shared.MaxRecordSize
	}
	if c.MaxCalls <= 0 {
		c.MaxCalls = 128
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = probeInterval
	}
	return c
}

// Handler is a supervised session handler. It implements shared.Store; every
// call carries the configured deadline and fails fast with ErrUnavailable
// while the plugin is down. A crashed plugin is relaunched with a new
// go-plugin client and exponential backoff.
type Handler struct {
	cfg     Config // host-level settings; the handler's own are in target
	target  atomic.Pointer[target]
	swapMu  sync.Mutex // one Swap at a time
	mu      sync.RWMutex
	cur     *instance
	lastErr error
	dead    chan struct{} // poked when a call sees the plugin gone
	stop    chan struct{}
	done    chan struct{}
	closeMu sync.Once
	slots   chan struct{} // one per call in flight, cfg.MaxCalls in all
}

// Open finds the handler cfg.Name, launches it, and starts supervising it.
// A binary in cfg.Dir wins over a built-in of the same name. An unknown or
// invalid name, an unusable binary or a failed launch is an error that says
// what to do; nothing is left running after an error.
func Open(ctx context.Context, cfg Config) (*Handler, error) {
	cfg = cfg.withDefaults()
	path, err := Resolve(cfg.Dir, cfg.Name)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, dead: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		slots: make(chan struct{}, cfg.MaxCalls)}
	h.target.Store(&target{name: cfg.Name, path: path, cfg: cfg})
	if path == "" && cfg.SHA256 != "" {
		return nil, fmt.Errorf("%w: TINA4_SESSION_HANDLER_SHA256 pins %s, but %s has no binary of that name; copy the pinned binary there or unset the pin",
			ErrChecksum, cfg.Name, cfg.Dir)
	}
	if path == "" {
		mk, ok := cfg.Builtins[cfg.Name]
		if !ok {
			return nil, unknownError(cfg.Dir, cfg.Name, h.builtinNames())
		}
		store, err := mk()
		if err != nil {
			return nil, fmt.Errorf("start built-in session handler %s: %w", cfg.Name, err)
		}
		ictx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
		defer cancel()
		info, err := store.Info(ictx)
		if err != nil {
			return nil, fmt.Errorf("start built-in session handler %s: %w", cfg.Name, err)
		}
		h.cur = &instance{store: store, info: info, transport: TransportInProcess, started: time.Now()}
		close(h.done)
		cfg.Observer.Up(true)
		return h, nil
	}
	sweepStale(func(dir string) {
		cfg.Logger.Info("removed the private directory of a plugin whose host was killed", "dir", dir)
	})
	in, err := launch(ctx, path, cfg.Name, cfg)
	if err != nil {
		return nil, err
	}
	h.cur = in
	cfg.Observer.Up(true)
	go h.notice(in)
	go h.probe(in)
	cfg.Logger.Info("session handler started", "handler", cfg.Name, "path", path, "pid", in.info.PID, "version", in.info.Version, "transport", in.transport)
	go h.supervise()
	return h, nil
}

func (h *Handler) builtinNames() []string {
	var names []string
	for n := range h.cfg.Builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}

// target is what a Handler runs: the handler's name, its binary ("" for a
// built-in) and the configuration it is launched with. Swap replaces it.
type target struct {
	name, path string
	cfg        Config
}

// Path is the binary the handler runs, or "" for a built-in handler.
func (h *Handler) Path() string { return h.target.Load().path }

// Name is the handler's name.
func (h *Handler) Name() string { return h.target.Load().name }

// PID is the handler process id, 0 while it is down.
func (h *Handler) PID() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.cur == nil {
		return 0
	}
	return h.cur.info.PID
}

// Transport says how the handler is reached now: TransportFast,
// TransportGRPC or TransportInProcess ("" while it is down).
func (h *Handler) Transport() string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.cur == nil {
		return ""
	}
	return h.cur.transport
}

// Shutdown stops supervising and stops the plugin process. Calls made after
// Shutdown fail with ErrUnavailable. It is safe to call more than once.
func (h *Handler) Shutdown() error {
	h.closeMu.Do(func() {
		if h.Path() != "" {
			close(h.stop)
			<-h.done
		}
		h.mu.Lock()
		in := h.cur
		h.cur = nil
		h.lastErr = errors.New("the loader was shut down")
		h.mu.Unlock()
		if in != nil {
			in.kill()
		}
		h.cfg.Observer.Up(false)
	})
	return nil
}

func (h *Handler) current() (*instance, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.cur == nil {
		return nil, fmt.Errorf("%w: %s is not running (%v); it is restarted automatically", ErrUnavailable, h.Name(), h.lastErr)
	}
	return h.cur, nil
}

// call runs fn against the current instance with the call deadline and turns
// transport failures into ErrUnavailable.
func (h *Handler) call(ctx context.Context, op string, fn func(context.Context, shared.Store) error) error {
	if _, nobody := h.cfg.Observer.(nopObserver); nobody {
		return h.callOnce(ctx, op, fn) // no clock reads for nobody
	}
	start := time.Now()
	err := h.callOnce(ctx, op, fn)
	h.cfg.Observer.Call(op, outcome(err), time.Since(start))
	return err
}

func (h *Handler) callOnce(ctx context.Context, op string, fn func(context.Context, shared.Store) error) error {
	in, err := h.current()
	if err != nil {
		return err
	}
	in.inflight.Add(1)
	err = h.callOn(ctx, in, op, fn)
	in.inflight.Add(-1)
	if err != nil && in.retired.Load() && errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
		// Swap replaced the instance while this call was on its way to
		// it: make the call once more, on its successor.
		if next, cerr := h.current(); cerr == nil && next != in {
			next.inflight.Add(1)
			err = h.callOn(ctx, next, op, fn)
			next.inflight.Add(-1)
		}
	}
	return err
}

func (h *Handler) callOn(ctx context.Context, in *instance, op string, fn func(context.Context, shared.Store) error) error {
	var err error
	parent := ctx
	deadline := time.Now().Add(h.cfg.CallTimeout)
	select {
	case h.slots <- struct{}{}:
	default:
		// Every slot is taken: wait for one, for up to half the call's
		// time (a call that cannot start by then would hardly finish).
		t := time.NewTimer(h.cfg.CallTimeout / 2)
		select {
		case h.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			return fmt.Errorf("%w: %s %s: %d calls already in flight for %s (TINA4_PLUGIN_MAX_CALLS): %w",
				ErrUnavailable, h.Name(), op, h.cfg.MaxCalls, h.cfg.CallTimeout/2, context.DeadlineExceeded)
		case <-parent.Done():
			t.Stop()
			return fmt.Errorf("%s %s: %w", h.Name(), op, parent.Err())
		}
	}
	defer func() { <-h.slots }()
	if in.fast == nil {
		// gRPC and built-ins learn the deadline from ctx; the fast client
		// applies the call timeout itself, without a context per call.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	err = fn(ctx, in.store)
	switch {
	case err == nil, errors.Is(err, shared.ErrNotFound), errors.Is(err, shared.ErrConflict):
		in.served.Add(1)
		return err
	case parent.Err() != nil:
		// The caller gave up (client went away); not the plugin's fault.
		return fmt.Errorf("%s %s: %w", h.Name(), op, parent.Err())
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) && time.Until(deadline) < 10*time.Millisecond:
		// Our deadline passed (whatever error the transport reports for it;
		// the plugin's or the socket's report may arrive a moment before
		// the host's own timer fires).
		return fmt.Errorf("%w: %s %s did not answer within %s (TINA4_PLUGIN_TIMEOUT): %w",
			ErrUnavailable, h.Name(), op, h.cfg.CallTimeout, context.DeadlineExceeded)
	case transportFailure(err) || in.exited():
		h.poke()
		return fmt.Errorf("%w: %s %s failed: the plugin process is gone (%v); it is being restarted",
			ErrUnavailable, h.Name(), op, err)
	default:
		return fmt.Errorf("%s %s: %w", h.Name(), op, err)
	}
}

func transportFailure(err error) bool {
	if errors.Is(err, shared.ErrTransport) {
		return true
	}
	st, ok := status.FromError(err)
	return ok && (st.Code() == codes.Unavailable || st.Code() == codes.Canceled && !errors.Is(err, context.Canceled))
}

// notice wakes the supervisor as soon as in's process exits, so calls stop
// going to it and it is relaunched without waiting for the next tick.
func (h *Handler) notice(in *instance) {
	select {
	case <-in.gone:
		h.poke()
	case <-h.stop:
	}
}

func (h *Handler) poke() {
	select {
	case h.dead <- struct{}{}:
	default:
	}
}

// Info asks the handler what it is. PID is the process id as the host sees
// it (inside its PID namespace a plugin is process 1).
func (h *Handler) Info(ctx context.Context) (shared.Info, error) {
	var info shared.Info
	err := h.call(ctx, "Info", func(ctx context.Context, s shared.Store) (err error) {
		info, err = s.Info(ctx)
		return err
	})
	if err == nil && h.Path() != "" {
		info.PID = h.PID()
	}
	return info, err
}

// Health returns nil when the handler answers and reports its store usable.
func (h *Handler) Health(ctx context.Context) error {
	return h.call(ctx, "Health", func(ctx context.Context, s shared.Store) error { return s.Health(ctx) })
}

// Load fetches the record for id; shared.ErrNotFound when there is none,
// shared.ErrTooLarge when it is larger than cfg.MaxRecordSize.
func (h *Handler) Load(ctx context.Context, id string) (shared.Record, error) {
	var rec shared.Record
	err := h.call(ctx, "Load", func(ctx context.Context, s shared.Store) (err error) {
		rec, err = s.Load(ctx, id)
		if err == nil && len(rec.Data) > h.cfg.MaxRecordSize {
			rec, err = shared.Record{}, fmt.Errorf("%w: the handler loaded %d bytes, over the limit of %d (TINA4_SESSION_MAX_BYTES)", shared.ErrTooLarge, len(rec.Data), h.cfg.MaxRecordSize)
		}
		return err
	})
	return rec, err
}

// Save stores rec under id. A record larger than cfg.MaxRecordSize is
// shared.ErrTooLarge and never reaches the handler.
func (h *Handler) Save(ctx context.Context, id string, rec shared.Record) error {
	if len(rec.Data) > h.cfg.MaxRecordSize {
		return fmt.Errorf("%s Save: %w: a record of %d bytes, over the limit of %d (TINA4_SESSION_MAX_BYTES)", h.Name(), shared.ErrTooLarge, len(rec.Data), h.cfg.MaxRecordSize)
	}
	return h.call(ctx, "Save", func(ctx context.Context, s shared.Store) error { return s.Save(ctx, id, rec) })
}

// SaveIf stores rec under id if the stored version is expect (protocol 2,
// capability "versions"); a *shared.ConflictError when it is not. A handler
// without the capability gives shared.ErrUnsupported.
func (h *Handler) SaveIf(ctx context.Context, id string, rec shared.Record, expect uint64) (uint64, error) {
	if len(rec.Data) > h.cfg.MaxRecordSize {
		return 0, fmt.Errorf("%s SaveIf: %w: a record of %d bytes, over the limit of %d (TINA4_SESSION_MAX_BYTES)", h.Name(), shared.ErrTooLarge, len(rec.Data), h.cfg.MaxRecordSize)
	}
	var ver uint64
	err := h.call(ctx, "SaveIf", func(ctx context.Context, s shared.Store) (err error) {
		v, ok := s.(shared.Versioned)
		if !ok {
			return fmt.Errorf("%w: SaveIf", shared.ErrUnsupported)
		}
		ver, err = v.SaveIf(ctx, id, rec, expect)
		var ce *shared.ConflictError
		if errors.As(err, &ce) && len(ce.Current.Data) > h.cfg.MaxRecordSize {
			err = fmt.Errorf("%w: the handler answered a conflict with %d bytes, over the limit of %d (TINA4_SESSION_MAX_BYTES)", shared.ErrTooLarge, len(ce.Current.Data), h.cfg.MaxRecordSize)
		}
		return err
	})
	return ver, err
}

// Lock takes the lock of id for token until ttl (protocol 2, capability
// "lock"); false when another token holds it.
func (h *Handler) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	var got bool
	err := h.call(ctx, "Lock", func(ctx context.Context, s shared.Store) (err error) {
		l, ok := s.(shared.Locker)
		if !ok {
			return fmt.Errorf("%w: Lock", shared.ErrUnsupported)
		}
		got, err = l.Lock(ctx, id, token, ttl)
		return err
	})
	return got, err
}

// Unlock releases the lock of id if token holds it.
func (h *Handler) Unlock(ctx context.Context, id, token string) error {
	return h.call(ctx, "Unlock", func(ctx context.Context, s shared.Store) error {
		l, ok := s.(shared.Locker)
		if !ok {
			return fmt.Errorf("%w: Unlock", shared.ErrUnsupported)
		}
		return l.Unlock(ctx, id, token)
	})
}

// CloseAll destroys every live record of principal, an opaque principal
// key (shared.ValidPrincipal), and returns how many it destroyed (protocol
// 2, capability "index"). A handler without the capability gives
// shared.ErrUnsupported.
func (h *Handler) CloseAll(ctx context.Context, principal string) (int, error) {
	if in, err := h.current(); err == nil && !in.info.HasCapability(shared.CapabilityIndex) {
		return 0, fmt.Errorf("%s CloseAll: %w: it has no principal index (capability %q)", h.Name(), shared.ErrUnsupported, shared.CapabilityIndex)
	}
	var n int
	err := h.call(ctx, "CloseAll", func(ctx context.Context, s shared.Store) (err error) {
		ix, ok := s.(shared.Indexer)
		if !ok {
			return fmt.Errorf("%w: CloseAll", shared.ErrUnsupported)
		}
		n, err = ix.CloseAll(ctx, principal)
		return err
	})
	return n, err
}

// Close destroys the record for id (the handler contract's Close; use
// Shutdown to stop the plugin).
func (h *Handler) Close(ctx context.Context, id string) error {
	return h.call(ctx, "Close", func(ctx context.Context, s shared.Store) error { return s.Close(ctx, id) })
}

// Description is what Describe learns about a binary.
type Description struct {
	shared.Info
	// Transport is how the host would reach it (TransportFast or TransportGRPC).
	Transport string
}

// Describe launches the binary at path, asks it what it is and stops it. It
// is how `tina4-host plugins` fingerprints what is in the plugin directory.
func Describe(ctx context.Context, path, name string, cfg Config) (Description, error) {
	cfg = cfg.withDefaults()
	in, err := launch(ctx, path, name, cfg)
	if err != nil {
		return Description{}, err
	}
	defer in.kill()
	return Description{Info: in.info, Transport: in.transport}, nil
}
