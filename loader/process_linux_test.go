package loader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tina4go/sessions/internal/proctest"
	"github.com/tina4go/sessions/shared"
)

const markKey = proctest.SpawnMark

// openSpawner launches the Spawner plugin (itself, a child holding its
// pipes and a setsid grandchild) with a fresh marker, and waits for all
// three processes.
func openSpawner(t *testing.T) (*Handler, string, []int) {
	t.Helper()
	mark := proctest.NewMark(t)
	h := open(t, Config{Name: "Spawner", Dir: pluginDir(t, "Spawner"), Env: []string{markKey + "=" + mark}})
	return h, mark, proctest.WaitFor(t, markKey, mark, 3, 10*time.Second)
}

// waitForRelaunch waits until a plugin other than old answers a call.
func waitForRelaunch(t *testing.T, h *Handler, old int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := h.Load(context.Background(), testID('a'))
		if errors.Is(err, shared.ErrNotFound) && h.PID() != old {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin (pid %d) was not relaunched after it died: %v", old, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPluginsRunInAPIDNamespace(t *testing.T) {
	h, _, _ := openSpawner(t)
	if noPIDNamespace.Load() {
		t.Fatalf("this machine can start plugins in a PID namespace (root, or user namespaces); the loader gave up on it")
	}
	info, err := h.Info(context.Background())
	if err != nil || info.PID != h.PID() || info.PID <= 1 {
		t.Fatalf("Info must report the pid the host sees (%d), got %d, %v", h.PID(), info.PID, err)
	}
}

func TestCrashWithChildrenHoldingThePipesRestarts(t *testing.T) {
	h, _, family := openSpawner(t)
	oldPID := h.PID()
	if _, err := h.Load(context.Background(), "crash"+testID('x')[5:]); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call that crashes the plugin: want ErrUnavailable, got %v", err)
	}
	// Before the fix, go-plugin waited for the children to close the pipes
	// and the plugin was never restarted.
	waitForRelaunch(t, h, oldPID)
	if !proctest.Gone(family, 5*time.Second) {
		t.Errorf("processes of the crashed plugin survive: %v", family)
	}
}

func TestShutdownWithChildrenHoldingThePipes(t *testing.T) {
	h, mark, family := openSpawner(t)
	done := make(chan struct{})
	go func() { h.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown hangs while the plugin's children hold its pipes")
	}
	if !proctest.Gone(family, 5*time.Second) {
		t.Errorf("processes left after Shutdown: %v (marked now: %v)", family, proctest.Marked(markKey, mark))
	}
}

func TestWithoutPIDNamespaceACrashStillRestarts(t *testing.T) {
	noPIDNamespace.Store(true)
	t.Cleanup(func() { noPIDNamespace.Store(false) })
	h, mark, family := openSpawner(t)
	oldPID := h.PID()
	h.Load(context.Background(), "crash"+testID('x')[5:])
	waitForRelaunch(t, h, oldPID)
	// The child in the plugin's process group is killed with it; the
	// setsid grandchild is out of reach without a PID namespace (the docs
	// say so).
	var survivors []int
	for _, pid := range family {
		if !proctest.Gone([]int{pid}, 2*time.Second) {
			survivors = append(survivors, pid)
		}
	}
	if len(survivors) > 1 {
		t.Errorf("without a PID namespace only the setsid grandchild may survive, found %v", survivors)
	}
	if now := proctest.Marked(markKey, mark); !slices.Contains(now, h.PID()) {
		t.Errorf("the new plugin %d is not among the marked processes %v", h.PID(), now)
	}
}

// statusField returns a field of /proc/PID/status ("Uid", "NSpid", ...).
func statusField(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestPluginRunsInItsOwnPrivateDirectory(t *testing.T) {
	h, _ := openProbe(t, "Probe", "", 0)
	h.mu.RLock()
	dir := h.cur.runDir
	h.mu.RUnlock()
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", h.PID())); err != nil || cwd != dir {
		t.Fatalf("the plugin's working directory is %q (%v), want its private directory %s", cwd, err, dir)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) < 2 {
		t.Errorf("want go-plugin's socket and the fast socket in %s, found %v", dir, entries)
	}
	pid := h.PID()
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(15 * time.Second)
	for h.PID() == pid || h.PID() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("not restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !proctest.Gone([]int{pid}, 5*time.Second) {
		t.Fatal("old plugin still alive")
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crashed plugin's directory %s (and its sockets) was not removed", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPluginUser(t *testing.T) {
	dir := pluginDir(t)
	copyFile(t, filepath.Join(binDir, "probe"), filepath.Join(dir, "Probe"), 0o755)
	cfg := Config{Name: "Probe", Dir: dir, User: "nobody", Logger: quietLogger()}
	if os.Geteuid() != 0 {
		_, err := Open(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "needs the host to run as root") {
			t.Fatalf("TINA4_PLUGIN_USER without root: want an error saying root is needed, got %v", err)
		}
		return
	}
	// The plugin directory is the test's (0700): give nobody a way in.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	h := open(t, cfg)
	u, _ := user.Lookup("nobody")
	if uid := strings.Fields(statusField(t, h.PID(), "Uid")); len(uid) == 0 || uid[0] != u.Uid {
		t.Fatalf("plugin runs as uid %v, want nobody (%s)", uid, u.Uid)
	}
	if h.Transport() != TransportFast {
		t.Errorf("a plugin of another user still gets the fast transport, got %q", h.Transport())
	}
	rec := shared.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}
	if err := h.Save(context.Background(), testID('u'), rec); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Load(context.Background(), testID('u')); err != nil || string(got.Data) != "x" {
		t.Fatalf("Load from a plugin of another user: %q %v", got.Data, err)
	}
	if _, err := Open(context.Background(), Config{Name: "Probe", Dir: dir, User: "no-such-user-here", Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("an unknown TINA4_PLUGIN_USER: want 'no such user', got %v", err)
	}
}

func TestSweepRemovesOnlyDeadOldPluginDirectories(t *testing.T) {
	tmp := t.TempDir()
	mk := func(name string, age time.Duration, fill func(dir string)) string {
		dir := filepath.Join(tmp, name)
		os.Mkdir(dir, 0o700)
		fill(dir)
		old := time.Now().Add(-age)
		os.Chtimes(dir, old, old)
		return dir
	}
	deadSocket := func(dir string) {
		l, err := net.Listen("unix", filepath.Join(dir, "plugin1"))
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // the socket file stays, nobody listens: a killed plugin
	}
	dead := mk(runDirPrefix+"dead", 2*time.Minute, deadSocket)
	young := mk(runDirPrefix+"young", 0, deadSocket)
	live := mk(runDirPrefix+"live", 2*time.Minute, func(dir string) {
		l, err := net.Listen("unix", filepath.Join(dir, "handler.sock"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	})
	withFile := mk(runDirPrefix+"file", 2*time.Minute, func(dir string) { os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o600) })
	other := mk("something-else", 2*time.Minute, deadSocket)
	var removed []string
	sweep(tmp, func(dir string) { removed = append(removed, dir) })
	if !slices.Equal(removed, []string{dead}) {
		t.Fatalf("sweep removed %v, want only %s", removed, dead)
	}
	for _, d := range []string{young, live, withFile, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s must be left alone: %v", d, err)
		}
	}
}

func TestAnotherUserCannotReachTheFastSocket(t *testing.T) {
	h, _ := openProbe(t, "Probe", "", 0)
	h.mu.RLock()
	sock := filepath.Join(h.cur.runDir, shared.FastSocketName)
	h.mu.RUnlock()
	if os.Geteuid() != 0 {
		// Only root can start a process as another user; the directory's
		// mode (TestFastSocketIsPrivate) is what keeps them out.
		t.Logf("not root: checked through the directory's mode only")
		return
	}
	// This test binary, copied where nobody can run it, tries to connect.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tina4-dial-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	copyFile(t, exe, filepath.Join(dir, "dial"), 0o755)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("running as root, the test needs the user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	run := func(cred *syscall.Credential) int {
		cmd := exec.Command(filepath.Join(dir, "dial"))
		cmd.Env = []string{dialEnv + "=" + sock}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == 4 {
				t.Logf("dial: %s", out)
			}
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := run(nil); code != 0 {
		t.Fatalf("the host's own user cannot connect to %s (exit %d); the test proves nothing", sock, code)
	}
	if code := run(&syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}); code != 3 {
		t.Fatalf("another user connecting to the fast socket: want permission denied (exit 3), got exit %d", code)
	}
}
