// Package handlertest is the conformance kit for session handlers: one call
// runs every behaviour a correct sdk.Handler must have and reports, in plain
// words, what is wrong. It is to handlers what testing/fstest.TestFS is to
// file systems.
//
// In a handler's own tests:
//
//	func TestConformance(t *testing.T) {
//		h, _ := mystore.New(...)
//		handlertest.Run(t, h)
//	}
//
// Check runs the same checks without the testing package (the host's
// `tina4-host plugins verify` uses it against a launched binary).
package handlertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// Options tune a run.
type Options struct {
	// Quick runs only the fast subset: round trip, overwrite, not found,
	// close, a record saved already expired, a record of LargeSize (set it
	// to what the host will send: a gRPC handler that never raised gRPC's
	// 4 MiB message limit fails it), and the protocol-2 checks that take
	// no waiting.
	Quick bool
	// LargeSize is the size of the large-value check (default
	// sdk.MaxRecordSize, the largest record the host stores).
	LargeSize int
	// ExpiryWait is how long the expiry check waits for a record to expire
	// (default 1.5s); stores with whole-second expiry need at least 1s.
	ExpiryWait time.Duration
	// Timeout bounds each check (default 30s).
	Timeout time.Duration
}

// A Check is one behaviour. It returns nil when the handler behaves.
type Check struct {
	Name  string
	Quick bool
	Run   func(ctx context.Context, h sdk.Handler, o Options) error
}

// Result is the outcome of one Check. Skipped is set for a check of a
// protocol-2 capability the handler does not offer (Err is then nil).
type Result struct {
	Name    string
	Err     error
	Skipped bool
}

// Checks lists every behaviour the kit verifies, in the order it runs them.
func Checks() []Check {
	return []Check{
		{"save then load returns the same bytes and expiry", true, checkRoundTrip},
		{"save overwrites an existing record", true, checkOverwrite},
		{"load of an unknown id reports sdk.ErrNotFound", true, checkNotFound},
		{"close removes the record and is idempotent", true, checkClose},
		{"a record saved already expired is not found", true, checkSavedExpired},
		{"a record is not found once it expires", false, checkExpires},
		{"the largest record the host allows round trips", true, checkLarge},
		{"ids with every allowed character work and stay distinct", false, checkAlphabet},
		{"concurrent callers on distinct ids", false, checkConcurrentDistinct},
		{"concurrent callers on one id never see a mix", false, checkConcurrentShared},
		{"a done context stops every call", false, checkContext},
		{"versions: every write gets a new version and Load reports it", true, checkVersions},
		{"versions: a stale SaveIf is a conflict carrying the current record", true, checkStaleSaveIf},
		{"versions: exactly one of concurrent SaveIfs of one version wins", false, checkSaveIfOneWinner},
		{"versions: a SaveIf after Close fails (a destroyed session stays destroyed)", true, checkSaveIfAfterClose},
		{"versions: an expired record is no record for SaveIf", false, checkSaveIfExpired},
		{"lock: one token at a time, extended by its holder, released only by it", true, checkLock},
		{"lock: a lock expires", false, checkLockExpires},
		{"lock: exactly one of concurrent Locks wins", false, checkLockOneWinner},
		{"index: CloseAll closes exactly the principal's live sessions", true, checkCloseAll},
		{"index: a session saved since under another principal or none is not the old principal's", true, checkCloseAllMoved},
		{"index: CloseAll of an unknown principal closes nothing", true, checkCloseAllUnknown},
		{"index: a SaveIf after CloseAll fails (a destroyed session stays destroyed)", true, checkCloseAllStaysClosed},
	}
}

func (o *Options) defaults() {
	if o.LargeSize <= 0 {
		o.LargeSize = sdk.MaxRecordSize
	}
	if o.ExpiryWait <= 0 {
		o.ExpiryWait = 1500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
}

// CheckAll runs the checks (the quick subset when o.Quick) against h and
// returns one Result per check, in order.
func CheckAll(ctx context.Context, h sdk.Handler, o Options) []Result {
	o.defaults()
	var out []Result
	for _, c := range Checks() {
		if o.Quick && !c.Quick {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := c.Run(cctx, h, o)
		cancel()
		if errors.Is(err, errNotOffered) {
			out = append(out, Result{Name: c.Name, Skipped: true})
			continue
		}
		out = append(out, Result{Name: c.Name, Err: err})
	}
	return out
}

// Run runs every check against h as a subtest of t.
func Run(t *testing.T, h sdk.Handler, opts ...Options) {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.defaults()
	for _, c := range Checks() {
		if o.Quick && !c.Quick {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
			defer cancel()
			if err := c.Run(ctx, h, o); errors.Is(err, errNotOffered) {
				t.Skip("the handler does not offer this capability")
			} else if err != nil {
				t.Error(err)
			}
		})
	}
}

// NewID returns a fresh random session id, as the host makes them.
func NewID() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func future() time.Time { return time.Now().Add(time.Hour).Truncate(time.Millisecond) }

func payload(tag string, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return append([]byte(tag+"\x00\n"), b...)
}

func expectRecord(ctx context.Context, h sdk.Handler, id string, want sdk.Record, what string) error {
	got, err := h.Load(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: Load returned error %v, want the saved record", what, err)
	}
	if !bytes.Equal(got.Data, want.Data) {
		return fmt.Errorf("%s: Load returned %d bytes that differ from the %d saved (data must be stored byte for byte)", what, len(got.Data), len(want.Data))
	}
	if d := got.Expires.Sub(want.Expires); d < -time.Second || d > time.Second {
		return fmt.Errorf("%s: Load returned expiry %v, want %v (within 1s)", what, got.Expires, want.Expires)
	}
	return nil
}

func expectNotFound(ctx context.Context, h sdk.Handler, id, what string) error {
	_, err := h.Load(ctx, id)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("%s: Load found a record, want sdk.ErrNotFound", what)
	}
	return fmt.Errorf("%s: Load returned %v, want sdk.ErrNotFound (not-found is not a failure)", what, err)
}

func checkRoundTrip(ctx context.Context, h sdk.Handler, _ Options) error {
	id := NewID()
	rec := sdk.Record{Data: payload("round-trip", 300), Expires: future()}
	if err := h.Save(ctx, id, rec); err != nil {
		return fmt.Errorf("Save returned %v", err)
	}
	defer h.Close(context.WithoutCancel(ctx), id)
	return expectRecord(ctx, h, id, rec, "after Save")
}

func checkOverwrite(ctx context.Context, h sdk.Handler, _ Options) error {
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	if err := h.Save(ctx, id, sdk.Record{Data: payload("first", 2000), Expires: future()}); err != nil {
		return fmt.Errorf("first Save returned %v", err)
	}
	second := sdk.Record{Data: []byte("second, shorter"), Expires: future().Add(time.Minute)}
	if err := h.Save(ctx, id, second); err != nil {
		return fmt.Errorf("second Save returned %v", err)
	}
	return expectRecord(ctx, h, id, second, "after overwriting with a shorter record")
}

func checkNotFound(ctx context.Context, h sdk.Handler, _ Options) error {
	return expectNotFound(ctx, h, NewID(), "an id never saved")
}

func checkClose(ctx context.Context, h sdk.Handler, _ Options) error {
	id := NewID()
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: future()}); err != nil {
		return fmt.Errorf("Save returned %v", err)
	}
	if err := h.Close(ctx, id); err != nil {
		return fmt.Errorf("Close returned %v", err)
	}
	if err := expectNotFound(ctx, h, id, "after Close"); err != nil {
		return err
	}
	if err := h.Close(ctx, id); err != nil {
		return fmt.Errorf("Close of an id already closed returned %v, want nil", err)
	}
	if err := h.Close(ctx, NewID()); err != nil {
		return fmt.Errorf("Close of an id never saved returned %v, want nil", err)
	}
	return nil
}

func checkSavedExpired(ctx context.Context, h sdk.Handler, _ Options) error {
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("stale"), Expires: time.Now().Add(-time.Minute)}); err != nil {
		return fmt.Errorf("Save of an expired record returned %v", err)
	}
	return expectNotFound(ctx, h, id, "a record saved with an expiry in the past")
}

func checkExpires(ctx context.Context, h sdk.Handler, o Options) error {
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	rec := sdk.Record{Data: []byte("short-lived"), Expires: time.Now().Add(o.ExpiryWait)}
	if err := h.Save(ctx, id, rec); err != nil {
		return fmt.Errorf("Save returned %v", err)
	}
	if _, err := h.Load(ctx, id); err != nil {
		return fmt.Errorf("Load before expiry returned %v", err)
	}
	// Wait until just past the expiry (Redis and others expire lazily or
	// in the background; allow a little more than a second on top).
	deadline := rec.Expires.Add(2 * time.Second)
	for {
		_, err := h.Load(ctx, id)
		if errors.Is(err, sdk.ErrNotFound) {
			if time.Now().Before(rec.Expires) {
				return fmt.Errorf("record vanished before its expiry %v", rec.Expires)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("Load while waiting for expiry returned %v", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("record still loads 2s after its expiry %v; Load must report sdk.ErrNotFound once Expires has passed", rec.Expires)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func checkLarge(ctx context.Context, h sdk.Handler, o Options) error {
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	rec := sdk.Record{Data: payload("large", o.LargeSize)[:o.LargeSize], Expires: future()}
	if err := h.Save(ctx, id, rec); err != nil {
		return fmt.Errorf("Save of %d bytes returned %v (over gRPC, lift the 4 MiB message limit: sdk.Serve does)", len(rec.Data), err)
	}
	return expectRecord(ctx, h, id, rec, fmt.Sprintf("a %d-byte record", len(rec.Data)))
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func checkAlphabet(ctx context.Context, h sdk.Handler, _ Options) error {
	// Two ids that between them use every allowed character, and two ids
	// that differ only in case (stores must be case-sensitive).
	ids := []string{
		alphabet[:43],
		alphabet[21:],
		strings.Repeat("a", 43),
		strings.Repeat("A", 43),
		strings.Repeat("-", 42) + "_",
		strings.Repeat("_", 42) + "-",
	}
	for i, id := range ids {
		if !sdk.ValidID(id) {
			return fmt.Errorf("internal: test id %q is not valid", id)
		}
		defer h.Close(context.WithoutCancel(ctx), id)
		if err := h.Save(ctx, id, sdk.Record{Data: []byte(fmt.Sprintf("id-%d", i)), Expires: future()}); err != nil {
			return fmt.Errorf("Save with id %q returned %v", id, err)
		}
	}
	for i, id := range ids {
		got, err := h.Load(ctx, id)
		if err != nil {
			return fmt.Errorf("Load with id %q returned %v", id, err)
		}
		if want := fmt.Sprintf("id-%d", i); string(got.Data) != want {
			return fmt.Errorf("id %q loaded %q, want %q (ids must be distinct and case-sensitive)", id, got.Data, want)
		}
	}
	return nil
}

func checkConcurrentDistinct(ctx context.Context, h sdk.Handler, _ Options) error {
	const workers, rounds = 32, 10
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			id := NewID()
			defer h.Close(context.WithoutCancel(ctx), id)
			for r := 0; r < rounds; r++ {
				rec := sdk.Record{Data: []byte(fmt.Sprintf("worker %d round %d", w, r)), Expires: future()}
				if err := h.Save(ctx, id, rec); err != nil {
					errc <- fmt.Errorf("worker %d: Save returned %v", w, err)
					return
				}
				if err := expectRecord(ctx, h, id, rec, fmt.Sprintf("worker %d round %d", w, r)); err != nil {
					errc <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func checkConcurrentShared(ctx context.Context, h sdk.Handler, _ Options) error {
	const workers = 16
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	written := make(map[string]bool)
	var recs []sdk.Record
	for w := 0; w < workers; w++ {
		r := sdk.Record{Data: payload(fmt.Sprintf("writer-%02d", w), 64<<10), Expires: future()}
		recs = append(recs, r)
		written[string(r.Data)] = true
	}
	if err := h.Save(ctx, id, recs[0]); err != nil {
		return fmt.Errorf("Save returned %v", err)
	}
	errc := make(chan error, 2*workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if err := h.Save(ctx, id, recs[w]); err != nil {
					errc <- fmt.Errorf("concurrent Save returned %v", err)
					return
				}
			}
		}(w)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				got, err := h.Load(ctx, id)
				if err != nil {
					errc <- fmt.Errorf("Load during concurrent Saves returned %v (a reader must see the old record or the new one)", err)
					return
				}
				if !written[string(got.Data)] {
					errc <- fmt.Errorf("Load during concurrent Saves returned %d bytes that no writer wrote: writes are not atomic", len(got.Data))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func checkContext(ctx context.Context, h sdk.Handler, _ Options) error {
	done, cancel := context.WithCancel(ctx)
	cancel()
	id := NewID()
	var failures []string
	if _, err := h.Load(done, id); err == nil || errors.Is(err, sdk.ErrNotFound) {
		failures = append(failures, fmt.Sprintf("Load returned %v", err))
	}
	if err := h.Save(done, id, sdk.Record{Data: []byte("x"), Expires: future()}); err == nil {
		failures = append(failures, "Save returned nil")
	}
	if err := h.Close(done, id); err == nil {
		failures = append(failures, "Close returned nil")
	}
	h.Close(context.WithoutCancel(ctx), id)
	if len(failures) > 0 {
		return fmt.Errorf("with a cancelled context every call must return an error (check ctx.Err() first): %s", strings.Join(failures, "; "))
	}
	return nil
}
