package host

import (
	"context"
	"fmt"

	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/loader"
	"github.com/tina4go/sessions/shared"
)

// Reload re-reads the settings from the environment and .env, as Open does,
// and swaps the session handler for the one they name (the same binary,
// a new build of it, or another handler), without dropping a request: the
// new plugin is launched and checked (file checks, checksum pin, handshake,
// protocol, the name it reports, Health) while the old one keeps serving;
// then new calls go to the new one, calls already on their way finish on
// the old one, and the old one is stopped. If any check fails, the old
// handler keeps serving and Reload returns why.
//
// Only the handler's own settings are applied: TINA4_SESSION_HANDLER,
// TINA4_PLUGIN_DIR, the TINA4_* variables a handler reads,
// TINA4_PLUGIN_ENV, TINA4_SESSION_HANDLER_SHA256, TINA4_PLUGIN_SUMS,
// TINA4_PLUGIN_TRANSPORT and TINA4_PLUGIN_USER. Everything else (cookie,
// TTL, secret, timeouts, limits) needs a restart. A new handler must offer
// what this host relies on: record versions and the session lock, if the
// current one gave them. A built-in handler cannot be swapped in or out.
//
// tina4-host serve calls Reload on SIGHUP.
func (h *Host) Reload(ctx context.Context) error {
	cfg, err := config.Load(config.Options{})
	if err != nil {
		return fmt.Errorf("reload: %w (the current session handler keeps serving)", err)
	}
	return h.ReloadWith(ctx, cfg)
}

// ReloadWith is Reload with the settings given instead of read.
func (h *Host) ReloadWith(ctx context.Context, cfg config.Config) error {
	next := loader.Config{Name: cfg.Handler, Dir: cfg.PluginDir, Env: cfg.HandlerEnv(), ExtraEnv: cfg.ExtraEnv,
		SHA256: cfg.HandlerSHA256, SumsFile: cfg.PluginSums, Transport: cfg.Transport, User: cfg.PluginUser}
	check := func(info shared.Info) error {
		if h.mgr.Versioned != nil && !info.HasCapability(shared.CapabilityVersions) {
			return fmt.Errorf("it has no record versions (capability %q), which the running handler has and this host relies on; restart the host to change to it", shared.CapabilityVersions)
		}
		if h.mgr.Indexer != nil && !info.HasCapability(shared.CapabilityIndex) {
			return fmt.Errorf("it keeps no index of sessions by user (capability %q), which DestroyAll relies on; restart the host to change to it", shared.CapabilityIndex)
		}
		if h.mgr.Locker != nil && !info.HasCapability(shared.CapabilityLock) {
			return fmt.Errorf("it has no session lock (capability %q) and TINA4_SESSION_LOCK is on", shared.CapabilityLock)
		}
		if h.mgr.Versioned == nil && info.HasCapability(shared.CapabilityVersions) {
			h.log.Warn("the new session handler has record versions; the host uses them from its next restart", "handler", cfg.Handler)
		}
		return nil
	}
	if err := h.handler.Swap(ctx, next, check); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return nil
}
