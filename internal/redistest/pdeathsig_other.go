//go:build !linux

package redistest

import "os/exec"

// startProcess starts cmd. Only Linux can kill a child when its parent
// dies; elsewhere the servers are killed in t.Cleanup only.
func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
