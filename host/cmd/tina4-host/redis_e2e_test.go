package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
)

// These tests run the real host binary with the real SessionRedisHandler
// plugin binary against real redis-server processes started by redistest,
// and talk to the host over HTTP.

const redisPrefix = "tina4:session:" // the handler's default key prefix

var (
	redisPluginOnce sync.Once
	redisPluginErr  error
)

// redisPlugin builds SessionRedisHandler into pluginsDir once per test
// binary. TestMain builds only the file handler. The binary is linked in a
// directory next to pluginsDir and renamed into place, so the plugin
// directory never holds a half-written file.
func redisPlugin(t *testing.T) {
	t.Helper()
	redisPluginOnce.Do(func() {
		tmp, err := os.MkdirTemp(filepath.Dir(pluginsDir), "redis-build-")
		if err != nil {
			redisPluginErr = err
			return
		}
		defer os.RemoveAll(tmp)
		bin := filepath.Join(tmp, "SessionRedisHandler")
		const pkg = "github.com/tina4go/sessions/plugins/redis/cmd/SessionRedisHandler"
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			redisPluginErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
			return
		}
		redisPluginErr = os.Rename(bin, filepath.Join(pluginsDir, "SessionRedisHandler"))
	})
	if redisPluginErr != nil {
		t.Fatalf("build SessionRedisHandler: %v", redisPluginErr)
	}
}

// redisEnv is the host environment that selects SessionRedisHandler and
// points it at rs, plus extra.
func redisEnv(rs *redistest.Server, extra ...string) []string {
	return append([]string{
		"TINA4_SESSION_HANDLER=SessionRedisHandler",
		"TINA4_SESSION_REDIS_URL=redis://" + rs.Addr() + "/0",
	}, extra...)
}

// startRedisHost starts a host with SessionRedisHandler on rs and waits
// until /healthz is 200.
func startRedisHost(t *testing.T, rs *redistest.Server, extra ...string) *hostProc {
	t.Helper()
	redisPlugin(t)
	return startServer(t, serverOpts{env: redisEnv(rs, extra...)})
}

// launchHost starts a host process like startServer does but waits only
// until /healthz answers at all, whatever its status.
func launchHost(t *testing.T, env []string) *hostProc {
	t.Helper()
	return launchServer(t, serverOpts{env: env})
}

// redisKeys returns every key in rdb's current database (SCAN, not KEYS).
func redisKeys(t *testing.T, rdb *goredis.Client) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, "*", 100).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	return keys
}

// withCookie sends a request carrying only the session cookie id, with no
// jar, so nothing the response says changes what later requests send.
func withCookie(t *testing.T, method, u, id, body string) apiResult {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.AddCookie(&http.Cookie{Name: "tina4_session", Value: id})
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var out struct {
		Values map[string]any `json:"values"`
		Error  string         `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return apiResult{Code: resp.StatusCode, Values: out.Values, Error: out.Error, Resp: resp}
}

// tryCall is call without the test: for goroutines, which must not call
// t.Fatal.
func tryCall(c *http.Client, method, u, body string) (apiResult, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return apiResult{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s %s: read body: %w", method, u, err)
	}
	var out struct {
		Values map[string]any `json:"values"`
		Error  string         `json:"error"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return apiResult{}, fmt.Errorf("%s %s: %d with a body that is not JSON: %q", method, u, resp.StatusCode, b)
	}
	return apiResult{Code: resp.StatusCode, Values: out.Values, Error: out.Error, Resp: resp}, nil
}

// pooledClients returns n clients, each with its own cookie jar, sharing
// one transport that keeps enough idle connections for all of them.
func pooledClients(t *testing.T, n int) []*http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConns: 2 * n, MaxIdleConnsPerHost: 2 * n, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	cs := make([]*http.Client, n)
	for i := range cs {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}
	}
	return cs
}

func TestRedisHTTPFlow(t *testing.T) {
	rs := redistest.Start(t)
	s := startRedisHost(t, rs)
	rdb := rs.Client()
	ctx := context.Background()

	code, m := s.health(t)
	if code != 200 || m["handler"] != "SessionRedisHandler" || m["built_in"] != false || m["version"] == "" {
		t.Fatalf("healthz: want 200 naming SessionRedisHandler as a plugin, got %d %v", code, m)
	}
	if pid := s.pluginPID(t); pid == 0 || pid == s.cmd.Process.Pid {
		t.Fatalf("the handler should run in its own process, healthz pid %d, host pid %d", pid, s.cmd.Process.Pid)
	}

	c := newClient(t)
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("fresh GET: want 200 and no values, got %d %v", r.Code, r.Values)
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("a GET without a session must store nothing, Redis has %d keys", n)
	}
	r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice","n":3}`)
	if r.Code != 200 || r.Values["user"] != "alice" || r.Values["n"] != 3.0 {
		t.Fatalf("POST: want 200 with user=alice n=3, got %d %v %q", r.Code, r.Values, r.Error)
	}
	id := jarID(t, c, s)
	if len(id) != 43 {
		t.Fatalf("want a 43-char session id in the cookie, got %q", id)
	}
	key := redisPrefix + id
	if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 1 {
		t.Fatalf("after POST want key %s in Redis, EXISTS = %d, %v (keys: %v)", key, n, err, redisKeys(t, rdb))
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 {
		t.Fatalf("the session key must carry an expiry, PTTL = %v", ttl)
	}
	r = call(t, c, "POST", s.url("/api/session"), `{"role":"admin"}`)
	if r.Code != 200 || r.Values["user"] != "alice" || r.Values["role"] != "admin" {
		t.Fatalf("second POST should merge, got %d %v", r.Code, r.Values)
	}
	if jarID(t, c, s) != id {
		t.Fatalf("a second POST must keep the session id")
	}
	r = call(t, c, "GET", s.url("/api/session"), "")
	if r.Code != 200 || r.Values["user"] != "alice" || r.Values["role"] != "admin" || r.Values["n"] != 3.0 {
		t.Fatalf("GET after POSTs: want user, role and n, got %d %v", r.Code, r.Values)
	}
	if n := rdb.DBSize(ctx).Val(); n != 1 {
		t.Fatalf("one session must be one key, Redis has %d: %v", n, redisKeys(t, rdb))
	}

	r = call(t, c, "DELETE", s.url("/api/session"), "")
	if r.Code != 200 {
		t.Fatalf("DELETE: want 200, got %d %q", r.Code, r.Error)
	}
	if ck := sessionCookie(r.Resp); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("DELETE must expire the cookie, got %v", ck)
	}
	if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("DELETE must remove the key from Redis (not leave an empty value), EXISTS %s = %d, %v", key, n, err)
	}
	if keys := redisKeys(t, rdb); len(keys) != 0 {
		t.Fatalf("after DELETE Redis should be empty, has %v", keys)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("after DELETE want 200 and no values, got %d %v", r.Code, r.Values)
	}
	// The old id, sent by hand, finds nothing either.
	if r := withCookie(t, "GET", s.url("/api/session"), id, ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("the destroyed id sent again: want 200 and no values, got %d %v", r.Code, r.Values)
	}
}

func TestRedisExpiry(t *testing.T) {
	rs := redistest.Start(t)
	s := startRedisHost(t, rs, "TINA4_SESSION_TTL=2")
	rdb := rs.Client()
	ctx := context.Background()

	c := newClient(t)
	if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`); r.Code != 200 {
		t.Fatalf("POST: %d %q", r.Code, r.Error)
	}
	saved := time.Now()
	old := jarID(t, c, s)
	key := redisPrefix + old
	pttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil || pttl <= 0 || pttl > 2000*time.Millisecond {
		t.Fatalf("PTTL %s with TINA4_SESSION_TTL=2: want within (0, 2000] ms, got %v, %v", key, pttl, err)
	}

	// Nothing touches the session now: Redis alone must remove the key.
	time.Sleep(time.Until(saved.Add(2200 * time.Millisecond)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		// EXISTS does not extend a key's life; an expired key counts as gone.
		n, err := rdb.Exists(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %s still in Redis %s after its 2s TTL", key, time.Since(saved))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("after expiry Redis should hold no session, DBSIZE = %d: %v", n, redisKeys(t, rdb))
	}

	// The client still sends the old cookie.
	if r := withCookie(t, "GET", s.url("/api/session"), old, ""); r.Code != 200 || len(r.Values) != 0 {
		t.Fatalf("GET with the expired cookie: want 200 and no values, got %d %v", r.Code, r.Values)
	}
	r := withCookie(t, "POST", s.url("/api/session"), old, `{"x":1}`)
	ck := sessionCookie(r.Resp)
	if r.Code != 200 || ck == nil || ck.Value == old || len(ck.Value) != 43 {
		t.Fatalf("POST with the expired cookie: want 200 and a new 43-char id, got %d %+v (old %s)", r.Code, ck, old)
	}
	if r.Values["user"] != nil || r.Values["x"] != 1.0 {
		t.Fatalf("the new session must hold only the new value, got %v", r.Values)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatalf("the expired id must not come back into Redis")
	}
	if n := rdb.Exists(ctx, redisPrefix+ck.Value).Val(); n != 1 {
		t.Fatalf("the new session must be stored under its new id, keys: %v", redisKeys(t, rdb))
	}
}

func TestRedisTamperedValueIsNoSession(t *testing.T) {
	rs := redistest.Start(t)
	s := startRedisHost(t, rs)
	rdb := rs.Client()
	ctx := context.Background()
	for _, damage := range []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)-5] ^= 0x01; return b }},
		{"flipped first byte", func(b []byte) []byte { b[0] ^= 0x01; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"emptied", func([]byte) []byte { return []byte{} }},
		{"garbage", func([]byte) []byte { return []byte("\x00\xffnot a session at all") }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			c := newClient(t)
			if r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`); r.Code != 200 {
				t.Fatalf("POST: %d %q", r.Code, r.Error)
			}
			id := jarID(t, c, s)
			key := redisPrefix + id
			b, err := rdb.Get(ctx, key).Bytes()
			if err != nil {
				t.Fatalf("GET %s: %v", key, err)
			}
			ttlBefore := rdb.PTTL(ctx, key).Val()
			if err := rdb.SetArgs(ctx, key, damage.fn(b), goredis.SetArgs{KeepTTL: true}).Err(); err != nil {
				t.Fatal(err)
			}
			if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > ttlBefore {
				t.Fatalf("the damaged key must keep its TTL (%v), PTTL = %v", ttlBefore, ttl)
			}
			r := call(t, c, "GET", s.url("/api/session"), "")
			if r.Code != 200 || len(r.Values) != 0 {
				t.Fatalf("a damaged value in Redis must read as no session (200, empty), got %d %v %q", r.Code, r.Values, r.Error)
			}
			r = call(t, c, "POST", s.url("/api/session"), `{"user":"bob"}`)
			if r.Code != 200 || r.Values["user"] != "bob" {
				t.Fatalf("POST after damage: want 200 with user=bob, got %d %v %q", r.Code, r.Values, r.Error)
			}
			if jarID(t, c, s) == id {
				t.Fatalf("writing after damage must start a new id")
			}
			if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "bob" {
				t.Fatalf("the new session must read back, got %d %v", r.Code, r.Values)
			}
		})
	}
}

func TestRedisHoldsNoReadableValues(t *testing.T) {
	rs := redistest.Start(t)
	const prefix = "e2e:marker:"
	s := startRedisHost(t, rs, "TINA4_SESSION_REDIS_URL=redis://"+rs.Addr()+"/5", "TINA4_SESSION_REDIS_PREFIX="+prefix)
	ctx := context.Background()
	db5 := goredis.NewClient(&goredis.Options{Addr: rs.Addr(), DB: 5})
	t.Cleanup(func() { db5.Close() })

	const marker = "MARKER-5be1d0-redis-secret-value"
	c := newClient(t)
	r := call(t, c, "POST", s.url("/api/session"), `{"note":"`+marker+`","`+marker+`":1,"nested":{"deep":"`+marker+`"}}`)
	if r.Code != 200 || r.Values["note"] != marker {
		t.Fatalf("POST: want 200 echoing the marker, got %d %v %q", r.Code, r.Values, r.Error)
	}
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Values["note"] != marker {
		t.Fatalf("the marker must read back through the host, got %v", r.Values)
	}
	id := jarID(t, c, s)

	if n := rs.Client().DBSize(ctx).Val(); n != 0 {
		t.Fatalf("TINA4_SESSION_REDIS_URL names database 5; database 0 must stay empty, has %d keys", n)
	}
	keys := redisKeys(t, db5)
	if len(keys) != 1 || keys[0] != prefix+id {
		t.Fatalf("want exactly one key %s in database 5, got %v", prefix+id, keys)
	}
	for _, k := range keys {
		if strings.Contains(k, marker) {
			t.Errorf("key %q holds the marker", k)
		}
		v, err := db5.Get(ctx, k).Bytes()
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		if len(v) == 0 {
			t.Errorf("key %s holds an empty value", k)
		}
		if strings.Contains(string(v), marker) || strings.Contains(strings.ToLower(string(v)), "alice") {
			t.Errorf("the value of %s holds the marker in clear text: %q", k, v)
		}
	}
	// The same check with redis-cli, as an operator would look.
	out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(rs.Port()), "-n", "5", "--scan").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --scan: %v\n%s", err, out)
	}
	scanned := strings.Fields(string(out))
	if len(scanned) != 1 || scanned[0] != prefix+id {
		t.Fatalf("redis-cli --scan: want [%s], got %q", prefix+id, out)
	}
	out, err = exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(rs.Port()), "-n", "5", "GET", scanned[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli GET: %v\n%s", err, out)
	}
	if len(strings.TrimSpace(string(out))) == 0 || strings.Contains(string(out), marker) {
		t.Fatalf("redis-cli GET %s: want a non-empty value without the marker, got %q", scanned[0], out)
	}
}

func TestRedisDownAtStartThenUp(t *testing.T) {
	redisPlugin(t)
	port := redistest.FreePort(t) // nothing listens there yet
	s := launchHost(t, []string{
		"TINA4_SESSION_HANDLER=SessionRedisHandler",
		"TINA4_SESSION_REDIS_HOST=127.0.0.1",
		"TINA4_SESSION_REDIS_PORT=" + strconv.Itoa(port),
	})

	code, m := s.health(t)
	t.Logf("healthz with Redis down: %d %v", code, m)
	errMsg, _ := m["error"].(string)
	if code != 503 || m["handler"] != "SessionRedisHandler" || !strings.Contains(strings.ToLower(errMsg), "redis") ||
		!strings.Contains(errMsg, strconv.Itoa(port)) {
		t.Fatalf("healthz with Redis down: want 503 naming SessionRedisHandler and redis 127.0.0.1:%d, got %d %v\n%s", port, code, m, s.log)
	}

	c := newClient(t)
	r := call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`)
	if r.Code != 503 || r.Error == "" {
		t.Fatalf("POST with Redis down: want 503 with a JSON error (not a session nobody can store), got %d %v %q", r.Code, r.Values, r.Error)
	}
	if ck := sessionCookie(r.Resp); ck != nil {
		t.Fatalf("a failed save must not hand out a cookie, got %+v", ck)
	}
	if r.Resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 should say Retry-After")
	}
	// A request carrying a well-formed id must not get an empty session
	// that a later save would write over the stored one.
	someID := strings.Repeat("A", 43)
	if r := withCookie(t, "GET", s.url("/api/session"), someID, ""); r.Code != 503 {
		t.Fatalf("GET with a session cookie while Redis is down: want 503, got %d %v", r.Code, r.Values)
	}
	select {
	case <-s.done:
		t.Fatalf("the host exited while Redis was down:\n%s", s.log)
	default:
	}

	rs := redistest.Start(t, "--port", strconv.Itoa(port))
	if rs.Port() != port {
		t.Fatalf("redis-server on port %d, want %d", rs.Port(), port)
	}
	// Nothing is restarted: the same host and plugin must recover.
	waitHealthy(t, s, 30*time.Second)
	if code, m := s.health(t); code != 200 || m["handler"] != "SessionRedisHandler" {
		t.Fatalf("healthz once Redis is up: want 200 naming SessionRedisHandler, got %d %v", code, m)
	}
	r = call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`)
	if r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("POST once Redis is up: want 200 with user=alice, got %d %v %q\n%s", r.Code, r.Values, r.Error, s.log)
	}
	id := jarID(t, c, s)
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Code != 200 || r.Values["user"] != "alice" {
		t.Fatalf("GET once Redis is up: want user=alice, got %d %v", r.Code, r.Values)
	}
	if n := rs.Client().Exists(context.Background(), redisPrefix+id).Val(); n != 1 {
		t.Fatalf("the session must be stored in the Redis that came up, keys: %v", redisKeys(t, rs.Client()))
	}
}

func TestRedisRestartKeepsAcknowledgedSessions(t *testing.T) {
	rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := startRedisHost(t, rs)
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		c := newClient(t)
		r := call(t, c, "POST", s.url("/api/session"), fmt.Sprintf(`{"owner":"client-%d","i":%d}`, i, i))
		if r.Code != 200 {
			t.Fatalf("POST #%d: want 200, got %d %q", i, r.Code, r.Error)
		}
		ids[i] = jarID(t, c, s)
		if len(ids[i]) != 43 {
			t.Fatalf("POST #%d: no session cookie", i)
		}
	}

	rs.Kill() // as a crash would
	if code, m := s.health(t); code != 503 {
		t.Errorf("healthz with Redis down: want 503, got %d %v", code, m)
	}
	for i, id := range ids {
		r := withCookie(t, "GET", s.url("/api/session"), id, "")
		if r.Code != 503 {
			t.Errorf("GET session %d during the outage: want 503, got %d %v", i, r.Code, r.Values)
		}
	}
	// A write during the outage fails and must not reach Redis later.
	if r := withCookie(t, "POST", s.url("/api/session"), ids[0], `{"owner":"intruder"}`); r.Code != 503 {
		t.Errorf("POST during the outage: want 503, got %d %v", r.Code, r.Values)
	}

	rs.Restart() // same port, same dir: the AOF brings the data back
	waitHealthy(t, s, 30*time.Second)
	if size, err := rs.Client().DBSize(context.Background()).Result(); err != nil || size != n {
		t.Errorf("after restart Redis should hold %d sessions, DBSIZE = %d, %v", n, size, err)
	}
	for i, id := range ids {
		r := withCookie(t, "GET", s.url("/api/session"), id, "")
		if r.Code != 200 || r.Values["owner"] != fmt.Sprintf("client-%d", i) || r.Values["i"] != float64(i) {
			t.Errorf("session %d after the restart: want 200 with owner=client-%d i=%d, got %d %v", i, i, i, r.Code, r.Values)
		}
	}
}

func TestRedisTwoHostsOneSession(t *testing.T) {
	rs := redistest.Start(t)
	a := startRedisHost(t, rs)
	b := startRedisHost(t, rs)
	if a.addr == b.addr {
		t.Fatal("the two hosts must listen on different ports")
	}
	// net/http/cookiejar keys cookies by host name, not port (RFC 6265), so
	// one jar sends the cookie to both hosts on 127.0.0.1, as a browser
	// would behind a load balancer.
	c := newClient(t)
	hosts := []*hostProc{a, b}
	const rounds = 20
	var id string
	for i := 0; i < rounds; i++ {
		s := hosts[i%2]
		r := call(t, c, "GET", s.url("/api/session"), "")
		if r.Code != 200 {
			t.Fatalf("round %d GET on host %d: %d %q", i, i%2, r.Code, r.Error)
		}
		got, _ := r.Values["counter"].(float64)
		if int(got) != i {
			t.Fatalf("round %d on host %d: want counter %d, got %v (values %v)", i, i%2, i, r.Values["counter"], r.Values)
		}
		// Write through the other host.
		o := hosts[(i+1)%2]
		r = call(t, c, "POST", o.url("/api/session"), fmt.Sprintf(`{"counter":%d,"last":"host-%d"}`, i+1, (i+1)%2))
		if r.Code != 200 || r.Values["counter"] != float64(i+1) {
			t.Fatalf("round %d POST on host %d: want 200 with counter %d, got %d %v", i, (i+1)%2, i+1, r.Code, r.Values)
		}
		if i == 0 {
			id = jarID(t, c, a)
			if id == "" || jarID(t, c, b) != id {
				t.Fatalf("the jar should send one cookie to both hosts, got %q and %q", id, jarID(t, c, b))
			}
		} else if got := jarID(t, c, b); got != id {
			t.Fatalf("round %d: the session id changed from %s to %s", i, id, got)
		}
	}
	for _, s := range hosts {
		r := call(t, c, "GET", s.url("/api/session"), "")
		if r.Code != 200 || r.Values["counter"] != float64(rounds) || r.Values["last"] != "host-0" {
			t.Errorf("final GET on %s: want counter %d, last host-0, got %d %v", s.addr, rounds, r.Code, r.Values)
		}
	}
	if keys := redisKeys(t, rs.Client()); len(keys) != 1 || keys[0] != redisPrefix+id {
		t.Fatalf("both hosts must share one key %s, Redis has %v", redisPrefix+id, keys)
	}
}

func TestRedis64ConcurrentClients(t *testing.T) {
	rs := redistest.Start(t)
	s := startRedisHost(t, rs)
	const clients, rounds = 64, 20 // 2 requests a round: 2560 requests in all
	cs := pooledClients(t, clients)
	ids := make([]string, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for n := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cs[n]
			owner := fmt.Sprintf("client-%d", n)
			for i := range rounds {
				r, err := tryCall(c, "POST", s.url("/api/session"), fmt.Sprintf(`{"owner":%q,"n":%d}`, owner, i))
				if err != nil {
					errs <- err
					return
				}
				if r.Code != 200 || r.Values["owner"] != owner || r.Values["n"] != float64(i) {
					errs <- fmt.Errorf("%s POST %d: want 200 with owner=%s n=%d, got %d %v %q", owner, i, owner, i, r.Code, r.Values, r.Error)
					return
				}
				r, err = tryCall(c, "GET", s.url("/api/session"), "")
				if err != nil {
					errs <- err
					return
				}
				if r.Code != 200 || r.Values["owner"] != owner || r.Values["n"] != float64(i) || len(r.Values) != 2 {
					errs <- fmt.Errorf("%s GET %d: want 200 with exactly owner=%s n=%d, got %d %v %q", owner, i, owner, i, r.Code, r.Values, r.Error)
					return
				}
			}
			u, _ := http.NewRequest("GET", s.url("/"), nil)
			for _, ck := range c.Jar.Cookies(u.URL) {
				if ck.Name == "tina4_session" {
					ids[n] = ck.Value
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		if failed <= 10 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d clients failed\n%s", failed, clients, s.log)
	}
	seen := map[string]int{}
	for n, id := range ids {
		if len(id) != 43 {
			t.Fatalf("client %d ended without a session cookie", n)
		}
		if m, dup := seen[id]; dup {
			t.Fatalf("clients %d and %d share session %s", m, n, id)
		}
		seen[id] = n
	}
	if size := rs.Client().DBSize(context.Background()).Val(); size != clients {
		t.Fatalf("want %d sessions in Redis, DBSIZE = %d", clients, size)
	}
}

func TestRedisClusterThroughHost(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	redisPlugin(t)
	s := startServer(t, serverOpts{env: []string{
		"TINA4_SESSION_HANDLER=SessionRedisHandler",
		"TINA4_SESSION_REDIS_ADDRS=" + strings.Join(addrs, ","),
	}})
	if code, m := s.health(t); code != 200 || m["handler"] != "SessionRedisHandler" {
		t.Fatalf("healthz with a cluster: want 200, got %d %v", code, m)
	}

	const clients = 30
	cs := pooledClients(t, clients)
	ids := map[string]bool{}
	for n, c := range cs {
		r := call(t, c, "POST", s.url("/api/session"), fmt.Sprintf(`{"owner":"client-%d"}`, n))
		if r.Code != 200 {
			t.Fatalf("POST client %d: want 200, got %d %q\n%s", n, r.Code, r.Error, s.log)
		}
		ids[jarID(t, c, s)] = true
	}
	if len(ids) != clients {
		t.Fatalf("want %d distinct session ids, got %d", clients, len(ids))
	}
	for n, c := range cs {
		r := call(t, c, "GET", s.url("/api/session"), "")
		if r.Code != 200 || r.Values["owner"] != fmt.Sprintf("client-%d", n) {
			t.Errorf("GET client %d: want owner=client-%d, got %d %v", n, n, r.Code, r.Values)
		}
	}

	ctx := context.Background()
	var total int64
	used := 0
	var sizes []int64
	for _, node := range nodes {
		size, err := node.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", node.Addr(), err)
		}
		sizes = append(sizes, size)
		total += size
		if size > 0 {
			used++
		}
		for _, k := range redisKeys(t, node.Client()) {
			if !strings.HasPrefix(k, redisPrefix) || !ids[strings.TrimPrefix(k, redisPrefix)] {
				t.Errorf("unexpected key %q on %s", k, node.Addr())
			}
		}
	}
	if total != clients {
		t.Errorf("want %d keys over the cluster, got %d (per node %v)", clients, total, sizes)
	}
	if used < 2 {
		t.Errorf("sessions should spread over the masters, keys per node: %v", sizes)
	}
	// Destroy reaches the right node too.
	r := call(t, cs[0], "DELETE", s.url("/api/session"), "")
	if r.Code != 200 {
		t.Fatalf("DELETE on a cluster: %d", r.Code)
	}
	var after int64
	for _, node := range nodes {
		after += node.Client().DBSize(ctx).Val()
	}
	if after != clients-1 {
		t.Errorf("after one DELETE want %d keys, got %d", clients-1, after)
	}
}
