package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tina4go/sessions/sdk"
)

// path returns the file that holds the session id. It refuses, with an
// error wrapping sdk.ErrInvalidID, every id that is not a session id, and
// (in case ValidID ever lets one through) every id whose file would not sit
// directly in the folder. The refused id is not repeated in the error: it
// came from a client and may be hostile.
func (h *Handler) path(id string) (string, error) {
	if !sdk.ValidID(id) {
		return "", fmt.Errorf("%w: want 43 characters of A-Z a-z 0-9 - _, got %d bytes", sdk.ErrInvalidID, len(id))
	}
	p, ok := inside(h.folder, id+suffix)
	if !ok {
		return "", fmt.Errorf("%w: its file would not be directly inside the session folder", sdk.ErrInvalidID)
	}
	return p, nil
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
