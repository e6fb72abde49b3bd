//go:build !linux

package proc

import "os/exec"

// Start starts cmd. Only Linux can kill a child when its parent dies;
// elsewhere the caller must kill its children itself.
func Start(cmd *exec.Cmd) error { return cmd.Start() }
