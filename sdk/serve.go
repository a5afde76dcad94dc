package sdk

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tina4go/sessions/shared"
)

// Config describes a handler binary to Serve.
type Config struct {
	// Name is the handler's name. It must equal the binary's file name in
	// the plugin directory and the value operators put in
	// TINA4_SESSION_HANDLER (for example "SessionMongoHandler").
	Name string
	// Version is the handler's own version, shown by `tina4-host plugins`.
	Version string
	// Handler stores the sessions.
	Handler Handler
	// GRPCOnly turns the fast transport off: the host then makes every
	// call over gRPC, as it does for handlers in other languages. Leave it
	// false unless you must debug the wire with gRPC tools.
	GRPCOnly bool
}

// Serve runs h as a plugin for the tina4go/sessions host and returns only
// when the host stops the plugin or goes away. Call it from main and do
// nothing else there that writes to stdout.
//
// Serve checks every id against ValidID before h sees it, refuses records
// larger than MaxRecordSize, lifts gRPC's message size limit to
// shared.MaxMessageSize, and watches the parent process: if the host dies
// without stopping the plugin, the plugin calls h's Stop (if it is a
// Stopper) and terminates itself.
//
// Unless cfg.GRPCOnly is set, Serve also offers the host the fast
// transport: a Unix socket in the private directory the host names, guarded
// by a per-launch secret that only the host learns (over gRPC with mutual
// TLS). The host then sends Load, Save and Close over it; Info and Health
// stay on gRPC. Nothing in h changes.
//
// Started by hand (not by a host), Serve returns an error explaining that.
func Serve(cfg Config) error {
	if cfg.Name == "" || cfg.Handler == nil {
		return errors.New("sdk.Serve: Config.Name and Config.Handler are required")
	}
	if os.Getenv(shared.Handshake.MagicCookieKey) != shared.Handshake.MagicCookieValue {
		return fmt.Errorf("%s is a tina4go/sessions handler plugin: it is started by the host, not by hand; "+
			"copy it into the plugin directory and set TINA4_SESSION_HANDLER=%s", cfg.Name, cfg.Name)
	}
	go watchParent(cfg.Handler, os.Getppid())
	hostStderr.Store(os.Stderr)

	srv := &server{
		cfg:  cfg,
		info: shared.Info{Name: cfg.Name, Version: cfg.Version, Protocols: protocols(cfg.Handler), PID: os.Getpid()},
	}
	if dir := os.Getenv(shared.FastDirEnv); dir != "" && !cfg.GRPCOnly {
		l, secret, err := listenFast(dir)
		if err != nil {
			// The host falls back to gRPC when Info offers no socket.
			Logger().Warn("fast transport unavailable; serving over gRPC only", "error", err.Error())
		} else {
			defer l.Close()
			srv.info.FastAddr, srv.info.FastSecret = l.Addr().String(), secret
			go shared.ServeFast(l, secret, srv)
		}
	}

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  shared.Handshake,
		VersionedPlugins: shared.PluginSet(srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(shared.MaxMessageSize), grpc.MaxSendMsgSize(shared.MaxMessageSize))
			return grpc.NewServer(opts...)
		},
	})
	// The host stopped the plugin (its graceful shutdown, or a restart):
	// go-plugin's Serve returns, and the process exits when main does.
	stopOnce(cfg.Handler)
	return nil
}

var stopped sync.Once

// stopOnce calls h's Stop, if it is a Stopper, once per process.
func stopOnce(h Handler) {
	stopped.Do(func() {
		if st, ok := h.(Stopper); ok {
			st.Stop()
		}
	})
}

// NewStore wraps a Handler in the Store the wire carries, with the same id
// checks Serve applies. Hosts use it to run a handler in process.
func NewStore(name, version string, h Handler) shared.Store {
	return &server{
		cfg:  Config{Name: name, Version: version, Handler: h},
		info: shared.Info{Name: name, Version: version, Protocols: protocols(h), PID: os.Getpid()},
	}
}

// server adapts a Handler to shared.Store.
type server struct {
	cfg  Config
	info shared.Info
}

// protocols lists the protocol versions a handler serves: every Go handler
// speaks both; what protocol 2 adds is offered through capabilities.
func protocols(Handler) []int { return append([]int(nil), shared.Protocols...) }

// capabilities lists what h offers beyond Load, Save and Close.
func capabilities(h Handler) []string {
	var caps []string
	if _, ok := h.(HealthChecker); ok {
		caps = append(caps, shared.CapabilityHealth)
	}
	if _, ok := h.(VersionedHandler); ok {
		caps = append(caps, shared.CapabilityVersions)
	}
	if _, ok := h.(Locker); ok {
		caps = append(caps, shared.CapabilityLock)
	}
	if _, ok := h.(Indexer); ok {
		caps = append(caps, shared.CapabilityIndex)
	}
	return caps
}

func (s *server) Info(context.Context) (shared.Info, error) {
	info := s.info
	info.Capabilities = capabilities(s.cfg.Handler)
	return info, nil
}

func (s *server) Health(ctx context.Context) error {
	if hc, ok := s.cfg.Handler.(HealthChecker); ok {
		return hc.Health(ctx)
	}
	return nil
}

// Stop forwards to the handler's Stop, so an in-process host can release it.
func (s *server) Stop() {
	if st, ok := s.cfg.Handler.(Stopper); ok {
		st.Stop()
	}
}

func (s *server) Load(ctx context.Context, id string) (Record, error) {
	if !ValidID(id) {
		return Record{}, ErrInvalidID
	}
	rec, err := s.cfg.Handler.Load(ctx, id)
	if err == nil && len(rec.Data) > MaxRecordSize {
		return Record{}, fmt.Errorf("%w: %s loaded %d bytes", ErrTooLarge, s.cfg.Name, len(rec.Data))
	}
	return rec, err
}

func (s *server) Save(ctx context.Context, id string, r Record) error {
	if !ValidID(id) {
		return ErrInvalidID
	}
	if len(r.Data) > MaxRecordSize {
		return fmt.Errorf("%w: a record of %d bytes", ErrTooLarge, len(r.Data))
	}
	if err := s.principal(&r); err != nil {
		return err
	}
	return s.cfg.Handler.Save(ctx, id, r)
}

// principal checks r's principal, and drops it for a handler that is not an
// Indexer (as a handler reached over gRPC without the capability ignores
// the field).
func (s *server) principal(r *Record) error {
	if r.Principal == "" {
		return nil
	}
	if !shared.ValidPrincipal(r.Principal) {
		return shared.PrincipalError(r.Principal)
	}
	if _, ok := s.cfg.Handler.(Indexer); !ok {
		r.Principal = ""
	}
	return nil
}

func (s *server) CloseAll(ctx context.Context, principal string) (int, error) {
	ix, ok := s.cfg.Handler.(Indexer)
	if !ok {
		return 0, fmt.Errorf("%w: %s has no principal index (capability %q)", shared.ErrUnsupported, s.cfg.Name, shared.CapabilityIndex)
	}
	if !shared.ValidPrincipal(principal) {
		return 0, shared.PrincipalError(principal)
	}
	n, err := ix.CloseAll(ctx, principal)
	return max(n, 0), err
}

func (s *server) SaveIf(ctx context.Context, id string, r Record, expect uint64) (uint64, error) {
	v, ok := s.cfg.Handler.(VersionedHandler)
	if !ok {
		return 0, fmt.Errorf("%w: %s has no SaveIf (capability %q)", shared.ErrUnsupported, s.cfg.Name, shared.CapabilityVersions)
	}
	if !ValidID(id) {
		return 0, ErrInvalidID
	}
	if len(r.Data) > MaxRecordSize {
		return 0, fmt.Errorf("%w: a record of %d bytes", ErrTooLarge, len(r.Data))
	}
	if err := s.principal(&r); err != nil {
		return 0, err
	}
	r.Version = 0
	ver, err := v.SaveIf(ctx, id, r, expect)
	if err == nil && ver == 0 {
		return 0, fmt.Errorf("%s: SaveIf returned version 0; a saved record needs a version other than 0", s.cfg.Name)
	}
	return ver, err
}

func (s *server) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	l, ok := s.cfg.Handler.(Locker)
	if !ok {
		return false, fmt.Errorf("%w: %s has no session lock (capability %q)", shared.ErrUnsupported, s.cfg.Name, shared.CapabilityLock)
	}
	if !ValidID(id) {
		return false, ErrInvalidID
	}
	if token == "" || len(token) > shared.MaxLockToken || ttl <= 0 {
		return false, fmt.Errorf("lock of a session needs a token of 1 to %d bytes and a positive ttl", shared.MaxLockToken)
	}
	return l.Lock(ctx, id, token, ttl)
}

func (s *server) Unlock(ctx context.Context, id, token string) error {
	l, ok := s.cfg.Handler.(Locker)
	if !ok {
		return fmt.Errorf("%w: %s has no session lock (capability %q)", shared.ErrUnsupported, s.cfg.Name, shared.CapabilityLock)
	}
	if !ValidID(id) {
		return ErrInvalidID
	}
	return l.Unlock(ctx, id, token)
}

func (s *server) Close(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrInvalidID
	}
	return s.cfg.Handler.Close(ctx, id)
}

// listenFast listens on the fast-transport socket in dir, the private
// directory the host made for this launch, and makes the secret for it.
func listenFast(dir string) (net.Listener, []byte, error) {
	// The directory is what keeps other users off the socket: refuse one
	// that is not a private directory.
	if fi, err := os.Lstat(dir); err != nil {
		return nil, nil, err
	} else if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		return nil, nil, fmt.Errorf("%s=%s is not a directory of mode 0700 (%s)", shared.FastDirEnv, dir, fi.Mode())
	}
	secret := make([]byte, shared.FastSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("unix", filepath.Join(dir, shared.FastSocketName))
	if err != nil {
		return nil, nil, err
	}
	return l, secret, nil
}

// watchParent terminates the plugin when its host process goes away. On
// Linux the host also sets a parent-death signal; this covers the cases that
// misses (other systems, a host thread that exited).
func watchParent(h Handler, parent int) {
	for {
		time.Sleep(500 * time.Millisecond)
		if os.Getppid() != parent {
			Logger().Warn("host process went away; stopping handler", "parent_pid", parent)
			stopOnce(h)
			// go-plugin's Serve owns the process; end it the way an
			// operator would.
			if self, err := os.FindProcess(os.Getpid()); err == nil {
				_ = self.Signal(syscall.SIGTERM)
			}
			return
		}
	}
}
