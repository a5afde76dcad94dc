package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
)

func TestSessionFilesLiveInTheirSubfolder(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	var want []string
	seen := map[uint32]bool{}
	for range 40 {
		id := randomID(t)
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		i := stripeIndex(id)
		seen[i] = true
		want = append(want, shardName(int(i))+"/"+id+suffix)
	}
	if len(seen) < 10 {
		t.Fatalf("40 random ids fell into only %d subfolders: the spread is broken", len(seen))
	}
	slices.Sort(want)
	if got := listFolder(t, h.folder); !slices.Equal(got, want) {
		t.Errorf("folder after 40 Saves:\nwant %v\ngot  %v", want, got)
	}
	entries, err := os.ReadDir(h.folder)
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for _, e := range entries {
		if e.IsDir() {
			subs = append(subs, e.Name())
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != folderMode {
				t.Errorf("subfolder %s has mode %#o, want %#o", e.Name(), perm, folderMode)
			}
		}
	}
	if len(subs) != stripeCount || subs[0] != "00" || subs[stripeCount-1] != "3f" {
		t.Errorf("subfolders: want 00 to 3f, got %v", subs)
	}
}

func TestSubfolderRemovedBehindTheHandlersBackIsMadeAgain(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	id := randomID(t)
	if err := os.RemoveAll(h.shardDir(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load with its subfolder gone: want sdk.ErrNotFound, got %v", err)
	}
	v, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}, 0)
	if err != nil {
		t.Fatalf("SaveIf with its subfolder gone: want it saved, got %v", err)
	}
	if got, err := h.Load(ctx, id); err != nil || got.Version != v {
		t.Errorf("Load after the SaveIf: want version %d, got %+v, %v", v, got, err)
	}
	if err := os.RemoveAll(h.shardDir(id)); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Lock(ctx, id, "aaaa", time.Minute); !got || err != nil {
		t.Errorf("Lock with its subfolder gone: want true, got %v, %v", got, err)
	}
	if removed, err := h.Sweep(time.Now()); removed != 0 || err != nil {
		t.Errorf("Sweep: want nothing removed and no error, got %d, %v", removed, err)
	}
}

// A file an earlier version kept directly in the folder is read where it is
// and moved into its subfolder by the next save, by Save and by SaveIf.
func TestFileOfAnEarlierVersionIsReadThenMovedBySave(t *testing.T) {
	for _, how := range []string{"SaveIf", "Save"} {
		t.Run(how, func(t *testing.T) {
			h, _ := newTestHandler(t)
			ctx := context.Background()
			id := randomID(t)
			expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
			ms := strconv.FormatInt(expires.UnixMilli(), 10)
			writeRaw(t, h, id+suffix, []byte("tina4-session-v2 "+ms+" 3 77\nold"))

			got, err := h.Load(ctx, id)
			if err != nil || string(got.Data) != "old" || got.Version != 77 {
				t.Fatalf("Load of a file in the folder itself: want %q version 77, got %+v, %v", "old", got, err)
			}
			_, err = h.SaveIf(ctx, id, sdk.Record{Data: []byte("stale"), Expires: expires}, 76)
			var ce *sdk.ConflictError
			if !errors.As(err, &ce) || !ce.Found || ce.Current.Version != 77 || string(ce.Current.Data) != "old" {
				t.Fatalf("SaveIf of another version: want a conflict carrying the old file's record, got %v", err)
			}
			if how == "SaveIf" {
				if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("new"), Expires: expires}, 77); err != nil {
					t.Fatalf("SaveIf of version 77: %v", err)
				}
			} else if err := h.Save(ctx, id, sdk.Record{Data: []byte("new"), Expires: expires}); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if got := listFolder(t, h.folder); !slices.Equal(got, []string{inShard(id, id+suffix)}) {
				t.Errorf("after the %s: want only the file in the subfolder, got %v", how, got)
			}
			if got, err := h.Load(ctx, id); err != nil || string(got.Data) != "new" {
				t.Errorf("Load after the %s: want %q, got %+v, %v", how, "new", got, err)
			}
		})
	}
}

// A file an earlier version left in the folder never comes back once the
// session is closed or has expired, even when a crash left it beside the
// file in the subfolder.
func TestFileOfAnEarlierVersionDoesNotOutliveItsSession(t *testing.T) {
	clock := newTestClock(time.Now())
	h, _ := newTestHandler(t, WithClock(clock.Now))
	ctx := context.Background()
	future := strconv.FormatInt(clock.Now().Add(24*time.Hour).UnixMilli(), 10)
	legacy := func(id string) {
		t.Helper()
		writeRaw(t, h, id+suffix, []byte("tina4-session-v2 "+future+" 6 77\nzombie"))
	}
	save := func(id string, ttl time.Duration) {
		t.Helper()
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: clock.Now().Add(ttl)}); err != nil {
			t.Fatal(err)
		}
		legacy(id) // as if a crash had come between the rename and the removal
	}

	closed := randomID(t)
	save(closed, time.Hour)
	if err := h.Close(ctx, closed); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(ctx, closed); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load after Close: want sdk.ErrNotFound, got %v", err)
	}

	onlyLegacy := randomID(t)
	legacy(onlyLegacy)
	if err := h.Close(ctx, onlyLegacy); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(ctx, onlyLegacy); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load after Close of a file in the folder itself: want sdk.ErrNotFound, got %v", err)
	}

	expired := randomID(t)
	save(expired, time.Minute)
	clock.Advance(2 * time.Minute)
	if _, err := h.Load(ctx, expired); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load of an expired session: want sdk.ErrNotFound, got %v", err)
	}
	if _, err := h.Load(ctx, expired); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("second Load of an expired session: want sdk.ErrNotFound, not the older file, got %v", err)
	}
	for _, id := range []string{closed, onlyLegacy, expired} {
		if _, err := os.Stat(filepath.Join(h.folder, id+suffix)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the file in the folder itself should be gone: %v", err)
		}
	}
}

// Of many SaveIfs racing over the version of a file an earlier version left
// in the folder itself, exactly one wins, and the old file is gone after.
func TestOneWinnerOverAFileOfAnEarlierVersion(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	id := randomID(t)
	ms := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	writeRaw(t, h, id+suffix, []byte("tina4-session-v2 "+ms+" 3 77\nold"))
	const racers = 16
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range racers {
		wg.Go(func() {
			_, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte{byte('a' + i)}, Expires: time.Now().Add(time.Hour)}, 77)
			var ce *sdk.ConflictError
			switch {
			case err == nil:
				won.Add(1)
			case !errors.As(err, &ce) || !ce.Found || ce.Current.Version == 77:
				t.Errorf("a losing SaveIf: want a conflict carrying the winner's record, got %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d SaveIfs over version 77: want exactly 1 winner, got %d", racers, won.Load())
	}
	if got := listFolder(t, h.folder); !slices.Equal(got, []string{inShard(id, id+suffix)}) {
		t.Errorf("after the race: want only the file in the subfolder, got %v", got)
	}
}
