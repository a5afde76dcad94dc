package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tina4go/sessions/loader"
)

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestStoreCallsByHandlerOpAndOutcome(t *testing.T) {
	m, _ := newMetrics(t)
	o := m.Observer("SessionFileHandler")
	o.Call("Load", loader.OutcomeOK, 200*time.Microsecond)
	o.Call("Load", loader.OutcomeOK, 300*time.Microsecond)
	o.Call("Load", loader.OutcomeNotFound, 100*time.Microsecond)
	o.Call("SaveIf", loader.OutcomeConflict, time.Millisecond)
	o.Call("Save", loader.OutcomeTimeout, 3*time.Second)
	m.Observer("SessionRedisHandler").Call("Load", loader.OutcomeUnavailable, 0)

	want := `
# HELP tina4_session_store_calls_total Calls to the session handler, by handler, operation and outcome (ok, not_found, conflict, timeout, unavailable, error).
# TYPE tina4_session_store_calls_total counter
tina4_session_store_calls_total{handler="SessionFileHandler",op="Load",outcome="not_found"} 1
tina4_session_store_calls_total{handler="SessionFileHandler",op="Load",outcome="ok"} 2
tina4_session_store_calls_total{handler="SessionFileHandler",op="Save",outcome="timeout"} 1
tina4_session_store_calls_total{handler="SessionFileHandler",op="SaveIf",outcome="conflict"} 1
tina4_session_store_calls_total{handler="SessionRedisHandler",op="Load",outcome="unavailable"} 1
`
	if err := testutil.CollectAndCompare(m.storeCalls, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// One histogram per (handler, op), whatever the outcome.
	if n := testutil.CollectAndCount(m.storeDuration); n != 4 {
		t.Fatalf("latency histograms: got %d, want 4 (file Load, Save, SaveIf; redis Load)", n)
	}
}

func TestLatencyHistogramBuckets(t *testing.T) {
	m, _ := newMetrics(t)
	o := m.Observer("h")
	o.Call("Load", loader.OutcomeOK, 40*time.Microsecond) // under the first bucket
	o.Call("Load", loader.OutcomeOK, 700*time.Microsecond)
	o.Call("Load", loader.OutcomeError, 6*time.Second) // past the last: +Inf only
	want := `
# HELP tina4_session_store_call_duration_seconds How long calls to the session handler took, by handler and operation, whatever their outcome.
# TYPE tina4_session_store_call_duration_seconds histogram
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="5e-05"} 1
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.0001"} 1
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.00025"} 1
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.0005"} 1
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.001"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.0025"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.005"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.01"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.025"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.05"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.1"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.25"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="0.5"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="1"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="2.5"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="5"} 2
tina4_session_store_call_duration_seconds_bucket{handler="h",op="Load",le="+Inf"} 3
tina4_session_store_call_duration_seconds_sum{handler="h",op="Load"} 6.00074
tina4_session_store_call_duration_seconds_count{handler="h",op="Load"} 3
`
	if err := testutil.CollectAndCompare(m.storeDuration, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestRestartsAndUp(t *testing.T) {
	m, reg := newMetrics(t)
	o := m.Observer("SessionFileHandler")
	// Both reasons are there at 0 before the first restart.
	if got := testutil.ToFloat64(m.restarts.WithLabelValues("SessionFileHandler", "exited")); got != 0 {
		t.Fatalf("restarts before any: %v", got)
	}
	if n := testutil.CollectAndCount(m.restarts); n != 2 {
		t.Fatalf("restart series: got %d, want 2 (exited, unresponsive)", n)
	}
	o.Up(true)
	if got := testutil.ToFloat64(m.up.WithLabelValues("SessionFileHandler")); got != 1 {
		t.Fatalf("up after Up(true): %v", got)
	}
	o.Up(false)
	if got := testutil.ToFloat64(m.up.WithLabelValues("SessionFileHandler")); got != 0 {
		t.Fatalf("up after Up(false): %v", got)
	}
	o.Restarted("exited")
	o.Up(true)
	o.Restarted("unresponsive")
	o.Restarted("exited")
	want := `
# HELP tina4_session_plugin_restarts_total Times the handler's plugin process was relaunched, by handler and reason (exited, unresponsive).
# TYPE tina4_session_plugin_restarts_total counter
tina4_session_plugin_restarts_total{handler="SessionFileHandler",reason="exited"} 2
tina4_session_plugin_restarts_total{handler="SessionFileHandler",reason="unresponsive"} 1
# HELP tina4_session_plugin_up 1 while a process of the handler is serving (or the handler is built in), 0 while it is down.
# TYPE tina4_session_plugin_up gauge
tina4_session_plugin_up{handler="SessionFileHandler"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"tina4_session_plugin_restarts_total", "tina4_session_plugin_up"); err != nil {
		t.Fatal(err)
	}
}

func TestSessionEvents(t *testing.T) {
	m, reg := newMetrics(t)
	m.SessionCreated()
	m.SessionCreated()
	m.SessionDestroyed()
	m.SessionRegenerated()
	m.TokenRejected("invalid")
	m.RecordSaved(100)
	m.RecordSaved(5000)
	want := `
# HELP tina4_session_created_total Sessions stored under a new id (not counting regenerated ones).
# TYPE tina4_session_created_total counter
tina4_session_created_total 2
# HELP tina4_session_destroyed_total Stored sessions deleted: by Destroy, or because a request removed all their values.
# TYPE tina4_session_destroyed_total counter
tina4_session_destroyed_total 1
# HELP tina4_session_regenerated_total Sessions whose values moved to a new id (Regenerate).
# TYPE tina4_session_regenerated_total counter
tina4_session_regenerated_total 1
# HELP tina4_session_tokens_rejected_total Stored session tokens the host would not open, by reason (expired, invalid); each gave the request a new session.
# TYPE tina4_session_tokens_rejected_total counter
tina4_session_tokens_rejected_total{reason="expired"} 0
tina4_session_tokens_rejected_total{reason="invalid"} 1
# HELP tina4_session_record_size_bytes Size of the sealed session records saved to the handler.
# TYPE tina4_session_record_size_bytes histogram
tina4_session_record_size_bytes_bucket{le="64"} 0
tina4_session_record_size_bytes_bucket{le="256"} 1
tina4_session_record_size_bytes_bucket{le="1024"} 1
tina4_session_record_size_bytes_bucket{le="4096"} 1
tina4_session_record_size_bytes_bucket{le="16384"} 2
tina4_session_record_size_bytes_bucket{le="65536"} 2
tina4_session_record_size_bytes_bucket{le="262144"} 2
tina4_session_record_size_bytes_bucket{le="1.048576e+06"} 2
tina4_session_record_size_bytes_bucket{le="4.194304e+06"} 2
tina4_session_record_size_bytes_bucket{le="+Inf"} 2
tina4_session_record_size_bytes_sum 5100
tina4_session_record_size_bytes_count 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"tina4_session_created_total", "tina4_session_destroyed_total", "tina4_session_regenerated_total",
		"tina4_session_tokens_rejected_total", "tina4_session_record_size_bytes"); err != nil {
		t.Fatal(err)
	}
}

// The names follow Prometheus's conventions, and the registry (pedantic)
// accepts them all.
func TestNamesAndLint(t *testing.T) {
	m, reg := newMetrics(t)
	o := m.Observer("h")
	o.Call("Load", "ok", time.Millisecond)
	o.Up(true)
	m.SessionCreated()
	m.RecordSaved(10)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{
		"tina4_session_created_total",
		"tina4_session_destroyed_total",
		"tina4_session_plugin_restarts_total",
		"tina4_session_plugin_up",
		"tina4_session_record_size_bytes",
		"tina4_session_regenerated_total",
		"tina4_session_store_call_duration_seconds",
		"tina4_session_store_calls_total",
		"tina4_session_tokens_rejected_total",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("metrics:\n got %v\nwant %v", names, want)
	}
}

// A second host on the same registry shares the collectors instead of
// failing to register.
func TestRegisteringTwiceShares(t *testing.T) {
	m1, reg := newMetrics(t)
	m2, err := New(reg)
	if err != nil {
		t.Fatalf("second New on one registry: %v", err)
	}
	m1.SessionCreated()
	m2.SessionCreated()
	m2.Observer("h").Call("Load", "ok", 0)
	if got := testutil.ToFloat64(m1.created); got != 2 {
		t.Fatalf("created after one each: %v, want 2", got)
	}
	if got := testutil.ToFloat64(m1.storeCalls.WithLabelValues("h", "Load", "ok")); got != 1 {
		t.Fatalf("store call through the second: %v, want 1", got)
	}
}

// A registry holding a different metric of the same name is an error.
func TestConflictingRegistrationFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "tina4_session_created_total", Help: "x"}))
	if _, err := New(reg); err == nil {
		t.Fatal("New must fail when a different collector holds one of its names")
	}
}

func TestNilRegistererIsTheDefault(t *testing.T) {
	m, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range []prometheus.Collector{m.storeCalls, m.storeDuration, m.restarts, m.up, m.created, m.destroyed, m.regenerated, m.rejected, m.recordSize} {
			prometheus.DefaultRegisterer.Unregister(c)
		}
	}()
	m.SessionRegenerated()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tina4_session_regenerated_total" && mf.GetMetric()[0].GetCounter().GetValue() == 1 {
			return
		}
	}
	t.Fatal("tina4_session_regenerated_total not on the default registry")
}
