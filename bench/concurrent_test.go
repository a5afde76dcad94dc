package bench

// The concurrent-on-one-session workload: one client's session, then 64
// requests on it at once, each setting a key of its own (as tabs and
// fetches of one browser do), then one request that counts the keys. A
// session layer that commits whole sessions keeps only the last few; the
// summary reports how many of the 64 writes each variant kept, and how many
// such bursts it serves a second.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/tina4go/sessions/host"
	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/loader"
)

// burst is the number of concurrent writes on one session.
const burst = 64

// keysApp answers /start (create the session), /set?k=K (set key K) and
// /count (the number of keys), through tina4's session API.
func keysApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) { host.FromRequest(r).Set("start", 1) })
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) { host.FromRequest(r).Set(r.URL.Query().Get("k"), 1) })
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(len(host.FromRequest(r).Keys())))
	})
	return mux
}

// scsKeysApp is keysApp through scs.
func scsKeysApp(sm *scs.SessionManager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), "start", 1) })
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), r.URL.Query().Get("k"), 1) })
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(len(sm.Keys(r.Context()))))
	})
	return sm.LoadAndSave(mux)
}

var concurrentVariants = []struct {
	name, desc string
	mk         func(b *testing.B, redisAddr string) http.Handler
}{
	{"a_tina4_plugin", "tina4, Redis handler as a plugin, one host",
		func(b *testing.B, addr string) http.Handler {
			return tina4Redis(b, addr, loader.TransportFast).Wrap(keysApp())
		}},
	{"b_tina4_inprocess", "tina4, the same Redis handler in process, one host",
		func(b *testing.B, addr string) http.Handler {
			return tina4Redis(b, addr, loader.TransportInProcess).Wrap(keysApp())
		}},
	{"c_scs_redisstore", "scs v2 + redisstore",
		func(b *testing.B, addr string) http.Handler { return scsKeysApp(scsRedis(b, addr)) }},
}

var (
	keptMu sync.Mutex
	kept   = map[string][]float64{} // variant -> mean writes kept (of burst), per round
)

// BenchmarkConcurrentSession runs one burst per op: a new session, burst
// concurrent writes of distinct keys on it, and a count of the keys kept.
func BenchmarkConcurrentSession(b *testing.B) {
	rs := redistest.Start(b)
	for round := 1; round <= benchRounds; round++ {
		b.Run("round="+strconv.Itoa(round), func(b *testing.B) {
			for _, v := range concurrentVariants {
				b.Run(v.name, func(b *testing.B) {
					srv := httptest.NewServer(v.mk(b, rs.Addr()))
					defer srv.Close()
					tr := &http.Transport{MaxIdleConns: 2 * burst, MaxIdleConnsPerHost: 2 * burst}
					defer tr.CloseIdleConnections()
					total := 0
					b.ResetTimer()
					start := time.Now()
					for range b.N {
						n, err := oneBurst(tr, srv.URL)
						if err != nil {
							b.Fatal(err)
						}
						total += n
					}
					elapsed := time.Since(start)
					b.StopTimer()
					mean := float64(total) / float64(b.N)
					b.ReportMetric(mean, "kept/64")
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "bursts/s")
					keptMu.Lock()
					for len(kept[v.name]) < round {
						kept[v.name] = append(kept[v.name], 0)
					}
					kept[v.name][round-1] = mean
					keptMu.Unlock()
					record(resultKey{"Concurrent", v.name, round, burst}, sample{n: b.N, elapsed: elapsed})
				})
			}
		})
	}
}

// oneBurst creates a session, writes burst distinct keys to it at once and
// returns how many of them the session kept.
func oneBurst(tr *http.Transport, url string) (int, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: tr}
	if err := fetch(c, url+"/start", nil); err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetch(c, fmt.Sprintf("%s/set?k=k%02d", url, i), nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	var n int
	if err := fetch(c, url+"/count", &n); err != nil {
		return 0, err
	}
	return n - 1, nil // the start key is not one of the burst
}

// fetch GETs url and, when n is not nil, reads the body as a number.
func fetch(c *http.Client, url string, n *int) error {
	req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if n != nil {
		*n, err = strconv.Atoi(string(body))
	}
	return err
}

// concurrentSummary prints the kept writes and bursts/s of every variant.
// Callers hold resultsMu.
func concurrentSummary(w io.Writer) {
	keptMu.Lock()
	defer keptMu.Unlock()
	fmt.Fprintf(w, "\n## Concurrent writes on one session: %d requests at once, each setting its own key (%d rounds)\n\n", burst, benchRounds)
	fmt.Fprintln(w, "| variant | writes kept (of 64), mean | bursts/s, mean |")
	fmt.Fprintln(w, "| :--- | ---: | ---: |")
	for _, v := range concurrentVariants {
		var sum float64
		for _, k := range kept[v.name] {
			sum += k
		}
		keptMean := sum / float64(max(len(kept[v.name]), 1))
		fmt.Fprintf(w, "| %s | %s | %s |\n", v.desc, format("%.1f", keptMean), format("%.0f", meanOf("Concurrent", v.name, burst, sample.perSec)))
	}
}
