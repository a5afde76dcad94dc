package loader

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrChecksum is returned when a handler binary does not have the SHA-256
// it is pinned to, or is not listed in the sums file.
var ErrChecksum = errors.New("session handler checksum mismatch")

// pinnedSum returns the SHA-256 the handler must have ("" when it is not
// pinned), from cfg.SHA256 and/or cfg.SumsFile. When both are given they
// must agree. A sums file inside the plugin directory is refused: whoever
// can replace a binary there could replace its sum too.
func pinnedSum(cfg Config) (string, error) {
	want := strings.ToLower(cfg.SHA256)
	if cfg.SumsFile == "" {
		return want, nil
	}
	absSums, err := filepath.Abs(cfg.SumsFile)
	if err != nil {
		return "", err
	}
	absDir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(absDir, absSums); err == nil && !strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%w: the sums file %s (TINA4_PLUGIN_SUMS) is inside the plugin directory %s; keep it outside, where a dropped-in binary cannot rewrite it",
			ErrChecksum, cfg.SumsFile, cfg.Dir)
	}
	f, err := os.Open(cfg.SumsFile)
	if err != nil {
		return "", fmt.Errorf("%w: read sums file (TINA4_PLUGIN_SUMS): %v", ErrChecksum, err)
	}
	defer f.Close()
	var listed string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, file, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		file = strings.TrimPrefix(strings.TrimSpace(file), "*")
		if handlerName(filepath.Base(file)) == cfg.Name {
			listed = strings.ToLower(sum)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%w: read sums file %s: %v", ErrChecksum, cfg.SumsFile, err)
	}
	if listed == "" {
		return "", fmt.Errorf("%w: %s is not listed in the sums file %s (TINA4_PLUGIN_SUMS); add a line `sha256sum %s` prints",
			ErrChecksum, cfg.Name, cfg.SumsFile, cfg.Name)
	}
	if want != "" && want != listed {
		return "", fmt.Errorf("%w: TINA4_SESSION_HANDLER_SHA256 (%s) and the sums file %s (%s) disagree about %s",
			ErrChecksum, want, cfg.SumsFile, listed, cfg.Name)
	}
	return listed, nil
}

// privateCopy copies the binary at path into a new 0700 directory, hashing
// the bytes as it writes them, and returns the copy's path when the hash is
// want. The host runs the copy: the bytes it hashed are the bytes it
// executes, whatever happens to the original afterwards. cleanup removes
// the directory.
func privateCopy(path, name, want string) (exe string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "tina4-plugin-")
	if err != nil {
		return "", nil, fmt.Errorf("make a private directory for %s: %w", name, err)
	}
	remove := func() { os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			remove()
		}
	}()
	src, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer src.Close()
	exe = filepath.Join(dir, filepath.Base(path))
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o700)
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(dst, h), src); err != nil {
		dst.Close()
		return "", nil, fmt.Errorf("copy %s: %w", path, err)
	}
	if err = dst.Close(); err != nil {
		return "", nil, err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		return "", nil, fmt.Errorf("%w: %s has SHA-256 %s, but %s is pinned to %s; if you rebuilt or upgraded it on purpose, update TINA4_SESSION_HANDLER_SHA256 or TINA4_PLUGIN_SUMS",
			ErrChecksum, path, got, name, want)
	}
	return exe, remove, nil
}
