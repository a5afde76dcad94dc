package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
)

func TestSaveThenLoadReturnsTheSameRecord(t *testing.T) {
	big := make([]byte, 6<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"text", []byte("eyJhbGciOiJIUzI1NiJ9.sealed.token")},
		{"binary with newlines and NUL", []byte("line1\nline2\r\n\x00\xff\xfe\ntina4-session-v1 1 1\n")},
		{"starts with a newline", []byte("\n\n\n")},
		{"6 MiB", big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newTestHandler(t)
			ctx := context.Background()
			id := randomID(t)
			expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
			if err := h.Save(ctx, id, sdk.Record{Data: tc.data, Expires: expires}); err != nil {
				t.Fatalf("Save: want nil, got %v", err)
			}
			got, err := h.Load(ctx, id)
			if err != nil {
				t.Fatalf("Load: want the saved record, got error %v", err)
			}
			if !bytes.Equal(got.Data, tc.data) {
				t.Errorf("Load: want the %d saved bytes back unchanged, got %d bytes that differ", len(tc.data), len(got.Data))
			}
			if !got.Expires.Equal(expires) {
				t.Errorf("Load: want Expires %v, got %v", expires, got.Expires)
			}
		})
	}
}

func TestSavedFileHasDocumentedFormat(t *testing.T) {
	h, _ := newTestHandler(t)
	id := randomID(t)
	expires := time.UnixMilli(1767225600123)
	data := []byte("a\nb")
	if err := h.Save(context.Background(), id, sdk.Record{Data: data, Expires: expires}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := os.ReadFile(sessionPath(h, id))
	if err != nil {
		t.Fatalf("want the file %s.sess in the folder: %v", id, err)
	}
	// The version is random: take it from the file and check the rest.
	fields := strings.Fields(string(got[:bytes.IndexByte(got, '\n')]))
	if len(fields) != 4 {
		t.Fatalf("header: want 4 fields, got %q", got)
	}
	version, err := strconv.ParseUint(fields[3], 10, 64)
	if err != nil || version <= legacyVersion {
		t.Errorf("header: want a version above %d, got %q", legacyVersion, fields[3])
	}
	want := "tina4-session-v2 1767225600123 3 " + fields[3] + "\na\nb"
	if string(got) != want {
		t.Errorf("file content: want %q, got %q", want, got)
	}
}

func TestSaveReplacesTheRecord(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	id := randomID(t)
	expires := time.Now().Add(time.Hour)
	for _, data := range []string{"first, and longer than the second", "second"} {
		if err := h.Save(ctx, id, sdk.Record{Data: []byte(data), Expires: expires}); err != nil {
			t.Fatalf("Save(%q): %v", data, err)
		}
	}
	got, err := h.Load(ctx, id)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if string(got.Data) != "second" {
		t.Errorf("Load after two Saves: want the second record %q, got %q", "second", got.Data)
	}
	if names := listFolder(t, h.folder); len(names) != 1 || names[0] != inShard(id, id+suffix) {
		t.Errorf("folder: want only %s.sess, got %v", id, names)
	}
}

func TestLoadUnknownIDIsNotFound(t *testing.T) {
	h, _ := newTestHandler(t)
	_, err := h.Load(context.Background(), randomID(t))
	if !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load of an id never saved: want sdk.ErrNotFound, got %v", err)
	}
}

func TestCloseRemovesTheRecordAndIsIdempotent(t *testing.T) {
	h, _ := newTestHandler(t)
	ctx := context.Background()
	id := randomID(t)
	if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for i := 1; i <= 2; i++ {
		if err := h.Close(ctx, id); err != nil {
			t.Errorf("Close #%d: want nil, got %v", i, err)
		}
	}
	if _, err := h.Load(ctx, id); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Load after Close: want sdk.ErrNotFound, got %v", err)
	}
	if err := h.Close(ctx, randomID(t)); err != nil {
		t.Errorf("Close of an id never saved: want nil, got %v", err)
	}
}

func TestLoadExpiredRecordIsNotFoundAndRemovesTheFile(t *testing.T) {
	start := time.Now().Truncate(time.Millisecond)
	tests := []struct {
		name    string
		expires time.Time
		advance time.Duration
		found   bool
	}{
		{"expired before it was saved", start.Add(-time.Second), 0, false},
		{"expires at the very instant of Load", start, 0, false},
		{"zero Expires", time.Time{}, 0, false},
		{"expired while stored", start.Add(time.Hour), 2 * time.Hour, false},
		{"one millisecond left", start.Add(time.Millisecond), 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock(start)
			h, _ := newTestHandler(t, WithClock(clock.Now))
			ctx := context.Background()
			id := randomID(t)
			if err := h.Save(ctx, id, sdk.Record{Data: []byte("x"), Expires: tc.expires}); err != nil {
				t.Fatalf("Save: %v", err)
			}
			clock.Advance(tc.advance)
			_, err := h.Load(ctx, id)
			_, statErr := os.Stat(sessionPath(h, id))
			if tc.found {
				if err != nil {
					t.Errorf("Load of a live record: want it, got %v", err)
				}
				return
			}
			if !errors.Is(err, sdk.ErrNotFound) {
				t.Errorf("Load of an expired record: want sdk.ErrNotFound, got %v", err)
			}
			if !errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("after Load of an expired record: want its file removed, stat says %v", statErr)
			}
		})
	}
}

func TestLoadDamagedFileIsNotFound(t *testing.T) {
	future := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	tests := []struct {
		name    string
		content string
	}{
		{"empty file", ""},
		{"garbage", "garbage"},
		{"no newline in a long first line", strings.Repeat("x", 1000)},
		{"header line cut off", "tina4-session-v1 " + future},
		{"unknown format version", "tina4-session-v9 " + future + " 1\nx"},
		{"unknown format version with a version", "tina4-session-v3 " + future + " 1 12345\nx"},
		{"v1 with a version field", "tina4-session-v1 " + future + " 1 12345\nx"},
		{"v2 without a version", "tina4-session-v2 " + future + " 1\nx"},
		{"v2 version not a number", "tina4-session-v2 " + future + " 1 latest\nx"},
		{"v2 version 0", "tina4-session-v2 " + future + " 1 0\nx"},
		{"v2 negative version", "tina4-session-v2 " + future + " 1 -5\nx"},
		{"v2 version over 64 bits", "tina4-session-v2 " + future + " 1 18446744073709551616\nx"},
		{"v2 data cut off", "tina4-session-v2 " + future + " 10 99\n12345"},
		{"expiry not a number", "tina4-session-v1 soon 1\nx"},
		{"length not a number", "tina4-session-v1 " + future + " many\nx"},
		{"negative length", "tina4-session-v1 " + future + " -1\nx"},
		{"two fields only", "tina4-session-v1 " + future + "\nx"},
		{"data cut off", "tina4-session-v1 " + future + " 10\n12345"},
		{"more data than the header says", "tina4-session-v1 " + future + " 2\n12345"},
		{"binary junk", "\x00\xff\n\x01\x02"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := newTestHandler(t)
			id := randomID(t)
			writeRaw(t, h, id+suffix, []byte(tc.content))
			_, err := h.Load(context.Background(), id)
			if !errors.Is(err, sdk.ErrNotFound) {
				t.Errorf("Load of a damaged file: want sdk.ErrNotFound, got %v", err)
			}
			if !strings.Contains(logs.String(), "damaged") {
				t.Errorf("Load of a damaged file: want a warning logged, log was %q", logs.String())
			}
			if strings.Contains(logs.String(), id) {
				t.Errorf("log must not contain the whole session id, got %q", logs.String())
			}
		})
	}
}

func TestLoadUnreadableFileIsAnError(t *testing.T) {
	h, _ := newTestHandler(t)
	id := randomID(t)
	if err := os.Mkdir(sessionPath(h, id), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := h.Load(context.Background(), id)
	if err == nil || errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("Load when <id>.sess is a folder: want an I/O error (not ErrNotFound), got %v", err)
	}
	if strings.Contains(err.Error(), id) {
		t.Errorf("error must not contain the whole session id, got %q", err)
	}
}

func TestFailedSaveLeavesNoTemporaryFile(t *testing.T) {
	h, _ := newTestHandler(t)
	id := randomID(t)
	// A non-empty folder where the file belongs makes the rename fail.
	if err := os.MkdirAll(filepath.Join(sessionPath(h, id), "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := h.Save(context.Background(), id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)})
	if err == nil {
		t.Fatal("Save onto a folder: want an error, got nil")
	}
	if names := listFolder(t, h.folder); len(names) != 1 || names[0] != inShard(id, id+suffix) {
		t.Errorf("after a failed Save: want no temporary file left, folder holds %v", names)
	}
}

func TestHostileIDsAreRefused(t *testing.T) {
	hostile := []struct {
		name string
		id   string
	}{
		{"parent traversal", "../../etc/passwd"},
		{"into the parent folder", "../victim"},
		{"subfolder", "a/b"},
		{"empty", ""},
		{"dot", "."},
		{"dot dot", ".."},
		{"absolute path", "/etc/passwd"},
		{"backslashes", `..\..\victim`},
		{"NUL", "abc\x00def"},
		{"43 chars ending in NUL", strings.Repeat("a", 42) + "\x00"},
		{"43 chars with a dot", strings.Repeat("a", 21) + "." + strings.Repeat("a", 21)},
		{"43 chars ending in dots", strings.Repeat("a", 41) + ".."},
		{"43 chars with traversal", "../" + strings.Repeat("a", 40)},
		{"43 chars with a space", strings.Repeat("a", 42) + " "},
		{"43 bytes with non-ASCII", strings.Repeat("a", 41) + "é"},
		{"42 chars", strings.Repeat("a", 42)},
		{"44 chars", strings.Repeat("a", 44)},
	}
	parent := t.TempDir()
	folder := filepath.Join(parent, "sessions")
	h, err := New(folder, WithSweepInterval(0), WithLogger((&logBuffer{}).logger()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	for _, name := range []string{"victim", "victim.sess"} {
		if err := os.WriteFile(filepath.Join(parent, name), []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotTree(t, parent)
	ctx := context.Background()
	rec := sdk.Record{Data: []byte("attack"), Expires: time.Now().Add(time.Hour)}

	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.Save(ctx, tc.id, rec); !errors.Is(err, sdk.ErrInvalidID) {
				t.Errorf("Save(%q): want an error wrapping sdk.ErrInvalidID, got %v", tc.id, err)
			}
			if _, err := h.Load(ctx, tc.id); !errors.Is(err, sdk.ErrInvalidID) {
				t.Errorf("Load(%q): want an error wrapping sdk.ErrInvalidID, got %v", tc.id, err)
			}
			if err := h.Close(ctx, tc.id); !errors.Is(err, sdk.ErrInvalidID) {
				t.Errorf("Close(%q): want an error wrapping sdk.ErrInvalidID, got %v", tc.id, err)
			}
			if _, err := h.SaveIf(ctx, tc.id, rec, 0); !errors.Is(err, sdk.ErrInvalidID) {
				t.Errorf("SaveIf(%q): want an error wrapping sdk.ErrInvalidID, got %v", tc.id, err)
			}
			if _, err := h.Lock(ctx, tc.id, "aaaa", time.Minute); !errors.Is(err, sdk.ErrInvalidID) {
				t.Errorf("Lock(%q): want an error wrapping sdk.ErrInvalidID, got %v", tc.id, err)
			}
			if err := h.Unlock(ctx, tc.id, "aaaa"); !errors.Is(err, sdk.ErrInvalidID) {
				t.Errorf("Unlock(%q): want an error wrapping sdk.ErrInvalidID, got %v", tc.id, err)
			}
		})
	}
	if after := snapshotTree(t, parent); after != before {
		t.Errorf("hostile ids changed the disk:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestInsideAcceptsOnlyDirectChildren(t *testing.T) {
	folder := filepath.Clean("/srv/sessions")
	tests := []struct {
		name string
		ok   bool
	}{
		{"abc.sess", true},
		{"../abc.sess", false},
		{"../sessions/abc.sess", false},
		{"a/b.sess", false},
		{"", false},
		{".", false},
		{"..", false},
		{"/etc/passwd", false},
	}
	for _, tc := range tests {
		if _, ok := inside(folder, tc.name); ok != tc.ok {
			t.Errorf("inside(%q, %q): want %v, got %v", folder, tc.name, tc.ok, ok)
		}
	}
}

func TestFilesAreCreatedPrivate(t *testing.T) {
	h, _ := newTestHandler(t)
	id := randomID(t)
	if err := h.Save(context.Background(), id, sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	info, err := os.Stat(sessionPath(h, id))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("session file mode: want 0600, got %#o", perm)
	}
	info, err = os.Stat(h.folder)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("new session folder mode: want 0700, got %#o", perm)
	}
}

func TestNewMakesAnOpenFolderPrivate(t *testing.T) {
	tests := []struct {
		mode    fs.FileMode
		warning bool
	}{
		{0o755, true},
		{0o777, true},
		{0o750, true},
		{0o701, true},
		{0o700, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%#o", tc.mode), func(t *testing.T) {
			folder := filepath.Join(t.TempDir(), "sessions")
			if err := os.Mkdir(folder, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(folder, tc.mode); err != nil { // not subject to umask
				t.Fatal(err)
			}
			logs := &logBuffer{}
			h, err := New(folder, WithSweepInterval(0), WithLogger(logs.logger()))
			if err != nil {
				t.Fatalf("New on a %#o folder: want a handler, got %v", tc.mode, err)
			}
			defer h.Stop()
			info, err := os.Stat(folder)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o700 {
				t.Errorf("folder created %#o: want it changed to 0700, got %#o", tc.mode, perm)
			}
			if logged := strings.Contains(logs.String(), "0700"); logged != tc.warning {
				t.Errorf("folder created %#o: want a warning logged = %v, log was %q", tc.mode, tc.warning, logs.String())
			}
		})
	}
}

func TestNewExplainsAFolderItCannotUse(t *testing.T) {
	parent := t.TempDir()
	blocker := filepath.Join(parent, "a-file")
	if err := os.WriteFile(blocker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		folder string
		want   []string
	}{
		{"path is a file", blocker, []string{blocker, "not a folder", EnvFolder}},
		{"parent is a file", filepath.Join(blocker, "sessions"), []string{"cannot be created", "mkdir -m 700", EnvFolder}},
		{"empty path", "", []string{EnvFolder}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(tc.folder, WithSweepInterval(0), WithLogger((&logBuffer{}).logger()))
			if err == nil {
				h.Stop()
				t.Fatalf("New(%q): want an error, got a handler", tc.folder)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New(%q): want the error to mention %q, got %q", tc.folder, w, err)
				}
			}
		})
	}
}

func TestConcurrentSavesAndLoadsNeverSeeAPartialRecord(t *testing.T) {
	const workers = 50
	const rounds = 10
	h, _ := newTestHandler(t)
	ctx := context.Background()
	id := randomID(t)
	expires := time.Now().Add(time.Hour)
	payloads := make([][]byte, workers)
	for i := range payloads {
		// Different lengths and a different fill byte per worker, so a
		// mix of two records or a cut-off record cannot pass as a whole one.
		payloads[i] = bytes.Repeat([]byte{byte(i)}, 16<<10+i*1031)
	}
	if err := h.Save(ctx, id, sdk.Record{Data: payloads[0], Expires: expires}); err != nil {
		t.Fatalf("first Save: %v", err)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				if err := h.Save(ctx, id, sdk.Record{Data: payloads[w], Expires: expires}); err != nil {
					t.Errorf("worker %d round %d: Save: want nil, got %v", w, r, err)
					return
				}
				got, err := h.Load(ctx, id)
				if err != nil {
					t.Errorf("worker %d round %d: Load: want one of the saved records, got %v", w, r, err)
					return
				}
				if len(got.Data) == 0 || int(got.Data[0]) >= workers || !bytes.Equal(got.Data, payloads[got.Data[0]]) {
					t.Errorf("worker %d round %d: Load returned %d bytes that are not any one saved record in full", w, r, len(got.Data))
					return
				}
			}
		})
	}
	wg.Wait()
	if names := listFolder(t, h.folder); len(names) != 1 || names[0] != inShard(id, id+suffix) {
		t.Errorf("after concurrent Saves: want only %s.sess left, folder holds %v", id, names)
	}
}

func TestDoneContextStopsEveryMethod(t *testing.T) {
	h, _ := newTestHandler(t)
	id := randomID(t)
	rec := sdk.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}
	if err := h.Save(context.Background(), id, rec); err != nil {
		t.Fatalf("Save: %v", err)
	}
	fresh := randomID(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ops := []struct {
		name string
		call func() error
	}{
		{"Load", func() error { _, err := h.Load(ctx, id); return err }},
		{"Save", func() error { return h.Save(ctx, fresh, rec) }},
		{"Close", func() error { return h.Close(ctx, id) }},
		{"SaveIf", func() error { _, err := h.SaveIf(ctx, fresh, rec, 0); return err }},
		{"Lock", func() error { _, err := h.Lock(ctx, fresh, "aaaa", time.Minute); return err }},
		{"Unlock", func() error { return h.Unlock(ctx, fresh, "aaaa") }},
	}
	for _, op := range ops {
		if err := op.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: want an error wrapping context.Canceled, got %v", op.name, err)
		}
	}
	if names := listFolder(t, h.folder); len(names) != 1 || names[0] != inShard(id, id+suffix) {
		t.Errorf("after calls with a cancelled context: want the folder unchanged (only %s.sess), got %v", id, names)
	}
}
