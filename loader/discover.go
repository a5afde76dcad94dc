// Package loader finds, checks, launches and supervises session handler
// plugins. Discovery (what is in the plugin directory and whether each file
// may be used) is separate from launching, so an operator can see why a
// binary was or was not used.
package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
)

// ErrUnknownHandler is returned when no plugin binary and no built-in handler
// has the requested name.
var ErrUnknownHandler = errors.New("unknown session handler")

// ErrInvalidName is returned for a handler name that is not a bare name.
var ErrInvalidName = errors.New("invalid session handler name")

// ErrUnusable is returned for a plugin file that exists but may not be run.
var ErrUnusable = errors.New("unusable session handler binary")

var namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// ValidName reports whether name is a bare handler name: a letter followed by
// letters, digits, '_' or '-' (at most 64 characters). Names with path
// separators, dots or ".." are never valid.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Candidate is one file found in the plugin directory.
type Candidate struct {
	// Name is the handler name the file would be selected by.
	Name string
	// Path is the file's path in the plugin directory.
	Path string
	// Err says why the file may not be used; nil when it may.
	Err error
}

func binaryName(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

func handlerName(file string) string {
	if runtime.GOOS == "windows" {
		return strings.TrimSuffix(file, ".exe")
	}
	return file
}

// Discover lists every entry of the plugin directory dir, in name order, with
// the reason each one is unusable (if it is). A missing directory yields no
// candidates and no error.
func Discover(dir string) ([]Candidate, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read plugin directory %s: %w", dir, err)
	}
	var out []Candidate
	for _, e := range entries {
		name := handlerName(e.Name())
		p := filepath.Join(dir, e.Name())
		c := Candidate{Name: name, Path: p}
		if !ValidName(name) {
			c.Err = fmt.Errorf("%w: %s: file name is not a valid handler name", ErrUnusable, p)
		} else {
			_, c.Err = check(dir, p)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// check decides whether the file at p inside dir may be executed and returns
// the resolved path to run.
func check(dir, p string) (string, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrUnusable, p, err)
	}
	realDir, err := filepath.EvalSymlinks(absDir)
	if err != nil {
		return "", fmt.Errorf("%w: plugin directory %s: %v", ErrUnusable, dir, err)
	}
	if runtime.GOOS != "windows" {
		if st, err := os.Stat(realDir); err == nil && st.Mode().Perm()&0o022 != 0 {
			return "", fmt.Errorf("%w: plugin directory %s is group- or world-writable (mode %v); run chmod go-w %s",
				ErrUnusable, dir, st.Mode().Perm(), dir)
		}
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrUnusable, p, err)
	}
	rel, err := filepath.Rel(realDir, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: %s is a symlink that leaves the plugin directory (to %s); copy the binary into %s instead",
			ErrUnusable, p, real, dir)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrUnusable, p, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file (mode %v)", ErrUnusable, p, st.Mode().Type())
	}
	if runtime.GOOS != "windows" {
		if st.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("%w: %s is not executable; run chmod +x %s", ErrUnusable, p, p)
		}
		if st.Mode().Perm()&0o022 != 0 {
			return "", fmt.Errorf("%w: %s is group- or world-writable (mode %v); run chmod go-w %s",
				ErrUnusable, p, st.Mode().Perm(), p)
		}
	}
	return real, nil
}

// Resolve finds the binary for handler name in dir. It returns ("", nil)
// when dir has no such file, the path to run when it has a usable one, and
// an error wrapping ErrInvalidName or ErrUnusable otherwise.
func Resolve(dir, name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("%w: %q: want a bare name such as SessionFileHandler (letters, digits, '_' and '-'; no path separators or dots)",
			ErrInvalidName, name)
	}
	p := filepath.Join(dir, binaryName(name))
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrUnusable, p, err)
	}
	return check(dir, p)
}

// unknownError builds the message for a handler that is neither in dir nor built in.
func unknownError(dir, name string, builtins []string) error {
	cands, err := Discover(dir)
	var found []string
	for _, c := range cands {
		if c.Err == nil {
			found = append(found, c.Name)
		}
	}
	where := "plugin directory " + dir
	if err != nil {
		where += " (" + err.Error() + ")"
	} else if _, statErr := os.Stat(dir); statErr != nil {
		where += " (does not exist)"
	}
	list := "none"
	if len(found) > 0 {
		list = strings.Join(found, ", ")
	}
	return fmt.Errorf("%w %q: no such binary in %s (found: %s; built in: %s); set TINA4_SESSION_HANDLER to one of these, or copy the handler binary into that directory, or point TINA4_PLUGIN_DIR at the directory that holds it",
		ErrUnknownHandler, name, where, list, strings.Join(builtins, ", "))
}

// FileSHA256 returns the hex SHA-256 of the file at p.
func FileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
