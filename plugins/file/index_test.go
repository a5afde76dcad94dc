package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/sdk/handlertest"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func idxFile(h *Handler, p string) string { return filepath.Join(h.folder, p+idxSuffix) }

func TestPrincipalIsInTheV3HeaderAndIndexed(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	id := randomID(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token"), Expires: exp, Principal: p}); err != nil {
		t.Fatal(err)
	}
	rec, err := h.Load(ctx, id)
	if err != nil || string(rec.Data) != "token" || !rec.Expires.Equal(exp) {
		t.Fatalf("Load of a v3 file: %q until %v, %v", rec.Data, rec.Expires, err)
	}
	want := fmt.Sprintf("tina4-session-v3 %d 5 %d %s\ntoken", exp.UnixMilli(), rec.Version, p)
	if got := readFile(t, sessionPath(h, id)); got != want {
		t.Fatalf("session file:\n got %q\nwant %q", got, want)
	}
	line := fmt.Sprintf("%s %d\n", id, exp.UnixMilli())
	if got := readFile(t, idxFile(h, p)); got != line {
		t.Fatalf("index file: got %q, want %q", got, line)
	}
	if info, _ := os.Stat(idxFile(h, p)); info.Mode().Perm() != 0o600 {
		t.Fatalf("index file mode %v, want 0600", info.Mode().Perm())
	}
	// Saved again with the same expiry: nothing to add. With a later one:
	// a line.
	if _, err := h.SaveIf(ctx, id, sdk.Record{Data: []byte("token"), Expires: exp, Principal: p}, rec.Version); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, idxFile(h, p)); got != line {
		t.Fatalf("index after a save of the same expiry: %q", got)
	}
	later := exp.Add(time.Minute)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token"), Expires: later, Principal: p}); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, idxFile(h, p)), line+fmt.Sprintf("%s %d\n", id, later.UnixMilli()); got != want {
		t.Fatalf("index after a save of a later expiry: %q, want %q", got, want)
	}
	// Without a principal: v2, as before.
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("token"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, sessionPath(h, id)); !strings.HasPrefix(got, "tina4-session-v2 ") {
		t.Fatalf("a record without a principal: %q", got)
	}
	// A record saved already expired is not indexed.
	q := handlertest.NewPrincipal()
	if err := h.Save(ctx, randomID(t), sdk.Record{Data: []byte("x"), Expires: time.Now().Add(-time.Minute), Principal: q}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(idxFile(h, q)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an expired record made an index: %v", err)
	}
	// An invalid principal is refused before anything is written.
	before := snapshotTree(t, h.folder)
	for _, bad := range []string{"../x", "ABC", strings.Repeat("a", 129), "a b"} {
		if err := h.Save(ctx, randomID(t), sdk.Record{Data: []byte("x"), Expires: exp, Principal: bad}); !errors.Is(err, sdk.ErrInvalidPrincipal) {
			t.Errorf("Save with principal %q: want ErrInvalidPrincipal, got %v", bad, err)
		}
		if _, err := h.SaveIf(ctx, randomID(t), sdk.Record{Data: []byte("x"), Expires: exp, Principal: bad}, 0); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("SaveIf with principal %q: want ErrInvalidID, got %v", bad, err)
		}
		if _, err := h.CloseAll(ctx, bad); !errors.Is(err, sdk.ErrInvalidID) {
			t.Errorf("CloseAll(%q): want ErrInvalidID, got %v", bad, err)
		}
	}
	if after := snapshotTree(t, h.folder); after != before {
		t.Fatalf("invalid principals changed the folder")
	}
}

func TestCloseAllDeletesOnlyFilesThatNameThePrincipal(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	p, q := handlertest.NewPrincipal(), handlertest.NewPrincipal()
	future := fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())
	others := map[string]string{
		"v1":                      "tina4-session-v1 " + future + " 1\nx",
		"v2":                      "tina4-session-v2 " + future + " 1 77\nx",
		"v3 of another":           "tina4-session-v3 " + future + " 1 77 " + q + "\nx",
		"v3 of a longer key":      "tina4-session-v3 " + future + " 1 77 " + p + "0\nx",
		"damaged":                 "tina4-session-v3 " + future + " 1 77\nx",
		"a principal not a key":   "tina4-session-v3 " + future + " 1 77 " + strings.ToUpper(p) + "\nx",
		"v3 of p, but cut off":    "tina4-session-v3 " + future + " 100 77 " + p + "\nx",
		"v3 of p, expired by now": "tina4-session-v3 1000 1 77 " + p + "\nx",
	}
	var lines strings.Builder
	ids := map[string]string{}
	for what, content := range others {
		id := randomID(t)
		ids[what] = id
		writeRaw(t, h, id+suffix, []byte(content))
		fmt.Fprintf(&lines, "%s %s\n", id, future)
	}
	noFile := randomID(t)                                                                                 // a save between its index line and its file, say
	fmt.Fprintf(&lines, "%s %s\nnot a line\n%s 12x\n%s 1000\n", noFile, future, randomID(t), randomID(t)) // junk; expired
	writeRaw(t, h, p+idxSuffix, []byte(lines.String()))
	mine := randomID(t)
	if err := h.Save(ctx, mine, sdk.Record{Data: []byte("mine"), Expires: time.Now().Add(time.Hour), Principal: p}); err != nil {
		t.Fatal(err)
	}
	n, err := h.CloseAll(ctx, p)
	if err != nil || n != 1 {
		t.Fatalf("CloseAll: %d, %v; want 1 (the one complete live session of p)", n, err)
	}
	for what, id := range ids {
		_, err := os.Stat(h.legacyPath(id)) // planted where an earlier version kept them
		gone := errors.Is(err, os.ErrNotExist)
		if wantGone := strings.HasPrefix(what, "v3 of p"); gone != wantGone {
			t.Errorf("%s: removed=%v, want %v", what, gone, wantGone)
		}
	}
	if _, err := os.Stat(sessionPath(h, mine)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the principal's session is still there")
	}
	// The index keeps the lines of the sessions CloseAll left (until their
	// expiry), and loses the rest.
	ix, err := readIndex(idxFile(h, p))
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{noFile: true}
	for what, id := range ids {
		if !strings.HasPrefix(what, "v3 of p") {
			kept[id] = true
		}
	}
	if len(ix.expires) != len(kept) || ix.lines != len(kept) {
		t.Errorf("the index after CloseAll has %d lines for %d ids, want the %d ids it did not close", ix.lines, len(ix.expires), len(kept))
	}
	for id := range ix.expires {
		if !kept[id] {
			t.Errorf("the index still lists %s…, whose session CloseAll deleted", id[:6])
		}
	}
	// Once the principal's sessions are all gone, the index goes too.
	for id := range kept {
		os.Remove(sessionPath(h, id))
	}
	if _, err := h.Sweep(time.Now().Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(idxFile(h, p)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the index is still there after its lines expired: %q", readFile(t, idxFile(h, p)))
	}
	if n, err := h.CloseAll(ctx, handlertest.NewPrincipal()); n != 0 || err != nil {
		t.Errorf("CloseAll of an unknown principal: %d, %v", n, err)
	}
}

func TestIndexAppendsAfterACutOffLineAndCompacts(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	writeRaw(t, h, p+idxSuffix, []byte("half a li"))
	id := randomID(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: exp, Principal: p}); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, idxFile(h, p)), fmt.Sprintf("half a li\n%s %d\n", id, exp.UnixMilli()); got != want {
		t.Fatalf("index after a cut-off line: %q, want %q", got, want)
	}
	// A session whose expiry slides with every save adds a line each time;
	// the index is compacted before it grows far.
	for i := range 100 {
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: exp.Add(time.Duration(i+1) * time.Second), Principal: p}); err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(readFile(t, idxFile(h, p)), "\n"); lines > 2+16 {
			t.Fatalf("after %d saves the index has %d lines for one id", i+1, lines)
		}
	}
	if n, err := h.CloseAll(ctx, p); n != 1 || err != nil {
		t.Fatalf("CloseAll: %d, %v", n, err)
	}
}

func TestSweepDropsExpiredIndexLinesAndEmptyIndexes(t *testing.T) {
	clock := newTestClock(time.Now())
	h, _ := newTestHandler(t, WithClock(clock.Now))
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	short, long := randomID(t), randomID(t)
	for id, d := range map[string]time.Duration{short: time.Minute, long: time.Hour} {
		if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: clock.Now().Add(d), Principal: p}); err != nil {
			t.Fatal(err)
		}
	}
	writeRaw(t, h, "README.idx", []byte("mine"))
	writeRaw(t, h, "ABCDEF.idx", []byte("mine"))
	if _, err := h.Sweep(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(readFile(t, idxFile(h, p)), "\n"); lines != 2 {
		t.Fatalf("a sweep with both sessions live left %d lines, want 2", lines)
	}
	clock.Advance(2 * time.Minute)
	if _, err := h.Sweep(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, idxFile(h, p)); !strings.HasPrefix(got, long+" ") || strings.Count(got, "\n") != 1 {
		t.Fatalf("after the short session expired the index holds %q, want only the long one", got)
	}
	clock.Advance(time.Hour)
	removed, err := h.Sweep(clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if removed != 2 { // the long session and the index
		t.Fatalf("the last sweep removed %d files, want 2", removed)
	}
	if got := listFolder(t, h.folder); strings.Join(got, ",") != "ABCDEF.idx,README.idx" {
		t.Fatalf("after the sweeps the folder holds %q; want only the files that are not the handler's", got)
	}
}

// Two handlers on one folder (two hosts): one keeps creating sessions of a
// principal while the other keeps closing them. However they interleave,
// every session of the principal left on disk is still in its index, so a
// final CloseAll gets them all.
func TestCloseAllRacingSavesLosesNoSession(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "sessions")
	a, b := newHandlerOn(t, folder), newHandlerOn(t, folder)
	ctx := context.Background()
	p := handlertest.NewPrincipal()
	const sessions = 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(stop)
		for i := range sessions {
			rec := sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour), Principal: p}
			var err error
			if i%2 == 0 {
				err = a.Save(ctx, randomID(t), rec)
			} else {
				_, err = a.SaveIf(ctx, randomID(t), rec, 0)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	closed := 0
	go func() {
		defer wg.Done()
		for {
			n, err := b.CloseAll(ctx, p)
			if err != nil {
				t.Error(err)
				return
			}
			closed += n
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	wg.Wait()
	n, err := a.CloseAll(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if closed+n != sessions {
		t.Fatalf("CloseAll closed %d while saves ran and %d after, want %d in all", closed, n, sessions)
	}
	if got := listFolder(t, folder); len(got) != 0 {
		t.Fatalf("left in the folder: %q", got)
	}
}
