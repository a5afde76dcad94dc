//go:build !linux

package redistest

import "os/exec"

// dieWithTest is a no-op off Linux; the test's cleanup stops the server.
func dieWithTest(*exec.Cmd) {}
