//go:build !linux

package loader

import "os/exec"

// dieWithHost is a no-op off Linux; sdk.Serve's parent watch ends the plugin.
func dieWithHost(*exec.Cmd) {}

// killGroup is a no-op off Linux.
func killGroup(*exec.Cmd) {}
