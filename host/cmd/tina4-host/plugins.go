package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/loader"
	"github.com/tina4go/sessions/plugins/file"
	"github.com/tina4go/sessions/sdk/handlertest"
	"github.com/tina4go/sessions/shared"
)

func loaderConfig(cfg config.Config, log *slog.Logger) loader.Config {
	return loader.Config{Name: cfg.Handler, Dir: cfg.PluginDir, Env: cfg.HandlerEnv(), ExtraEnv: cfg.ExtraEnv,
		CallTimeout: cfg.PluginTimeout, StartTimeout: cfg.StartTimeout, Logger: log,
		SHA256: cfg.HandlerSHA256, SumsFile: cfg.PluginSums, Transport: cfg.Transport, User: cfg.PluginUser,
		MaxRecordSize: cfg.MaxBytes, MaxCalls: cfg.MaxCalls}
}

// listPlugins prints every file in the plugin directory, whether it is
// usable, its SHA-256 and what it reports about itself, plus the built-ins.
// It exits 1 when the selected handler (TINA4_SESSION_HANDLER) is missing or
// unusable, so it can gate a deploy. Listing leaves nothing behind: each
// handler is launched with a throwaway TINA4_SESSION_FOLDER, removed after.
func listPlugins(ctx context.Context, cfg config.Config, log *slog.Logger, stdout, stderr io.Writer) int {
	cands, err := loader.Discover(cfg.PluginDir)
	if err != nil {
		fmt.Fprintln(stderr, "tina4-host:", err)
		return 1
	}
	scratch, err := os.MkdirTemp("", "tina4-plugins-list-")
	if err != nil {
		fmt.Fprintln(stderr, "tina4-host:", err)
		return 1
	}
	defer os.RemoveAll(scratch)
	cfg.SessionFolder = filepath.Join(scratch, "sessions")
	selected := "missing" // what happened to the selected handler
	fmt.Fprintf(stdout, "plugin directory: %s\n", cfg.PluginDir)
	if len(cands) == 0 {
		fmt.Fprintln(stdout, "  (no files)")
	}
	for _, c := range cands {
		sum, _ := loader.FileSHA256(c.Path)
		fmt.Fprintf(stdout, "\n%s\n  path:   %s\n  sha256: %s\n", c.Name, c.Path, sum)
		if c.Name == cfg.Handler {
			selected = "unusable"
		}
		if c.Err != nil {
			fmt.Fprintf(stdout, "  usable: no: %v\n", c.Err)
			continue
		}
		lc := loaderConfig(cfg, log)
		if c.Name != cfg.Handler {
			lc.SHA256 = "" // the pin is for the selected handler only
		}
		info, err := loader.Describe(ctx, c.Path, c.Name, lc)
		if err != nil {
			fmt.Fprintf(stdout, "  usable: no: %v\n", err)
			continue
		}
		if c.Name == cfg.Handler {
			selected = "usable"
		}
		fmt.Fprintf(stdout, "  usable: yes\n  reports: name=%s version=%s protocols=%v capabilities=%v\n  transport: %s\n",
			info.Name, info.Version, info.Protocols, info.Capabilities, describeTransport(info.Transport))
		fmt.Fprintf(stdout, "  concurrency: %s\n", describeConcurrency(info.Info))
	}
	fmt.Fprintf(stdout, "\nbuilt in: SessionFileHandler (used when the plugin directory has no binary of that name)\n")
	if selected == "missing" && cfg.Handler == file.Name {
		selected = "built in"
	}
	switch selected {
	case "usable", "built in":
		fmt.Fprintf(stdout, "selected: TINA4_SESSION_HANDLER=%s (%s)\n", cfg.Handler, selected)
		return 0
	case "missing":
		fmt.Fprintf(stdout, "selected: TINA4_SESSION_HANDLER=%s: FAIL: no binary of that name in %s and no built-in\n", cfg.Handler, cfg.PluginDir)
	default:
		fmt.Fprintf(stdout, "selected: TINA4_SESSION_HANDLER=%s: FAIL: unusable (see above)\n", cfg.Handler)
	}
	return 1
}

// describeConcurrency says what a handler's capabilities mean for
// concurrent requests on one session.
func describeConcurrency(info shared.Info) string {
	var d string
	if info.HasCapability(shared.CapabilityVersions) {
		d = "record versions: concurrent requests keep each other's changes on every host"
	} else {
		d = "WARNING: no record versions (protocol 1): across hosts the last commit of a session wins"
	}
	if info.HasCapability(shared.CapabilityLock) {
		d += "; TINA4_SESSION_LOCK available"
	} else {
		d += "; no session lock (TINA4_SESSION_LOCK refused)"
	}
	if info.HasCapability(shared.CapabilityIndex) {
		d += "; DestroyAll available"
	} else {
		d += "; no user index (DestroyAll refused)"
	}
	return d
}

// verifyPlugin launches handler name through the real loader and runs the
// conformance kit against it: the quick checks, with the largest record
// this host would send (TINA4_SESSION_MAX_BYTES), or with full every check,
// with the largest record the protocol carries.
func verifyPlugin(ctx context.Context, cfg config.Config, log *slog.Logger, name string, full bool, stdout, stderr io.Writer) int {
	lc := loaderConfig(cfg, log)
	lc.Name = name
	opts := handlertest.Options{Quick: true, LargeSize: cfg.MaxBytes}
	if full {
		opts = handlertest.Options{}
		lc.MaxRecordSize = shared.MaxRecordSize
		lc.CallTimeout = max(lc.CallTimeout, 30*time.Second) // 16 MiB records over gRPC
	}
	path, err := loader.Resolve(cfg.PluginDir, name)
	if err == nil && path == "" {
		err = fmt.Errorf("handler %q has no binary in %s; `plugins verify` checks binaries only", name, cfg.PluginDir)
	}
	if err != nil {
		fmt.Fprintln(stderr, "FAIL:", err)
		return 1
	}
	h, err := loader.Open(ctx, lc)
	if err != nil {
		fmt.Fprintln(stderr, "FAIL: launch:", err)
		return 1
	}
	defer h.Shutdown()
	info, err := h.Info(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "FAIL: info:", err)
		return 1
	}
	fmt.Fprintf(stdout, "ok   launched %s %s (pid %d) from %s\n", info.Name, info.Version, info.PID, path)
	fmt.Fprintf(stdout, "ok   transport: %s\n", describeTransport(h.Transport()))
	fmt.Fprintf(stdout, "     protocols %v, capabilities %v: %s\n", info.Protocols, info.Capabilities, describeConcurrency(info))
	failed := false
	for _, r := range handlertest.CheckAll(ctx, h, opts) {
		if r.Err != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL %s: %v\n", r.Name, r.Err)
			continue
		}
		if r.Skipped {
			fmt.Fprintf(stdout, "skip %s: not offered\n", r.Name)
			continue
		}
		fmt.Fprintf(stdout, "ok   %s\n", r.Name)
	}
	if err := h.Health(ctx); err != nil {
		failed = true
		fmt.Fprintf(stdout, "FAIL health: %v\n", err)
	} else {
		fmt.Fprintf(stdout, "ok   health\n")
	}
	if failed {
		fmt.Fprintf(stdout, "FAIL %s\n", name)
		return 1
	}
	fmt.Fprintf(stdout, "PASS %s\n", name)
	return 0
}

// describeTransport says in words how the host reaches a handler.
func describeTransport(t string) string {
	switch t {
	case loader.TransportFast:
		return "fast (private Unix socket; Info and Health over gRPC)"
	case loader.TransportGRPC:
		return "grpc (the handler offers no fast transport, or TINA4_PLUGIN_TRANSPORT=grpc)"
	}
	return t
}
