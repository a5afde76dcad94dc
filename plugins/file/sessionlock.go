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
	"time"

	"github.com/tina4go/sessions/shared"
)

// A session lock (protocol 2, capability "lock") is a file <id>.lock that
// holds one line:
//
//	<token> <expiry, Unix milliseconds>\n
//
// It is read and written only while the stripe of id is held, so taking,
// stealing an expired lock, extending and releasing are each atomic across
// processes. A lock file whose expiry has passed, or that cannot be parsed,
// is no lock; Sweep removes such files. A lock file is not a session: Load,
// Save, SaveIf and Close ignore it.

// lockSuffix ends the name of every session lock file: <id>.lock.
const lockSuffix = ".lock"

// errBadToken is what Lock and Unlock return for a token they refuse.
var errBadToken = fmt.Errorf("lock token must be 1 to %d bytes of printable ASCII without spaces", shared.MaxLockToken)

// validToken reports whether token can be stored in a lock file: 1 to
// shared.MaxLockToken bytes of printable ASCII other than space (the host's
// tokens are hex).
func validToken(token string) bool {
	if token == "" || len(token) > shared.MaxLockToken {
		return false
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// lockPath returns the lock file of the session id, in the id's subfolder
// beside its session file, refusing ids as path does.
func (h *Handler) lockPath(id string) (string, error) {
	p, err := h.path(id)
	if err != nil {
		return "", err
	}
	return p[:len(p)-len(suffix)] + lockSuffix, nil
}

// Lock takes the lock of session id for token until ttl has passed and
// returns true, unless another token holds a lock on id that has not expired
// (then false). Taking it again with the same token extends it.
func (h *Handler) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	path, err := h.lockPath(id)
	if err != nil {
		return false, err
	}
	if !validToken(token) {
		return false, errBadToken
	}
	if ttl <= 0 {
		return false, fmt.Errorf("lock of session %s: ttl %v is not positive", shortID(id), ttl)
	}
	got := false
	err = h.withStripe(id, func() error {
		now := h.now()
		holder, expires, err := readLock(path)
		if err != nil {
			return h.ioError("lock", id, err)
		}
		if holder != "" && holder != token && now.Before(expires) {
			return nil // held by another token
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h.writeLock(path, token, now.Add(ttl)); err != nil {
			return h.ioError("lock", id, err)
		}
		got = true
		return nil
	})
	return got, err
}

// Unlock releases the lock of session id if token holds it, and otherwise
// does nothing; it returns nil in both cases.
func (h *Handler) Unlock(ctx context.Context, id, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := h.lockPath(id)
	if err != nil {
		return err
	}
	if !validToken(token) {
		return errBadToken
	}
	return h.withStripe(id, func() error {
		holder, _, err := readLock(path)
		if err != nil {
			return h.ioError("unlock", id, err)
		}
		if holder != token {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return h.ioError("unlock", id, err)
		}
		return nil
	})
}

// maxLockFileLen bounds what readLock reads: a token, a space, an expiry of
// at most 20 characters and a newline.
const maxLockFileLen = shared.MaxLockToken + 1 + 20 + 1

// readLock returns the token and expiry in the lock file at path, or "" for
// a missing or damaged file (no lock). The caller holds the stripe.
func readLock(path string) (token string, expires time.Time, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	var buf [maxLockFileLen + 1]byte
	n, err := f.Read(buf[:])
	if err != nil && n == 0 {
		return "", time.Time{}, nil // empty: damaged
	}
	token, expires, ok := parseLock(buf[:n])
	if !ok {
		return "", time.Time{}, nil
	}
	return token, expires, nil
}

// parseLock parses the content of a lock file.
func parseLock(b []byte) (token string, expires time.Time, ok bool) {
	line, rest, found := bytes.Cut(b, []byte{'\n'})
	if !found || len(rest) != 0 {
		return "", time.Time{}, false
	}
	tok, ms, found := bytes.Cut(line, []byte{' '})
	if !found || !validToken(string(tok)) {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(string(ms), 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return string(tok), time.UnixMilli(n), true
}

// writeLock replaces the lock file at path with one for token until
// expires: a temporary file renamed into place, so a crash leaves the old
// lock or the new one. It is not synced: after a power cut a lock may be
// gone, which frees the session. The caller holds the stripe.
func (h *Handler) writeLock(path, token string, expires time.Time) error {
	f, err := createTemp(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("create temporary file: %w", unwrapPath(err))
	}
	tmp := f.Name()
	b := make([]byte, 0, maxLockFileLen)
	b = append(b, token...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, expires.UnixMilli(), 10)
	b = append(b, '\n')
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write lock file: %w", unwrapPath(err))
	}
	return nil
}

// sweepLock removes the lock file name in dir if its lock has expired at now
// or the file is damaged. It decides while holding the stripe of the id. dir
// is the id's subfolder, or the folder itself for a lock file an earlier
// version left there.
func (h *Handler) sweepLock(dir, name string, now time.Time) (bool, error) {
	id := name[:len(name)-len(lockSuffix)]
	own, err := h.lockPath(id)
	if err != nil || filepath.Base(own) != name || (dir != h.folder && dir != filepath.Dir(own)) {
		return false, nil // not a file Sweep may touch
	}
	path := filepath.Join(dir, name)
	removed := false
	err = h.withStripe(id, func() error {
		info, err := os.Lstat(path)
		if err != nil || !info.Mode().IsRegular() {
			return nil // gone meanwhile, or not a file Sweep may touch
		}
		token, expires, err := readLock(path)
		if err != nil {
			return h.ioError("sweep lock of", id, err)
		}
		if token != "" && now.Before(expires) {
			return nil // held
		}
		if err := os.Remove(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return h.ioError("sweep lock of", id, err)
		}
		removed = true
		return nil
	})
	return removed, err
}
