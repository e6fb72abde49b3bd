//go:build linux

package lambdalocal

import (
	"syscall"
	"unsafe"
)

// waitExit blocks until the child pid has exited, without reaping it (a
// zombie keeps its pid, and so its process group id, from being reused),
// and reports whether it could.
func waitExit(pid int) bool {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t, unused
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return errno == 0
		}
	}
}
