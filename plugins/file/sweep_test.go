package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
)

func TestSweepRemovesOnlyExpiredDamagedAndStaleFiles(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	future := strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)

	save := func(id string, expires time.Time) {
		t.Helper()
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("token\nwith newline"), Expires: expires}); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	age := func(name string, by time.Duration) {
		t.Helper()
		p := filepath.Join(h.folder, name)
		if err := os.Chtimes(p, now.Add(-by), now.Add(-by)); err != nil {
			t.Fatal(err)
		}
	}

	live, expired, expiresNow := randomID(t), randomID(t), randomID(t)
	garbled, truncated, empty := randomID(t), randomID(t), randomID(t)
	save(live, now.Add(time.Hour))
	save(expired, now.Add(-time.Minute))
	save(expiresNow, now)
	writeRaw(t, h, garbled+suffix, []byte("garbage"))
	writeRaw(t, h, truncated+suffix, []byte("tina4-session-v1 "+future+" 100\nonly ten b"))
	writeRaw(t, h, empty+suffix, nil)
	liveV1, expiredV1 := randomID(t), randomID(t)
	writeRaw(t, h, liveV1+suffix, []byte("tina4-session-v1 "+future+" 1\nx"))
	writeRaw(t, h, expiredV1+suffix, []byte("tina4-session-v1 "+strconv.FormatInt(now.Add(-time.Second).UnixMilli(), 10)+" 1\nx"))
	stripes := stripeFiles(t, h.folder)
	writeRaw(t, h, ".tmp-crashed", []byte("half a sess"))
	age(".tmp-crashed", 2*time.Hour)
	writeRaw(t, h, ".tmp-in-flight", []byte("a Save in progress"))
	age(".tmp-in-flight", time.Minute)

	// Files Sweep must never touch, whatever their content or age.
	keep := []string{
		"notes.txt",
		"README",
		"notes.sess",                          // name is not a session id
		strings.Repeat("b", 43) + ".sess.bak", // wrong suffix
		strings.Repeat("c", 42) + ".sess",     // 42 chars: not a session id
		".tmp",                                // no dash
		"tmp-" + strings.Repeat("d", 43) + ".sess", // not a session id
	}
	for _, name := range keep {
		writeRaw(t, h, name, []byte("garbage"))
		age(name, 48*time.Hour)
	}
	dirSess := strings.Repeat("e", 43) + suffix
	if err := os.Mkdir(filepath.Join(h.folder, dirSess), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(h.folder, ".tmp-old-folder"), 0o700); err != nil {
		t.Fatal(err)
	}
	age(".tmp-old-folder", 48*time.Hour)
	outside := filepath.Join(filepath.Dir(h.folder), "outside.sess")
	if err := os.WriteFile(outside, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	linkSess := strings.Repeat("f", 43) + suffix
	if err := os.Symlink(outside, filepath.Join(h.folder, linkSess)); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, dirSess, ".tmp-old-folder", linkSess)

	// In the subfolders: a stale temporary file (removed), an expired
	// session file in the wrong subfolder and a foreign file (both kept).
	inSub := filepath.Base(filepath.Dir(sessionPath(h, live)))
	writeRaw(t, h, inSub+"/.tmp-crashed", []byte("half a sess"))
	age(inSub+"/.tmp-crashed", 2*time.Hour)
	stray := randomID(t)
	for stripeIndex(stray) == stripeIndex(live) {
		stray = randomID(t)
	}
	writeRaw(t, h, inSub+"/"+stray+suffix, []byte("tina4-session-v1 1000 1\nx"))
	writeRaw(t, h, inSub+"/notes.txt", []byte("garbage"))
	keep = append(keep, inSub+"/"+stray+suffix, inSub+"/notes.txt")

	removed, err := h.Sweep(now)
	if err != nil {
		t.Errorf("Sweep: want no error, got %v", err)
	}
	if removed != 8 {
		t.Errorf("Sweep: want 8 files removed (2 expired, 1 expired v1, 3 damaged, 2 stale temporary), got %d", removed)
	}
	want := append([]string{inShard(live, live+suffix), liveV1 + suffix, ".tmp-in-flight"}, keep...)
	slices.Sort(want)
	if got := listFolder(t, h.folder); !slices.Equal(got, want) {
		t.Errorf("after Sweep:\nwant %v\ngot  %v", want, got)
	}
	if got := stripeFiles(t, h.folder); len(got) != stripeCount || !slices.Equal(got, stripes) {
		t.Errorf("after Sweep: want the %d stripe files kept, got %v", stripeCount, got)
	}
	if content, err := os.ReadFile(outside); err != nil || string(content) != "garbage" {
		t.Errorf("Sweep must not follow a symlink out of the folder: outside file is %q, %v", content, err)
	}
	if _, err := h.Load(ctx, live); err != nil {
		t.Errorf("Load of the live session after Sweep: want it, got %v", err)
	}

	again, err := h.Sweep(now)
	if again != 0 || err != nil {
		t.Errorf("second Sweep: want 0 removed and no error, got %d, %v", again, err)
	}
}

func TestBackgroundSweeperRemovesExpiredFiles(t *testing.T) {
	logs := &logBuffer{}
	h, err := New(filepath.Join(t.TempDir(), "sessions"), WithSweepInterval(5*time.Millisecond), WithLogger(logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	id := randomID(t)
	if err := h.Save(context.Background(), id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	// Wait for the sweeper, however slow the machine; the deadline only
	// keeps a broken sweeper from hanging the test.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(sessionPath(h, id))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background sweeper: want the expired file removed, it is still there after 30s (stat: %v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Stop()
	if !strings.Contains(logs.String(), "removed=1") {
		t.Errorf("background sweeper: want it to log how many files it removed, log was %q", logs.String())
	}
}

func TestStopIsIdempotent(t *testing.T) {
	for _, every := range []time.Duration{0, time.Hour} {
		h, err := New(filepath.Join(t.TempDir(), "sessions"), WithSweepInterval(every), WithLogger((&logBuffer{}).logger()))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(h.Stop)
		}
		wg.Wait()
		h.Stop()
		select {
		case <-h.done:
		default:
			t.Errorf("sweep interval %v: want the sweeper finished after Stop", every)
		}
		id := randomID(t)
		if err := h.Save(context.Background(), id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Errorf("sweep interval %v: Save after Stop: want nil, got %v", every, err)
		}
	}
}
