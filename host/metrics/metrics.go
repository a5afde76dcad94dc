// Package metrics exports what a session host does as Prometheus metrics:
// the calls to the session handler (by operation and outcome, with their
// latency), the handler plugin's restarts and whether it is up, sessions
// created, destroyed and regenerated, stored tokens rejected, and the size
// of the records saved.
//
// Apps use it through host.WithMetrics; a Metrics is the loader.Observer
// (through Observer) and the session.Events that host.Open wires in. No
// label ever holds a session id: every label has a handful of values.
//
// docs/user-guide.md ("Operating it: metrics") lists every metric and the
// PromQL for the first questions an operator asks.
package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tina4go/sessions/host/session"
	"github.com/tina4go/sessions/loader"
)

const (
	namespace = "tina4"
	subsystem = "session"
)

// LatencyBuckets are the bounds, in seconds, of the store call latency
// histogram: 50µs (a call to an in-process or fast-socket handler) to 5s
// (past the default TINA4_PLUGIN_TIMEOUT).
var LatencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5,
}

// SizeBuckets are the bounds, in bytes, of the record size histogram: 64 B
// to 4 MiB (the default TINA4_SESSION_MAX_BYTES), by factors of 4.
var SizeBuckets = prometheus.ExponentialBuckets(64, 4, 9)

// Metrics holds the collectors. Its methods are safe for concurrent use.
type Metrics struct {
	storeCalls    *prometheus.CounterVec
	storeDuration *prometheus.HistogramVec
	restarts      *prometheus.CounterVec
	up            *prometheus.GaugeVec
	created       prometheus.Counter
	destroyed     prometheus.Counter
	regenerated   prometheus.Counter
	rejected      *prometheus.CounterVec
	recordSize    prometheus.Histogram
}

// New makes the collectors and registers them on reg (nil:
// prometheus.DefaultRegisterer). A collector that reg already holds (a
// second host in one process, or a host opened again) is shared, not an
// error: their counts add up, and the handler label tells handlers apart.
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	m := &Metrics{
		storeCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "store_calls_total",
			Help: "Calls to the session handler, by handler, operation and outcome (ok, not_found, conflict, timeout, unavailable, error).",
		}, []string{"handler", "op", "outcome"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "store_call_duration_seconds",
			Help:    "How long calls to the session handler took, by handler and operation, whatever their outcome.",
			Buckets: LatencyBuckets,
		}, []string{"handler", "op"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "plugin_restarts_total",
			Help: "Times the handler's plugin process was relaunched, by handler and reason (exited, unresponsive).",
		}, []string{"handler", "reason"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "plugin_up",
			Help: "1 while a process of the handler is serving (or the handler is built in), 0 while it is down.",
		}, []string{"handler"}),
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "created_total",
			Help: "Sessions stored under a new id (not counting regenerated ones).",
		}),
		destroyed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "destroyed_total",
			Help: "Stored sessions deleted: by Destroy, or because a request removed all their values.",
		}),
		regenerated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "regenerated_total",
			Help: "Sessions whose values moved to a new id (Regenerate).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "tokens_rejected_total",
			Help: "Stored session tokens the host would not open, by reason (expired, invalid); each gave the request a new session.",
		}, []string{"reason"}),
		recordSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "record_size_bytes",
			Help:    "Size of the sealed session records saved to the handler.",
			Buckets: SizeBuckets,
		}),
	}
	var err error
	register(reg, &m.storeCalls, &err)
	register(reg, &m.storeDuration, &err)
	register(reg, &m.restarts, &err)
	register(reg, &m.up, &err)
	register(reg, &m.created, &err)
	register(reg, &m.destroyed, &err)
	register(reg, &m.regenerated, &err)
	register(reg, &m.rejected, &err)
	register(reg, &m.recordSize, &err)
	if err != nil {
		return nil, err
	}
	// Both reasons exist from the start, so rate() and increase() see the
	// first rejection.
	for _, r := range []string{session.RejectExpired, session.RejectInvalid} {
		m.rejected.WithLabelValues(r)
	}
	return m, nil
}

// register registers *c on reg; when reg already holds an equal collector,
// *c becomes that one. The first error is kept in *errp.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C, errp *error) {
	if *errp != nil {
		return
	}
	err := reg.Register(*c)
	if err == nil {
		return
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return
		}
	}
	*errp = err
}

// Observer returns the loader.Observer of the handler named handler: pass
// it as loader.Config.Observer.
func (m *Metrics) Observer(handler string) loader.Observer {
	o := &observer{
		calls:    m.storeCalls.MustCurryWith(prometheus.Labels{"handler": handler}),
		duration: m.storeDuration.MustCurryWith(prometheus.Labels{"handler": handler}),
		restarts: m.restarts.MustCurryWith(prometheus.Labels{"handler": handler}),
		up:       m.up.WithLabelValues(handler),
	}
	// Both reasons exist from the start, at 0.
	o.restarts.WithLabelValues("exited")
	o.restarts.WithLabelValues("unresponsive")
	return o
}

type observer struct {
	calls    *prometheus.CounterVec
	duration prometheus.ObserverVec
	restarts *prometheus.CounterVec
	up       prometheus.Gauge
}

func (o *observer) Call(op, outcome string, d time.Duration) {
	o.calls.WithLabelValues(op, outcome).Inc()
	o.duration.WithLabelValues(op).Observe(d.Seconds())
}

func (o *observer) Restarted(reason string) { o.restarts.WithLabelValues(reason).Inc() }

func (o *observer) Up(up bool) {
	if up {
		o.up.Set(1)
	} else {
		o.up.Set(0)
	}
}

// The session.Events of a Manager.

// SessionCreated counts a session stored under a new id.
func (m *Metrics) SessionCreated() { m.created.Inc() }

// SessionDestroyed counts a stored session deleted.
func (m *Metrics) SessionDestroyed() { m.destroyed.Inc() }

// SessionRegenerated counts a session moved to a new id.
func (m *Metrics) SessionRegenerated() { m.regenerated.Inc() }

// TokenRejected counts a stored token not opened, by reason.
func (m *Metrics) TokenRejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// RecordSaved observes the size of a record saved.
func (m *Metrics) RecordSaved(bytes int) { m.recordSize.Observe(float64(bytes)) }

var (
	_ loader.Observer = (*observer)(nil)
	_ session.Events  = (*Metrics)(nil)
)
