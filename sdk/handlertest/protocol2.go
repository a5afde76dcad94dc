package handlertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// errNotOffered is what a protocol-2 check returns for a handler that does
// not offer the capability it checks: the check is skipped, not failed.
var errNotOffered = errors.New("the handler does not offer this capability")

// infoer is a handler reached over the wire (the loader's), whose methods
// exist whether or not the plugin behind them has the capability.
type infoer interface {
	Info(ctx context.Context) (shared.Info, error)
}

// offers reports whether h offers capability c: a handler reached over the
// wire says so in Info, an in-process one by implementing the interface.
func offers(ctx context.Context, h sdk.Handler, c string) bool {
	if in, ok := h.(infoer); ok {
		info, err := in.Info(ctx)
		return err == nil && info.HasCapability(c)
	}
	switch c {
	case shared.CapabilityVersions:
		_, ok := h.(sdk.VersionedHandler)
		return ok
	case shared.CapabilityLock:
		_, ok := h.(sdk.Locker)
		return ok
	case shared.CapabilityIndex:
		_, ok := h.(sdk.Indexer)
		return ok
	}
	return false
}

func versioned(ctx context.Context, h sdk.Handler) (sdk.VersionedHandler, error) {
	v, ok := h.(sdk.VersionedHandler)
	if !ok || !offers(ctx, h, shared.CapabilityVersions) {
		return nil, errNotOffered
	}
	return v, nil
}

func locker(ctx context.Context, h sdk.Handler) (sdk.Locker, error) {
	l, ok := h.(sdk.Locker)
	if !ok || !offers(ctx, h, shared.CapabilityLock) {
		return nil, errNotOffered
	}
	return l, nil
}

// expectConflict checks that err is a *sdk.ConflictError with found and,
// when found, the current record want.
func expectConflict(err error, found bool, want *sdk.Record, wantVersion uint64, what string) error {
	var ce *sdk.ConflictError
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s: SaveIf returned %v, want a *sdk.ConflictError", what, err)
	}
	if ce.Found != found {
		return fmt.Errorf("%s: SaveIf's conflict says Found=%v, want %v", what, ce.Found, found)
	}
	if !found {
		return nil
	}
	if !bytes.Equal(ce.Current.Data, want.Data) {
		return fmt.Errorf("%s: the conflict carries %d bytes that are not the stored record (%d bytes)", what, len(ce.Current.Data), len(want.Data))
	}
	if ce.Current.Version != wantVersion {
		return fmt.Errorf("%s: the conflict carries version %d, want the stored version %d", what, ce.Current.Version, wantVersion)
	}
	if d := ce.Current.Expires.Sub(want.Expires); d < -time.Second || d > time.Second {
		return fmt.Errorf("%s: the conflict carries expiry %v, want %v", what, ce.Current.Expires, want.Expires)
	}
	return nil
}

func loadVersion(ctx context.Context, h sdk.Handler, id string, want uint64, what string) error {
	got, err := h.Load(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: Load returned %v", what, err)
	}
	if got.Version != want {
		return fmt.Errorf("%s: Load reports version %d, want %d (the version of the last write)", what, got.Version, want)
	}
	return nil
}

func checkVersions(ctx context.Context, h sdk.Handler, _ Options) error {
	v, err := versioned(ctx, h)
	if err != nil {
		return err
	}
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	seen := map[uint64]bool{0: true}
	v1, err := v.SaveIf(ctx, id, sdk.Record{Data: []byte("first"), Expires: future()}, 0)
	if err != nil {
		return fmt.Errorf("SaveIf of a new id with version 0 returned %v, want it saved", err)
	}
	if seen[v1] {
		return fmt.Errorf("SaveIf returned version %d; a saved record needs a version other than 0", v1)
	}
	seen[v1] = true
	if err := loadVersion(ctx, h, id, v1, "after SaveIf"); err != nil {
		return err
	}
	v2, err := v.SaveIf(ctx, id, sdk.Record{Data: []byte("second"), Expires: future()}, v1)
	if err != nil {
		return fmt.Errorf("SaveIf with the loaded version returned %v, want it saved", err)
	}
	if seen[v2] {
		return fmt.Errorf("the second write got version %d again; every write needs a new version", v2)
	}
	seen[v2] = true
	if err := loadVersion(ctx, h, id, v2, "after the second SaveIf"); err != nil {
		return err
	}
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("third"), Expires: future()}); err != nil {
		return fmt.Errorf("Save returned %v", err)
	}
	got, err := h.Load(ctx, id)
	if err != nil {
		return fmt.Errorf("Load after Save returned %v", err)
	}
	if seen[got.Version] {
		return fmt.Errorf("after a plain Save, Load reports version %d, which is 0 or an earlier write's: Save must give a new version too", got.Version)
	}
	return nil
}

func checkStaleSaveIf(ctx context.Context, h sdk.Handler, _ Options) error {
	v, err := versioned(ctx, h)
	if err != nil {
		return err
	}
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	first := sdk.Record{Data: []byte("first"), Expires: future()}
	v1, err := v.SaveIf(ctx, id, first, 0)
	if err != nil {
		return fmt.Errorf("SaveIf of a new id returned %v", err)
	}
	second := sdk.Record{Data: payload("second", 100), Expires: future().Add(time.Minute)}
	v2, err := v.SaveIf(ctx, id, second, v1)
	if err != nil {
		return fmt.Errorf("SaveIf with the current version returned %v", err)
	}
	_, err = v.SaveIf(ctx, id, sdk.Record{Data: []byte("stale"), Expires: future()}, v1)
	if err := expectConflict(err, true, &second, v2, "SaveIf with an older version"); err != nil {
		return err
	}
	_, err = v.SaveIf(ctx, id, sdk.Record{Data: []byte("creating"), Expires: future()}, 0)
	if err := expectConflict(err, true, &second, v2, "SaveIf with version 0 over a live record"); err != nil {
		return err
	}
	if err := expectRecord(ctx, h, id, second, "after refused SaveIfs"); err != nil {
		return fmt.Errorf("%w (a refused SaveIf must write nothing)", err)
	}
	return loadVersion(ctx, h, id, v2, "after refused SaveIfs")
}

func checkSaveIfOneWinner(ctx context.Context, h sdk.Handler, _ Options) error {
	v, err := versioned(ctx, h)
	if err != nil {
		return err
	}
	const writers = 16
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	v0, err := v.SaveIf(ctx, id, sdk.Record{Data: []byte("base"), Expires: future()}, 0)
	if err != nil {
		return fmt.Errorf("SaveIf of a new id returned %v", err)
	}
	type outcome struct {
		w   int
		ver uint64
		err error
	}
	recs := make([]sdk.Record, writers)
	out := make(chan outcome, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		recs[w] = sdk.Record{Data: []byte(fmt.Sprintf("writer %02d", w)), Expires: future()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ver, err := v.SaveIf(ctx, id, recs[w], v0)
			out <- outcome{w, ver, err}
		}()
	}
	close(start)
	wg.Wait()
	close(out)
	var winners []outcome
	var conflicts []*sdk.ConflictError
	for o := range out {
		var ce *sdk.ConflictError
		switch {
		case o.err == nil:
			winners = append(winners, o)
		case errors.As(o.err, &ce):
			conflicts = append(conflicts, ce)
		default:
			return fmt.Errorf("writer %d: SaveIf returned %v", o.w, o.err)
		}
	}
	if len(winners) != 1 {
		return fmt.Errorf("%d of %d concurrent SaveIfs of one version were saved, want exactly 1 (check and write must be one atomic step)", len(winners), writers)
	}
	win := winners[0]
	for _, ce := range conflicts {
		if !ce.Found || ce.Current.Version == v0 {
			return fmt.Errorf("a losing SaveIf's conflict carries Found=%v, version %d; want the record written by the winner", ce.Found, ce.Current.Version)
		}
	}
	if err := expectRecord(ctx, h, id, recs[win.w], "after concurrent SaveIfs"); err != nil {
		return err
	}
	return loadVersion(ctx, h, id, win.ver, "after concurrent SaveIfs")
}

func checkSaveIfAfterClose(ctx context.Context, h sdk.Handler, _ Options) error {
	v, err := versioned(ctx, h)
	if err != nil {
		return err
	}
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	v1, err := v.SaveIf(ctx, id, sdk.Record{Data: []byte("live"), Expires: future()}, 0)
	if err != nil {
		return fmt.Errorf("SaveIf of a new id returned %v", err)
	}
	if err := h.Close(ctx, id); err != nil {
		return fmt.Errorf("Close returned %v", err)
	}
	_, err = v.SaveIf(ctx, id, sdk.Record{Data: []byte("back from the dead"), Expires: future()}, v1)
	if err := expectConflict(err, false, nil, 0, "SaveIf with the version a closed record had"); err != nil {
		return fmt.Errorf("%w (a destroyed session must stay destroyed)", err)
	}
	return expectNotFound(ctx, h, id, "after a SaveIf on a closed record")
}

func checkSaveIfExpired(ctx context.Context, h sdk.Handler, _ Options) error {
	v, err := versioned(ctx, h)
	if err != nil {
		return err
	}
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("expired"), Expires: time.Now().Add(-time.Minute)}); err != nil {
		return fmt.Errorf("Save of an expired record returned %v", err)
	}
	_, err = v.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: future()}, 12345)
	if err := expectConflict(err, false, nil, 0, "SaveIf over an expired record with a version"); err != nil {
		return fmt.Errorf("%w (an expired record is no record)", err)
	}
	rec := sdk.Record{Data: []byte("new"), Expires: future()}
	if _, err := v.SaveIf(ctx, id, rec, 0); err != nil {
		return fmt.Errorf("SaveIf with version 0 over an expired record returned %v, want it saved (an expired record is no record)", err)
	}
	return expectRecord(ctx, h, id, rec, "after SaveIf over an expired record")
}

func checkLock(ctx context.Context, h sdk.Handler, _ Options) error {
	l, err := locker(ctx, h)
	if err != nil {
		return err
	}
	id := NewID()
	defer l.Unlock(context.WithoutCancel(ctx), id, "token-a")
	defer l.Unlock(context.WithoutCancel(ctx), id, "token-b")
	if got, err := l.Lock(ctx, id, "token-a", time.Minute); err != nil || !got {
		return fmt.Errorf("Lock of a free session returned %v, %v; want true", got, err)
	}
	if got, err := l.Lock(ctx, id, "token-b", time.Minute); err != nil || got {
		return fmt.Errorf("Lock with another token while it is held returned %v, %v; want false", got, err)
	}
	if got, err := l.Lock(ctx, id, "token-a", time.Minute); err != nil || !got {
		return fmt.Errorf("Lock again with the holder's token returned %v, %v; want true (it extends the lock)", got, err)
	}
	if err := l.Unlock(ctx, id, "token-b"); err != nil {
		return fmt.Errorf("Unlock with a token that does not hold the lock returned %v; want nil", err)
	}
	if got, err := l.Lock(ctx, id, "token-b", time.Minute); err != nil || got {
		return fmt.Errorf("Unlock with the wrong token released the lock (Lock then returned %v, %v)", got, err)
	}
	if err := l.Unlock(ctx, id, "token-a"); err != nil {
		return fmt.Errorf("Unlock by the holder returned %v", err)
	}
	if got, err := l.Lock(ctx, id, "token-b", time.Minute); err != nil || !got {
		return fmt.Errorf("Lock after the holder's Unlock returned %v, %v; want true", got, err)
	}
	if err := expectNotFound(ctx, h, id, "a locked session with no record"); err != nil {
		return fmt.Errorf("%w (a lock is not a session record)", err)
	}
	return nil
}

func checkLockExpires(ctx context.Context, h sdk.Handler, o Options) error {
	l, err := locker(ctx, h)
	if err != nil {
		return err
	}
	id := NewID()
	defer l.Unlock(context.WithoutCancel(ctx), id, "token-b")
	if got, err := l.Lock(ctx, id, "token-a", 300*time.Millisecond); err != nil || !got {
		return fmt.Errorf("Lock of a free session returned %v, %v; want true", got, err)
	}
	select {
	case <-time.After(o.ExpiryWait):
	case <-ctx.Done():
		return ctx.Err()
	}
	if got, err := l.Lock(ctx, id, "token-b", time.Minute); err != nil || !got {
		return fmt.Errorf("Lock %v after a lock of 300ms was taken returned %v, %v; want true (a lock whose holder died must expire)", o.ExpiryWait, got, err)
	}
	return nil
}

func checkLockOneWinner(ctx context.Context, h sdk.Handler, _ Options) error {
	l, err := locker(ctx, h)
	if err != nil {
		return err
	}
	const contenders = 16
	id := NewID()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	var failure error
	start := make(chan struct{})
	for c := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			token := fmt.Sprintf("contender-%02d", c)
			got, err := l.Lock(ctx, id, token, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failure = fmt.Errorf("Lock returned %v", err)
			} else if got {
				winners = append(winners, token)
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, w := range winners {
		l.Unlock(context.WithoutCancel(ctx), id, w)
	}
	if failure != nil {
		return failure
	}
	if len(winners) != 1 {
		return fmt.Errorf("%d of %d concurrent Locks with distinct tokens succeeded, want exactly 1", len(winners), contenders)
	}
	return nil
}
