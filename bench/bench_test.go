// Package bench measures tina4go/sessions against alexedwards/scs on the same
// HTTP workload and the same redis-server, and the plugin transports against
// a raw Unix socket (transport_test.go). It is its own Go module so scs never
// becomes a dependency of the product. Run it with `make bench`; after the
// run, TestMain prints one summary (report_test.go).
//
// Every benchmark runs in R interleaved rounds (BENCH_ROUNDS, default 2):
// each round goes through every variant once, so drift on a shared machine
// (CPU frequency, other load) hits every variant alike instead of whichever
// happened to run last. The summary reports each round and the mean.
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
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	redigo "github.com/gomodule/redigo/redis"

	"github.com/tina4go/sessions/host"
	"github.com/tina4go/sessions/host/config"
	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/loader"
	redishandler "github.com/tina4go/sessions/plugins/redis"
)

var (
	// pluginDir holds the plugin binaries TestMain builds.
	pluginDir string
	// benchRounds is how many interleaved rounds every benchmark runs.
	benchRounds = 2
	// concurrencies are the numbers of concurrent callers every variant runs at.
	concurrencies = []int{1, 64}
)

// plugins are the binaries TestMain builds into pluginDir, by handler name.
var plugins = map[string]string{
	"SessionRedisHandler": "github.com/tina4go/sessions/plugins/redis/cmd/SessionRedisHandler",
	"SessionFileHandler":  "github.com/tina4go/sessions/plugins/file/cmd/SessionFileHandler",
	"Echo":                "github.com/tina4go/sessions/bench/testdata/echo",
}

func TestMain(m *testing.M) {
	// The transport benchmark re-executes this binary as the server end of
	// its sockets (transport_test.go); such a child runs nothing else.
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	if v := os.Getenv("BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "BENCH_ROUNDS=%s: want a whole number of rounds, 1 or more\n", v)
			os.Exit(2)
		}
		benchRounds = n
	}
	dir, err := os.MkdirTemp("", "tina4-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		// The loader refuses a plugin directory or binary that others can
		// write to, so set the modes whatever the umask.
		pluginDir = filepath.Join(dir, "plugins")
		if err := os.Mkdir(pluginDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.Chmod(pluginDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for name, pkg := range plugins {
			bin := filepath.Join(pluginDir, name)
			if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
				return 1
			}
			if err := os.Chmod(bin, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		code := m.Run()
		printSummary(os.Stdout)
		return code
	}()
	os.Exit(code)
}

// The HTTP workload: read a counter from the session, add one, write it
// back, and answer with the new value.

func tina4Counter(w http.ResponseWriter, r *http.Request) {
	s := host.FromRequest(r)
	var n int
	s.Decode("n", &n)
	s.Set("n", n+1)
	io.WriteString(w, strconv.Itoa(n+1))
}

// counter is tina4Counter as an http.Handler.
var counter = http.HandlerFunc(tina4Counter)

func scsCounter(sm *scs.SessionManager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := sm.GetInt(r.Context(), "n") + 1
		sm.Put(r.Context(), "n", n)
		io.WriteString(w, strconv.Itoa(n))
	})
}

// A counterVariant is one row of the HTTP table: a server for the workload.
type counterVariant struct {
	id   string // the letter the ratios use: "a"
	name string // the sub-benchmark name: "a_tina4_plugin"
	desc string // what it is, for the summary
	// mk starts the server (outside the timed part) and stops it when b
	// ends; redisAddr is the redis-server every Redis variant shares.
	mk func(b *testing.B, redisAddr string) http.Handler
}

// counterVariants are the servers BenchmarkCounter compares, in the order
// each round runs them and the summary lists them.
var counterVariants = []counterVariant{
	{"a", "a_tina4_plugin", "tina4, Redis handler as a plugin, fast transport",
		func(b *testing.B, addr string) http.Handler {
			return tina4Redis(b, addr, loader.TransportFast).Wrap(counter)
		}},
	{"b", "b_tina4_inprocess", "tina4, the same Redis handler in process",
		func(b *testing.B, addr string) http.Handler {
			return tina4Redis(b, addr, loader.TransportInProcess).Wrap(counter)
		}},
	{"c", "c_scs_redisstore", "scs v2 + redisstore",
		func(b *testing.B, addr string) http.Handler {
			sm := scsRedis(b, addr)
			return sm.LoadAndSave(scsCounter(sm))
		}},
	{"d", "d_tina4_file_plugin", "tina4, file handler as a plugin, fast transport",
		func(b *testing.B, _ string) http.Handler { return tina4File(b, loader.TransportFast).Wrap(counter) }},
	{"e", "e_tina4_file_inprocess", "tina4, file handler built in",
		func(b *testing.B, _ string) http.Handler {
			return tina4File(b, loader.TransportInProcess).Wrap(counter)
		}},
	{"f", "f_plain_nethttp", "plain net/http, no sessions",
		func(*testing.B, string) http.Handler { return plain() }},
	{"g", "g_scs_memstore", "scs v2 + memstore (its default)",
		func(b *testing.B, _ string) http.Handler { return scsMemory(b) }},
	{"h", "h_tina4_plugin_grpc", "tina4, Redis handler as a plugin, gRPC",
		func(b *testing.B, addr string) http.Handler {
			return tina4Redis(b, addr, loader.TransportGRPC).Wrap(counter)
		}},
}

const benchSecret = "bench-secret-0123456789abcdef0123456789"

// tina4Redis starts our host on redis with SessionRedisHandler reached the
// way transport says: as a plugin process over the fast transport
// (loader.TransportFast) or over gRPC (loader.TransportGRPC, set with
// TINA4_PLUGIN_TRANSPORT=grpc), or the same handler code in process
// (loader.TransportInProcess).
func tina4Redis(b *testing.B, addr, transport string, extra ...string) *host.Host {
	url := "redis://" + addr + "/0"
	env := []string{
		"TINA4_PLUGIN_DIR=" + pluginDir,
		"TINA4_SECRET=" + benchSecret,
		"TINA4_SESSION_REDIS_URL=" + url,
		"TINA4_SESSION_HANDLER=SessionRedisHandler",
	}
	var opts []host.Option
	switch transport {
	case loader.TransportGRPC:
		env = append(env, "TINA4_PLUGIN_TRANSPORT=grpc")
	case loader.TransportInProcess:
		// A name with no binary in the plugin dir, served by the same
		// handler code in process.
		name := "RedisInProcess"
		env[3] = "TINA4_SESSION_HANDLER=" + name
		ro, err := redishandler.OptionsFromEnv(func(k string) string {
			if k == "TINA4_SESSION_REDIS_URL" {
				return url
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
		b.Cleanup(rh.Stop) // the host stops it too; this covers a failed Open
		opts = append(opts, host.WithHandler(name, "bench", rh))
	}
	return openHost(b, append(env, extra...), transport, opts...)
}

// tina4File starts our host on the file handler, as a plugin binary
// (loader.TransportFast) or the built-in (loader.TransportInProcess).
func tina4File(b *testing.B, transport string) *host.Host {
	dir := pluginDir
	if transport == loader.TransportInProcess {
		dir = b.TempDir() // no binary: the built-in serves
	}
	return openHost(b, []string{
		"TINA4_PLUGIN_DIR=" + dir,
		"TINA4_SECRET=" + benchSecret,
		"TINA4_SESSION_FOLDER=" + b.TempDir(),
	}, transport)
}

// openHost starts our host with the settings in env, checks that its
// handler is reached the way the variant means (want, a loader transport),
// and returns the counter behind the host's middleware. The host stops when
// b ends.
func openHost(b *testing.B, env []string, want string, opts ...host.Option) *host.Host {
	cfg, err := config.Load(config.Options{Dir: b.TempDir(), Environ: env})
	if err != nil {
		b.Fatal(err)
	}
	log := &startLog{}
	h, err := host.Open(context.Background(), append(opts, host.WithConfig(cfg), host.WithLogger(slog.New(log)))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	hi, err := h.Health(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	got := log.transport()
	if hi.BuiltIn {
		got = loader.TransportInProcess
	}
	if got != want {
		b.Fatalf("%s is reached over %q, not %q as this variant means (from the loader's %q log line)",
			hi.Name, got, want, startMessage)
	}
	return h
}

// startMessage is the line the loader logs when a plugin has started, with
// a "transport" attribute.
const startMessage = "session handler started"

// startLog is a slog.Handler that drops every log line but remembers the
// transport the loader reports when the plugin starts.
type startLog struct {
	mu  sync.Mutex
	got string
}

func (l *startLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelInfo }
func (l *startLog) WithAttrs([]slog.Attr) slog.Handler               { return l }
func (l *startLog) WithGroup(string) slog.Handler                    { return l }

func (l *startLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != startMessage {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "transport" {
			l.mu.Lock()
			l.got = a.Value.String()
			l.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

func (l *startLog) transport() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got
}

// scsRedis is scs v2 on the same redis-server through its redisstore.
func scsRedis(b *testing.B, addr string) *scs.SessionManager {
	pool := &redigo.Pool{MaxIdle: 64, Dial: func() (redigo.Conn, error) { return redigo.Dial("tcp", addr) }}
	b.Cleanup(func() { pool.Close() })
	sm := scs.New()
	sm.Store = redisstore.New(pool)
	sm.Lifetime = 30 * time.Minute
	return sm
}

// scsMemory is scs v2 with the store scs.New() gives it: memstore, a map in
// process. It is the cheapest a session layer can be.
func scsMemory(b *testing.B) http.Handler {
	sm := scs.New()
	if ms, ok := sm.Store.(*memstore.MemStore); ok {
		b.Cleanup(ms.StopCleanup)
	}
	sm.Lifetime = 30 * time.Minute
	return sm.LoadAndSave(scsCounter(sm))
}

// plain is the same request with no session layer at all: the ceiling every
// other variant is a fraction of.
func plain() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "1") })
}

// BenchmarkCounter runs the counter workload against every counterVariant at
// 1 and 64 concurrent clients, each client on its own session, in
// benchRounds interleaved rounds: Counter/round=R/<variant>/c=N. Every
// sub-benchmark starts its own server before the timer starts. The Redis
// variants share one redis-server. allocs/op counts the whole benchmark
// process (HTTP client, host and, for b, c, e and g, the store), not a
// plugin process.
func BenchmarkCounter(b *testing.B) {
	rs := redistest.Start(b)
	for round := 1; round <= benchRounds; round++ {
		b.Run("round="+strconv.Itoa(round), func(b *testing.B) {
			for _, v := range counterVariants {
				b.Run(v.name, func(b *testing.B) {
					for _, c := range concurrencies {
						b.Run("c="+strconv.Itoa(c), func(b *testing.B) {
							serve(b, resultKey{"Counter", v.name, round, c}, v.mk(b, rs.Addr()), c)
						})
					}
				})
			}
		})
	}
}

// serve drives h over a loopback listener with c clients, each on its own
// session (made before the timer starts), for b.N requests in all.
func serve(b *testing.B, k resultKey, h http.Handler, c int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConns: c * 2, MaxIdleConnsPerHost: c * 2}
	defer tr.CloseIdleConnections()
	clients := make([]*http.Client, c)
	for i := range clients {
		jar, _ := cookiejar.New(nil)
		clients[i] = &http.Client{Jar: jar, Transport: tr}
		if err := get(clients[i], srv.URL); err != nil { // create the session
			b.Fatal(err)
		}
	}
	s := measure(b, k, c, func(w int) error { return get(clients[w], srv.URL) })
	b.ReportMetric(s.perSec(), "req/s")
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// measure is the timed part of every benchmark here: c goroutines take
// turns from one counter until b.N calls of call (worker w calls call(w),
// 0 <= w < c) have been made. It times them, counts this process's heap
// allocations meanwhile and records the sample under k; the last run of a
// sub-benchmark (the one with the final b.N) is the one the summary shows.
// The first error stops every worker and fails b.
func measure(b *testing.B, k resultKey, c int, call func(w int) error) sample {
	var (
		next   atomic.Int64
		failed atomic.Bool
		errMu  sync.Mutex
		first  error
		wg     sync.WaitGroup
		before runtime.MemStats
		after  runtime.MemStats
	)
	b.ReportAllocs()
	b.ResetTimer()
	runtime.ReadMemStats(&before)
	busyBefore, haveBusy := machineBusy()
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() && next.Add(1) <= int64(b.N) {
				if err := call(w); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	busyAfter, _ := machineBusy()
	b.StopTimer()
	runtime.ReadMemStats(&after)
	if first != nil {
		b.Fatal(first)
	}
	s := sample{n: b.N, elapsed: elapsed, allocs: after.Mallocs - before.Mallocs}
	if haveBusy {
		s.busy = busyAfter - busyBefore
		b.ReportMetric(s.cpuPerOp(), "cpu-µs/op")
	}
	record(k, s)
	return s
}
