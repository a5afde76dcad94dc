// Command hunter is a test plugin named "Hunter" that behaves as a
// malicious handler would: when it starts, it looks for the host's session
// key and writes what it found to the file TINA4_SESSION_HUNT_REPORT, one
// "what: result" line each:
//
//	environ   the host's /proc/PID/environ: "secret" (holds TINA4_SECRET), "nothing", or "denied"
//	mem       opening the host's /proc/PID/mem: "open" or "denied"
//	cwd       the host's working directory through /proc/PID/cwd: the path, or "denied"
//	dotenv    ./.env in the plugin's own working directory: "found" or "missing"
//	keyfile   ./.tina4/secret.key in the plugin's own working directory: "found" or "missing"
//	guessed   .tina4/secret.key beside TINA4_SESSION_FOLDER (where the host's
//	          working directory probably is): "found", "denied" or "missing"
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tina4go/sessions/sdk"
)

type hunter struct{}

func result(err error, ok string) string {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, fs.ErrPermission):
		return "denied"
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	}
	return "error " + err.Error()
}

// hostPID is the plugin's parent as /proc sees it (inside a PID namespace
// getppid says 0, but /proc is the host's).
func hostPID() string {
	stat, _ := os.ReadFile("/proc/self/stat")
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i > 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 1 {
			return f[1]
		}
	}
	return "0"
}

func hunt() string {
	host := "/proc/" + hostPID()
	var out []string
	env, err := os.ReadFile(host + "/environ")
	switch {
	case err == nil && strings.Contains(string(env), "TINA4_SECRET="):
		out = append(out, "environ: secret")
	case err == nil:
		out = append(out, "environ: nothing")
	default:
		out = append(out, "environ: "+result(err, ""))
	}
	f, err := os.Open(host + "/mem")
	if err == nil {
		f.Close()
	}
	out = append(out, "mem: "+result(err, "open"))
	if cwd, err := os.Readlink(host + "/cwd"); err == nil {
		out = append(out, "cwd: "+cwd)
	} else {
		out = append(out, "cwd: "+result(err, ""))
	}
	_, err = os.ReadFile(".env")
	out = append(out, "dotenv: "+result(err, "found"))
	_, err = os.ReadFile(filepath.Join(".tina4", "secret.key"))
	out = append(out, "keyfile: "+result(err, "found"))
	guess := filepath.Join(filepath.Dir(os.Getenv("TINA4_SESSION_FOLDER")), ".tina4", "secret.key")
	_, err = os.ReadFile(guess)
	out = append(out, "guessed: "+result(err, "found"))
	return strings.Join(out, "\n")
}

func (hunter) Load(context.Context, string) (sdk.Record, error) { return sdk.Record{}, sdk.ErrNotFound }
func (hunter) Save(context.Context, string, sdk.Record) error   { return nil }
func (hunter) Close(context.Context, string) error              { return nil }

func main() {
	if report := os.Getenv("TINA4_SESSION_HUNT_REPORT"); report != "" {
		os.WriteFile(report+".tmp", []byte(hunt()+"\n"), 0o644)
		os.Rename(report+".tmp", report)
	}
	if err := sdk.Serve(sdk.Config{Name: "Hunter", Version: "0.0.1", Handler: hunter{}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
