package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/redistest"
	"github.com/tina4go/sessions/shared"
)

// build compiles this command into a temporary folder.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "SessionRedisHandler")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// pluginEnv is the environment a host gives the plugin, plus extra.
func pluginEnv(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		shared.Handshake.MagicCookieKey + "=" + shared.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=" + strconv.Itoa(shared.ProtocolVersion),
	}, extra...)
}

func TestPlugin(t *testing.T) {
	bin := build(t)

	t.Run("starts with Redis down and writes only the handshake to stdout", func(t *testing.T) {
		cmd := exec.Command(bin)
		cmd.Env = pluginEnv("TINA4_SESSION_REDIS_HOST=127.0.0.1", "TINA4_SESSION_REDIS_PORT="+strconv.Itoa(redistest.FreePort(t)))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		lines := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			lines <- line
		}()
		select {
		case line := <-lines:
			// Launched by hand, without a host offering versions, the
			// plugin announces the newest protocol it speaks.
			want := `^1\|` + strconv.Itoa(shared.ProtocolVersion) + `\|unix\|[^|]+\|grpc\|`
			if !regexp.MustCompile(want).MatchString(line) {
				t.Errorf("first stdout line: want the go-plugin handshake 1|%d|unix|...|grpc|..., got %q (stderr: %s)", shared.ProtocolVersion, line, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no handshake on stdout within 30s; stderr: %s", stderr.String())
		}
	})

	t.Run("bad setting: exits 1 naming the variable", func(t *testing.T) {
		cmd := exec.Command(bin)
		cmd.Env = pluginEnv("TINA4_SESSION_REDIS_PORT=sixty")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("exit code: want 1, got %d (%v)", code, err)
		}
		if !strings.Contains(stderr.String(), "TINA4_SESSION_REDIS_PORT") {
			t.Errorf("stderr: want the error naming TINA4_SESSION_REDIS_PORT, got %q", stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout: want nothing, got %q", stdout.String())
		}
	})

	t.Run("run by hand: explains it is a plugin", func(t *testing.T) {
		cmd := exec.Command(bin)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TINA4_SESSION_REDIS_PORT=" + strconv.Itoa(redistest.FreePort(t))}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "started by the host") {
			t.Errorf("want exit code 1 and an explanation on stderr, got %d and %q", code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout: want nothing, got %q", stdout.String())
		}
	})
}
