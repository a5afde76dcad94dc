package loader

import (
	"context"
	"fmt"
	"time"

	"github.com/tina4go/sessions/shared"
)

// Swap replaces the running plugin with the handler next names, without
// dropping a call: it launches next (the same binary, a new build of it, or
// another handler), checks it as Open does (file checks, pin, handshake,
// protocol, the name it reports) and asks it for its Health; then new calls
// go to it, calls already on their way to the old process finish there, and
// the old process is stopped. If anything fails, the old process keeps
// serving and Swap returns the reason.
//
// Only the handler's own settings are taken from next: Name, Dir, Env,
// ExtraEnv, SHA256, SumsFile, Transport and User. Timeouts, limits, the
// logger and the observer stay as Open set them. Built-in handlers cannot
// be swapped in or out (restart the host for that). check, when not nil,
// sees what the new handler reports before anything is switched; an error
// from it refuses the swap.
func (h *Handler) Swap(ctx context.Context, next Config, check func(shared.Info) error) error {
	h.swapMu.Lock()
	defer h.swapMu.Unlock()
	select {
	case <-h.stop:
		return fmt.Errorf("%w: the loader was shut down", ErrUnavailable)
	default:
	}
	if h.Path() == "" {
		return fmt.Errorf("swap session handler: %s runs in process (built in); restart the host to change it", h.Name())
	}
	cfg := h.cfg
	cfg.Name, cfg.Dir, cfg.Env, cfg.ExtraEnv = next.Name, next.Dir, next.Env, next.ExtraEnv
	cfg.SHA256, cfg.SumsFile, cfg.Transport, cfg.User = next.SHA256, next.SumsFile, next.Transport, next.User
	path, err := Resolve(cfg.Dir, cfg.Name)
	if err != nil {
		return err
	}
	if path == "" {
		return fmt.Errorf("swap session handler: %s has no binary in %s; a built-in cannot be swapped in (restart the host to use it)", cfg.Name, cfg.Dir)
	}
	in, err := launch(ctx, path, cfg.Name, cfg)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(in.info); err != nil {
			in.kill()
			return fmt.Errorf("swap session handler: the new %s was refused, so the old one keeps serving: %w", cfg.Name, err)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	err = in.store.Health(hctx)
	cancel()
	if err != nil {
		in.kill()
		return fmt.Errorf("swap session handler: the new %s reports its store unusable, so the old one keeps serving: %w", cfg.Name, err)
	}
	h.mu.Lock()
	select {
	case <-h.stop:
		h.mu.Unlock()
		in.kill()
		return fmt.Errorf("%w: the loader was shut down", ErrUnavailable)
	default:
	}
	old := h.cur
	h.cur = in
	h.lastErr = nil
	h.target.Store(&target{name: cfg.Name, path: path, cfg: cfg})
	h.mu.Unlock()
	go h.notice(in)
	go h.probe(in)
	h.cfg.Observer.Up(true)
	h.cfg.Logger.Info("session handler swapped", "handler", cfg.Name, "path", path, "pid", in.info.PID, "version", in.info.Version, "transport", in.transport)
	if old != nil {
		old.retired.Store(true)
		go h.retire(old)
	}
	return nil
}

// retire stops an instance Swap replaced, once the calls on their way
// through it have finished (or could no longer: after the call timeout).
func (h *Handler) retire(old *instance) {
	deadline := time.Now().Add(h.cfg.CallTimeout + time.Second)
	// A call that picked old just before the swap counts itself in a few
	// instructions later: give it that moment before trusting the count.
	time.Sleep(50 * time.Millisecond)
	for old.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	old.kill()
	h.cfg.Logger.Info("previous session handler stopped", "pid", old.info.PID)
}
