package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// keyFileBytes is the size of a generated key; the file holds it hex-encoded.
const keyFileBytes = 32

// errKeyFormat marks a key file whose content is not a key.
var errKeyFormat = errors.New("not a key file")

// LoadOrCreateKey returns the key held in the file at path, creating the file
// with a new random key if it does not exist. created reports whether this call
// made the file.
//
// A key file holds 32 bytes from crypto/rand as 64 hex characters (a trailing
// newline or surrounding spaces are ignored); key is those 32 decoded bytes.
// A new file is created with mode 0600, and missing parent directories with
// mode 0700. The file is written to a temporary name in the same directory
// and hard-linked into place, so it appears complete or not at all, and when
// several processes race to create it exactly one wins and the others return
// the winner's key with created false.
//
// LoadOrCreateKey refuses, with an error that says what to do:
//   - a key file that is not a regular file;
//   - a key file with any group or world permission bit set (chmod 600 it);
//   - a key file that does not hold exactly 64 hex characters.
//
// Anyone who can read the key file can forge sessions: keep it out of
// backups and images you share, and on a multi-server deployment set
// TINA4_SECRET instead so every server uses the same key.
func LoadOrCreateKey(path string) (key []byte, created bool, err error) {
	key, err = readKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	return createKey(path)
}

func createKey(path string) ([]byte, bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create directory for session key file %s: %w; create it or set TINA4_SECRET_FILE to a writable path", path, err)
	}
	key := make([]byte, keyFileBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate session key: %w", err)
	}
	text := make([]byte, hex.EncodedLen(len(key))+1)
	hex.Encode(text, key)
	text[len(text)-1] = '\n'

	tmp, err := os.CreateTemp(dir, ".tina4-key-*.tmp") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("create session key file in %s: %w; make the directory writable or set TINA4_SECRET", dir, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, err = tmp.Write(text)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write session key file %s: %w", tmpName, err)
	}

	// Link fails if path exists, unlike rename, which would replace a key
	// another process already created and handed out.
	err = os.Link(tmpName, path)
	switch {
	case err == nil:
		syncDir(dir)
		return key, true, nil
	case errors.Is(err, fs.ErrExist):
		return readRacedKey(path)
	}

	// The file system has no hard links: create the file exclusively and
	// write it in place. A racing reader may briefly see it short, which
	// readRacedKey waits out.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readRacedKey(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("create session key file %s: %w; make the directory writable or set TINA4_SECRET", path, err)
	}
	_, err = f.Write(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("write session key file %s: %w", path, err)
	}
	syncDir(dir)
	return key, true, nil
}

// readRacedKey reads a key file another process has just created. It retries
// briefly while the file is too short to be complete, which can only happen
// on the no-hard-link fallback path.
func readRacedKey(path string) ([]byte, bool, error) {
	deadline := time.Now().Add(time.Second)
	for {
		key, err := readKey(path)
		if err == nil {
			return key, false, nil
		}
		if !errors.Is(err, errKeyFormat) || time.Now().After(deadline) {
			return nil, false, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readKey reads and checks an existing key file. A missing file returns an
// error wrapping fs.ErrNotExist.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open session key file: %w; fix its permissions or set TINA4_SECRET", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat session key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("session key file %s is not a regular file (mode %v); remove it or set TINA4_SECRET_FILE to another path", path, info.Mode())
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("session key file %s has mode %#o, so other users may read it; run: chmod 600 %s", path, perm, path)
	}
	// A key file is 65 bytes; read a little more so an oversized file is
	// reported rather than silently truncated.
	data, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("read session key file %s: %w", path, err)
	}
	text := strings.TrimSpace(string(data))
	key, err := hex.DecodeString(text)
	if err != nil || len(key) != keyFileBytes {
		return nil, fmt.Errorf("session key file %s does not hold a key (want %d hex characters, as tina4 writes): %w; restore it, or delete it to generate a new key (signing out every session)",
			path, hex.EncodedLen(keyFileBytes), errKeyFormat)
	}
	return key, nil
}

// syncDir makes a new directory entry durable. Failure is not fatal: the key
// is already written and linked, and some systems cannot sync directories.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
