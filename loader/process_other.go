//go:build !linux

package loader

import (
	"errors"
	"os"
	"os/exec"
	"sync/atomic"
)

// noPIDNamespace: there are no PID namespaces here.
var noPIDNamespace = func() *atomic.Bool { var b atomic.Bool; b.Store(true); return &b }()

// setProcAttr does nothing off Linux; sdk.Serve's parent watch ends the plugin.
func setProcAttr(*exec.Cmd, bool, *credential) {}

// pluginCredential refuses TINA4_PLUGIN_USER off Linux.
func pluginCredential(name string) (*credential, error) {
	if name == "" {
		return nil, nil
	}
	return nil, errors.New("TINA4_PLUGIN_USER is supported on Linux only")
}

func namespaceRefused(error) bool { return false }

// killGroup is a no-op off Linux.
func killGroup(*exec.Cmd) {}

// watchExit never reports an exit off Linux; go-plugin's own detection is used.
func watchExit(int, chan<- struct{}) {}

// protectMemory has no equivalent here; see docs/architecture.md.
func protectMemory() error { return nil }

// ownedByMe: no sweeping of stale plugin directories off Linux.
func ownedByMe(os.FileInfo) bool { return false }
