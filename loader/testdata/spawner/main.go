// Command spawner is a test plugin named "Spawner" that misbehaves the way
// real handlers do by accident: before serving it starts a child that holds
// its stdout and stderr (a handler that shells out, Python's
// multiprocessing), and a grandchild that also calls setsid to leave the
// plugin's process group and session. Both sleep for ever. Every process
// of the family carries TINA4_SESSION_SPAWN_MARK in its environment, so a
// test can find them all in /proc.
//
// Load of an id starting with "crash" makes the plugin exit at once; any
// other call succeeds and stores nothing.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/tina4go/sessions/sdk"
)

type spawner struct{}

func (spawner) Load(_ context.Context, id string) (sdk.Record, error) {
	if strings.HasPrefix(id, "crash") {
		os.Exit(3)
	}
	return sdk.Record{}, sdk.ErrNotFound
}
func (spawner) Save(context.Context, string, sdk.Record) error { return nil }
func (spawner) Close(context.Context, string) error            { return nil }

// spawn starts this binary again as role, holding our stdout and stderr.
func spawn(role string, setsid bool) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SPAWNER_ROLE="+role)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if setsid {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "spawner:", err)
		os.Exit(1)
	}
}

func main() {
	switch os.Getenv("SPAWNER_ROLE") {
	case "child":
		spawn("grandchild", true)
		select {}
	case "grandchild":
		select {}
	}
	spawn("child", false)
	if err := sdk.Serve(sdk.Config{Name: "Spawner", Version: "0.0.1", Handler: spawner{}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
