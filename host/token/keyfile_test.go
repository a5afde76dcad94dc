package token

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "secret.key")
	key, created, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKey: %v", err)
	}
	if !created {
		t.Error("created = false for a new file")
	}
	if len(key) != 32 {
		t.Errorf("key is %d bytes, want 32", len(key))
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %#o, want 0600", perm)
	}
	dinfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := dinfo.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("created directory mode %#o, want no group/world bits", perm)
	}
	text, _ := os.ReadFile(path)
	if got := strings.TrimSpace(string(text)); got != hex.EncodeToString(key) {
		t.Errorf("file holds %q, want hex of the key %x", got, key)
	}
	if _, err := New(key); err != nil {
		t.Errorf("New(generated key): %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".tina4-key-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestLoadOrCreateKeyLoadsExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	first, _, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	second, created, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("second LoadOrCreateKey: %v", err)
	}
	if created {
		t.Error("second call reported created = true")
	}
	if !bytes.Equal(first, second) {
		t.Errorf("second call returned %x, want %x", second, first)
	}
}

func TestLoadOrCreateKeyRefusesOpenPermissions(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		path := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateKey(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %#o: err = %v; want a refusal telling to chmod 600", mode, err)
		}
	}
}

func TestLoadOrCreateKeyRefusesGarbage(t *testing.T) {
	for name, content := range map[string]string{
		"empty":      "",
		"not hex":    strings.Repeat("zz", 32),
		"too short":  strings.Repeat("ab", 16),
		"too long":   strings.Repeat("ab", 33),
		"two keys":   strings.Repeat("ab", 32) + "\n" + strings.Repeat("cd", 32),
		"big binary": strings.Repeat("\x00\xff", 4096),
	} {
		path := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		key, created, err := LoadOrCreateKey(path)
		if err == nil || !strings.Contains(err.Error(), "64 hex characters") {
			t.Errorf("%s: got key %x, err %v; want an error asking for 64 hex characters", name, key, err)
		}
		if created {
			t.Errorf("%s: created = true", name)
		}
		if after, _ := os.ReadFile(path); string(after) != content {
			t.Errorf("%s: file was changed", name)
		}
	}
}

func TestLoadOrCreateKeyRefusesDirectory(t *testing.T) {
	path := t.TempDir()
	if err := os.Chmod(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(path); err == nil {
		t.Error("LoadOrCreateKey(directory) succeeded")
	}
}

func TestLoadOrCreateKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "secret.key")
	const n = 8
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		keys    [n][]byte
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			keys[i], created[i], errs[i] = LoadOrCreateKey(path)
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("goroutine %d got key %x, goroutine 0 got %x", i, keys[i], keys[0])
		}
		if created[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d goroutines reported created, want exactly 1", winners)
	}
	onDisk, _, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(onDisk, keys[0]) {
		t.Errorf("key on disk %x (%v), want %x", onDisk, err, keys[0])
	}
}
