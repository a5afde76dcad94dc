package loader

import (
	"context"
	"errors"
	"time"
)

// supervise watches the plugin process and relaunches it when it exits,
// with a new go-plugin client each time (a client cannot be restarted) and
// exponential backoff from 100ms up to cfg.MaxBackoff. The backoff resets
// once a plugin has stayed up for a minute.
func (h *Handler) supervise() {
	defer close(h.done)
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		case <-h.dead:
		}
		h.mu.RLock()
		in := h.cur
		h.mu.RUnlock()
		if in != nil && !in.exited() {
			if time.Since(in.started) > time.Minute {
				backoff = minBackoff
			}
			continue
		}
		if in != nil {
			h.mu.Lock()
			h.cur = nil
			h.lastErr = errors.New("the plugin process exited")
			h.mu.Unlock()
			// Reap the old process and whatever it left behind without
			// holding up the relaunch (kill's steps are time-limited).
			go in.kill()
			h.cfg.Logger.Error("session handler exited; restarting", "handler", h.cfg.Name, "pid", in.info.PID,
				"uptime", time.Since(in.started).Round(time.Millisecond).String(), "backoff", backoff.String(), "last_stderr", in.stderr.String())
		}
		select {
		case <-h.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, h.cfg.MaxBackoff)
		next, err := launch(context.Background(), h.path, h.cfg.Name, h.cfg)
		if err != nil {
			h.mu.Lock()
			h.lastErr = err
			h.mu.Unlock()
			h.cfg.Logger.Error("session handler restart failed", "handler", h.cfg.Name, "error", err, "next_try_in", backoff.String())
			continue
		}
		h.mu.Lock()
		select {
		case <-h.stop:
			h.mu.Unlock()
			next.kill()
			return
		default:
		}
		h.cur = next
		h.lastErr = nil
		h.mu.Unlock()
		go h.notice(next)
		h.cfg.Logger.Info("session handler restarted", "handler", h.cfg.Name, "pid", next.info.PID, "transport", next.transport)
	}
}
