// Package redistest starts real redis-server processes for tests.
//
// Every server runs on a free 127.0.0.1 port in its own t.TempDir(), with
// persistence off unless the test turns it on, and is stopped when the test
// ends. Nothing here talks to a Redis the test did not start.
//
// The redis-server and redis-cli binaries must be on PATH (Debian and
// Ubuntu: apt-get install redis-server). When they are missing, tests fail
// with a message saying so; they are never skipped.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// readyTimeout bounds how long Start waits for a new server to answer.
	readyTimeout = 20 * time.Second
	// stopTimeout bounds how long Stop waits for a graceful shutdown before
	// it kills the server.
	stopTimeout = 10 * time.Second
	// logFile is the server's log, in its Dir.
	logFile = "redis.log"
	// portAttempts is how often Start picks another port when the one it
	// chose was taken before redis-server could bind it.
	portAttempts = 5
)

// Server is one redis-server process started by Start. Its methods may be
// called from the test's goroutine only, except Addr, Port and Client.
type Server struct {
	// Dir is the server's working directory (its --dir): the AOF and RDB
	// files, nodes.conf for cluster nodes, and redis.log.
	Dir string

	t        testing.TB
	bin      string
	port     int
	args     []string // every argument redis-server is started with
	password string   // of the default user, from --requirepass
	tls      *tls.Config

	mu     sync.Mutex
	proc   *exec.Cmd
	exited chan struct{} // closed when proc has been waited for
	client *redis.Client
}

// Start runs redis-server on a free 127.0.0.1 port, waits until it answers
// PING and stops it when the test ends.
//
// The server starts with
//
//	--port <free port> --bind 127.0.0.1 --dir <t.TempDir()> --save "" --appendonly no --logfile redis.log
//
// followed by args, which override any of these (redis-server lets a later
// option win). Pass "--port", "N" to use a given port. For example:
//
//	redistest.Start(t, "--requirepass", "pw")
//	redistest.Start(t, "--user", "alice", "on", ">alicepw", "~*", "+@all")
//	redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, nil, args)
}

// start is Start, serving TLS with cfg's certificates when tlsFiles is set.
func start(t testing.TB, tlsFiles *TLS, args []string) *Server {
	t.Helper()
	s := &Server{t: t, bin: lookPath(t, "redis-server"), Dir: t.TempDir()}
	s.password = lastValue(args, "--requirepass")
	fixedPort, _ := strconv.Atoi(lastValue(args, "--port"))
	if tlsFiles != nil {
		fixedPort, _ = strconv.Atoi(lastValue(args, "--tls-port"))
		s.tls = tlsFiles.ClientConfig()
	}
	t.Cleanup(s.cleanup)

	var lastErr error
	for range portAttempts {
		s.port = fixedPort
		if s.port == 0 {
			s.port = FreePort(t)
		}
		base := []string{
			"--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1",
			"--dir", s.Dir,
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--logfile", logFile,
		}
		if tlsFiles != nil {
			base = append(base,
				"--port", "0",
				"--tls-port", strconv.Itoa(s.port),
				"--tls-cert-file", tlsFiles.CertFile,
				"--tls-key-file", tlsFiles.KeyFile,
				"--tls-ca-cert-file", tlsFiles.CAFile,
				"--tls-auth-clients", "no",
			)
		}
		s.args = append(base, args...)
		lastErr = s.launch()
		if lastErr == nil {
			return s
		}
		if fixedPort != 0 || !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// Addr is the server's address, 127.0.0.1:<port>.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Client returns a go-redis client for this server, for assertions. It
// authenticates as the default user with the --requirepass password, if
// any, and speaks TLS to a server started by StartTLS. The same client is
// returned on every call; it is closed when the test ends and reconnects by
// itself after Restart.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(&redis.Options{
			Addr:      s.Addr(),
			Password:  s.password,
			TLSConfig: s.tls,
		})
	}
	return s.client
}

// Stop shuts the server down gracefully (SIGTERM: no RDB is written unless
// the test asked for save points; an AOF is flushed) and waits for it to
// exit, killing it if it takes longer than 10s. Stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM, stopTimeout)
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL, stopTimeout)
}

// Pause stops the server process with SIGSTOP: it keeps its port and its
// connections but answers nothing, as a hung store does. Resume continues
// it. A paused server is still killed at cleanup.
func (s *Server) Pause() { s.send(syscall.SIGSTOP) }

// Resume continues a server stopped by Pause.
func (s *Server) Resume() { s.send(syscall.SIGCONT) }

func (s *Server) send(sig syscall.Signal) {
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc != nil {
		_ = proc.Process.Signal(sig)
	}
}

// Restart stops the server if it is running and starts it again with the
// same arguments, port and Dir, then waits until it answers PING. With
// "--appendonly", "yes" the data comes back from the AOF.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Log returns what the server has written to redis.log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, logFile))
	return string(b)
}

// launch starts redis-server with s.args and waits until it answers. On
// failure the process is gone and the error quotes the server's log.
func (s *Server) launch() error {
	var stderr bytes.Buffer
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.Dir
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.proc, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited at start (%s %s):\n%s%s",
				s.port, s.bin, strings.Join(quote(s.args), " "), stderr.String(), tail(s.Log(), 40))
		default:
		}
		reply, err := ping(s.Addr(), s.tls)
		if err == nil && !strings.HasPrefix(reply, "-LOADING") {
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer PING within %s (last: %q, %v):\n%s",
				s.port, readyTimeout, reply, err, tail(s.Log(), 40))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the server and waits up to wait for it to exit, then
// kills it.
func (s *Server) signal(sig syscall.Signal, wait time.Duration) {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.mu.Unlock()
	if proc == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = proc.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(wait):
		_ = proc.Process.Kill()
		<-exited
		s.t.Errorf("redistest: redis-server on port %d ignored %v for %s and was killed", s.port, sig, wait)
	}
}

// cleanup closes the client and kills the server; nothing it holds is kept.
func (s *Server) cleanup() {
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	s.signal(syscall.SIGKILL, stopTimeout)
}

// ping sends PING over a fresh connection and returns the first reply line
// ("+PONG", or an error such as "-NOAUTH ..." that still proves the server
// is up).
func ping(addr string, cfg *tls.Config) (string, error) {
	d := net.Dialer{Timeout: time.Second}
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.DialWithDialer(&d, "tcp", addr, cfg)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lookPath finds a Redis binary or fails the test saying how to install it.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("redistest: %s not found on PATH: these tests start their own Redis; "+
			"install it (Debian/Ubuntu: apt-get install redis-server, which brings redis-cli; macOS: brew install redis) and run the tests again", name)
	}
	return p
}

// lastValue returns the value after the last occurrence of flag in args,
// or "".
func lastValue(args []string, flag string) string {
	v := ""
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			v = args[i+1]
		}
	}
	return v
}

// quote shows empty arguments as "" so a logged command line can be pasted.
func quote(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
