package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWritingAHandlerTutorial follows docs/writing-a-handler.md as a
// stranger would: the example handler is its own Go module outside this
// one, built with `go build` into a plugin directory, selected with
// TINA4_SESSION_HANDLER, and serving sessions in tina4-host.
func TestWritingAHandlerTutorial(t *testing.T) {
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	// Their module lives somewhere else entirely.
	work := filepath.Join(t.TempDir(), "my-handler")
	if err := os.CopyFS(work, os.DirFS(filepath.Join(repo, "docs", "example-handler"))); err != nil {
		t.Fatal(err)
	}
	goMod := filepath.Join(work, "go.mod")
	b, _ := os.ReadFile(goMod)
	os.WriteFile(goMod, []byte(strings.ReplaceAll(string(b), "=> ../..", "=> "+repo)), 0o644)

	plugins := filepath.Join(t.TempDir(), "plugins")
	os.Mkdir(plugins, 0o755)
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "SessionMemoryHandler"), ".")
	build.Dir = work
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tutorial step `go build -o .../plugins/SessionMemoryHandler .` failed: %v\n%s", err, out)
	}

	verify := exec.Command(hostBin, "plugins", "verify", "SessionMemoryHandler")
	verify.Env = append(baseEnv(), "TINA4_PLUGIN_DIR="+plugins)
	verify.Dir = t.TempDir()
	if out, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS SessionMemoryHandler") || !strings.Contains(string(out), "transport: fast") {
		t.Fatalf("tina4-host plugins verify SessionMemoryHandler: %v\n%s", err, out)
	}

	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + plugins, "TINA4_SESSION_HANDLER=SessionMemoryHandler"}})
	if code, m := s.health(t); code != 200 || m["handler"] != "SessionMemoryHandler" || m["built_in"] != false || m["transport"] != "fast" {
		t.Fatalf("healthz should report the example handler as a plugin, got %d %v", code, m)
	}
	c := newClient(t)
	call(t, c, "POST", s.url("/api/session"), `{"user":"alice"}`)
	if r := call(t, c, "GET", s.url("/api/session"), ""); r.Values["user"] != "alice" {
		t.Fatalf("the example handler should serve sessions, got %v", r.Values)
	}
	if entries, _ := os.ReadDir(s.folder); len(entries) != 0 {
		t.Fatalf("the memory handler must not have written to the file handler's folder")
	}

	// And the conformance kit passes in their module, as the tutorial says.
	test := exec.Command("go", "test", "./...")
	test.Dir = work
	if out, err := test.CombinedOutput(); err != nil {
		t.Fatalf("tutorial step `go test ./...` failed: %v\n%s", err, out)
	}
}
