//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/proctest"
)

const markKey = proctest.SpawnMark

// startSpawner serves with the Spawner plugin, which starts a child holding
// its pipes and a setsid grandchild. Every process of the family, and the
// host (which passes TINA4_* settings on), carries a fresh marker.
func startSpawner(t *testing.T) (*hostProc, string, []int) {
	mark := proctest.NewMark(t)
	s := startServer(t, serverOpts{env: []string{"TINA4_PLUGIN_DIR=" + hostileDir, "TINA4_SESSION_HANDLER=Spawner", markKey + "=" + mark}})
	// The host, the plugin, its child and its setsid grandchild.
	return s, mark, proctest.WaitFor(t, markKey, mark, 4, 10*time.Second)
}

func TestHostSIGKILLLeavesNothingThePluginStarted(t *testing.T) {
	s, mark, family := startSpawner(t)
	runDir, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", s.pluginPID(t)))
	if err != nil || !strings.Contains(runDir, "tina4-plugin-") {
		t.Fatalf("the plugin should run in its private directory, cwd %q (%v)", runDir, err)
	}
	s.cmd.Process.Kill()
	<-s.done
	if !proctest.Gone(family, 10*time.Second) {
		t.Fatalf("after the host was killed with SIGKILL, these survive: %v", proctest.Marked(markKey, mark))
	}
	// Nothing ran to remove the plugin's private directory; the next host
	// does, once it is old enough not to be a launch in progress.
	if _, err := os.Stat(runDir); err != nil {
		t.Fatalf("expected the killed plugin's directory %s to be left behind: %v", runDir, err)
	}
	old := time.Now().Add(-2 * time.Minute)
	os.Chtimes(runDir, old, old)
	next := startServer(t, serverOpts{})
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Errorf("the next host did not remove %s (stat: %v):\n%s", runDir, err, next.log)
	}
}

func TestHostSIGTERMWithChildrenHoldingThePluginsPipes(t *testing.T) {
	s, mark, family := startSpawner(t)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("tina4-host did not exit within 30s of SIGTERM:\n%s", s.log)
	}
	if !proctest.Gone(family, 5*time.Second) {
		t.Fatalf("after SIGTERM these survive: %v", proctest.Marked(markKey, mark))
	}
}

// hunt runs tina4-host with the Hunter plugin, which looks for the session
// key when it starts, and returns its report. The host runs as uid/gid
// (the current user when uid < 0); extra settings go in env. Its working
// directory holds the things a key hunter looks for: a .env file and a key
// file where the host keeps one, readable by the host's user only.
func hunt(t *testing.T, uid, gid int, env ...string) (map[string]string, string, error) {
	t.Helper()
	// Everything the host's user must reach, in a directory it can enter.
	top, err := os.MkdirTemp("", "tina4-hunt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	bin := filepath.Join(top, "tina4-host")
	plugins := filepath.Join(top, "plugins")
	os.Mkdir(plugins, 0o755)
	copyExe(t, hostBin, bin)
	copyExe(t, filepath.Join(hostileDir, "Hunter"), filepath.Join(plugins, "Hunter"))
	work := filepath.Join(top, "work")
	os.Mkdir(work, 0o700)
	os.WriteFile(filepath.Join(work, ".env"), []byte("TINA4_LOG_LEVEL=info\n"), 0o600)
	os.Mkdir(filepath.Join(work, ".tina4"), 0o700)
	os.WriteFile(filepath.Join(work, ".tina4", "secret.key"), []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"), 0o600)
	reports := filepath.Join(top, "reports") // the plugin's user writes its report here
	os.Mkdir(reports, 0o1777)
	os.Chmod(reports, 0o1777)
	report := filepath.Join(reports, "report")
	if uid >= 0 {
		for _, p := range []string{work, filepath.Join(work, ".env"), filepath.Join(work, ".tina4"), filepath.Join(work, ".tina4", "secret.key")} {
			os.Chown(p, uid, gid)
		}
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Dir = work
	cmd.Env = append(baseEnv(), "TMPDIR=/tmp", "TINA4_ADDR="+addr, "TINA4_PLUGIN_DIR="+plugins, "TINA4_SESSION_HANDLER=Hunter",
		"TINA4_SECRET="+testSecret, "TINA4_SESSION_HUNT_REPORT="+report)
	cmd.Env = append(cmd.Env, env...)
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(report); err == nil {
			found := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				k, v, _ := strings.Cut(line, ": ")
				found[k] = v
			}
			return found, log.String(), nil
		}
		select {
		case err := <-done:
			return nil, log.String(), fmt.Errorf("tina4-host exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hunter wrote no report within 20s:\n%s", log)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func copyExe(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(to, 0o755)
}

// nobody is the uid and gid of an unprivileged user to run as, when the
// tests run as root; otherwise the tests' own user is unprivileged already.
func nobody(t *testing.T) (int, int) {
	if os.Geteuid() != 0 {
		return -1, -1
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("running as root, the test needs the user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

func TestAPluginOfTheSameUserHuntingForTheKey(t *testing.T) {
	uid, gid := nobody(t)
	found, log, err := hunt(t, uid, gid)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	// What docs/architecture.md says a same-user plugin can and cannot do.
	want := map[string]string{
		"environ": "denied",  // the host is non-dumpable
		"mem":     "denied",  // the same
		"cwd":     "denied",  // the same
		"dotenv":  "missing", // the plugin runs in a private directory
		"keyfile": "missing", // the same
		"guessed": "found",   // same user: files the host can read, it can read too
	}
	for k, v := range want {
		if found[k] != v {
			t.Errorf("%s: the hunter found %q, the docs say %q (report %v)", k, found[k], v, found)
		}
	}
}

func TestAPluginOfAnotherUserHuntingForTheKey(t *testing.T) {
	if os.Geteuid() != 0 {
		// Only root may start a plugin as another user: the host says so.
		_, log, err := hunt(t, -1, -1, "TINA4_PLUGIN_USER=nobody")
		if err == nil || !strings.Contains(log, "needs the host to run as root") {
			t.Fatalf("TINA4_PLUGIN_USER without root: want a start-up error saying root is needed, got %v\n%s", err, log)
		}
		return
	}
	found, log, err := hunt(t, -1, -1, "TINA4_PLUGIN_USER=nobody")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	for _, k := range []string{"environ", "mem", "cwd", "guessed"} {
		if found[k] != "denied" {
			t.Errorf("%s: a plugin of another user found %q, want denied (report %v)", k, found[k], found)
		}
	}
	for _, k := range []string{"dotenv", "keyfile"} {
		if found[k] != "missing" {
			t.Errorf("%s: want missing, found %q", k, found[k])
		}
	}
}
