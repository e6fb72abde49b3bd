//go:build !linux

package lambdalocal

// waitExit reports that it cannot wait for an exit without reaping here.
func waitExit(int) bool { return false }
