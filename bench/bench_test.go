// Package bench measures tina4go/sessions against alexedwards/scs on the same
// HTTP workload and the same redis-server. It is its own Go module so scs
// never becomes a dependency of the product. Run it with `make bench`.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	redigo "github.com/gomodule/redigo/redis"

	"github.com/tina4go/sessions/host"
	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/internal/redistest"
	redishandler "github.com/tina4go/sessions/plugins/redis"
)

var pluginDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tina4-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginDir = filepath.Join(dir, "plugins")
	for _, name := range []string{"SessionRedisHandler", "SessionFileHandler"} {
		pkg := map[string]string{
			"SessionRedisHandler": "github.com/tina4go/sessions/plugins/redis/cmd/SessionRedisHandler",
			"SessionFileHandler":  "github.com/tina4go/sessions/plugins/file/cmd/SessionFileHandler",
		}[name]
		out, err := exec.Command("go", "build", "-o", filepath.Join(pluginDir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	os.Chmod(pluginDir, 0o755)
	code := m.Run()
	printRatios()
	os.RemoveAll(dir)
	os.Exit(code)
}

// counter is the workload: read a counter from the session, add one, write it back.
func tina4Counter(w http.ResponseWriter, r *http.Request) {
	s := host.FromRequest(r)
	var n int
	s.Decode("n", &n)
	s.Set("n", n+1)
	io.WriteString(w, strconv.Itoa(n+1))
}

func scsCounter(sm *scs.SessionManager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := sm.GetInt(r.Context(), "n") + 1
		sm.Put(r.Context(), "n", n)
		io.WriteString(w, strconv.Itoa(n))
	})
}

// tina4Server starts our host on redis with the handler as a plugin binary
// (inProcess=false) or in process (inProcess=true).
func tina4Server(b *testing.B, addr string, inProcess bool) http.Handler {
	name := "SessionRedisHandler"
	env := []string{
		"TINA4_PLUGIN_DIR=" + pluginDir,
		"TINA4_SECRET=bench-secret-0123456789abcdef0123456789",
		"TINA4_SESSION_REDIS_URL=redis://" + addr + "/0",
		"TINA4_SESSION_HANDLER=" + name,
	}
	opts := []host.Option{host.WithLogger(slog.New(slog.DiscardHandler))}
	if inProcess {
		// A name with no binary in the plugin dir, served by the same
		// handler code in process.
		name = "RedisInProcess"
		env[3] = "TINA4_SESSION_HANDLER=" + name
		ro, err := redishandler.OptionsFromEnv(func(k string) string {
			if k == "TINA4_SESSION_REDIS_URL" {
				return "redis://" + addr + "/0"
			}
			return ""
		})
		if err != nil {
			b.Fatal(err)
		}
		ro.Logger = slog.New(slog.DiscardHandler)
		rh, err := redishandler.New(ro)
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, host.WithHandler(name, "bench", rh))
	}
	cfg, err := config.Load(config.Options{Dir: b.TempDir(), Environ: env})
	if err != nil {
		b.Fatal(err)
	}
	h, err := host.Open(context.Background(), append(opts, host.WithConfig(cfg))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h.Wrap(http.HandlerFunc(tina4Counter))
}

// fileServer starts our host on the file handler, as a plugin binary or
// (the built-in) in process.
func fileServer(b *testing.B, inProcess bool) http.Handler {
	dir := pluginDir
	if inProcess {
		dir = b.TempDir() // no binary: the built-in serves
	}
	cfg, err := config.Load(config.Options{Dir: b.TempDir(), Environ: []string{
		"TINA4_PLUGIN_DIR=" + dir,
		"TINA4_SECRET=bench-secret-0123456789abcdef0123456789",
		"TINA4_SESSION_FOLDER=" + b.TempDir(),
	}})
	if err != nil {
		b.Fatal(err)
	}
	h, err := host.Open(context.Background(), host.WithConfig(cfg), host.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h.Wrap(http.HandlerFunc(tina4Counter))
}

func scsServer(b *testing.B, addr string) http.Handler {
	pool := &redigo.Pool{MaxIdle: 64, Dial: func() (redigo.Conn, error) { return redigo.Dial("tcp", addr) }}
	b.Cleanup(func() { pool.Close() })
	sm := scs.New()
	sm.Store = redisstore.New(pool)
	sm.Lifetime = 30 * time.Minute
	return sm.LoadAndSave(scsCounter(sm))
}

var (
	resultsMu sync.Mutex
	results   = map[string]float64{} // "variant/c=N" -> req/s
)

// run drives the handler over a loopback listener with c clients, each on
// its own session, for b.N requests in all.
func run(b *testing.B, h http.Handler, c int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConns: c * 2, MaxIdleConnsPerHost: c * 2}
	defer tr.CloseIdleConnections()
	clients := make([]*http.Client, c)
	for i := range clients {
		jar, _ := cookiejar.New(nil)
		clients[i] = &http.Client{Jar: jar, Transport: tr}
		get(b, clients[i], srv.URL) // create the session
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func(cl *http.Client) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				get(b, cl, srv.URL)
			}
		}(cl)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	rps := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rps, "req/s")
	resultsMu.Lock()
	results[b.Name()] = rps
	resultsMu.Unlock()
}

func get(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("status %d", resp.StatusCode)
	}
}

// BenchmarkCounter runs the same workload against (a) our host with
// SessionRedisHandler as a plugin process, (b) our host with the same
// handler in process, (c) scs v2 with its Redis store, all on one
// redis-server, and (d, e) our host on the file handler as a plugin and
// built in, at 1 and 64 concurrent clients. allocs/op counts the whole
// benchmark process (HTTP client, host and, for b, c and e, the store
// client), not the plugin process.
func BenchmarkCounter(b *testing.B) {
	rs := redistest.Start(b)
	variants := []struct {
		name string
		mk   func(b *testing.B) http.Handler
	}{
		{"a_tina4_plugin", func(b *testing.B) http.Handler { return tina4Server(b, rs.Addr(), false) }},
		{"b_tina4_inprocess", func(b *testing.B) http.Handler { return tina4Server(b, rs.Addr(), true) }},
		{"c_scs_redisstore", func(b *testing.B) http.Handler { return scsServer(b, rs.Addr()) }},
		{"d_tina4_file_plugin", func(b *testing.B) http.Handler { return fileServer(b, false) }},
		{"e_tina4_file_inprocess", func(b *testing.B) http.Handler { return fileServer(b, true) }},
	}
	for _, c := range []int{1, 64} {
		for _, v := range variants {
			b.Run(fmt.Sprintf("%s/c=%d", v.name, c), func(b *testing.B) {
				run(b, v.mk(b), c)
			})
		}
	}
}

func printRatios() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	find := func(prefix string, c int) float64 {
		for k, v := range results {
			if strings.Contains(k, prefix+"/c="+strconv.Itoa(c)) {
				return v
			}
		}
		return 0
	}
	var keys []string
	for k := range results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println("\nrequests/s (last run of each):")
	for _, k := range keys {
		fmt.Printf("  %-50s %10.0f\n", k, results[k])
	}
	for _, c := range []int{1, 64} {
		a, bb, cc := find("a_tina4_plugin", c), find("b_tina4_inprocess", c), find("c_scs_redisstore", c)
		if a > 0 && cc > 0 {
			fmt.Printf("c=%-3d (a)/(c) plugin vs scs+redis:     %.2fx\n", c, a/cc)
		}
		if a > 0 && bb > 0 {
			fmt.Printf("c=%-3d (a)/(b) plugin vs in-process:    %.2fx\n", c, a/bb)
		}
		if d, e := find("d_tina4_file_plugin", c), find("e_tina4_file_inprocess", c); d > 0 && e > 0 {
			fmt.Printf("c=%-3d (d)/(e) file plugin vs built-in: %.2fx\n", c, d/e)
		}
	}
}
