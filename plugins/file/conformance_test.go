package file

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tina4go/sessions/sdk/handlertest"
)

// The file handler passes the conformance kit in process...
func TestConformanceInProcess(t *testing.T) {
	h, err := New(t.TempDir(), WithSweepInterval(0), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	handlertest.Run(t, h)
}

// ...and as a plugin binary launched through the host's loader.
func TestConformanceAsPluginBinary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, Name), "./cmd/SessionFileHandler").CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", Name, err, out)
	}
	handlertest.RunBinary(t, dir, Name, []string{"TINA4_SESSION_FOLDER=" + t.TempDir()})
}
