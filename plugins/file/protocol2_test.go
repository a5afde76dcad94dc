package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// newHandlerOn returns a Handler on folder, as a second host sharing the
// folder would have (its own stripe files open, its own mutexes).
func newHandlerOn(t *testing.T, folder string, opts ...Option) *Handler {
	t.Helper()
	all := append([]Option{WithSweepInterval(0), WithLogger((&logBuffer{}).logger())}, opts...)
	h, err := New(folder, all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(h.Stop)
	return h
}

func TestV1FileLoadsWithLegacyVersionAndSaveIfReplacesIt(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	id := randomID(t)
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	writeRaw(t, h, id+suffix, []byte("tina4-session-v1 "+strconv.FormatInt(expires.UnixMilli(), 10)+" 5\nold\n!"))

	got, err := h.Load(ctx, id)
	if err != nil {
		t.Fatalf("Load of a v1 file: want its record, got %v", err)
	}
	if string(got.Data) != "old\n!" || !got.Expires.Equal(expires) || got.Version != legacyVersion {
		t.Fatalf("Load of a v1 file: want %q, %v, version %d; got %q, %v, version %d",
			"old\n!", expires, legacyVersion, got.Data, got.Expires, got.Version)
	}
	// Sweep keeps a live v1 file.
	if removed, err := h.Sweep(time.Now()); removed != 0 || err != nil {
		t.Fatalf("Sweep with a live v1 file: want nothing removed, got %d, %v", removed, err)
	}

	_, err = h.SaveIf(ctx, id, sdk.Record{Data: []byte("creating"), Expires: expires}, 0)
	var ce *sdk.ConflictError
	if !errors.As(err, &ce) || !ce.Found || ce.Current.Version != legacyVersion || string(ce.Current.Data) != "old\n!" {
		t.Fatalf("SaveIf with 0 over a live v1 file: want a conflict carrying the v1 record, got %v (%+v)", err, ce)
	}
	v, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("new"), Expires: expires}, legacyVersion)
	if err != nil {
		t.Fatalf("SaveIf with version %d over a v1 file: want it saved, got %v", legacyVersion, err)
	}
	if v <= legacyVersion {
		t.Errorf("SaveIf: want a new version above %d, got %d", legacyVersion, v)
	}
	content, err := os.ReadFile(sessionPath(h, id))
	if err != nil {
		t.Fatal(err)
	}
	if want := "tina4-session-v2 " + strconv.FormatInt(expires.UnixMilli(), 10) + " 3 " + strconv.FormatUint(v, 10) + "\nnew"; string(content) != want {
		t.Errorf("file after SaveIf: want %q, got %q", want, content)
	}
	_, err = h.SaveIf(ctx, id, sdk.Record{Data: []byte("stale"), Expires: expires}, legacyVersion)
	if !errors.As(err, &ce) || !ce.Found || ce.Current.Version != v {
		t.Errorf("SaveIf with version %d once the v1 file is replaced: want a conflict carrying version %d, got %v", legacyVersion, v, err)
	}
}

func TestExpiredV1FileIsSweptAndNoRecordForSaveIf(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	past := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
	swept, reused := randomID(t), randomID(t)
	writeRaw(t, h, swept+suffix, []byte("tina4-session-v1 "+past+" 1\nx"))
	writeRaw(t, h, reused+suffix, []byte("tina4-session-v1 "+past+" 1\nx"))
	_, err := h.SaveIf(ctx, reused, sdk.Record{Data: []byte("y"), Expires: time.Now().Add(time.Hour)}, legacyVersion)
	var ce *sdk.ConflictError
	if !errors.As(err, &ce) || ce.Found {
		t.Errorf("SaveIf with version %d over an expired v1 file: want a conflict with Found=false, got %v", legacyVersion, err)
	}
	if _, err := h.SaveIf(ctx, reused, sdk.Record{Data: []byte("y"), Expires: time.Now().Add(time.Hour)}, 0); err != nil {
		t.Errorf("SaveIf with 0 over an expired v1 file: want it saved, got %v", err)
	}
	if removed, err := h.Sweep(time.Now()); removed != 1 || err != nil {
		t.Errorf("Sweep with one expired v1 file: want 1 removed, got %d, %v", removed, err)
	}
	if names := listFolder(t, h.folder); len(names) != 1 || names[0] != inShard(reused, reused+suffix) {
		t.Errorf("after Sweep: want only %s.sess, got %v", reused, names)
	}
}

// Two Handlers on one folder are two hosts sharing it: only the stripe
// files' OS locks keep their SaveIfs apart.
func TestSaveIfOfTwoHandlersOnOneFolderHasOneWinnerPerRound(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "sessions")
	hs := []*Handler{newHandlerOn(t, folder), newHandlerOn(t, folder)}
	raceSaveIf(t, hs, 40)
}

// raceSaveIf runs rounds in which 8 writers spread over hs SaveIf one
// version of one id at once, and checks that exactly one of them wins.
func raceSaveIf(t *testing.T, hs []*Handler, rounds int) {
	t.Helper()
	const writers = 8
	ctx := context.Background()
	id := randomID(t)
	base, err := hs[0].SaveIf(ctx, id, sdk.Record{Data: []byte("base"), Expires: time.Now().Add(time.Hour)}, 0)
	if err != nil {
		t.Fatalf("SaveIf of a new id: %v", err)
	}
	for round := range rounds {
		var wins atomic.Int32
		var winner atomic.Uint64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				<-start
				data := fmt.Sprintf("round %d writer %d", round, w)
				v, err := hs[w%len(hs)].SaveIf(ctx, id, sdk.Record{Data: []byte(data), Expires: time.Now().Add(time.Hour)}, base)
				var ce *sdk.ConflictError
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(v)
				case errors.As(err, &ce) && ce.Found && ce.Current.Version != base:
				default:
					t.Errorf("round %d writer %d: SaveIf: want success or a conflict carrying a newer record, got %v", round, w, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d of %d SaveIfs of one version won, want exactly 1", round, n, writers)
		}
		for i, h := range hs {
			got, err := h.Load(ctx, id)
			if err != nil || got.Version != winner.Load() {
				t.Fatalf("round %d: handler %d loads version %d (%v), want the winner's %d", round, i, got.Version, err, winner.Load())
			}
		}
		base = winner.Load()
	}
}

func TestLockOfTwoHandlersOnOneFolderHasOneWinner(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "sessions")
	hs := []*Handler{newHandlerOn(t, folder), newHandlerOn(t, folder)}
	ctx := context.Background()
	for round := range 20 {
		id := randomID(t)
		var winners []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for c := range 8 {
			wg.Go(func() {
				<-start
				token := fmt.Sprintf("%016x", c)
				got, err := hs[c%2].Lock(ctx, id, token, time.Minute)
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				if got {
					mu.Lock()
					winners = append(winners, token)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d of 8 Locks through two Handlers won (%v), want exactly 1", round, len(winners), winners)
		}
		// The other Handler sees the lock, and only the holder releases it.
		other := hs[1]
		if got, err := other.Lock(ctx, id, "ffffffffffffffff", time.Minute); got || err != nil {
			t.Fatalf("round %d: Lock by another token through the other Handler: want false, got %v, %v", round, got, err)
		}
		if err := other.Unlock(ctx, id, winners[0]); err != nil {
			t.Fatalf("Unlock: %v", err)
		}
		if got, err := hs[0].Lock(ctx, id, "ffffffffffffffff", time.Minute); !got || err != nil {
			t.Fatalf("round %d: Lock after the holder's Unlock through the other Handler: want true, got %v, %v", round, got, err)
		}
	}
}

func TestLockExpiresAndIsNotASession(t *testing.T) {
	clock := newTestClock(time.Now())
	h, _ := newTestHandler(t, WithClock(clock.Now))
	ctx := context.Background()
	id := randomID(t)
	if got, err := h.Lock(ctx, id, "aaaa", time.Minute); !got || err != nil {
		t.Fatalf("Lock: want true, got %v, %v", got, err)
	}
	content, err := os.ReadFile(sessionLockPath(h, id))
	if err != nil {
		t.Fatalf("want the lock file %s.lock: %v", id, err)
	}
	if want := "aaaa " + strconv.FormatInt(clock.Now().Add(time.Minute).UnixMilli(), 10) + "\n"; string(content) != want {
		t.Errorf("lock file: want %q, got %q", want, content)
	}
	if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load of a locked id with no record: want sdk.ErrNotFound, got %v", err)
	}
	rec := sdk.Record{Data: []byte("x"), Expires: clock.Now().Add(time.Hour)}
	if err := h.Save(ctx, id, rec); err != nil {
		t.Fatalf("Save of a locked id: %v", err)
	}
	if err := h.Close(ctx, id); err != nil {
		t.Fatalf("Close of a locked id: %v", err)
	}
	if got, err := h.Lock(ctx, id, "bbbb", time.Minute); got || err != nil {
		t.Errorf("Lock by another token after Close: want false (Close leaves the lock), got %v, %v", got, err)
	}
	clock.Advance(time.Minute)
	if got, err := h.Lock(ctx, id, "bbbb", time.Minute); !got || err != nil {
		t.Errorf("Lock by another token once the lock expired: want true, got %v, %v", got, err)
	}
	if got, err := h.Lock(ctx, id, "aaaa", time.Minute); got || err != nil {
		t.Errorf("Lock by the old holder after its lock was taken over: want false, got %v, %v", got, err)
	}
	if err := h.Unlock(ctx, id, "aaaa"); err != nil {
		t.Errorf("Unlock by the old holder: want nil, got %v", err)
	}
	if _, err := os.Stat(sessionLockPath(h, id)); err != nil {
		t.Errorf("Unlock by the old holder must leave the new holder's lock file: %v", err)
	}
	if err := h.Unlock(ctx, id, "bbbb"); err != nil {
		t.Errorf("Unlock by the holder: %v", err)
	}
	if names := listFolder(t, h.folder); len(names) != 0 {
		t.Errorf("after Unlock: want an empty folder, got %v", names)
	}
	if err := h.Unlock(ctx, id, "bbbb"); err != nil {
		t.Errorf("Unlock of a free lock: want nil, got %v", err)
	}
}

func TestDamagedLockFileIsNoLock(t *testing.T) {
	for _, content := range []string{"", "garbage", "aaaa\n", "aaaa 123", "aaaa soon\n", "aa aa 123\n", "aaaa 99999999999999\njunk"} {
		h, _ := newTestHandler(t)
		id := randomID(t)
		writeRaw(t, h, id+lockSuffix, []byte(content))
		if got, err := h.Lock(context.Background(), id, "bbbb", time.Minute); !got || err != nil {
			t.Errorf("Lock over a lock file holding %q: want true, got %v, %v", content, got, err)
		}
	}
}

func TestLockRefusesBadTokensAndTTLs(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	id := randomID(t)
	for _, token := range []string{"", "a b", "a\nb", "tab\t", strings.Repeat("a", 65), "é"} {
		if got, err := h.Lock(ctx, id, token, time.Minute); got || err == nil {
			t.Errorf("Lock with token %q: want an error, got %v, %v", token, got, err)
		}
		if err := h.Unlock(ctx, id, token); err == nil {
			t.Errorf("Unlock with token %q: want an error, got nil", token)
		}
	}
	if got, err := h.Lock(ctx, id, strings.Repeat("f", 64), time.Minute); !got || err != nil {
		t.Errorf("Lock with a 64-byte token: want true, got %v, %v", got, err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if got, err := h.Lock(ctx, randomID(t), "aaaa", ttl); got || err == nil {
			t.Errorf("Lock with ttl %v: want an error, got %v, %v", ttl, got, err)
		}
	}
}

func TestSweepRemovesExpiredLockFilesAndKeepsStripes(t *testing.T) {
	clock := newTestClock(time.Now())
	h, _ := newTestHandler(t, WithClock(clock.Now))
	ctx := context.Background()
	stripes := stripeFiles(t, h.folder)
	if len(stripes) != stripeCount || stripes[0] != ".lock-00" || stripes[stripeCount-1] != ".lock-3f" {
		t.Fatalf("stripe files: want .lock-00 to .lock-3f, got %v", stripes)
	}
	live, expired, damaged := randomID(t), randomID(t), randomID(t)
	if got, err := h.Lock(ctx, live, "aaaa", time.Hour); !got || err != nil {
		t.Fatalf("Lock: %v, %v", got, err)
	}
	if got, err := h.Lock(ctx, expired, "aaaa", time.Second); !got || err != nil {
		t.Fatalf("Lock: %v, %v", got, err)
	}
	writeRaw(t, h, damaged+lockSuffix, []byte("garbage"))
	keep := []string{"notes.lock", strings.Repeat("c", 42) + lockSuffix, ".lock-40", ".lock-x", ".lock-0A", ".lock-"}
	for _, name := range keep {
		writeRaw(t, h, name, []byte("garbage"))
	}
	removed, err := h.Sweep(clock.Now().Add(time.Minute))
	if removed != 2 || err != nil {
		t.Errorf("Sweep: want 2 lock files removed (expired, damaged), got %d, %v", removed, err)
	}
	want := append([]string{inShard(live, live+lockSuffix)}, keep...)
	slices.Sort(want)
	if got := listFolder(t, h.folder); !slices.Equal(got, want) {
		t.Errorf("after Sweep:\nwant %v\ngot  %v", want, got)
	}
	if got := stripeFiles(t, h.folder); !slices.Equal(got, stripes) {
		t.Errorf("after Sweep: want every stripe file kept, got %v", got)
	}
	// Sweeping far in the future removes the live lock too, and still no
	// stripe file.
	if removed, err := h.Sweep(clock.Now().Add(2 * time.Hour)); removed != 1 || err != nil {
		t.Errorf("Sweep after the last lock expired: want 1 removed, got %d, %v", removed, err)
	}
	if got := stripeFiles(t, h.folder); !slices.Equal(got, stripes) {
		t.Errorf("after the second Sweep: want every stripe file kept, got %v", got)
	}
}

func TestStripeAndLockFilesArePrivate(t *testing.T) {
	h, _ := newTestHandler(t)
	id := randomID(t)
	if got, err := h.Lock(context.Background(), id, "aaaa", time.Minute); !got || err != nil {
		t.Fatalf("Lock: %v, %v", got, err)
	}
	for _, name := range append(stripeFiles(t, h.folder), inShard(id, id+lockSuffix)) {
		info, err := os.Stat(filepath.Join(h.folder, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: want mode 0600, got %#o", name, perm)
		}
	}
}

// A stripe file removed behind the Handlers' backs is recreated, and a
// Handler that opened the old one still excludes one that opened the new.
func TestRemovedStripeFilesStillExclude(t *testing.T) {
	if !crossProcess {
		t.Skip("no cross-process file lock on this system")
	}
	folder := filepath.Join(t.TempDir(), "sessions")
	old := newHandlerOn(t, folder)
	for _, name := range stripeFiles(t, folder) {
		if err := os.Remove(filepath.Join(folder, name)); err != nil {
			t.Fatal(err)
		}
	}
	fresh := newHandlerOn(t, folder)
	raceSaveIf(t, []*Handler{old, fresh}, 20)
	if got := stripeFiles(t, folder); len(got) != stripeCount {
		t.Errorf("want the %d stripe files back, got %v", stripeCount, got)
	}
}

// childEnv, when set, makes TestSaveIfAcrossProcessesLosesNoUpdate the child
// process: "<folder>\n<id>\n<result file>".
const childEnv = "TINA4_FILE_TEST_SAVEIF_CHILD"

const (
	crossWorkers   = 2  // goroutines per process
	crossPerWorker = 60 // increments each goroutine makes
)

// Two processes (this one and the test binary run again), each with two
// goroutines, increment a counter kept in one session with SaveIf, retrying
// on conflicts. No increment may be lost: the final counter is the number of
// SaveIfs that succeeded.
func TestSaveIfAcrossProcessesLosesNoUpdate(t *testing.T) {
	if args := os.Getenv(childEnv); args != "" {
		crossChild(t, args)
		return
	}
	if !crossProcess {
		t.Skip("no cross-process file lock on this system")
	}
	if testing.Short() {
		t.Skip("starts a second process")
	}
	folder := filepath.Join(t.TempDir(), "sessions")
	h := newHandlerOn(t, folder)
	ctx := context.Background()
	id := randomID(t)
	if _, err := h.SaveIf(ctx, id, counterRecord(0), 0); err != nil {
		t.Fatalf("SaveIf of the counter: %v", err)
	}
	result := filepath.Join(t.TempDir(), "child-result")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSaveIfAcrossProcessesLosesNoUpdate$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+folder+"\n"+id+"\n"+result)
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the child process: %v", err)
	}
	// Start hammering once the child is about to, so the two overlap.
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(result + ".ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the child process did not start within a minute; its output:\n%s", out)
		}
		time.Sleep(time.Millisecond)
	}
	mine, myConflicts, err := hammer(ctx, h, id)
	if err != nil {
		t.Error(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child process: %v; its output:\n%s", err, out)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("child's result: %v; its output:\n%s", err, out)
	}
	var theirs, theirConflicts int
	if _, err := fmt.Sscanf(string(b), "%d %d", &theirs, &theirConflicts); err != nil {
		t.Fatalf("child's result %q: %v", b, err)
	}
	rec, err := h.Load(ctx, id)
	if err != nil {
		t.Fatalf("Load of the counter: %v", err)
	}
	got := counterOf(t, rec)
	t.Logf("this process: %d increments, %d conflicts; child: %d increments, %d conflicts; counter %d",
		mine, myConflicts, theirs, theirConflicts, got)
	if want := 2 * crossWorkers * crossPerWorker; mine+theirs != want {
		t.Errorf("want %d successful SaveIfs in all, got %d", want, mine+theirs)
	}
	if got != mine+theirs {
		t.Errorf("counter is %d after %d successful increments: %d updates were lost", got, mine+theirs, mine+theirs-got)
	}
}

// crossChild is the child process's side of the test.
func crossChild(t *testing.T, args string) {
	parts := strings.Split(args, "\n")
	if len(parts) != 3 {
		t.Fatalf("%s=%q: want folder, id and result file", childEnv, args)
	}
	folder, id, result := parts[0], parts[1], parts[2]
	h := newHandlerOn(t, folder)
	if err := os.WriteFile(result+".ready", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n, conflicts, err := hammer(context.Background(), h, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(result, fmt.Appendf(nil, "%d %d", n, conflicts), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hammer runs crossWorkers goroutines that each increment the counter
// crossPerWorker times, and returns the successful SaveIfs and conflicts.
func hammer(ctx context.Context, h *Handler, id string) (successes, conflicts int, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range crossWorkers {
		wg.Go(func() {
			for range crossPerWorker {
				c, ierr := increment(ctx, h, id)
				mu.Lock()
				conflicts += c
				if ierr != nil {
					err = ierr
					mu.Unlock()
					return
				}
				successes++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return successes, conflicts, err
}

// increment adds one to the counter in id with SaveIf, retrying on
// conflicts with the record each conflict carries.
func increment(ctx context.Context, h *Handler, id string) (conflicts int, err error) {
	rec, err := h.Load(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("Load of the counter: %w", err)
	}
	for {
		n, err := strconv.Atoi(strings.TrimPrefix(string(rec.Data), "counter "))
		if err != nil {
			return conflicts, fmt.Errorf("counter record holds %q", rec.Data)
		}
		_, err = h.SaveIf(ctx, id, counterRecord(n+1), rec.Version)
		var ce *sdk.ConflictError
		switch {
		case err == nil:
			return conflicts, nil
		case errors.As(err, &ce) && ce.Found:
			conflicts++
			rec = ce.Current
		default:
			return conflicts, fmt.Errorf("SaveIf of the counter: %w", err)
		}
	}
}

func counterRecord(n int) sdk.Record {
	return sdk.Record{Data: []byte("counter " + strconv.Itoa(n)), Expires: time.Now().Add(time.Hour)}
}

func counterOf(t *testing.T, rec sdk.Record) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(string(rec.Data), "counter "))
	if err != nil {
		t.Fatalf("counter record holds %q", rec.Data)
	}
	return n
}

// sessionLockPath is where h keeps the lock of session id.
func sessionLockPath(h *Handler, id string) string {
	p, err := h.lockPath(id)
	if err != nil {
		panic(err)
	}
	return p
}
