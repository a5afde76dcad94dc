package host

import (
	"log/slog"
	"sync"
	"time"
)

// errorLog logs the failures that happen once per request (a store that is
// down fails every request) within a budget: at most burst lines of each
// message per window. The first line of a message after some were dropped
// says how many ("dropped"), so the log stays readable and the count stays
// true under a flood.
type errorLog struct {
	log    *slog.Logger
	window time.Duration
	burst  int

	mu   sync.Mutex
	msgs map[string]*errorBudget
}

type errorBudget struct {
	start   time.Time
	n       int // lines logged in the window that began at start
	dropped int // lines dropped since the last one logged
}

func newErrorLog(l *slog.Logger) *errorLog {
	return &errorLog{log: l, window: 10 * time.Second, burst: 10, msgs: map[string]*errorBudget{}}
}

// Error logs msg at error level unless its budget for the window is spent.
func (e *errorLog) Error(msg string, args ...any) {
	now := time.Now()
	e.mu.Lock()
	b := e.msgs[msg]
	if b == nil {
		b = &errorBudget{start: now}
		e.msgs[msg] = b
	}
	if now.Sub(b.start) >= e.window {
		b.start, b.n = now, 0
	}
	if b.n >= e.burst {
		b.dropped++
		e.mu.Unlock()
		return
	}
	b.n++
	dropped := b.dropped
	b.dropped = 0
	e.mu.Unlock()
	if dropped > 0 {
		args = append(args, "dropped", dropped)
	}
	e.log.Error(msg, args...)
}
