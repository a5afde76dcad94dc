package loader

import (
	"context"
	"errors"
	"time"
)

// backoffReset is how long a plugin must stay up to count as having served
// even if no call reached it.
const backoffReset = 10 * time.Second

// supervise watches the plugin process and relaunches it when it exits,
// with a new go-plugin client each time (a client cannot be restarted) and
// exponential backoff from 100ms up to cfg.MaxBackoff. A plugin that
// served (it answered a call, or stayed up for backoffReset) is relaunched
// after the shortest wait: only a plugin that keeps dying before it serves
// anything backs off further, so a crash now and then costs the same short
// outage each time.
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
			continue
		}
		restartReason := "exited"
		if in != nil {
			h.mu.Lock()
			h.cur = nil
			h.lastErr = errors.New("the plugin process exited")
			h.mu.Unlock()
			h.cfg.Observer.Up(false)
			if in.unresponsive.Load() {
				restartReason = "unresponsive"
			}
			if in.served.Load() > 0 || time.Since(in.started) >= backoffReset {
				backoff = minBackoff
			}
			// Reap the old process and whatever it left behind without
			// holding up the relaunch (kill's steps are time-limited), and
			// give go-plugin a moment to pass on the plugin's last words.
			go in.kill()
			in.drainStderr(time.Second)
			h.cfg.Logger.Error("session handler exited; restarting", "handler", h.Name(), "pid", in.info.PID,
				"uptime", time.Since(in.started).Round(time.Millisecond).String(), "backoff", backoff.String(), "last_stderr", in.stderr.String())
		}
		select {
		case <-h.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, h.cfg.MaxBackoff)
		tg := h.target.Load()
		next, err := launch(context.Background(), tg.path, tg.name, tg.cfg)
		if err != nil {
			h.mu.Lock()
			h.lastErr = err
			h.mu.Unlock()
			h.cfg.Logger.Error("session handler restart failed", "handler", h.Name(), "error", err, "next_try_in", backoff.String())
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
		go h.probe(next)
		h.cfg.Observer.Restarted(restartReason)
		h.cfg.Observer.Up(true)
		h.cfg.Logger.Info("session handler restarted", "handler", h.Name(), "pid", next.info.PID, "transport", next.transport)
	}
}
