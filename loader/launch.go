package loader

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tina4go/sessions/shared"
)

// credential is the user a plugin runs as (TINA4_PLUGIN_USER).
type credential struct{ Uid, Gid uint32 }

// instance is one running plugin process (client != nil) or an in-process
// built-in handler (client == nil).
type instance struct {
	client    *plugin.Client
	cmd       *exec.Cmd
	gone      chan struct{} // closed as soon as the plugin process exits
	cleanup   func()        // removes a private copy of the binary, if one was made
	store     shared.Store
	info      shared.Info
	transport string // TransportFast, TransportGRPC or TransportInProcess
	fast      *shared.FastClient
	runDir    string // the plugin's private directory: working directory, TMPDIR, fast socket
	stderr    *tailBuffer
	started   time.Time
	served    atomic.Int64 // calls answered without a transport failure
	// unresponsive is set when the liveness probe killed the process.
	unresponsive atomic.Bool
	// inflight counts calls on their way through this instance; retired
	// is set once Swap replaced it.
	inflight atomic.Int64
	retired  atomic.Bool
}

// drainStderr waits up to d for go-plugin to have read all the plugin
// wrote to stderr (it has once it reports the process exited).
func (in *instance) drainStderr(d time.Duration) {
	deadline := time.Now().Add(d)
	for !in.client.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func (in *instance) exited() bool {
	if in.client == nil {
		return false
	}
	select {
	case <-in.gone:
		return true
	default:
		return in.client.Exited()
	}
}

// stopTimeout bounds a graceful stop; then the plugin and everything in its
// process group is killed.
const stopTimeout = 5 * time.Second

// kill stops the plugin process and everything it started, or releases a
// built-in handler that can be stopped. Every step has a time limit: a
// plugin whose children hold its output pipes (go-plugin waits for those to
// close) cannot stall it.
func (in *instance) kill() {
	if in.client != nil {
		if in.fast != nil {
			in.fast.Shutdown()
		}
		done := make(chan struct{})
		go func() {
			in.client.Kill() // graceful, then SIGKILL after 2s; waits for the pipes
			close(done)
		}()
		select {
		case <-done:
		case <-in.gone:
			// The plugin is gone; whatever still holds its pipes is in its
			// process group (or was killed with its PID namespace).
		case <-time.After(stopTimeout):
		}
		killGroup(in.cmd)
		if in.cmd.Process != nil {
			in.cmd.Process.Kill()
		}
		select {
		case <-done:
		case <-time.After(stopTimeout):
			// Something outside the group holds the pipes; go-plugin's
			// goroutines are left to finish when it lets go.
		}
		if in.cleanup != nil {
			in.cleanup()
		}
		if in.runDir != "" {
			os.RemoveAll(in.runDir)
		}
		return
	}
	if st, ok := in.store.(interface{ Stop() }); ok {
		st.Stop()
	}
}

// launch starts the plugin binary at path and checks that it is the handler
// called name. It starts it in a PID namespace of its own where the kernel
// allows that, and says once in the log when it does not.
func launch(ctx context.Context, path, name string, cfg Config) (*instance, error) {
	isolate := !noPIDNamespace.Load()
	if !isolate || os.Geteuid() == 0 {
		keepKeyFromPlugins(cfg)
	}
	in, err := launchOnce(ctx, path, name, cfg, isolate)
	if err != nil && isolate && namespaceRefused(err) {
		if !noPIDNamespace.Swap(true) {
			cfg.Logger.Warn("cannot start session handlers in a PID namespace of their own; processes a handler starts may outlive it if the host is killed",
				"handler", name, "error", err.Error())
		}
		keepKeyFromPlugins(cfg)
		return launchOnce(ctx, path, name, cfg, false)
	}
	return in, err
}

// keepKeyFromPlugins makes the host non-dumpable, unless cfg says not to.
func keepKeyFromPlugins(cfg Config) {
	if cfg.KeepDumpable {
		return
	}
	if err := protectMemory(); err != nil {
		cfg.Logger.Warn("could not make the host non-dumpable; plugins of the same user may read the session key from its memory", "error", err.Error())
	}
}

func launchOnce(ctx context.Context, path, name string, cfg Config, isolate bool) (*instance, error) {
	want, err := pinnedSum(Config{Name: name, Dir: cfg.Dir, SHA256: cfg.SHA256, SumsFile: cfg.SumsFile})
	if err != nil {
		return nil, err
	}
	exe, cleanup := path, func() {}
	cred, err := pluginCredential(cfg.User)
	if err != nil {
		return nil, fmt.Errorf("start session handler %s: %w", name, err)
	}
	if want != "" {
		if exe, cleanup, err = privateCopy(path, name, want); err != nil {
			return nil, err
		}
		if cred != nil {
			// The plugin's user may run the pinned copy, never change it.
			os.Chmod(filepath.Dir(exe), 0o711)
			os.Chmod(exe, 0o755)
		}
	}
	// Every launch gets a private directory (MkdirTemp makes it 0700, so
	// other users cannot enter it): the plugin's working directory (not the
	// host's, where .env and the key file usually live), its TMPDIR (so
	// go-plugin's socket and the plugin's temporary files go where the host
	// removes them when the plugin stops, crashed or not) and, unless the
	// host asked for gRPC only, the home of its fast-transport socket.
	runDir, err := os.MkdirTemp("", runDirPrefix+"*")
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("start session handler %s: make its private directory (check TMPDIR): %w", name, err)
	}
	cmd := exec.Command(exe)
	cmd.Dir = runDir
	cmd.Env = append(pluginEnv(cfg.Env, cfg.ExtraEnv), "TMPDIR="+runDir)
	fastDir := ""
	if cfg.Transport != TransportGRPC {
		fastDir = runDir
		cmd.Env = append(cmd.Env, shared.FastDirEnv+"="+fastDir)
	}
	removeRunDir := func() { os.RemoveAll(runDir) }
	if cred != nil {
		if err := os.Chown(runDir, int(cred.Uid), int(cred.Gid)); err != nil {
			removeRunDir()
			cleanup()
			return nil, fmt.Errorf("start session handler %s: give its private directory to TINA4_PLUGIN_USER=%s: %w", name, cfg.User, err)
		}
	}
	// A plugin that leaves children holding its stdout/stderr must not
	// keep the host waiting once the plugin itself has exited.
	cmd.WaitDelay = time.Second
	setProcAttr(cmd, isolate, cred)
	tail := newTailBuffer(20)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		VersionedPlugins: shared.PluginSet(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     cfg.StartTimeout,
		Stderr:           &pipeStderr{tail: tail, log: cfg.Logger.With("handler", name)},
		SyncStderr:       &pipeStderr{tail: tail, log: cfg.Logger.With("handler", name)},
		Logger:           stderrMuted{hclogFor(cfg.Logger, name), filepath.Base(cmd.Path)},
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(cfg.MaxRecordSize+64<<10),
			grpc.MaxCallSendMsgSize(cfg.MaxRecordSize+64<<10),
		)},
	})
	fail := func(err error) (*instance, error) {
		killGroup(cmd)
		client.Kill()
		cleanup()
		removeRunDir()
		err = explainStart(err, name, cfg)
		if last := tail.String(); last != "" {
			return nil, fmt.Errorf("start session handler %s (%s): %w; its last output:\n%s", name, path, err, last)
		}
		return nil, fmt.Errorf("start session handler %s (%s): %w", name, path, err)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(err)
	}
	// The process has the pinned copy open; unlink it now so no copy is
	// left behind even if the host dies without shutting down.
	cleanup()
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
	// The host's view of the process: inside its PID namespace the plugin
	// is process 1.
	info.PID = cmd.Process.Pid
	in := &instance{client: client, cmd: cmd, gone: make(chan struct{}), cleanup: cleanup, store: store, transport: TransportGRPC, stderr: tail, started: time.Now()}
	go watchExit(cmd.Process.Pid, in.gone)
	if fast := useFast(ictx, info, fastDir, shared.FastOptions{Timeout: cfg.CallTimeout, MaxRecordSize: cfg.MaxRecordSize, Versions: info.HasCapability(shared.CapabilityVersions)}, store, cfg.Logger.With("handler", name)); fast != nil {
		in.store, in.fast, in.transport = fast, fast, TransportFast
	}
	in.runDir = runDir
	info.FastSecret = nil
	in.info = info
	return in, nil
}

// useFast returns a client for the fast transport the handler offers in
// info, or nil to stay on gRPC: the handler offers none, it offers a socket
// outside the directory the host made for it, or the socket does not answer.
func useFast(ctx context.Context, info shared.Info, dir string, o shared.FastOptions, grpc shared.Store, log *slog.Logger) *shared.FastClient {
	switch {
	case dir == "":
		return nil
	case info.FastAddr == "":
		log.Debug("the handler offers no fast transport; using gRPC")
		return nil
	case filepath.Dir(info.FastAddr) != dir || len(info.FastSecret) != shared.FastSecretSize:
		log.Warn("the handler offered a fast transport the host did not ask for; using gRPC", "socket", info.FastAddr)
		return nil
	}
	fast := shared.NewFastClient(info.FastAddr, info.FastSecret, o, grpc)
	if err := fast.Ping(ctx); err != nil {
		fast.Shutdown()
		log.Warn("the handler's fast transport does not answer; using gRPC", "error", err.Error())
		return nil
	}
	return fast
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

// slogWriter forwards hclog's formatted lines ("[WARN]  plugin.X: msg")
// to slog at the level hclog gave them.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\r\n")
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[TRACE]": slog.LevelDebug, "[DEBUG]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERROR]": slog.LevelError} {
		if strings.HasPrefix(msg, prefix) {
			level = l
			break
		}
	}
	if _, rest, ok := strings.Cut(msg, "] "); ok && strings.HasPrefix(msg, "[") {
		msg = strings.TrimSpace(rest)
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// startError is a launch failure in an operator's words; it still unwraps
// to go-plugin's own error.
type startError struct {
	msg string
	err error
}

func (e *startError) Error() string { return e.msg }
func (e *startError) Unwrap() error { return e.err }

// explainStart turns go-plugin's start-up errors into what they mean for an
// operator.
func explainStart(err error, name string, cfg Config) error {
	msg := err.Error()
	const unrecognized = "Unrecognized remote plugin message: "
	switch {
	case strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		return &startError{"it exited or closed stdout during start-up without the plugin handshake (a crash, a wrong magic cookie, or not a tina4 session handler at all)", err}
	case strings.Contains(msg, unrecognized):
		line, _, _ := strings.Cut(msg[strings.Index(msg, unrecognized)+len(unrecognized):], "\n")
		return &startError{fmt.Sprintf("it printed %q on stdout instead of the plugin handshake: it is not a tina4 session handler, or it wrote to stdout before serving (handlers must log to stderr only)", line), err}
	case strings.Contains(strings.ToLower(msg), "incompatible api version"):
		return &startError{fmt.Sprintf("%s; it speaks none of the protocol versions this host speaks (%s): rebuild it against a matching github.com/tina4go/sessions/sdk, or, for a handler in another language, print one of them as the second field of its handshake line (see docs/handlers-in-other-languages.md)", msg, strings.Trim(fmt.Sprint(shared.Protocols), "[]")), err}
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return &startError{fmt.Sprintf("it did not complete the plugin handshake within %s (TINA4_PLUGIN_START_TIMEOUT)", cfg.StartTimeout), err}
	case strings.Contains(msg, "plugin exited before we could connect"):
		return &startError{"it exited during start-up, before the host could connect (a crash, a wrong magic cookie, or not a tina4 session handler)", err}
	}
	return err
}
