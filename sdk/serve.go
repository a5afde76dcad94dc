package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
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
}

// Serve runs h as a plugin for the tina4go/sessions host and returns only
// when the host stops the plugin or goes away. Call it from main and do
// nothing else there that writes to stdout.
//
// Serve checks every id against ValidID before h sees it, lifts gRPC's
// message size limit to shared.MaxMessageSize, and watches the parent
// process: if the host dies without stopping the plugin, the plugin calls
// h's Stop (if it is a Stopper) and terminates itself.
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

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		VersionedPlugins: shared.PluginSet(&server{
			cfg:  cfg,
			info: shared.Info{Name: cfg.Name, Version: cfg.Version, Protocols: []int{shared.ProtocolVersion}, PID: os.Getpid()},
		}),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(shared.MaxMessageSize), grpc.MaxSendMsgSize(shared.MaxMessageSize))
			return grpc.NewServer(opts...)
		},
	})
	return nil
}

// NewStore wraps a Handler in the Store the wire carries, with the same id
// checks Serve applies. Hosts use it to run a handler in process.
func NewStore(name, version string, h Handler) shared.Store {
	return &server{
		cfg:  Config{Name: name, Version: version, Handler: h},
		info: shared.Info{Name: name, Version: version, Protocols: []int{shared.ProtocolVersion}, PID: os.Getpid()},
	}
}

// server adapts a Handler to shared.Store.
type server struct {
	cfg  Config
	info shared.Info
}

func (s *server) Info(context.Context) (shared.Info, error) {
	info := s.info
	if _, ok := s.cfg.Handler.(HealthChecker); ok {
		info.Capabilities = append([]string(nil), shared.CapabilityHealth)
	}
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
	return s.cfg.Handler.Load(ctx, id)
}

func (s *server) Save(ctx context.Context, id string, r Record) error {
	if !ValidID(id) {
		return ErrInvalidID
	}
	return s.cfg.Handler.Save(ctx, id, r)
}

func (s *server) Close(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrInvalidID
	}
	return s.cfg.Handler.Close(ctx, id)
}

// watchParent terminates the plugin when its host process goes away. On
// Linux the host also sets a parent-death signal; this covers the cases that
// misses (other systems, a host thread that exited).
func watchParent(h Handler, parent int) {
	for {
		time.Sleep(500 * time.Millisecond)
		if os.Getppid() != parent {
			Logger().Warn("host process went away; stopping handler", "parent_pid", parent)
			if st, ok := h.(Stopper); ok {
				st.Stop()
			}
			// go-plugin's Serve owns the process; end it the way an
			// operator would.
			if self, err := os.FindProcess(os.Getpid()); err == nil {
				_ = self.Signal(syscall.SIGTERM)
			}
			return
		}
	}
}
