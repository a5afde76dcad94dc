package loader

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tina4go/sessions/shared"
)

// instance is one running plugin process (client != nil) or an in-process
// built-in handler (client == nil).
type instance struct {
	client  *plugin.Client
	store   shared.Store
	info    shared.Info
	stderr  *tailBuffer
	started time.Time
}

func (in *instance) exited() bool { return in.client != nil && in.client.Exited() }

// kill stops the plugin process, or releases a built-in handler that can be stopped.
func (in *instance) kill() {
	if in.client != nil {
		in.client.Kill()
		return
	}
	if st, ok := in.store.(interface{ Stop() }); ok {
		st.Stop()
	}
}

// launch starts the plugin binary at path and checks that it is the handler
// called name.
func launch(ctx context.Context, path, name string, cfg Config) (*instance, error) {
	cmd := exec.Command(path)
	cmd.Env = pluginEnv(cfg.Env)
	dieWithHost(cmd)
	tail := newTailBuffer(20)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		VersionedPlugins: shared.PluginSet(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     cfg.StartTimeout,
		Stderr:           tail,
		Logger:           hclogFor(cfg.Logger, name),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(shared.MaxMessageSize),
			grpc.MaxCallSendMsgSize(shared.MaxMessageSize),
		)},
	})
	fail := func(err error) (*instance, error) {
		client.Kill()
		if last := tail.String(); last != "" {
			return nil, fmt.Errorf("start session handler %s (%s): %w; its last output:\n%s", name, path, err, last)
		}
		return nil, fmt.Errorf("start session handler %s (%s): %w", name, path, err)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(err)
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		return fail(err)
	}
	store, ok := raw.(shared.Store)
	if !ok {
		return fail(fmt.Errorf("plugin returned %T, not a session store", raw))
	}
	ictx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	info, err := store.Info(ictx)
	if err != nil {
		return fail(fmt.Errorf("ask handler for its info: %w", err))
	}
	if info.Name != name {
		return fail(fmt.Errorf("binary reports its name as %q, not %q; rename the file to match the handler it holds", info.Name, name))
	}
	return &instance{client: client, store: store, info: info, stderr: tail, started: time.Now()}, nil
}

// hclogFor gives go-plugin a logger that writes through the host's slog
// logger. Plugin log lines arrive here with the plugin's own level.
func hclogFor(l *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "plugin." + name,
		Level:       hclog.Info,
		Output:      slogWriter{l},
		DisableTime: true,
	})
}

// slogWriter forwards hclog's formatted lines to slog at info level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	w.l.Info(msg)
	return len(p), nil
}
