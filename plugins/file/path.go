package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tina4go/sessions/sdk"
)

// Session files live in subfolders of the session folder, one for each
// stripe (see stripe.go): 00 to 3f, the subfolder of an id being its
// stripe's number in two hex digits. Every create and rename takes a lock on
// the folder it happens in, and in one folder shared by all sessions that
// lock is what concurrent saves wait on (measured: spreading the files over
// 64 subfolders more than doubled the requests a second the file handler
// serves at 64 clients, and halved the CPU each one costs). A session's
// temporary files are written in its subfolder, so that the rename that
// commits them stays within one folder.
//
// Earlier versions kept session files in the folder itself. Such a file is
// still read where it is (legacyPath) and moved into the subfolder by the
// next save of its session.

// path returns the file that holds the session id: <folder>/<shard>/<id>.sess.
// It refuses, with an error wrapping sdk.ErrInvalidID, every id that is not a
// session id, and (in case ValidID ever lets one through) every id whose
// file would not sit directly in its subfolder. The refused id is not
// repeated in the error: it came from a client and may be hostile.
func (h *Handler) path(id string) (string, error) {
	if !sdk.ValidID(id) {
		return "", fmt.Errorf("%w: want 43 characters of A-Z a-z 0-9 - _, got %d bytes", sdk.ErrInvalidID, len(id))
	}
	p, ok := inside(h.shardDir(id), id+suffix)
	if !ok {
		return "", fmt.Errorf("%w: its file would not be directly inside the session folder", sdk.ErrInvalidID)
	}
	return p, nil
}

// legacyPath returns where an earlier version kept the session file of id,
// directly in the folder. The caller has checked id with path.
func (h *Handler) legacyPath(id string) string { return filepath.Join(h.folder, id+suffix) }

// headerOf reads the header of the session file of id: from path (the file
// in id's subfolder) or, when there is no such file, from the file an
// earlier version kept in the folder itself. at is the file it read, or
// tried last.
func (h *Handler) headerOf(id, path string) (at string, hdr header, info fs.FileInfo, err error) {
	hdr, info, err = readHeader(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return path, hdr, info, err
	}
	at = h.legacyPath(id)
	hdr, info, err = readHeader(at)
	return at, hdr, info, err
}

// removedAt finishes the removal of the session file of id at path: once
// the file in the subfolder is gone, a file an earlier version left in the
// folder itself goes too, so that it is not read in its place.
func (h *Handler) removedAt(id, path string) error {
	if legacy := h.legacyPath(id); path != legacy {
		return removeLegacy(legacy)
	}
	return nil
}

// shardName is the name of subfolder i: two hex digits.
func shardName(i int) string { return fmt.Sprintf("%02x", i) }

// isShardName reports whether name is the name of a subfolder.
func isShardName(name string) bool {
	n, err := strconv.ParseUint(name, 16, 8)
	return err == nil && n < stripeCount && name == shardName(int(n))
}

// shardDir returns the subfolder of id.
func (h *Handler) shardDir(id string) string { return h.shards[stripeIndex(id)] }

// createTemp creates a temporary file (.tmp-*, mode 0600) in the subfolder
// dir, making the subfolder again if someone removed it.
func createTemp(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(dir, folderMode); err == nil || errors.Is(err, fs.ErrExist) {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	return f, err
}

// makeShards creates (mode 0700) the subfolders that are missing.
func (h *Handler) makeShards() error {
	for i := range h.shards {
		h.shards[i] = filepath.Join(h.folder, shardName(i))
		if err := os.Mkdir(h.shards[i], folderMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("session folder %s: cannot create subfolder %s: %w; give the user that runs the app write access to the folder",
				h.folder, shardName(i), unwrapPath(err))
		}
	}
	return nil
}

// inside joins folder and name and reports whether the result is a direct
// child of folder. folder must be clean.
func inside(folder, name string) (string, bool) {
	p := filepath.Join(folder, name)
	return p, filepath.Dir(p) == folder && filepath.Base(p) == name
}

// shortID is the start of a session id, enough to tell sessions apart in a
// log line without writing down a bearer secret.
func shortID(id string) string {
	const keep = 6
	if len(id) <= keep {
		return id
	}
	return id[:keep] + "…"
}

// ioError describes a failed file operation on the session id. It names the
// folder and the start of the id but not the file, whose name is the whole
// id (a bearer secret) and would end up in the host's log.
func (h *Handler) ioError(op, id string, err error) error {
	return fmt.Errorf("%s session %s in %s: %w", op, shortID(id), h.folder, unwrapPath(err))
}

// unwrapPath strips the path from an *fs.PathError or *os.LinkError, keeping
// the cause (so errors.Is(err, fs.ErrNotExist) and the like still work).
// Callers put the folder in their own message.
func unwrapPath(err error) error {
	switch e := err.(type) {
	case *fs.PathError:
		return fmt.Errorf("%s: %w", e.Op, e.Err)
	case *os.LinkError:
		return fmt.Errorf("%s: %w", e.Op, e.Err)
	}
	return err
}

// removeIfUnchanged removes the file at path if it is still the file
// described by read. A Save that renamed a new record onto path after the
// caller read the old one is not undone. It reports whether it removed the
// file; a file that is already gone is not an error.
func removeIfUnchanged(path string, read fs.FileInfo) (bool, error) {
	cur, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !os.SameFile(read, cur) {
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
