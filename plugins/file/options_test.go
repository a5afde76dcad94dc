package file

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSweep(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", time.Minute},
		{"90s", 90 * time.Second},
		{"90", 90 * time.Second},
		{" 5m ", 5 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1s", time.Second},
		{"0", 0},
		{"0s", 0},
		{"-1", 0},
	}
	for _, tc := range tests {
		got, err := parseSweep(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSweep(%q): want %v, got %v, %v", tc.in, tc.want, got, err)
		}
	}
}

func TestParseSweepRejectsBadValues(t *testing.T) {
	for _, in := range []string{"often", "90x", "1.5", "500ms", "1ns", "99999999999999999999", "9999999999999"} {
		_, err := parseSweep(in)
		if err == nil {
			t.Errorf("parseSweep(%q): want an error, got nil", in)
			continue
		}
		if !strings.Contains(err.Error(), EnvSweep) {
			t.Errorf("parseSweep(%q): want the error to name %s, got %q", in, EnvSweep, err)
		}
	}
}

func TestNewFromEnvUsesTheFolderSetting(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "from-env")
	t.Setenv(EnvFolder, folder)
	t.Setenv(EnvSweep, "0")
	h, err := NewFromEnv()
	if err != nil {
		t.Fatalf("NewFromEnv: want a handler, got %v", err)
	}
	defer h.Stop()
	if h.folder != folder {
		t.Errorf("NewFromEnv: want folder %s from %s, got %s", folder, EnvFolder, h.folder)
	}
	if info, err := os.Stat(folder); err != nil || !info.IsDir() {
		t.Errorf("NewFromEnv: want folder %s created, stat says %v", folder, err)
	}
}

func TestNewFromEnvDefaultsToSessionsInTheWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(EnvFolder, "")
	t.Setenv(EnvSweep, "")
	h, err := NewFromEnv()
	if err != nil {
		t.Fatalf("NewFromEnv: want a handler, got %v", err)
	}
	defer h.Stop()
	want := filepath.Join(dir, "sessions")
	if h.folder != want {
		t.Errorf("NewFromEnv with %s unset: want folder %s, got %s", EnvFolder, want, h.folder)
	}
}

func TestNewFromEnvRejectsABadSweepSetting(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "sessions")
	t.Setenv(EnvFolder, folder)
	t.Setenv(EnvSweep, "every so often")
	h, err := NewFromEnv()
	if err == nil {
		h.Stop()
		t.Fatalf("NewFromEnv with %s=%q: want an error, got a handler", EnvSweep, "every so often")
	}
	if !strings.Contains(err.Error(), EnvSweep) {
		t.Errorf("NewFromEnv: want the error to name %s, got %q", EnvSweep, err)
	}
	if _, err := os.Stat(folder); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("NewFromEnv with a bad setting: want no folder created, stat says %v", err)
	}
}
