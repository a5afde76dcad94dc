package host

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/sdk"
)

func metricsHost(t *testing.T, rec *recorder, reg prometheus.Registerer) *Host {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Load(config.Options{Dir: dir, Environ: []string{
		"TINA4_SESSION_HANDLER=Recorder", "TINA4_PLUGIN_DIR=" + dir, "TINA4_SECRET=host-test-secret-0123456789abcdef",
	}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(context.Background(), WithConfig(cfg), WithHandler("Recorder", "test", rec),
		WithLogger(slog.New(slog.DiscardHandler)), WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestWithMetricsCountsWhatTheHostDoes(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, metricsHost(t, rec, reg))
	c := client(t)

	do(t, c, "POST", srv.URL+"/set?v=bob") // created: Save
	do(t, c, "GET", srv.URL+"/get")        // Load
	do(t, c, "POST", srv.URL+"/login")     // regenerated: Load, Close, Save
	do(t, c, "POST", srv.URL+"/logout")    // destroyed: Load, Close

	// A record that does not open: its token is rejected as invalid.
	do(t, c, "POST", srv.URL+"/set?v=carol") // created: Save
	rec.mu.Lock()
	for id, r := range rec.m {
		r.Data = append([]byte(nil), r.Data...)
		r.Data[len(r.Data)-3] ^= 1
		rec.m[id] = r
	}
	rec.mu.Unlock()
	if _, body := do(t, c, "GET", srv.URL+"/get"); body != "" { // Load
		t.Fatalf("a damaged record must read as no session, got %q", body)
	}

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
# HELP tina4_session_plugin_up 1 while a process of the handler is serving (or the handler is built in), 0 while it is down.
# TYPE tina4_session_plugin_up gauge
tina4_session_plugin_up{handler="Recorder"} 1
# HELP tina4_session_plugin_restarts_total Times the handler's plugin process was relaunched, by handler and reason (exited, unresponsive).
# TYPE tina4_session_plugin_restarts_total counter
tina4_session_plugin_restarts_total{handler="Recorder",reason="exited"} 0
tina4_session_plugin_restarts_total{handler="Recorder",reason="unresponsive"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"tina4_session_created_total", "tina4_session_destroyed_total", "tina4_session_regenerated_total",
		"tina4_session_tokens_rejected_total", "tina4_session_plugin_up", "tina4_session_plugin_restarts_total"); err != nil {
		t.Fatal(err)
	}

	// The store calls, as the handler saw them.
	calls := map[string]int{}
	for _, op := range rec.ops() {
		calls[strings.Fields(op)[0]]++
	}
	if calls["Load"] != 4 || calls["Save"] != 3 || calls["Close"] != 2 {
		t.Fatalf("the handler saw %v", calls)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tina4_session_store_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["handler"] != "Recorder" {
				t.Errorf("store call with handler label %q", l["handler"])
			}
			if l["outcome"] == "ok" {
				counted[l["op"]] += m.GetCounter().GetValue()
			}
		}
	}
	for _, op := range []string{"Load", "Save", "Close"} {
		if counted[op] != float64(calls[op]) {
			t.Errorf("store_calls_total{op=%q,outcome=\"ok\"} = %v, the handler saw %d", op, counted[op], calls[op])
		}
	}
	if counted["Info"] < 1 {
		t.Errorf("Open's Info call was not counted: %v", counted)
	}
	if n, err := testutil.GatherAndCount(reg, "tina4_session_record_size_bytes"); err != nil || n != 1 {
		t.Errorf("record size histogram: %d series, %v", n, err)
	}
}

func TestTwoHostsOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := app(t, metricsHost(t, &recorder{m: map[string]sdk.Record{}}, reg))
	b := app(t, metricsHost(t, &recorder{m: map[string]sdk.Record{}}, reg))
	do(t, client(t), "POST", a.URL+"/set?v=x")
	do(t, client(t), "POST", b.URL+"/set?v=y")
	want := `
# HELP tina4_session_created_total Sessions stored under a new id (not counting regenerated ones).
# TYPE tina4_session_created_total counter
tina4_session_created_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tina4_session_created_total"); err != nil {
		t.Fatal(err)
	}
}

func TestNoMetricsWithoutTheOption(t *testing.T) {
	rec := &recorder{m: map[string]sdk.Record{}}
	srv := app(t, testHost(t, rec))
	do(t, client(t), "POST", srv.URL+"/set?v=x")
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "tina4_") {
			t.Fatalf("%s registered on the default registry without WithMetrics", mf.GetName())
		}
	}
}
