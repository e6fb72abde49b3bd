//go:build unix

package lambdalocal

import (
	"os"
	"syscall"
)

// canFreeze reports whether processes can be stopped and continued.
const canFreeze = true

// sysProcAttr puts each environment in a process group of its own, so
// that signals reach whatever it forks too.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends sig to p's process group (p leads it).
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}

func stopGroup(p *os.Process) error { return signalGroup(p, syscall.SIGSTOP) }
func contGroup(p *os.Process) error { return signalGroup(p, syscall.SIGCONT) }
func termGroup(p *os.Process) error { return signalGroup(p, syscall.SIGTERM) }

// killGroup kills p's process group, and p itself should the group be
// gone.
func killGroup(p *os.Process) {
	_ = signalGroup(p, syscall.SIGKILL)
	_ = p.Kill()
}
