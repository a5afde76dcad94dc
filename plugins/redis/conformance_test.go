package redis

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/sdk/handlertest"
)

// The Redis handler passes the conformance kit in process...
func TestConformanceInProcess(t *testing.T) {
	srv := redistest.Start(t)
	h, err := New(Options{Redis: &redis.UniversalOptions{Addrs: []string{srv.Addr()}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	handlertest.Run(t, h)
}

// ...and as a plugin binary launched through the host's loader.
func TestConformanceAsPluginBinary(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "pw")
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, Name), "./cmd/SessionRedisHandler").CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", Name, err, out)
	}
	handlertest.RunBinary(t, dir, Name, []string{
		EnvHost + "=127.0.0.1",
		EnvPort + "=" + itoa(srv.Port()),
		EnvSecret + "=pw", // Tina4's name for the password, which the host passes on
	})
}
