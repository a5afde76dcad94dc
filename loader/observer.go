package loader

import (
	"context"
	"errors"
	"time"

	"github.com/tina4go/sessions/shared"
)

// Observer receives what a Handler sees, for metrics (host/metrics
// implements it with Prometheus). Its methods are called on the hot path
// and from the supervisor, concurrently: they must be quick and must not
// block.
type Observer interface {
	// Call reports one call to the handler: its op ("Load", "Save",
	// "SaveIf", "Close", "Lock", "Unlock", "Info", "Health"), its outcome
	// (one of the Outcome* constants) and how long it took.
	Call(op, outcome string, d time.Duration)
	// Restarted reports that the plugin process was relaunched, and why
	// ("exited" or "unresponsive").
	Restarted(reason string)
	// Up reports whether a plugin process is serving.
	Up(up bool)
}

// Outcomes of a call, as Observer.Call reports them.
const (
	OutcomeOK          = "ok"
	OutcomeNotFound    = "not_found"
	OutcomeConflict    = "conflict"
	OutcomeTimeout     = "timeout"
	OutcomeUnavailable = "unavailable"
	OutcomeError       = "error"
)

// outcome classifies the error a call returned.
func outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, shared.ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, shared.ErrConflict):
		return OutcomeConflict
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, ErrUnavailable):
		return OutcomeUnavailable
	default:
		return OutcomeError
	}
}

// nopObserver is the Observer of a Handler configured without one.
type nopObserver struct{}

func (nopObserver) Call(string, string, time.Duration) {}
func (nopObserver) Restarted(string)                   {}
func (nopObserver) Up(bool)                            {}
