package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrape GETs /metrics and returns its body.
func scrape(t *testing.T, s *hostProc) string {
	t.Helper()
	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if sessionCookie(resp) != nil {
		t.Fatalf("/metrics must not set a session cookie")
	}
	return string(b)
}

// sample returns the value of one series (its name and labels exactly as
// the text format writes them, labels in name order) and whether it is there.
func sample(body, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return v, err == nil
	}
	return 0, false
}

func wantSample(t *testing.T, body, series string, want float64) {
	t.Helper()
	got, ok := sample(body, series)
	if !ok {
		t.Errorf("%s: not in /metrics", series)
	} else if got != want {
		t.Errorf("%s = %v, want %v", series, got, want)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	s := startServer(t, serverOpts{})
	_, health := s.health(t)
	handler, _ := health["handler"].(string)
	if handler == "" {
		t.Fatalf("healthz names no handler: %v", health)
	}
	hl := `handler="` + handler + `"`
	var ids []string // every session id the server gave out

	// One session: created, read, regenerated, destroyed.
	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`); r.Code != 200 {
		t.Fatalf("POST: %d", r.Code)
	}
	ids = append(ids, jarID(t, c, s))
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Values["user"] != "alice" {
		t.Fatalf("GET: %v", r.Values)
	}
	if r := call(t, c, "POST", s.url("/api/session/regenerate"), ""); r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("regenerate: %d %v", r.Code, r.Values)
	}
	ids = append(ids, jarID(t, c, s))
	if ids[1] == ids[0] {
		t.Fatal("regenerate kept the id")
	}
	if r := call(t, c, "DELETE", s.url("/api/session"), ""); r.Code != 200 {
		t.Fatalf("DELETE: %d", r.Code)
	}

	// Another, whose stored record is then damaged: its token is rejected.
	c2 := newClient(t)
	call(t, c2, "POST", s.url("/api/session"), `{"user":"bob"}`)
	victim := jarID(t, c2, s)
	ids = append(ids, victim)
	file := sessionFile(t, s.folder, victim)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-5] ^= 0x01
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := call(t, c2, "GET", s.url("/api/session"), ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("a damaged record must read as no session, got %d %v", r.Code, r.Values)
	}

	// A well-formed id the store does not know is a Load that finds
	// nothing, not a rejected token; a malformed one never reaches the
	// store at all.
	unknown := strings.Repeat("A", 43)
	if r := withCookie(t, "GET", s.url("/api/session"), unknown, ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("unknown id: %d %v", r.Code, r.Values)
	}
	if r := withCookie(t, "GET", s.url("/api/session"), "../../etc/passwd", ""); r.Code != 200 {
		t.Fatalf("malformed cookie: %d", r.Code)
	}
	ids = append(ids, unknown)

	body := scrape(t, s)
	wantSample(t, body, "tina4_session_created_total", 2)
	wantSample(t, body, "tina4_session_regenerated_total", 1)
	wantSample(t, body, "tina4_session_destroyed_total", 1)
	wantSample(t, body, `tina4_session_tokens_rejected_total{reason="invalid"}`, 1)
	wantSample(t, body, `tina4_session_tokens_rejected_total{reason="expired"}`, 0)
	wantSample(t, body, `tina4_session_plugin_up{`+hl+`}`, 1)
	wantSample(t, body, `tina4_session_plugin_restarts_total{`+hl+`,reason="exited"}`, 0)
	// Loads: alice's GET, regenerate (twice: the request's load, then the
	// check that the record still exists before it moves), DELETE, and
	// bob's damaged GET.
	wantSample(t, body, `tina4_session_store_calls_total{`+hl+`,op="Load",outcome="ok"}`, 5)
	wantSample(t, body, `tina4_session_store_calls_total{`+hl+`,op="Load",outcome="not_found"}`, 1)
	// Regenerate and DELETE each delete a record.
	wantSample(t, body, `tina4_session_store_calls_total{`+hl+`,op="Close",outcome="ok"}`, 2)
	// Saves: alice, her regenerated record, bob; conditional, as the file
	// handler has record versions.
	wantSample(t, body, `tina4_session_store_calls_total{`+hl+`,op="SaveIf",outcome="ok"}`, 3)
	wantSample(t, body, `tina4_session_store_call_duration_seconds_count{`+hl+`,op="Load"}`, 6)
	wantSample(t, body, `tina4_session_store_call_duration_seconds_bucket{`+hl+`,op="Load",le="+Inf"}`, 6)
	wantSample(t, body, `tina4_session_record_size_bytes_count`, 3)
	for _, outcome := range []string{"error", "timeout", "unavailable", "conflict"} {
		for _, op := range []string{"Load", "Save", "SaveIf", "Close"} {
			if v, ok := sample(body, `tina4_session_store_calls_total{`+hl+`,op="`+op+`",outcome="`+outcome+`"}`); ok && v != 0 {
				t.Errorf("%s %s: %v", op, outcome, v)
			}
		}
	}
	// The default registry: the Go runtime and the process are there too.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := sample(body, name); !ok {
			t.Errorf("%s: not in /metrics", name)
		}
	}
	for _, id := range ids {
		if strings.Contains(body, id) {
			t.Fatalf("/metrics holds a session id (%s)", id)
		}
	}
	if strings.Contains(body, testSecret) {
		t.Fatal("/metrics holds the secret")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
		return
	}

	// A killed plugin is restarted: the counter says so, and up is 1 again.
	old := s.pluginPID(t)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		body = scrape(t, s)
		restarts, _ := sample(body, `tina4_session_plugin_restarts_total{`+hl+`,reason="exited"}`)
		up, _ := sample(body, `tina4_session_plugin_up{`+hl+`}`)
		if restarts == 1 && up == 1 {
			break
		}
		if restarts > 1 {
			t.Fatalf("one kill, %v restarts", restarts)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restart counted within 30s (restarts %v, up %v):\n%s\n%s", restarts, up, body, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitHealthy(t, s, 10*time.Second)
	if pid := s.pluginPID(t); pid == old {
		t.Fatalf("healthz still reports the killed pid %d", pid)
	}
	body = scrape(t, s)
	wantSample(t, body, `tina4_session_plugin_restarts_total{`+hl+`,reason="exited"}`, 1)
	wantSample(t, body, `tina4_session_plugin_restarts_total{`+hl+`,reason="unresponsive"}`, 0)
	wantSample(t, body, `tina4_session_plugin_up{`+hl+`}`, 1)
}
