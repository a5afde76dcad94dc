package bench

// The concurrent-on-one-session workloads: one client's session, then 64
// requests on it at once, then one request that reads the result.
//
//   - keys: each request sets a key of its own (as tabs and fetches of one
//     browser do). A session layer that commits whole sessions keeps only
//     the last few.
//   - incr: each request adds one to the same counter (read-modify-write).
//     Only a lock from load to commit keeps all 64.
//
// The summary reports how many of the 64 writes each variant kept, and how
// many such bursts it serves a second. Variants with two hosts send the
// requests of a burst to two hosts in turn, as a load balancer does.

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
	mux.HandleFunc("/incr", func(w http.ResponseWriter, r *http.Request) {
		s := host.FromRequest(r)
		var n int
		s.Decode("n", &n)
		s.Set("n", n+1)
	})
	mux.HandleFunc("/n", func(w http.ResponseWriter, r *http.Request) {
		var n int
		host.FromRequest(r).Decode("n", &n)
		io.WriteString(w, strconv.Itoa(n))
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
	mux.HandleFunc("/incr", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "n", sm.GetInt(r.Context(), "n")+1)
	})
	mux.HandleFunc("/n", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(sm.GetInt(r.Context(), "n")))
	})
	return sm.LoadAndSave(mux)
}

// lockEnv turns the session lock on, with a wait long enough for a burst.
var lockEnv = []string{"TINA4_SESSION_LOCK=true", "TINA4_SESSION_LOCK_WAIT=60s"}

var concurrentVariants = []struct {
	name, desc string
	// mk returns the app as one or more hosts sharing the store.
	mk func(b *testing.B, redisAddr string) []http.Handler
}{
	{"a_tina4_plugin", "tina4, Redis handler as a plugin, one host",
		func(b *testing.B, addr string) []http.Handler {
			return []http.Handler{tina4Redis(b, addr, loader.TransportFast).Wrap(keysApp())}
		}},
	{"b_tina4_inprocess", "tina4, the same Redis handler in process, one host",
		func(b *testing.B, addr string) []http.Handler {
			return []http.Handler{tina4Redis(b, addr, loader.TransportInProcess).Wrap(keysApp())}
		}},
	{"c_scs_redisstore", "scs v2 + redisstore, one host",
		func(b *testing.B, addr string) []http.Handler { return []http.Handler{scsKeysApp(scsRedis(b, addr))} }},
	{"d_tina4_plugin_2hosts", "tina4, Redis handler as a plugin, two hosts",
		func(b *testing.B, addr string) []http.Handler {
			return []http.Handler{tina4Redis(b, addr, loader.TransportFast).Wrap(keysApp()), tina4Redis(b, addr, loader.TransportFast).Wrap(keysApp())}
		}},
	{"e_tina4_plugin_2hosts_lock", "tina4, as d with TINA4_SESSION_LOCK=true",
		func(b *testing.B, addr string) []http.Handler {
			return []http.Handler{tina4Redis(b, addr, loader.TransportFast, lockEnv...).Wrap(keysApp()), tina4Redis(b, addr, loader.TransportFast, lockEnv...).Wrap(keysApp())}
		}},
	{"f_scs_redisstore_2hosts", "scs v2 + redisstore, two hosts",
		func(b *testing.B, addr string) []http.Handler {
			return []http.Handler{scsKeysApp(scsRedis(b, addr)), scsKeysApp(scsRedis(b, addr))}
		}},
}

// workloads of BenchmarkConcurrentSession.
var concurrentWorkloads = []struct {
	name, desc string
	start      string
	write      func(i int) string // the path of the i-th concurrent request
	read       string             // the path that answers the count
	offset     int                // subtracted from the count
}{
	{"keys", "each setting its own key", "/start", func(i int) string { return fmt.Sprintf("/set?k=k%02d", i) }, "/count", 1},
	{"incr", "each adding one to the same counter", "/start", func(int) string { return "/incr" }, "/n", 0},
}

var (
	keptMu sync.Mutex
	kept   = map[string][]float64{} // workload/variant -> mean writes kept (of burst), per round
)

// BenchmarkConcurrentSession runs one burst per op: a new session, burst
// concurrent writes on it, and a count of the writes kept.
func BenchmarkConcurrentSession(b *testing.B) {
	rs := redistest.Start(b)
	for round := 1; round <= benchRounds; round++ {
		b.Run("round="+strconv.Itoa(round), func(b *testing.B) {
			for _, w := range concurrentWorkloads {
				for _, v := range concurrentVariants {
					b.Run(w.name+"/"+v.name, func(b *testing.B) {
						var urls []string
						for _, h := range v.mk(b, rs.Addr()) {
							srv := httptest.NewServer(h)
							defer srv.Close()
							urls = append(urls, srv.URL)
						}
						tr := &http.Transport{MaxIdleConns: 2 * burst, MaxIdleConnsPerHost: 2 * burst}
						defer tr.CloseIdleConnections()
						total := 0
						b.ResetTimer()
						start := time.Now()
						for range b.N {
							n, err := oneBurst(tr, urls, w.start, w.write, w.read)
							if err != nil {
								b.Fatal(err)
							}
							total += n - w.offset
						}
						elapsed := time.Since(start)
						b.StopTimer()
						mean := float64(total) / float64(b.N)
						b.ReportMetric(mean, "kept/64")
						b.ReportMetric(float64(b.N)/elapsed.Seconds(), "bursts/s")
						key := w.name + "/" + v.name
						keptMu.Lock()
						for len(kept[key]) < round {
							kept[key] = append(kept[key], 0)
						}
						kept[key][round-1] = mean
						keptMu.Unlock()
						record(resultKey{"Concurrent-" + w.name, v.name, round, burst}, sample{n: b.N, elapsed: elapsed})
					})
				}
			}
		})
	}
}

// oneBurst creates a session, sends burst requests on it at once, spread
// over urls in turn, and returns the count read back.
func oneBurst(tr *http.Transport, urls []string, start string, write func(int) string, read string) (int, error) {
	jar, _ := cookiejar.New(nil) // cookies ignore the port: every url gets the session
	c := &http.Client{Jar: jar, Transport: tr}
	if err := fetch(c, urls[0]+start, nil); err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fetch(c, urls[i%len(urls)]+write(i), nil)
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
	if err := fetch(c, urls[len(urls)-1]+read, &n); err != nil {
		return 0, err
	}
	return n, nil
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
	for _, wl := range concurrentWorkloads {
		fmt.Fprintf(w, "\n## Concurrent writes on one session: %d requests at once, %s (%d rounds)\n\n", burst, wl.desc, benchRounds)
		fmt.Fprintln(w, "| variant | writes kept (of 64), mean | bursts/s, mean |")
		fmt.Fprintln(w, "| :--- | ---: | ---: |")
		for _, v := range concurrentVariants {
			key := wl.name + "/" + v.name
			var sum float64
			for _, k := range kept[key] {
				sum += k
			}
			keptMean := sum / float64(max(len(kept[key]), 1))
			fmt.Fprintf(w, "| %s | %s | %s |\n", v.desc, format("%.1f", keptMean), format("%.0f", meanOf("Concurrent-"+wl.name, v.name, burst, sample.perSec)))
		}
	}
}
