package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tina4go/sessions/sdk/handlertest"
)

// The conformance kit, in process...
func TestConformance(t *testing.T) {
	handlertest.Run(t, NewMemoryStore())
}

// ...and as the plugin binary, launched the way the host launches it.
func TestConformanceAsPlugin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	os.Mkdir(dir, 0o755)
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "SessionMemoryHandler"), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	handlertest.RunBinary(t, dir, "SessionMemoryHandler", nil)
}
