package redistest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startProcess starts cmd with Pdeathsig set, so that the kernel kills the
// server with SIGKILL when the test binary dies and a crashed test does not
// leak servers.
//
// Pdeathsig fires when the thread that started the child ends, not the
// process (golang.org/issue/27505), so every server is started from one
// goroutine locked to its thread for the life of the test binary.
func startProcess(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errc := make(chan error, 1)
	starter() <- func() { errc <- cmd.Start() }
	return <-errc
}

// starter returns the channel of the goroutine that starts the servers.
var starter = sync.OnceValue(func() chan<- func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for f := range ch {
			f()
		}
	}()
	return ch
})
