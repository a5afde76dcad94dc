package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Secret rotation (TINA4_SECRET_PREVIOUS), run as the user guide tells a
// fleet to do it, with two hosts sharing one session folder.

const (
	secretA = "rotation-secret-A-0123456789abcdef0123"
	secretB = "rotation-secret-B-0123456789abcdef0123"
)

// keyHost starts a host on folder that seals with secret and also opens
// what previous (comma-separated, "" for none) sealed.
func keyHost(t *testing.T, folder, secret, previous string, env ...string) *hostProc {
	t.Helper()
	env = append([]string{"TINA4_SECRET=" + secret}, env...)
	if previous != "" {
		env = append(env, "TINA4_SECRET_PREVIOUS="+previous)
	}
	return startServer(t, serverOpts{folder: folder, noSecret: true, env: env})
}

// sessionRequest sends one API request carrying the session cookie id (as a
// load balancer passes it from host to host) and returns the values the
// host answered with and the session id the client holds afterwards: the
// id of a new session if the host started one, else id.
func sessionRequest(t *testing.T, s *hostProc, method, id, body string) (map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url("/api/session"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if id != "" {
		req.AddCookie(&http.Cookie{Name: "tina4_session", Value: id})
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Values map[string]any `json:"values"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s: %d %s\n%s", method, s.url("/api/session"), resp.StatusCode, b, s.log)
	}
	if ck := sessionCookie(resp); ck != nil && ck.MaxAge >= 0 {
		id = ck.Value
	}
	return out.Values, id
}

// write sets values on session id through s and fails unless s opened the
// session (kept its id). With id "" it creates a session and returns its id.
func write(t *testing.T, s *hostProc, id, body string) string {
	t.Helper()
	_, got := sessionRequest(t, s, "POST", id, body)
	if got == "" || (id != "" && got != id) {
		t.Fatalf("POST to session %q through %s started session %q: the host did not open the session\n%s", id, s.addr, got, s.log)
	}
	return got
}

// wantSession fails unless s opens session id and finds want in it.
func wantSession(t *testing.T, s *hostProc, id string, want map[string]any) {
	t.Helper()
	got, _ := sessionRequest(t, s, "GET", id, "")
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("GET session %s through %s: values %v, want %s=%v\n%s", id[:8], s.addr, got, k, v, s.log)
		}
	}
}

// wantNoSession fails unless s does not open session id: it answers as for
// a new, empty session.
func wantNoSession(t *testing.T, s *hostProc, id string) {
	t.Helper()
	if got, _ := sessionRequest(t, s, "GET", id, ""); len(got) != 0 {
		t.Fatalf("GET session %s through %s: values %v, want none (the session must not open)", id[:8], s.addr, got)
	}
}

func TestSecretRotationAcrossTwoHosts(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "shared-sessions")
	alice := map[string]any{"user": "alice"}

	// Step 0: both hosts on secret A.
	h1 := keyHost(t, folder, secretA, "")
	h2 := keyHost(t, folder, secretA, "")
	s0 := write(t, h1, "", `{"user":"alice"}`)
	wantSession(t, h2, s0, alice)

	// Step 1, rolling out: every host keeps sealing with A and learns B
	// (TINA4_SECRET=A, TINA4_SECRET_PREVIOUS=B). Mid roll-out, h1 is on
	// step 1 and h2 still on step 0; both seal with A, so both read all.
	h1.stop()
	h1 = keyHost(t, folder, secretA, secretB)
	wantSession(t, h1, s0, alice)
	s1 := write(t, h2, "", `{"user":"bob"}`)
	wantSession(t, h1, s1, map[string]any{"user": "bob"})
	h2.stop()
	h2 = keyHost(t, folder, secretA, secretB)
	wantSession(t, h2, s0, alice)
	wantSession(t, h2, s1, map[string]any{"user": "bob"})

	// Step 2, swapping: TINA4_SECRET=B, TINA4_SECRET_PREVIOUS=A. Mid swap,
	// h1 seals with B and h2 still with A; each reads what the other wrote.
	h1.stop()
	h1 = keyHost(t, folder, secretB, secretA)
	wantSession(t, h1, s0, alice)
	wantSession(t, h1, s1, map[string]any{"user": "bob"})
	sB := write(t, h1, "", `{"user":"carol"}`) // sealed with B
	wantSession(t, h2, sB, map[string]any{"user": "carol"})
	sA := write(t, h2, "", `{"user":"dave"}`) // sealed with A
	wantSession(t, h1, sA, map[string]any{"user": "dave"})
	write(t, h1, s0, `{"step":2}`) // re-sealed with B
	wantSession(t, h2, s0, map[string]any{"user": "alice", "step": 2.0})
	h2.stop()
	h2 = keyHost(t, folder, secretB, secretA)
	for _, h := range []*hostProc{h1, h2} {
		wantSession(t, h, s0, map[string]any{"user": "alice", "step": 2.0})
		wantSession(t, h, s1, map[string]any{"user": "bob"})
		wantSession(t, h, sB, map[string]any{"user": "carol"})
		wantSession(t, h, sA, map[string]any{"user": "dave"})
	}

	// The write re-sealed s0 with B: a host that knows only B opens it, one
	// that knows only A does not. s1 was never written again: still A.
	onlyB := keyHost(t, folder, secretB, "")
	onlyA := keyHost(t, folder, secretA, "")
	wantSession(t, onlyB, s0, map[string]any{"user": "alice", "step": 2.0})
	wantNoSession(t, onlyA, s0)
	wantSession(t, onlyA, s1, map[string]any{"user": "bob"})
	wantNoSession(t, onlyB, s1)
	// Failing to open a session is not destroying it.
	wantSession(t, h1, s0, map[string]any{"user": "alice", "step": 2.0})
	wantSession(t, h1, s1, map[string]any{"user": "bob"})
	onlyA.stop()
	onlyB.stop()

	// Step 3, after TINA4_SESSION_TTL: drop A. What was sealed with B
	// stays; an A-sealed session never written since step 2 (in real life
	// it has expired by now) is gone: the client gets a new session.
	h1.stop()
	h2.stop()
	h1 = keyHost(t, folder, secretB, "")
	h2 = keyHost(t, folder, secretB, "")
	for _, h := range []*hostProc{h1, h2} {
		wantSession(t, h, s0, map[string]any{"user": "alice", "step": 2.0})
		wantSession(t, h, sB, map[string]any{"user": "carol"})
		wantNoSession(t, h, s1)
		wantNoSession(t, h, sA)
	}
	if _, id := sessionRequest(t, h2, "POST", s1, `{"x":1}`); id == s1 || id == "" {
		t.Fatalf("a write with the cookie of a session sealed with the dropped secret got id %q; want a new session", id)
	}
}

// A session that is only read is re-sealed with the new secret once its
// sliding expiry passes half of TINA4_SESSION_TTL (the host then re-saves
// it); before that, it stays sealed with the old one.
func TestReadOnlySessionResealedPastHalfItsTTL(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "shared-sessions")
	ttl := "TINA4_SESSION_TTL=8s"
	old := keyHost(t, folder, secretA, "", ttl)
	id := write(t, old, "", `{"user":"alice"}`)
	saved := time.Now()
	old.stop()
	swapped := keyHost(t, folder, secretB, secretA, ttl)
	onlyB := keyHost(t, folder, secretB, "", ttl)

	if time.Since(saved) > 3*time.Second {
		t.Skipf("the hosts took %s to start; too slow to tell the half-life apart", time.Since(saved))
	}
	wantSession(t, swapped, id, map[string]any{"user": "alice"})
	wantNoSession(t, onlyB, id) // the read did not re-seal it yet

	time.Sleep(time.Until(saved.Add(5 * time.Second))) // past half of 8s, before 8s
	wantSession(t, swapped, id, map[string]any{"user": "alice"})
	wantSession(t, onlyB, id, map[string]any{"user": "alice"})
}

// A host that used a generated key file can move to TINA4_SECRET without
// signing anyone out: the key file's 64 hex characters are its secret.
func TestKeyFileSecretCanBeListedAsPrevious(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "sessions")
	s := startServer(t, serverOpts{dir: dir, folder: folder, noSecret: true})
	id := write(t, s, "", `{"user":"alice"}`)
	s.stop()
	key, err := os.ReadFile(filepath.Join(dir, ".tina4", "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	moved := keyHost(t, folder, secretB, strings.TrimSpace(string(key)))
	wantSession(t, moved, id, map[string]any{"user": "alice"})
}

func TestPreviousSecretNeverReachesPlugin(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte("TINA4_SECRET_PREVIOUS=dotenv-previous-0123456789abcdef\n"), 0o600)
	s := startServer(t, serverOpts{dir: dir, noSecret: true, env: []string{
		"TINA4_SECRET=" + secretB,
		"TINA4_SECRET_PREVIOUS=" + secretA + ",another-previous-0123456789abcdef",
	}})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.pluginPID(t)))
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	for _, leak := range []string{"TINA4_SECRET", secretA, secretB, "another-previous", "dotenv-previous"} {
		if strings.Contains(env, leak) {
			t.Fatalf("the plugin environment holds %q:\n%s", leak, strings.ReplaceAll(env, "\x00", "\n"))
		}
	}
	if !strings.Contains(env, "TINA4_SESSION_FOLDER=") {
		t.Fatalf("read the wrong process? no TINA4_SESSION_FOLDER in:\n%s", strings.ReplaceAll(env, "\x00", "\n"))
	}
}

func TestBadPreviousSecretFailsStartupWithoutShowingIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"key file mode", []string{"TINA4_SECRET_PREVIOUS=" + secretA}, []string{"TINA4_SECRET_PREVIOUS is set but TINA4_SECRET is not", "rotating the secret needs TINA4_SECRET"}},
		{"too short", []string{"TINA4_SECRET=" + secretB, "TINA4_SECRET_PREVIOUS=" + secretA + ",hunter2-short"}, []string{"TINA4_SECRET_PREVIOUS", "previous session secret 2 of 2 is 13 bytes, need at least 16"}},
		{"same as current", []string{"TINA4_SECRET=" + secretB, "TINA4_SECRET_PREVIOUS=" + secretB}, []string{"TINA4_SECRET_PREVIOUS", "is the current secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(hostBin, "serve")
			cmd.Dir = t.TempDir()
			cmd.Env = append(baseEnv(), append([]string{"TINA4_PLUGIN_DIR=" + pluginsDir, "TINA4_ADDR=" + freeAddr(t)}, tc.env...)...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the host started; want it to refuse:\n%s", out)
			}
			for _, want := range tc.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("start-up error lacks %q:\n%s", want, out)
				}
			}
			for _, secret := range []string{secretA, secretB, "hunter2"} {
				if strings.Contains(string(out), secret) {
					t.Errorf("start-up output shows a secret:\n%s", out)
				}
			}
			if _, err := os.Stat(filepath.Join(cmd.Dir, ".tina4")); !os.IsNotExist(err) {
				t.Errorf("a refused start-up made a key file: %v", err)
			}
		})
	}
}
