//go:build !unix

package lambdalocal

import (
	"errors"
	"os"
	"syscall"
)

const canFreeze = false

var errNoSignals = errors.New("signals not supported on this system")

func sysProcAttr() *syscall.SysProcAttr { return nil }
func stopGroup(*os.Process) error       { return errNoSignals }
func contGroup(*os.Process) error       { return errNoSignals }
func termGroup(*os.Process) error       { return errNoSignals }
func killGroup(p *os.Process)           { _ = p.Kill() }
