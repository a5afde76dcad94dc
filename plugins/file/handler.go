// Package file is SessionFileHandler, the default session store of
// tina4go/sessions: one file per session in a private folder.
//
// The host seals every session before it arrives here, so a file holds an
// encrypted token, its expiry and its version, never readable session
// values. Writes are atomic (temporary file, fsync, rename), ids are checked
// before any path is built, and a background sweeper removes expired and
// damaged files.
//
// The handler speaks protocol 2: SaveIf writes only over the version it is
// given and Lock/Unlock keep a per-session lock, both atomic also across
// processes that share the folder (see stripe.go), and CloseAll deletes
// every session of a principal through a per-principal index file (see
// index.go).
//
// The package is importable so a host can run the handler in process;
// cmd/SessionFileHandler wraps it into a plugin binary with sdk.Serve.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// Name is the handler's name: the plugin binary's file name and the value of
// TINA4_SESSION_HANDLER that selects it.
const Name = "SessionFileHandler"

// Version is the handler's own version.
const Version = "0.3.0"

const (
	// suffix ends the name of every session file: <id>.sess.
	suffix = ".sess"
	// tmpPrefix starts the name of every temporary file Save writes before
	// renaming it into place.
	tmpPrefix = ".tmp-"
	// fileMode is the mode of every session file.
	fileMode fs.FileMode = 0o600
	// folderMode is the mode the session folder is created with or fixed to.
	folderMode fs.FileMode = 0o700
)

// Handler stores each session in its own file, <folder>/<id>.sess. It is
// safe for concurrent use, also by several processes sharing one folder.
// Create it with New or NewFromEnv and call Stop when done.
type Handler struct {
	folder string // absolute and clean
	log    *slog.Logger
	now    func() time.Time

	stripes [stripeCount]stripe
	shards  [stripeCount]string // the subfolders (see path.go)

	stopOnce sync.Once
	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when the sweeper has returned
}

var (
	_ sdk.Handler          = (*Handler)(nil)
	_ sdk.VersionedHandler = (*Handler)(nil)
	_ sdk.Locker           = (*Handler)(nil)
	_ sdk.Indexer          = (*Handler)(nil)
	_ sdk.Stopper          = (*Handler)(nil)
)

// New returns a Handler that keeps sessions in folder.
//
// The folder is created with mode 0700 if it is missing. If it exists and
// other users may read, write or enter it, New changes its mode to 0700 and
// logs that it did. New fails, with an error saying what to do, when the
// folder cannot be created, is not a folder, cannot be made private or is
// not writable.
//
// New creates the folder's stripe lock files (.lock-00 to .lock-3f, mode
// 0600, empty) if they are missing and keeps them open for as long as the
// Handler lives.
//
// Unless WithSweepInterval turns it off, New starts a goroutine that calls
// Sweep once a minute; Stop ends it.
func New(folder string, opts ...Option) (*Handler, error) {
	cfg := config{sweepInterval: DefaultSweepInterval, now: time.Now}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.log == nil {
		cfg.log = sdk.Logger()
	}
	if folder == "" {
		return nil, fmt.Errorf("session folder is empty: set %s to the folder that should hold session files", EnvFolder)
	}
	abs, err := filepath.Abs(folder)
	if err != nil {
		return nil, fmt.Errorf("session folder %s: cannot resolve it to an absolute path: %w; set %s to an absolute path", folder, err, EnvFolder)
	}
	if err := prepareFolder(abs, cfg.log); err != nil {
		return nil, err
	}
	h := &Handler{
		folder: abs,
		log:    cfg.log,
		now:    cfg.now,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := h.makeShards(); err != nil {
		return nil, err
	}
	if err := h.openStripes(); err != nil {
		return nil, err
	}
	if !crossProcess {
		h.log.Warn("this system has no file lock the session handler uses: SaveIf and Lock are atomic only within this process; do not share the session folder between processes",
			"folder", abs)
	}
	h.startSweeper(cfg.sweepInterval)
	return h, nil
}

// prepareFolder makes sure folder exists, is private to this user and is
// writable.
func prepareFolder(folder string, log *slog.Logger) error {
	if info, err := os.Stat(folder); err == nil && !info.IsDir() {
		return fmt.Errorf("session folder %s exists but is not a folder; remove it or set %s to another path", folder, EnvFolder)
	}
	if err := os.MkdirAll(folder, folderMode); err != nil {
		return fmt.Errorf("session folder %s cannot be created: %w; create it as the user that runs the app (mkdir -m 700 %s) or set %s to a folder that user can write",
			folder, unwrapPath(err), folder, EnvFolder)
	}
	info, err := os.Stat(folder)
	if err != nil {
		return fmt.Errorf("session folder %s cannot be used: %w; check that the user that runs the app can reach it or set %s to another folder",
			folder, unwrapPath(err), EnvFolder)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(folder, folderMode); err != nil {
			return fmt.Errorf("session folder %s has mode %#o, open to other users, and cannot be made private: %w; run chmod 700 %s as its owner",
				folder, perm, unwrapPath(err), folder)
		}
		log.Warn("session folder was open to other users; changed its mode to 0700",
			"folder", folder, "old_mode", fmt.Sprintf("%#o", perm))
	}
	probe, err := os.CreateTemp(folder, tmpPrefix+"probe-*")
	if err != nil {
		return fmt.Errorf("session folder %s is not writable: %w; give the user that runs the app write access to it or set %s to a folder that user can write",
			folder, unwrapPath(err), EnvFolder)
	}
	_ = probe.Close()
	_ = os.Remove(probe.Name())
	return nil
}

// Load returns the record stored under id, with its version
// (legacyVersion, 1, for a file written before versions existed).
//
// It returns sdk.ErrNotFound when there is no file for id, when the record
// has expired (the file is then removed) and when the file is damaged (a
// warning is logged; Sweep removes the file later). It returns an error
// wrapping sdk.ErrInvalidID for an id that is not a session id, ctx.Err()
// when ctx is already done, and a wrapped error when the file cannot be read.
func (h *Handler) Load(ctx context.Context, id string) (sdk.Record, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Record{}, err
	}
	path, err := h.path(id)
	if err != nil {
		return sdk.Record{}, err
	}
	content, info, err := readWhole(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Not moved into its subfolder yet, or no such session.
		path = h.legacyPath(id)
		content, info, err = readWhole(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return sdk.Record{}, sdk.ErrNotFound
	}
	if err != nil {
		return sdk.Record{}, h.ioError("load", id, err)
	}
	hdr, err := parseHeader(content)
	if err == nil && int64(len(content)-hdr.size) != hdr.dataLen {
		err = fmt.Errorf("%w: header promises %d bytes of data, file holds %d", errDamaged, hdr.dataLen, len(content)-hdr.size)
	}
	if err != nil {
		h.log.Warn("session file is damaged; treating the session as not found",
			"folder", h.folder, "session", shortID(id), "error", err)
		return sdk.Record{}, sdk.ErrNotFound
	}
	if !h.now().Before(hdr.expires) {
		if err := h.removeExpired(id, path, info); err != nil {
			h.log.Warn("cannot remove expired session file", "folder", h.folder, "session", shortID(id), "error", unwrapPath(err))
		}
		return sdk.Record{}, sdk.ErrNotFound
	}
	return sdk.Record{Data: content[hdr.size:], Expires: hdr.expires, Version: hdr.version}, nil
}

// removeExpired removes the file at path if it is still the one described
// by info, holding the stripe of id so that no write of id slips between the
// check and the removal. Removing the file in the subfolder also removes a
// file an earlier version left in the folder itself, which would otherwise
// be read in its place.
func (h *Handler) removeExpired(id, path string, info fs.FileInfo) error {
	return h.withStripe(id, func() error {
		removed, err := removeIfUnchanged(path, info)
		if err == nil && removed {
			err = h.removedAt(id, path)
		}
		return err
	})
}

// removeLegacy removes the file at path, written by an earlier version
// directly in the folder, if there is one. It looks before it removes: a
// removal locks the folder, a look does not, and there is rarely anything
// to remove.
func removeLegacy(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// readWhole reads the file at path and returns its content and the
// FileInfo of the file it read.
func readWhole(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("session file is not a regular file (mode %s); remove it", info.Mode())
	}
	// Session files are replaced by rename, never changed in place, so the
	// size read by Stat is the size of what this descriptor reads. A file
	// that is shorter anyway fails the length check in the header.
	content := make([]byte, info.Size())
	n, err := io.ReadFull(f, content)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	return content[:n], info, nil
}

// Save creates or replaces the record under id, with a new version.
//
// The write is atomic: Save writes a temporary file (.tmp-*) in the folder
// with mode 0600, syncs it to disk and renames it onto <id>.sess, so a
// concurrent Load sees the old record or the new one, never part of either.
// The rename happens while the stripe of id is held, so it never lands
// between a SaveIf's check and its rename. On failure the temporary file is
// removed and the old record, if any, is left as it was. When two Saves for
// one id race, the last rename wins.
//
// A record with a principal is written in format v3 and listed in the
// principal's index file before the rename (see index.go).
//
// It returns an error wrapping sdk.ErrInvalidID for an id that is not a
// session id or a principal that is not a principal key, and ctx.Err()
// when ctx is done before the rename.
func (h *Handler) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := h.path(id)
	if err != nil {
		return err
	}
	if r.Principal != "" && !sdk.ValidPrincipal(r.Principal) {
		return shared.PrincipalError(r.Principal)
	}
	tmp, err := h.writeTemp(id, r, newVersion())
	if err != nil {
		return err
	}
	defer tmp.discard()
	if err := h.addToIndex(r.Principal, id, r.Expires); err != nil {
		return err
	}
	return h.withStripe(id, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tmp.commit(h, id, path); err != nil {
			return err
		}
		if err := removeLegacy(h.legacyPath(id)); err != nil {
			return h.ioError("save", id, fmt.Errorf("remove the file of an earlier version: %w", unwrapPath(err)))
		}
		return nil
	})
}

// SaveIf stores r under id only if the live record under id has version
// expect, or, when expect is 0, only if id has no live record (none, an
// expired one or a damaged file). It returns the new record's version.
//
// Otherwise it writes nothing and returns a *sdk.ConflictError: Found=false
// when there is no live record, else Found=true with the stored record.
//
// SaveIf writes and syncs the temporary file first; only then does it take
// the stripe of id, read the header of the current file, compare versions
// and rename the temporary file into place. Every other write of id (Save,
// SaveIf, Close, the removal of an expired file) holds the same stripe, in
// this process and in every other one that shares the folder, so the check
// and the rename are one atomic step.
//
// A record with a principal is listed in the principal's index file before
// the stripe of id is taken, whatever the check then decides (see
// index.go).
func (h *Handler) SaveIf(ctx context.Context, id string, r sdk.Record, expect uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	path, err := h.path(id)
	if err != nil {
		return 0, err
	}
	if r.Principal != "" && !sdk.ValidPrincipal(r.Principal) {
		return 0, shared.PrincipalError(r.Principal)
	}
	version := newVersion()
	tmp, err := h.writeTemp(id, r, version)
	if err != nil {
		return 0, err
	}
	defer tmp.discard()
	if err := h.addToIndex(r.Principal, id, r.Expires); err != nil {
		return 0, err
	}
	err = h.withStripe(id, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		at, found, cur, err := h.current(id, path)
		if err != nil {
			return h.ioError("save", id, err)
		}
		switch {
		case !found && expect == 0, found && cur == expect:
			if err := tmp.commit(h, id, path); err != nil {
				return err
			}
			if at == h.legacyPath(id) {
				// The record came from an earlier version's file: the
				// new one in the subfolder replaces it.
				if err := removeLegacy(at); err != nil {
					return h.ioError("save", id, fmt.Errorf("remove the file of an earlier version: %w", unwrapPath(err)))
				}
			}
			return nil
		case !found:
			return &sdk.ConflictError{Found: false}
		}
		rec, err := h.readLive(at)
		if errors.Is(err, sdk.ErrNotFound) { // it expired a moment ago
			return &sdk.ConflictError{Found: false}
		}
		if err != nil {
			return h.ioError("save", id, err)
		}
		return &sdk.ConflictError{Found: true, Current: rec}
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// current reports whether id has a live record and its version, reading the
// header only, from path (the file in id's subfolder) or, when there is no
// such file, from the file an earlier version kept in the folder itself. at
// is the file it read ("" when there is neither). A missing, expired or
// damaged file is no live record.
func (h *Handler) current(id, path string) (at string, found bool, version uint64, err error) {
	at, hdr, info, err := h.headerOf(id, path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, 0, nil
	case errors.Is(err, errDamaged):
		return at, false, 0, nil
	case err != nil:
		return at, false, 0, err
	case hdr.dataLen != info.Size()-int64(hdr.size), !h.now().Before(hdr.expires):
		return at, false, 0, nil
	}
	return at, true, hdr.version, nil
}

// readLive reads the whole record at path; sdk.ErrNotFound when there is no
// live record.
func (h *Handler) readLive(path string) (sdk.Record, error) {
	content, _, err := readWhole(path)
	if errors.Is(err, fs.ErrNotExist) {
		return sdk.Record{}, sdk.ErrNotFound
	}
	if err != nil {
		return sdk.Record{}, err
	}
	hdr, err := parseHeader(content)
	if err != nil || int64(len(content)-hdr.size) != hdr.dataLen || !h.now().Before(hdr.expires) {
		return sdk.Record{}, sdk.ErrNotFound
	}
	return sdk.Record{Data: content[hdr.size:], Expires: hdr.expires, Version: hdr.version}, nil
}

// tempFile is a written and synced temporary file waiting to be renamed
// into place.
type tempFile struct {
	name      string
	committed bool
}

// writeTemp writes r with version into a new temporary file (mode 0600) in
// the subfolder of id, syncs and closes it.
func (h *Handler) writeTemp(id string, r sdk.Record, version uint64) (*tempFile, error) {
	f, err := createTemp(h.shardDir(id))
	if err != nil {
		return nil, h.ioError("save", id, fmt.Errorf("create temporary file: %w", unwrapPath(err)))
	}
	t := &tempFile{name: f.Name()}
	fail := func(what string, err error) (*tempFile, error) {
		_ = f.Close()
		t.discard()
		return nil, h.ioError("save", id, fmt.Errorf("%s temporary file: %w", what, unwrapPath(err)))
	}
	if err := f.Chmod(fileMode); err != nil {
		return fail("set mode of", err)
	}
	if _, err := f.Write(appendHeader(make([]byte, 0, maxHeaderLen), r.Expires, len(r.Data), version, r.Principal)); err != nil {
		return fail("write", err)
	}
	if _, err := f.Write(r.Data); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := f.Close(); err != nil {
		t.discard()
		return nil, h.ioError("save", id, fmt.Errorf("close temporary file: %w", unwrapPath(err)))
	}
	return t, nil
}

// commit renames the temporary file onto path. The caller holds the stripe.
func (t *tempFile) commit(h *Handler, id, path string) error {
	if err := os.Rename(t.name, path); err != nil {
		return h.ioError("save", id, fmt.Errorf("rename temporary file into place: %w", unwrapPath(err)))
	}
	t.committed = true
	return nil
}

// discard removes the temporary file unless it was committed.
func (t *tempFile) discard() {
	if !t.committed {
		_ = os.Remove(t.name)
		t.committed = true
	}
}

// Close removes the record under id, holding the stripe of id. Closing an
// id that has no record returns nil. The session's lock, if any, is left
// alone. It returns an error wrapping sdk.ErrInvalidID for an id that
// is not a session id and ctx.Err() when ctx is already done.
func (h *Handler) Close(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := h.path(id)
	if err != nil {
		return err
	}
	return h.withStripe(id, func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return h.ioError("close", id, err)
		}
		if err := removeLegacy(h.legacyPath(id)); err != nil {
			return h.ioError("close", id, err)
		}
		return nil
	})
}
