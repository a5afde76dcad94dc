package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// sentinelConf is a Sentinel's configuration file, in its Dir. Sentinel
	// rewrites it as it learns about replicas and failovers.
	sentinelConf = "sentinel.conf"
	// sentinelReadyTimeout bounds how long StartSentinel waits for the new
	// Sentinel to be connected to its master.
	sentinelReadyTimeout = 20 * time.Second
	// replicaSyncTimeout bounds how long StartReplica waits for the first
	// synchronisation with the master.
	replicaSyncTimeout = 20 * time.Second
	// SentinelDownAfter is how long a Sentinel started by StartSentinel
	// waits before it considers a silent master down (its
	// down-after-milliseconds).
	SentinelDownAfter = time.Second
)

// StartSentinel runs a Redis Sentinel (redis-server sentinel.conf
// --sentinel) on a free 127.0.0.1 port that monitors master under name with
// a quorum of 1, so this one Sentinel can fail the master over by itself.
// It returns once the Sentinel is connected to the master and answers
// SENTINEL get-master-addr-by-name name with master's address, and stops it
// when the test ends.
//
// The sentinel.conf written into the Sentinel's Dir holds
//
//	port <free port>
//	bind 127.0.0.1
//	dir <Dir>
//	logfile redis.log
//	sentinel monitor <name> 127.0.0.1 <master's port> 1
//	sentinel down-after-milliseconds <name> 1000
//	sentinel failover-timeout <name> 3000
//	sentinel auth-pass <name> <password>    (when master has --requirepass)
//
// The Sentinel itself needs no password. Its Client talks to the Sentinel,
// not to the master; Stop, Kill, Restart, Running and Log work as for
// Start's servers. A master started by StartTLS is not supported.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	if master.tls != nil {
		t.Fatalf("redistest: StartSentinel: a TLS master (%s) is not supported", master.Addr())
	}
	if name == "" || strings.ContainsAny(name, " \t\r\n\"'") {
		t.Fatalf("redistest: StartSentinel: master name %q must be a non-empty word", name)
	}
	s := &Server{t: t, bin: lookPath(t, "redis-server"), Dir: t.TempDir()}
	t.Cleanup(s.cleanup)
	conf := filepath.Join(s.Dir, sentinelConf)
	s.args = []string{conf, "--sentinel"}

	var lastErr error
	for range portAttempts {
		s.port = FreePort(t)
		lines := []string{
			"port " + strconv.Itoa(s.port),
			"bind 127.0.0.1",
			"dir " + strconv.Quote(s.Dir),
			"logfile " + logFile,
			"daemonize no",
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1", name, master.Port()),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, SentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s 3000", name),
		}
		if master.password != "" {
			lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", name, strconv.Quote(master.password)))
		}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("redistest: write %s: %v", conf, err)
		}
		lastErr = s.launch()
		if lastErr == nil {
			break
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("redistest: Sentinel (%s %s --sentinel) did not start; this redis-server may lack Sentinel support "+
			"(Debian/Ubuntu: the redis-server package has it, or install redis-sentinel): %v", s.bin, conf, lastErr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), sentinelReadyTimeout)
	defer cancel()
	sc := s.sentinelClient()
	defer sc.Close()
	var addr, flags string
	var err error
	for {
		addr, err = masterAddr(ctx, sc, name)
		if err == nil && addr == master.Addr() {
			var info map[string]string
			info, err = sc.Master(ctx, name).Result()
			flags = info["flags"]
			if err == nil && flags == "master" {
				return s
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: Sentinel %s not watching master %s (%s) after %s: get-master-addr-by-name answered %q, flags %q (%v)\n%s",
				s.Addr(), name, master.Addr(), sentinelReadyTimeout, addr, flags, err, tail(s.Log(), 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartReplica starts a redis-server as Start does, replicating master
// (--replicaof 127.0.0.1 <master's port>, and --masterauth when master has
// a password), and returns once the first synchronisation is done and
// master lists it as a connected replica. args are passed on to Start.
//
// So that the replica is in sync in milliseconds rather than after the
// 5 seconds Redis waits for more replicas by default, StartReplica first
// sets repl-diskless-sync-delay 0 on master (CONFIG SET).
func StartReplica(t testing.TB, master *Server, args ...string) *Server {
	t.Helper()
	if master.tls != nil {
		t.Fatalf("redistest: StartReplica: a TLS master (%s) is not supported", master.Addr())
	}
	if err := master.Client().ConfigSet(context.Background(), "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatalf("redistest: StartReplica: CONFIG SET repl-diskless-sync-delay 0 on master %s: %v", master.Addr(), err)
	}
	base := []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port())}
	if master.password != "" {
		base = append(base, "--masterauth", master.password, "--requirepass", master.password)
	}
	r := Start(t, append(base, args...)...)

	ctx, cancel := context.WithTimeout(context.Background(), replicaSyncTimeout)
	defer cancel()
	want := "port=" + strconv.Itoa(r.Port()) + ",state=online"
	for {
		rinfo, rerr := r.Client().Info(ctx, "replication").Result()
		minfo, merr := master.Client().Info(ctx, "replication").Result()
		if rerr == nil && merr == nil && strings.Contains(rinfo, "master_link_status:up") && strings.Contains(minfo, want) {
			return r
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: replica %s of %s not in sync after %s (want master_link_status:up and %q):\nreplica: %q (%v)\nmaster: %q (%v)\n%s",
				r.Addr(), master.Addr(), replicaSyncTimeout, want, rinfo, rerr, minfo, merr, tail(r.Log(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SentinelMaster asks this Sentinel SENTINEL get-master-addr-by-name name
// and returns the answer as host:port. A master name the Sentinel does not
// know gives redis.Nil.
func (s *Server) SentinelMaster(ctx context.Context, name string) (string, error) {
	sc := s.sentinelClient()
	defer sc.Close()
	return masterAddr(ctx, sc, name)
}

// masterAddr asks sc get-master-addr-by-name name.
func masterAddr(ctx context.Context, sc *redis.SentinelClient, name string) (string, error) {
	hp, err := sc.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("redistest: get-master-addr-by-name %s: want host and port, got %q", name, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// WaitSentinelMaster polls this Sentinel until get-master-addr-by-name name
// answers want (host:port), failing the test after timeout. It returns how
// long that took. Use it after killing the master to wait for a failover.
func (s *Server) WaitSentinelMaster(name, want string, timeout time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sc := s.sentinelClient()
	defer sc.Close()
	for {
		got, err := masterAddr(ctx, sc, name)
		if err == nil && got == want {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			s.t.Fatalf("redistest: Sentinel %s: master %s still at %q (%v) after %s, want %s\n%s",
				s.Addr(), name, got, err, timeout, want, tail(s.Log(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitSentinelReplicas polls this Sentinel until SENTINEL replicas name
// lists every one of replicas as a connected, healthy replica (flags
// "slave" alone), failing the test after timeout. A Sentinel can only fail
// over to a replica it knows, so call it before killing the master.
func (s *Server) WaitSentinelReplicas(name string, timeout time.Duration, replicas ...*Server) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sc := s.sentinelClient()
	defer sc.Close()
	var seen []map[string]string
	var err error
	for {
		seen, err = sc.Replicas(ctx, name).Result()
		if err == nil {
			ok := map[string]bool{}
			for _, r := range seen {
				if r["flags"] == "slave" {
					ok[net.JoinHostPort(r["ip"], r["port"])] = true
				}
			}
			all := true
			for _, r := range replicas {
				all = all && ok[r.Addr()]
			}
			if all {
				return
			}
		}
		if ctx.Err() != nil {
			s.t.Fatalf("redistest: Sentinel %s: replicas of %s not all known and healthy after %s: got %v (%v)\n%s",
				s.Addr(), name, timeout, seen, err, tail(s.Log(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sentinelClient returns a new client for SENTINEL commands to s; the
// caller closes it.
func (s *Server) sentinelClient() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
}
