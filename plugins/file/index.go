package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// The principal index (protocol 2, capability "index") backs the host's
// "log out everywhere". For a record with a principal (an opaque hex key the
// host derives from a user id; never the user id), the handler keeps:
//
//   - the principal in the session file's own header (format v3, see
//     format.go), so whose a session is now is always read from the session
//     itself;
//   - a line "<id> <expiry, Unix milliseconds>\n" in the principal's index
//     file, <principal>.idx in the session folder (mode 0600). The file
//     holds ids and expiries only.
//
// An index file is read and written only while the stripe of its principal
// is held (the same 64 stripe files as sessions, chosen by a hash of the
// principal), so appends, rewrites and removals are atomic across every
// process that shares the folder. No stripe is ever taken while another is
// held, so stripes cannot deadlock.
//
// Save and SaveIf add the index line first and write the session second, as
// two steps (a line's expiry is the expiry of the write that added it; a
// write whose id is listed with that expiry or a later one adds nothing).
// CloseAll reads the index and, for each id, reads the session's header
// and deletes the session only if it names the principal, under the
// session's stripe. Then it removes the lines of the sessions it deleted
// (unless a later expiry was added for the id meanwhile) and the lines
// whose expiry has passed, and nothing else. That makes every outcome safe:
//
//   - a line for a session that is gone, was never written (a SaveIf
//     conflict, a failure, a crash between the steps) or was saved since
//     under another principal or none, is harmless: CloseAll leaves such
//     a session alone. It also leaves the line, since the session may be
//     one whose save is between its two steps right now; the line goes
//     once its expiry has passed;
//   - a session written with the principal always has its line, since the
//     line came first, and a line goes only with its session or its
//     expiry. (A session CloseAll deleted can come back only through a
//     plain Save of its id; a host with record versions saves with SaveIf,
//     which refuses a deleted session.)
//
// Close deletes only the session. Sweep drops the lines whose expiry has
// passed and deletes an index file once no line is left, so an index never
// outlives the sessions it lists. An index with many stale lines is
// rewritten compacted (one line per id, with its latest expiry) by the
// next save that appends to it.

// idxSuffix ends the name of every index file: <principal>.idx.
const idxSuffix = ".idx"

// idxMaxSize bounds an index file that CloseAll, Save and Sweep read whole:
// 64 bytes a line, a million lines.
const idxMaxSize = 64 << 20

// idxPath returns the index file of principal p, refusing a principal that
// is not a principal key with an error wrapping sdk.ErrInvalidID.
func (h *Handler) idxPath(p string) (string, error) {
	if !sdk.ValidPrincipal(p) {
		return "", shared.PrincipalError(p)
	}
	path, ok := inside(h.folder, p+idxSuffix)
	if !ok {
		return "", shared.PrincipalError(p)
	}
	return path, nil
}

// withPrincipal runs fn while the stripe of principal p is held.
func (h *Handler) withPrincipal(p string, fn func() error) error {
	s := h.stripeFor(p)
	if err := s.lock(); err != nil {
		return fmt.Errorf("lock the index of a principal in %s: %w", h.folder, err)
	}
	defer s.unlock()
	return fn()
}

// idxError describes a failed operation on the index of a principal. The
// principal is not named: it is derived from a user id.
func (h *Handler) idxError(op string, err error) error {
	return fmt.Errorf("%s the index of a principal in %s: %w", op, h.folder, unwrapPath(err))
}

// index is what an index file says: the latest expiry of each id, and how
// many lines it holds.
type index struct {
	expires map[string]int64 // Unix milliseconds
	lines   int
	whole   bool // the file ends with a newline (or is empty)
}

// readIndex reads the index file at path. A missing file is an empty
// index. Lines that are not "<session id> <number>" (a line cut off by a
// crash, say) are skipped. The caller holds the principal's stripe.
func readIndex(path string) (index, error) {
	ix := index{expires: map[string]int64{}, whole: true}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ix, nil
	}
	if err != nil {
		return ix, err
	}
	defer f.Close()
	content, err := io.ReadAll(io.LimitReader(f, idxMaxSize+1))
	if err != nil {
		return ix, err
	}
	if len(content) > idxMaxSize {
		return ix, fmt.Errorf("index file is over %d bytes", idxMaxSize)
	}
	ix.whole = len(content) == 0 || content[len(content)-1] == '\n'
	for len(content) > 0 {
		line := content
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			content = nil
		}
		ix.lines++
		id, ms, ok := bytes.Cut(line, []byte{' '})
		if !ok || !sdk.ValidID(string(id)) {
			continue
		}
		exp, err := strconv.ParseInt(string(ms), 10, 64)
		if err != nil {
			continue
		}
		if cur, ok := ix.expires[string(id)]; !ok || exp > cur {
			ix.expires[string(id)] = exp
		}
	}
	return ix, nil
}

// appendIndexLine appends "<id> <ms>\n" to b.
func appendIndexLine(b []byte, id string, ms int64) []byte {
	b = append(b, id...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ms, 10)
	return append(b, '\n')
}

// writeIndex replaces the index file at path with one line per id of
// expires (a temporary file, synced, renamed into place), or removes it
// when expires is empty. The caller holds the principal's stripe.
func (h *Handler) writeIndex(path string, expires map[string]int64) error {
	if len(expires) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	var b []byte
	for id, ms := range expires {
		b = appendIndexLine(b, id, ms)
	}
	f, err := os.CreateTemp(h.folder, tmpPrefix+"*")
	if err != nil {
		return err
	}
	name := f.Name()
	err = f.Chmod(fileMode)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		_ = os.Remove(name)
	}
	return err
}

// addToIndex lists id, a record expiring at expires, in the index of
// principal p: nothing for p "" or a record already expired, or when the
// index lists id with that expiry or a later one already. The line is
// appended and synced; an index with many more lines than ids is rewritten
// with one line per live id instead.
func (h *Handler) addToIndex(p, id string, expires time.Time) error {
	if p == "" || !h.now().Before(expires) {
		return nil
	}
	path, err := h.idxPath(p)
	if err != nil {
		return err
	}
	ms := expires.UnixMilli()
	err = h.withPrincipal(p, func() error {
		ix, err := readIndex(path)
		if err != nil {
			return err
		}
		if cur, ok := ix.expires[id]; ok && cur >= ms {
			return nil
		}
		if ix.lines >= 2*len(ix.expires)+16 {
			now := h.now().UnixMilli()
			for k, e := range ix.expires {
				if e <= now {
					delete(ix.expires, k)
				}
			}
			ix.expires[id] = ms
			return h.writeIndex(path, ix.expires)
		}
		var b []byte
		if !ix.whole {
			b = append(b, '\n') // end a line cut off by a crash
		}
		b = appendIndexLine(b, id, ms)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, fileMode)
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return h.ioError("index", id, err)
	}
	return nil
}

// CloseAll deletes every session listed in the index of principal whose
// header names principal now (see the top of index.go), and returns how
// many of them had not expired. For each id it takes the id's stripe,
// reads the session's header and removes the file if it names principal;
// a missing file, a damaged one or one of another principal or none is
// left as it is. Then, under the principal's stripe, it removes from the
// index the lines of the sessions it deleted and the lines whose expiry
// has passed, and deletes the index file once it is empty. A line of a
// session it did not delete stays until its expiry.
//
// It returns an error wrapping sdk.ErrInvalidID for a principal that is
// not a principal key, ctx.Err() when ctx is done, and a wrapped error
// when a file cannot be read or removed, with the number of sessions
// deleted until then; the lines of the sessions it did not get to stay, so
// calling CloseAll again finishes the job.
func (h *Handler) CloseAll(ctx context.Context, principal string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	path, err := h.idxPath(principal)
	if err != nil {
		return 0, err
	}
	var read index
	if err := h.withPrincipal(principal, func() (err error) {
		read, err = readIndex(path)
		return err
	}); err != nil {
		return 0, h.idxError("read", err)
	}
	closed := 0
	deleted := make(map[string]int64, len(read.expires))
	var failed error
	for id, ms := range read.expires {
		if failed = ctx.Err(); failed != nil {
			break
		}
		removed, live, err := h.closeIfOf(id, principal)
		if err != nil {
			failed = err
			break
		}
		if live {
			closed++
		}
		if removed {
			deleted[id] = ms
		}
	}
	err = h.withPrincipal(principal, func() error {
		ix, err := readIndex(path)
		if err != nil {
			return err
		}
		now := h.now().UnixMilli()
		changed := ix.lines != len(ix.expires) || !ix.whole
		for id, e := range ix.expires {
			ms, gone := deleted[id]
			if gone && e <= ms || e <= now { // deleted and not saved again since, or expired
				delete(ix.expires, id)
				changed = true
			}
		}
		if !changed {
			return nil
		}
		return h.writeIndex(path, ix.expires) // or remove it, once empty
	})
	if err != nil && failed == nil {
		failed = h.idxError("update", err)
	}
	return closed, failed
}

// closeIfOf removes the session file of id if its header names principal,
// holding the id's stripe, and reports whether it removed it and whether
// that session was live.
func (h *Handler) closeIfOf(id, principal string) (removed, live bool, err error) {
	path, err := h.path(id)
	if err != nil {
		return false, false, nil // readIndex lets only session ids through
	}
	err = h.withStripe(id, func() error {
		path, hdr, info, err := h.headerOf(id, path)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, errDamaged):
			return nil // gone, or not a session anyone can load
		case err != nil:
			return h.ioError("close", id, err)
		case hdr.principal != principal:
			return nil // saved since under another principal, or none
		}
		if removed, err = removeIfUnchanged(path, info); err != nil {
			return h.ioError("close", id, err)
		}
		if removed {
			if err := h.removedAt(id, path); err != nil {
				return h.ioError("close", id, err)
			}
		}
		live = removed && h.now().Before(hdr.expires) && hdr.dataLen == info.Size()-int64(hdr.size)
		return nil
	})
	return removed, live, err
}

// sweepIndex drops the lines of the index file name whose expiry is at or
// before now, under the principal's stripe, and removes the file once none
// is left; it reports whether it removed the file.
func (h *Handler) sweepIndex(name string, now time.Time) (bool, error) {
	p := name[:len(name)-len(idxSuffix)]
	path, err := h.idxPath(p)
	if err != nil {
		return false, nil // not a file Sweep may touch
	}
	removed := false
	err = h.withPrincipal(p, func() error {
		ix, err := readIndex(path)
		if err != nil {
			return err
		}
		ms := now.UnixMilli()
		for id, e := range ix.expires {
			if e <= ms {
				delete(ix.expires, id)
			}
		}
		switch {
		case len(ix.expires) == 0:
			err := os.Remove(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			removed = err == nil
			return err
		case len(ix.expires) == ix.lines && ix.whole:
			return nil // every line is live, one per id
		}
		return h.writeIndex(path, ix.expires)
	})
	if err != nil {
		return false, h.idxError("sweep", err)
	}
	return removed, nil
}
