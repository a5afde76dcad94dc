//go:build !linux

package loader

import "os/exec"

var noPIDNamespace atomicFalse

type atomicFalse struct{}

func (atomicFalse) Load() bool { return true }
func (atomicFalse) Store(bool) {}

// setProcAttr does nothing off Linux; sdk.Serve's parent watch ends the plugin.
func setProcAttr(*exec.Cmd, bool) {}

func namespaceRefused(error) bool { return false }

// killGroup is a no-op off Linux.
func killGroup(*exec.Cmd) {}

// watchExit never reports an exit off Linux; go-plugin's own detection is used.
func watchExit(int, chan<- struct{}) {}
