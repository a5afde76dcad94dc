package loader

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/shared"
)

// transports is every way the host can reach a Go handler: the fast
// transport it offers by default, gRPC because the host asks for it, and
// gRPC because the handler opted out (sdk.Config.GRPCOnly).
var transports = []struct {
	name      string
	handler   string // installed name of the probe binary
	transport string // Config.Transport
	want      string // what Handler.Transport must report
}{
	{"fast", "Probe", "", TransportFast},
	{"grpc", "Probe", TransportGRPC, TransportGRPC},
	{"grpc-optout", "ProbeGRPC", "", TransportGRPC},
}

// openProbe launches the probe plugin under name over transport.
func openProbe(t *testing.T, name, transport string, timeout time.Duration) (*Handler, string) {
	t.Helper()
	dir := pluginDir(t)
	copyFile(t, filepath.Join(binDir, "probe"), filepath.Join(dir, name), 0o755)
	log := filepath.Join(t.TempDir(), "probe.log")
	h := open(t, Config{Name: name, Dir: dir, Transport: transport, CallTimeout: timeout,
		Env: []string{"TINA4_SESSION_PROBE_LOG=" + log}})
	return h, log
}

// probeID makes a valid id that starts with prefix.
func probeID(prefix string) string {
	id := prefix + strings.Repeat("x", shared.IDLength)
	return id[:shared.IDLength-8] + fmt.Sprintf("%08d", time.Now().UnixNano()%1e8)
}

func TestTransportIsNegotiated(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, _ := openProbe(t, tr.handler, tr.transport, 0)
			if got := h.Transport(); got != tr.want {
				t.Fatalf("Transport() = %q, want %q", got, tr.want)
			}
			info, err := h.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.FastSecret != nil {
				t.Errorf("Info must not hand the fast-transport secret to callers")
			}
		})
	}
}

func TestFastSocketIsPrivate(t *testing.T) {
	h, _ := openProbe(t, "Probe", "", 0)
	h.mu.RLock()
	dir := h.cur.runDir
	h.mu.RUnlock()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory %s has mode %v, want 0700", dir, fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Getuid() {
		t.Errorf("socket directory owned by uid %d, want %d", st.Uid, os.Getuid())
	}
	sock := filepath.Join(dir, shared.FastSocketName)
	wrong := make([]byte, shared.FastSecretSize)
	rand.Read(wrong)
	c := shared.NewFastClient(sock, wrong, shared.FastOptions{}, nil)
	defer c.Shutdown()
	_, err = c.Load(context.Background(), testID('p'))
	if !errors.Is(err, shared.ErrTransport) {
		t.Fatalf("a client with the wrong secret must be turned away, got %v", err)
	}
	h.Shutdown()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("socket directory %s still there after Shutdown (err %v)", dir, err)
	}
}

func TestDeadlineReachesTheHandler(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			const timeout = 3 * time.Second
			h, _ := openProbe(t, tr.handler, tr.transport, timeout)
			start := time.Now()
			rec, err := h.Load(context.Background(), probeID("dl"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := time.Parse(time.RFC3339Nano, string(rec.Data))
			if err != nil {
				t.Fatalf("the handler saw no deadline: %q", rec.Data)
			}
			if want := start.Add(timeout); got.Before(want.Add(-time.Second)) || got.After(want.Add(time.Second)) {
				t.Errorf("handler's deadline %v, want about %v (the call timeout)", got, want)
			}
		})
	}
}

// waitForLine waits for the probe's log to hold a line starting with id.
func waitForLine(t *testing.T, log, id string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, id) {
				return line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the handler never logged the end of call %s", id)
	return ""
}

func TestCancellationReachesTheHandler(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, log := openProbe(t, tr.handler, tr.transport, time.Minute)
			ctx, cancel := context.WithCancel(context.Background())
			id := probeID("hang")
			errc := make(chan error, 1)
			go func() {
				_, err := h.Load(ctx, id)
				errc <- err
			}()
			waitForLine(t, log, id+" started") // the call is in the handler
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
				t.Errorf("a cancelled call must return context.Canceled (not ErrUnavailable), got %v", err)
			}
			if line := waitForLine(t, log, id+" context"); !strings.Contains(line, "context canceled") {
				t.Errorf("the handler's ctx ended with %q, want context canceled", line)
			}
		})
	}
}

func TestHungCallDoesNotBlockOtherIDs(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, log := openProbe(t, tr.handler, tr.transport, time.Minute)
			ctx, cancel := context.WithCancel(context.Background())
			var hung sync.WaitGroup
			for i := range 8 {
				hung.Add(1)
				go func() {
					defer hung.Done()
					h.Load(ctx, probeID(fmt.Sprintf("hang%d", i)))
				}()
			}
			for i := range 8 {
				waitForLine(t, log, fmt.Sprintf("hang%d", i)) // in the handler, hanging
			}
			// Eight calls hang until cancel; ordinary calls still go through.
			id := testID('o')
			rec := shared.Record{Data: []byte("other"), Expires: time.Now().Add(time.Hour)}
			for range 20 {
				if err := h.Save(context.Background(), id, rec); err != nil {
					t.Fatalf("Save beside hung calls: %v", err)
				}
				if got, err := h.Load(context.Background(), id); err != nil || string(got.Data) != "other" {
					t.Fatalf("Load beside hung calls: %q, %v", got.Data, err)
				}
			}
			cancel()
			hung.Wait()
		})
	}
}

func TestErrorsKeepTheirMeaning(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, _ := openProbe(t, tr.handler, tr.transport, 10*time.Second)
			ctx := context.Background()
			if _, err := h.Load(ctx, testID('n')); !errors.Is(err, shared.ErrNotFound) {
				t.Errorf("unknown id: want ErrNotFound, got %v", err)
			}
			var remote *shared.RemoteError
			if _, err := h.Load(ctx, probeID("fail")); !errors.As(err, &remote) || !strings.Contains(err.Error(), "probe store exploded") || errors.Is(err, ErrUnavailable) {
				t.Errorf("handler failure: want *RemoteError with the handler's message, got %v", err)
			}
			if err := h.Save(ctx, "not/an/id", shared.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); !errors.Is(err, shared.ErrInvalidID) {
				t.Errorf("invalid id: want ErrInvalidID, got %v", err)
			}
			if _, err := h.Load(ctx, probeID("huge")); !errors.Is(err, shared.ErrTooLarge) || errors.Is(err, ErrUnavailable) {
				t.Errorf("a loaded record over the limit: want ErrTooLarge, got %v", err)
			}
			id := testID('L')
			big := shared.Record{Data: make([]byte, shared.MaxRecordSize), Expires: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
			rand.Read(big.Data)
			if err := h.Save(ctx, id, big); err != nil {
				t.Fatalf("Save of a record of exactly MaxRecordSize: %v", err)
			}
			got, err := h.Load(ctx, id)
			if err != nil || !bytes.Equal(got.Data, big.Data) || !got.Expires.Equal(big.Expires) {
				t.Fatalf("a record of MaxRecordSize did not round trip (%d bytes, expires %v, err %v)", len(got.Data), got.Expires, err)
			}
			over := shared.Record{Data: make([]byte, shared.MaxRecordSize+1), Expires: big.Expires}
			if err := h.Save(ctx, id, over); !errors.Is(err, shared.ErrTooLarge) {
				t.Errorf("Save over the limit: want ErrTooLarge, got %v", err)
			}
			// The handler is still healthy after all of that.
			if _, err := h.Load(ctx, id); err != nil {
				t.Errorf("Load after the errors: %v", err)
			}
		})
	}
}

// The probe is a protocol-1 style handler (Load, Save, Close only): a
// protocol-2 call reaches it only if the host sends one anyway, and must
// then fail as unsupported, on every transport, leaving the plugin healthy.
func TestAProtocol2CallToAHandlerWithoutTheCapabilityIsUnsupported(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, _ := openProbe(t, tr.handler, tr.transport, 10*time.Second)
			ctx := context.Background()
			info, err := h.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.HasCapability(shared.CapabilityVersions) || info.HasCapability(shared.CapabilityLock) {
				t.Fatalf("the probe reports capabilities %v it does not have", info.Capabilities)
			}
			id := testID('u')
			if _, err := h.SaveIf(ctx, id, shared.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0); !errors.Is(err, shared.ErrUnsupported) || errors.Is(err, ErrUnavailable) {
				t.Errorf("SaveIf: want ErrUnsupported, got %v", err)
			}
			if _, err := h.Lock(ctx, id, "token", time.Second); !errors.Is(err, shared.ErrUnsupported) {
				t.Errorf("Lock: want ErrUnsupported, got %v", err)
			}
			if err := h.Unlock(ctx, id, "token"); !errors.Is(err, shared.ErrUnsupported) {
				t.Errorf("Unlock: want ErrUnsupported, got %v", err)
			}
			if _, err := h.Load(ctx, id); !errors.Is(err, shared.ErrNotFound) {
				t.Errorf("Load after the refused calls: %v", err)
			}
		})
	}
}

func TestTimeoutIsUnavailable(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, _ := openProbe(t, tr.handler, tr.transport, 300*time.Millisecond)
			for range 20 {
				_, err := h.Load(context.Background(), probeID("hang"))
				if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("want ErrUnavailable wrapping DeadlineExceeded, got %v", err)
				}
			}
		})
	}
}

func TestPluginKilledMidCall(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, _ := openProbe(t, tr.handler, tr.transport, time.Minute)
			pid := h.PID()
			errc := make(chan error, 4)
			for range 4 {
				go func() {
					_, err := h.Load(context.Background(), probeID("hang"))
					errc <- err
				}()
			}
			time.Sleep(200 * time.Millisecond)
			syscall.Kill(pid, syscall.SIGKILL)
			for range 4 {
				if err := <-errc; !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("a call in flight when the plugin dies must fail fast with ErrUnavailable, got %v", err)
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			rec := shared.Record{Data: []byte("after"), Expires: time.Now().Add(time.Hour)}
			for {
				err := h.Save(context.Background(), testID('k'), rec)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("while the plugin restarts want ErrUnavailable, got %v", err)
				}
				if time.Now().After(deadline) {
					t.Fatalf("not restarted within 30s: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if h.PID() == pid {
				t.Errorf("the call reached the killed process %d", pid)
			}
			if got := h.Transport(); got != tr.want {
				t.Errorf("after the restart Transport() = %q, want %q", got, tr.want)
			}
			if got, err := h.Load(context.Background(), testID('k')); err != nil || string(got.Data) != "after" {
				t.Errorf("Load on the relaunched plugin: %q, %v", got.Data, err)
			}
		})
	}
}

func TestConcurrentCallersGetTheirOwnAnswers(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h, _ := openProbe(t, tr.handler, tr.transport, 30*time.Second)
			const workers, rounds = 64, 30
			var wg sync.WaitGroup
			errc := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("%s%03d", strings.Repeat("c", shared.IDLength-3), w)
					for r := range rounds {
						want := fmt.Appendf(nil, "worker %d round %d %s", w, r, strings.Repeat("z", r*37))
						if err := h.Save(context.Background(), id, shared.Record{Data: want, Expires: time.Now().Add(time.Hour)}); err != nil {
							errc <- err
							return
						}
						got, err := h.Load(context.Background(), id)
						if err != nil || !bytes.Equal(got.Data, want) {
							errc <- fmt.Errorf("worker %d round %d got %q, %v", w, r, got.Data, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
		})
	}
}

func TestBackoffResetsForAPluginThatServed(t *testing.T) {
	logs := &syncBuffer{}
	dir := pluginDir(t)
	copyFile(t, filepath.Join(binDir, "probe"), filepath.Join(dir, "Probe"), 0o755)
	h := open(t, Config{Name: "Probe", Dir: dir, Logger: textLogger(logs)})
	rec := shared.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}
	for round := range 5 {
		// It serves, then a call makes it crash, as a handler with a
		// poisoned record would.
		if err := h.Save(context.Background(), testID('s'), rec); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		pid := h.PID()
		h.Load(context.Background(), probeID("die"))
		deadline := time.Now().Add(20 * time.Second)
		for h.PID() == pid || h.PID() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: not restarted", round)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var backoffs []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "session handler exited; restarting") {
			_, after, _ := strings.Cut(line, "backoff=")
			backoffs = append(backoffs, strings.Fields(after)[0])
			if !strings.Contains(line, "probe: dying on purpose") {
				t.Errorf("the exit line lacks the plugin's last words: %s", line)
			}
		}
	}
	if len(backoffs) != 5 {
		t.Fatalf("want 5 restarts logged, got %d:\n%s", len(backoffs), logs)
	}
	for i, b := range backoffs {
		if b != "100ms" {
			t.Errorf("restart %d waited %s; a plugin that served must be relaunched after the shortest wait (all: %v)", i+1, b, backoffs)
		}
	}
}

func TestStderrWithoutNewlinesStaysBounded(t *testing.T) {
	h, _ := openProbe(t, "Probe", "", 30*time.Second)
	if _, err := h.Load(context.Background(), probeID("spew")); !errors.Is(err, shared.ErrNotFound) {
		t.Fatalf("Load: %v", err)
	}
	// The unit under the plugin: whatever arrives, the partial line stays bounded.
	s := &pipeStderr{tail: newTailBuffer(20), log: quietLogger()}
	chunk := bytes.Repeat([]byte("y"), 1000)
	for range 10000 { // 10 MB, no newline
		s.Write(chunk)
		if len(s.partial) > maxLine || len(s.tail.partial) > 4096+len(chunk) {
			t.Fatalf("partial lines grow without bound: %d and %d bytes", len(s.partial), len(s.tail.partial))
		}
	}
}

func TestOversizedRecordsDoNotReachHostMemory(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			dir := pluginDir(t)
			copyFile(t, filepath.Join(binDir, "probe"), filepath.Join(dir, tr.handler), 0o755)
			h := open(t, Config{Name: tr.handler, Dir: dir, Transport: tr.transport, MaxRecordSize: 1 << 20, CallTimeout: 30 * time.Second})
			// Warm up: connections, buffers.
			h.Load(context.Background(), probeID("big"))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const callers = 16
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := h.Load(context.Background(), probeID("big"))
					errs <- err
				}()
			}
			wg.Wait()
			runtime.ReadMemStats(&after)
			close(errs)
			for err := range errs {
				if !errors.Is(err, shared.ErrTooLarge) {
					t.Fatalf("an 8 MiB record with a 1 MiB limit: want ErrTooLarge, got %v", err)
				}
			}
			// 16 loads of 8 MiB would be 128 MiB; the host must refuse
			// them from their headers, not after reading them.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("the host allocated %d MiB refusing %d oversized records", grew>>20, callers)
			}
			if err := h.Save(context.Background(), testID('m'), shared.Record{Data: make([]byte, 1<<20+1), Expires: time.Now().Add(time.Hour)}); !errors.Is(err, shared.ErrTooLarge) {
				t.Errorf("Save over the limit: want ErrTooLarge, got %v", err)
			}
			if _, err := h.Load(context.Background(), testID('m')); !errors.Is(err, shared.ErrNotFound) {
				t.Errorf("the handler still answers after the refusals: %v", err)
			}
		})
	}
}

func TestCallsInFlightAreCapped(t *testing.T) {
	dir := pluginDir(t)
	copyFile(t, filepath.Join(binDir, "probe"), filepath.Join(dir, "Probe"), 0o755)
	h := open(t, Config{Name: "Probe", Dir: dir, MaxCalls: 2, CallTimeout: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); h.Load(ctx, probeID("hang")) }()
	}
	for len(h.slots) < 2 { // both slots taken until the hung calls time out at 3s
		time.Sleep(5 * time.Millisecond)
	}
	_, err := h.Load(context.Background(), testID('q')) // gives up waiting at 1.6s
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "TINA4_PLUGIN_MAX_CALLS") {
		t.Fatalf("a call beyond MaxCalls: want ErrUnavailable naming TINA4_PLUGIN_MAX_CALLS, got %v", err)
	}
	wg.Wait() // the hung calls time out and free their slots
	if _, err := h.Load(context.Background(), testID('q')); !errors.Is(err, shared.ErrNotFound) {
		t.Fatalf("once slots are free, calls go through: %v", err)
	}
}

func TestStopIsCalledWhenTheHostStopsThePlugin(t *testing.T) {
	h, log := openProbe(t, "Probe", "", 10*time.Second)
	if _, err := h.Load(context.Background(), testID('s')); !errors.Is(err, shared.ErrNotFound) {
		t.Fatal(err)
	}
	h.Shutdown()
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "stopped") {
		t.Fatalf("the handler's Stop was not called when the host shut the plugin down; its log: %q", b)
	}
}
