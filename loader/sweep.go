package loader

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// runDirPrefix names the private directories launch makes in $TMPDIR.
const runDirPrefix = "tina4-plugin-"

// staleAge is how old a private directory must be before a sweep may
// remove it: a younger one may belong to a launch in progress elsewhere.
const staleAge = time.Minute

var sweepOnce sync.Once

// sweepStale removes, once per process, the private directories of plugins
// whose host was killed before it could clean up (SIGKILL, a crash): this
// user's tina4-plugin-* directories in $TMPDIR older than a minute whose
// sockets all refuse connections. A directory with a live socket belongs to
// a running plugin, of this host or another one, and is left alone.
func sweepStale(log func(dir string)) {
	sweepOnce.Do(func() { sweep(os.TempDir(), log) })
}

// sweep removes the stale private directories in tmp.
func sweep(tmp string, log func(dir string)) {
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), runDirPrefix) {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		if stale(dir) && os.RemoveAll(dir) == nil && log != nil {
			log(dir)
		}
	}
}

// stale reports whether dir is this user's, old enough, and holds nothing
// but sockets that nobody listens on.
func stale(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || time.Since(fi.ModTime()) < staleAge {
		return false
	}
	if !ownedByMe(fi) {
		return false
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Type()&os.ModeSocket == 0 {
			return false // a file the plugin left: not ours to judge
		}
		c, err := net.DialTimeout("unix", filepath.Join(dir, e.Name()), time.Second)
		if err == nil {
			c.Close()
			return false // someone is listening: a live plugin
		}
	}
	return true
}
