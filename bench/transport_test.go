package bench

// The transport micro-benchmark: what one Load of a 512-byte record costs
// this process on each way of reaching a handler process, against the floor
// of a raw Unix-socket round trip of the same size. The handler is Echo
// (testdata/echo): Load returns a record from memory, so nothing but the
// wire is measured. Allocations are this (the host's) process only.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/loader"
	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

const (
	// childEnv, when set, makes the test binary a child serving the role
	// it names (runChild) instead of running benchmarks.
	childEnv = "TINA4_BENCH_CHILD"
	// secretEnv gives the fastecho child its fast-transport secret (hex).
	secretEnv = "TINA4_BENCH_SECRET"

	// echoSize is the size of the record Echo loads (testdata/echo).
	echoSize = 512
	// rawRequestSize is a fast-transport Load request: the 32-byte frame
	// header and a session id.
	rawRequestSize = 32 + shared.IDLength
	// rawResponseSize is its answer: a header and the record.
	rawResponseSize = 32 + echoSize
)

// benchID is the (valid) session id every Load asks for.
var benchID = strings.Repeat("b", shared.IDLength)

// A transportPath is one row of the transport table.
type transportPath struct {
	name string // the sub-benchmark name
	desc string // what it is, for the summary
	// mk sets the path up for c concurrent callers, outside the timed
	// part, and returns the call worker w (0 <= w < c) makes. Everything
	// it starts stops when b ends.
	mk func(b *testing.B, c int) func(w int) error
}

// transportPaths are the paths BenchmarkTransport compares, in the order
// each round runs them and the summary lists them.
var transportPaths = []transportPath{
	{"raw_unix", "raw Unix-socket round trip, 75 B out, 544 B back (the floor)", rawUnix},
	{"fast_client", "bare shared.FastClient.Load, no deadline; shared.ServeFast in a child, no go-plugin", fastClient},
	{"fast", "loader.Handler.Load, Echo plugin, fast transport", loaderPath(loader.TransportFast)},
	{"grpc", "loader.Handler.Load, Echo plugin, gRPC", loaderPath(loader.TransportGRPC)},
}

// BenchmarkTransport runs one Load per op on every transportPath, with one
// caller and with 64 concurrent callers, in benchRounds interleaved rounds:
// Transport/round=R/<path>/c=N. At c=64, ns/op is wall time divided by the
// calls made, the inverse of throughput.
func BenchmarkTransport(b *testing.B) {
	for round := 1; round <= benchRounds; round++ {
		b.Run("round="+strconv.Itoa(round), func(b *testing.B) {
			for _, p := range transportPaths {
				b.Run(p.name, func(b *testing.B) {
					for _, c := range concurrencies {
						b.Run("c="+strconv.Itoa(c), func(b *testing.B) {
							measure(b, resultKey{"Transport", p.name, round, c}, c, p.mk(b, c))
						})
					}
				})
			}
		})
	}
}

// rawUnix is the floor: a child process that answers every 75-byte request
// on a Unix socket with 544 bytes, one connection per caller, no framing,
// no goroutine per request, no context.
func rawUnix(b *testing.B, c int) func(int) error {
	addr := startChild(b, "pingpong")
	type rawConn struct {
		c         net.Conn
		req, resp []byte
	}
	conns := make([]rawConn, c)
	for w := range conns {
		nc, err := net.Dial("unix", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { nc.Close() })
		conns[w] = rawConn{nc, make([]byte, rawRequestSize), make([]byte, rawResponseSize)}
	}
	call := func(w int) error {
		rc := &conns[w]
		if _, err := rc.c.Write(rc.req); err != nil {
			return err
		}
		_, err := io.ReadFull(rc.c, rc.resp)
		return err
	}
	warm(b, c, call)
	return call
}

// fastClient is the host's fast-transport client without the loader around
// it: shared.NewFastClient against shared.ServeFast serving the Echo
// handler (through sdk.NewStore, as sdk.Serve does) in a child process.
// The loader's own client is out of reach from here, so the child is this
// test binary rather than a plugin launched by go-plugin; the wire is the
// same. Calls carry no deadline; the loader's add one (CallTimeout).
func fastClient(b *testing.B, c int) func(int) error {
	secret := make([]byte, shared.FastSecretSize)
	rand.Read(secret)
	addr := startChild(b, "fastecho", secretEnv+"="+hex.EncodeToString(secret))
	// The fallback serves Info and Health, which this benchmark never calls.
	fc := shared.NewFastClient(addr, secret, shared.FastOptions{}, nil)
	b.Cleanup(func() { fc.Shutdown() })
	ctx := context.Background()
	call := func(int) error { return checkEcho(fc.Load(ctx, benchID)) }
	warm(b, c, call)
	return call
}

// loaderPath is (*loader.Handler).Load on the Echo plugin, launched by
// loader.Open and reached over transport (loader.TransportFast, the
// default, or loader.TransportGRPC).
func loaderPath(transport string) func(*testing.B, int) func(int) error {
	return func(b *testing.B, c int) func(int) error {
		cfg := loader.Config{Name: "Echo", Dir: pluginDir, Logger: slog.New(slog.DiscardHandler)}
		if transport == loader.TransportGRPC {
			cfg.Transport = loader.TransportGRPC
		}
		h, err := loader.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Shutdown() })
		if got := h.Transport(); got != transport {
			b.Fatalf("the Echo plugin is reached over %q, not %q", got, transport)
		}
		ctx := context.Background()
		call := func(int) error { return checkEcho(h.Load(ctx, benchID)) }
		warm(b, c, call)
		return call
	}
}

// checkEcho checks that a Load brought back Echo's record.
func checkEcho(rec shared.Record, err error) error {
	if err == nil && len(rec.Data) != echoSize {
		err = fmt.Errorf("Load returned %d bytes, want %d", len(rec.Data), echoSize)
	}
	return err
}

// warm makes a few calls on each of c goroutines at once before the timer
// starts, so that connections are open and pooled (a FastClient keeps as
// many as were in use at once) and the first timed call costs what the
// others do.
func warm(b *testing.B, c int, call func(int) error) {
	var wg sync.WaitGroup
	errs := make([]error, c)
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 8 {
				if errs[w] = call(w); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// startChild re-executes this test binary as the server end of a Unix
// socket and returns the socket's path. The socket is made here and handed
// to the child as fd 3, so it accepts connections before the child has
// even started. The child serves role (see runChild) until its stdin
// closes: when b ends, or when this process dies.
func startChild(b *testing.B, role string, env ...string) string {
	// A directory of its own, with a short name: a socket's path must fit
	// in about 100 bytes.
	dir, err := os.MkdirTemp("", "tina4-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // the socket lives on in the child
	f, err := l.File()
	l.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), childEnv+"="+role), env...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return path
}

// runChild is the whole life of a child startChild made: serve role on the
// listening socket at fd 3 until stdin closes. It returns an exit code.
func runChild(role string) int {
	l, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
		return 1
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	switch role {
	case "pingpong":
		pingPong(l)
	case "fastecho":
		secret, err := hex.DecodeString(os.Getenv(secretEnv))
		if err == nil {
			err = shared.ServeFast(l, secret, sdk.NewStore("Echo", "0", newEcho()))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "bench child: unknown role %q\n", role)
		return 2
	}
	return 0
}

// pingPong answers every rawRequestSize bytes read on a connection with
// rawResponseSize bytes, a goroutine per connection, until l is closed.
func pingPong(l net.Listener) {
	resp := make([]byte, rawResponseSize) // only ever read, so shared
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			req := make([]byte, rawRequestSize)
			for {
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}()
	}
}

// echo is testdata/echo's handler, for the fastecho child.
type echo struct{ rec sdk.Record }

func newEcho() echo {
	return echo{sdk.Record{Data: bytes.Repeat([]byte{'e'}, echoSize), Expires: time.Now().Add(24 * time.Hour)}}
}

func (e echo) Load(context.Context, string) (sdk.Record, error) { return e.rec, nil }
func (echo) Save(context.Context, string, sdk.Record) error     { return nil }
func (echo) Close(context.Context, string) error                { return nil }
