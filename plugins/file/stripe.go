package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Stripe locks serialize the writers of one session id, across goroutines,
// Handlers and processes that share the folder: SaveIf's check and rename,
// every rename and remove of a session file, and every read and write of a
// session lock file happen while the stripe of the id is held.
//
// There is a fixed set of stripes, files .lock-00 to .lock-3f in the folder,
// and each id maps to one by a hash. A Handler keeps every stripe file open
// and takes a stripe in two steps: the stripe's sync.Mutex, which excludes
// the Handler's own goroutines (they share one open file, which an OS file
// lock does not tell apart), then an exclusive OS lock on the file (flock on
// Linux and the BSDs, LockFileEx on Windows), which excludes other Handlers
// in this process and other processes. Stripe files hold no data; Sweep
// never removes them.

const (
	// stripeCount is how many stripe files the folder holds.
	stripeCount = 64
	// stripePrefix starts the name of every stripe file: .lock-00 ... .lock-3f.
	stripePrefix = ".lock-"
)

// stripe is one stripe lock.
type stripe struct {
	mu   sync.Mutex
	path string
	f    *os.File    // the open stripe file; replaced if the file is
	info fs.FileInfo // removed or replaced behind our back
}

// isStripeName reports whether name is the name of a stripe file.
func isStripeName(name string) bool {
	if len(name) != len(stripePrefix)+2 || !strings.HasPrefix(name, stripePrefix) {
		return false
	}
	n, err := strconv.ParseUint(name[len(stripePrefix):], 16, 8)
	return err == nil && n < stripeCount && name == stripeName(int(n))
}

// stripeName is the name of stripe file i.
func stripeName(i int) string { return fmt.Sprintf("%s%02x", stripePrefix, i) }

// openStripes creates (mode 0600) and opens the stripe files of the folder.
func (h *Handler) openStripes() error {
	for i := range h.stripes {
		s := &h.stripes[i]
		s.path = filepath.Join(h.folder, stripeName(i))
		if err := s.open(); err != nil {
			for j := range i {
				_ = h.stripes[j].f.Close()
			}
			return fmt.Errorf("session folder %s: cannot create lock file %s: %w; give the user that runs the app write access to the folder",
				h.folder, filepath.Base(s.path), unwrapPath(err))
		}
	}
	return nil
}

// open opens (and if needed creates) the stripe's file.
func (s *stripe) open() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.info = f, info
	return nil
}

// stripeFor returns the stripe of id.
func (h *Handler) stripeFor(id string) *stripe { return &h.stripes[stripeIndex(id)] }

// stripeIndex is the number of the stripe (and subfolder) of id: FNV-1a of
// the id, modulo stripeCount.
func stripeIndex(id string) uint32 {
	x := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		x ^= uint32(id[i])
		x *= 16777619
	}
	return x % stripeCount
}

// lock takes the stripe; unlock releases it. Every successful lock must be
// followed by exactly one unlock.
func (s *stripe) lock() error {
	s.mu.Lock()
	var err error
	for range 8 {
		if s.f == nil {
			if err = s.open(); err != nil {
				break
			}
		}
		if err := lockFile(s.f); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("lock %s: %w", filepath.Base(s.path), err)
		}
		// A lock on a stripe file that someone removed or replaced since
		// we opened it excludes nobody who opens the file now: open the
		// one that is there and lock that instead.
		if cur, err := os.Stat(s.path); err == nil && os.SameFile(cur, s.info) {
			return nil
		}
		_ = unlockFile(s.f)
		_ = s.f.Close()
		s.f, s.info = nil, nil
	}
	s.mu.Unlock()
	if err == nil {
		err = errors.New("the lock file keeps disappearing")
	}
	return fmt.Errorf("lock %s: %w", filepath.Base(s.path), unwrapPath(err))
}

func (s *stripe) unlock() {
	if err := unlockFile(s.f); err != nil {
		// Closing the file releases its lock; lock opens it again.
		_ = s.f.Close()
		s.f, s.info = nil, nil
	}
	s.mu.Unlock()
}

// withStripe runs fn while the stripe of id is held.
func (h *Handler) withStripe(id string, fn func() error) error {
	s := h.stripeFor(id)
	if err := s.lock(); err != nil {
		return h.ioError("lock", id, err)
	}
	defer s.unlock()
	return fn()
}
