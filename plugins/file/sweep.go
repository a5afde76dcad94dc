package file

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tina4go/sessions/sdk"
)

const (
	// tmpMaxAge is how old a temporary file must be before Sweep takes it
	// for the leftover of a crashed Save. A real Save takes far less.
	tmpMaxAge = time.Hour
	// sweepBatch is how many folder entries Sweep reads at a time, so a
	// folder of many files is never held in memory whole.
	sweepBatch = 256
	// maxSweepErrors is how many errors Sweep reports in full; the rest are
	// counted.
	maxSweepErrors = 5
)

// Sweep removes, from the session folder and its subfolders 00 to 3f, every
// <id>.sess file (format v1, v2 or v3) whose record expired at or before now
// or whose content is damaged, every <id>.lock file whose lock expired at or
// before now or that is damaged, and every temporary file (.tmp-*) last
// modified more than an hour before now. It reads only the header of each
// session file, and removes a session or lock file while holding the
// stripe of its id. In every <principal>.idx index file (in the folder
// itself) it drops the lines whose expiry is at or before now, under the
// principal's stripe, and removes the file once no line is left (counted as
// removed). It never touches the stripe files (.lock-00 to .lock-3f), a
// file with any other name, a session or lock file in a subfolder that is
// not its id's, or anything that is not a regular file (folders other than
// the subfolders, symlinks). Session and lock files directly in the folder
// were left there by an earlier version and are swept the same way.
//
// Sweep goes on past errors with single files and returns how many files it
// removed together with the errors it met (nil if none). The background
// sweeper calls it; call it directly when the sweeper is off.
func (h *Handler) Sweep(now time.Time) (removed int, err error) {
	return h.sweep(now, nil)
}

// sweep is Sweep, stopping early once stop is closed.
func (h *Handler) sweep(now time.Time, stop <-chan struct{}) (removed int, err error) {
	var errs sweepErrors
	removed = h.sweepDir(h.folder, now, stop, &errs)
	for _, dir := range h.shards {
		select {
		case <-stop:
			return removed, errs.err()
		default:
		}
		removed += h.sweepDir(dir, now, stop, &errs)
	}
	return removed, errs.err()
}

// sweepDir sweeps the entries of dir (the folder or one of its subfolders)
// and returns how many files it removed.
func (h *Handler) sweepDir(dir string, now time.Time, stop <-chan struct{}, errs *sweepErrors) (removed int) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) && dir != h.folder {
		return 0 // a removed subfolder holds nothing to sweep
	}
	if err != nil {
		errs.add(fmt.Errorf("sweep session folder %s: %w", dir, unwrapPath(err)))
		return 0
	}
	defer f.Close()
	for {
		entries, rerr := f.ReadDir(sweepBatch)
		for _, e := range entries {
			ok, err := h.sweepEntry(dir, e, now)
			if ok {
				removed++
			}
			if err != nil {
				errs.add(err)
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				errs.add(fmt.Errorf("sweep session folder %s: %w", dir, unwrapPath(rerr)))
			}
			return removed
		}
		select {
		case <-stop:
			return removed
		default:
		}
	}
}

// sweepEntry removes one entry of dir if Sweep should, and reports whether
// it did.
func (h *Handler) sweepEntry(dir string, e fs.DirEntry, now time.Time) (bool, error) {
	name := e.Name()
	if !e.Type().IsRegular() {
		return false, nil
	}
	root := dir == h.folder
	switch {
	case root && isStripeName(name):
		return false, nil
	case strings.HasPrefix(name, tmpPrefix):
		return h.sweepTemp(dir, name, e, now)
	case strings.HasSuffix(name, suffix) && sdk.ValidID(strings.TrimSuffix(name, suffix)):
		return h.sweepSession(dir, name, now)
	case strings.HasSuffix(name, lockSuffix) && sdk.ValidID(strings.TrimSuffix(name, lockSuffix)):
		return h.sweepLock(dir, name, now)
	case root && strings.HasSuffix(name, idxSuffix) && sdk.ValidPrincipal(strings.TrimSuffix(name, idxSuffix)):
		return h.sweepIndex(name, now)
	default:
		return false, nil
	}
}

// sweepTemp removes the temporary file name in dir if it is older than
// tmpMaxAge.
func (h *Handler) sweepTemp(dir, name string, e fs.DirEntry, now time.Time) (bool, error) {
	info, err := e.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // its Save finished meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("sweep temporary file %s: %w", name, unwrapPath(err))
	}
	if now.Sub(info.ModTime()) <= tmpMaxAge {
		return false, nil
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("sweep temporary file %s: %w", name, unwrapPath(err))
	}
	return true, nil
}

// sweepSession removes the session file name in dir if its record has
// expired or the file is damaged. It reads the header only. dir is the id's
// subfolder, or the folder itself for a file an earlier version left there.
func (h *Handler) sweepSession(dir, name string, now time.Time) (bool, error) {
	id := strings.TrimSuffix(name, suffix)
	path, err := h.path(id)
	if err != nil {
		return false, nil // not a file Sweep may touch
	}
	switch dir {
	case filepath.Dir(path):
	case h.folder:
		path = h.legacyPath(id)
	default:
		return false, nil // in another id's subfolder: not a file Sweep may touch
	}
	hdr, info, err := readHeader(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // closed or removed by a Load meanwhile
	}
	if err != nil && !errors.Is(err, errDamaged) {
		return false, h.ioError("sweep", id, err)
	}
	damaged := err
	if damaged == nil && hdr.dataLen != info.Size()-int64(hdr.size) {
		damaged = fmt.Errorf("%w: header promises %d bytes of data, file holds %d", errDamaged, hdr.dataLen, info.Size()-int64(hdr.size))
	}
	if damaged == nil && now.Before(hdr.expires) {
		return false, nil // live
	}
	var removed bool
	err = h.withStripe(id, func() (err error) {
		if removed, err = removeIfUnchanged(path, info); err != nil {
			return h.ioError("sweep", id, err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if removed && damaged != nil {
		h.log.Warn("removed damaged session file", "folder", h.folder, "session", shortID(id), "error", damaged)
	}
	return removed, nil
}

// readHeader reads and parses the header of the session file at path,
// reading at most maxHeaderLen bytes. A file that cannot be parsed returns
// its FileInfo and an error wrapping errDamaged.
func readHeader(path string) (header, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return header{}, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return header{}, nil, err
	}
	if !info.Mode().IsRegular() {
		return header{}, nil, fmt.Errorf("session file is not a regular file (mode %s)", info.Mode())
	}
	var buf [maxHeaderLen]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return header{}, nil, err
	}
	hdr, err := parseHeader(buf[:n])
	return hdr, info, err
}

// sweepErrors collects the errors of one sweep, keeping the first few.
type sweepErrors struct {
	errs  []error
	extra int
}

func (s *sweepErrors) add(err error) {
	if len(s.errs) < maxSweepErrors {
		s.errs = append(s.errs, err)
		return
	}
	s.extra++
}

func (s *sweepErrors) err() error {
	if s.extra > 0 {
		return errors.Join(append(s.errs, fmt.Errorf("and %d more errors", s.extra))...)
	}
	return errors.Join(s.errs...)
}

// startSweeper starts the background sweeper, unless every is zero or less.
func (h *Handler) startSweeper(every time.Duration) {
	if every <= 0 {
		close(h.done)
		return
	}
	go h.sweepEvery(every)
}

// sweepEvery calls Sweep every interval until Stop.
func (h *Handler) sweepEvery(every time.Duration) {
	defer close(h.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			removed, err := h.sweep(h.now(), h.stop)
			if removed > 0 {
				h.log.Info("swept session folder", "folder", h.folder, "removed", removed)
			}
			if err != nil {
				h.log.Warn("sweeping session folder failed", "folder", h.folder, "removed", removed, "error", err)
			}
		}
	}
}

// Stop stops the background sweeper and waits for it to return. It is safe
// to call more than once and from several goroutines. Load, Save, Close and
// Sweep keep working after Stop.
func (h *Handler) Stop() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}
